"""The network of Leung & Bovy (2019) in PyTorch: a luminosity branch, two heads, and an offset branch.

Predicted Gaia parallax (METHOD §2–§3):

    ϖ_pred = L · 10^(−0.2 K_corr) + Δϖ(G, BP−RP, Teff)

The luminosity branch never sees K_corr or G: a branch that did could absorb the zero-point into
L (L' = L + Δϖ·10^(0.2 K)) and the offset would not be identifiable.

Every branch is split into a deterministic *stem* (the layers before the first dropout) and a
stochastic *body*, so Monte-Carlo dropout evaluates the stem once per star and only repeats the body.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from zpdist.io.spectra import N_PIXELS


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`ZeroPointNet`.

    Attributes
    ----------
    mode : {"spectra", "labels"}
        Luminosity from the 7,514-pixel spectrum (the paper) or from stellar labels.
    offset_model : {"constant", "multivariate"}
        A single global Δϖ, or an MLP on standardised (G, BP−RP, Teff).
    n_inputs : int
        Length of the luminosity branch's input (7514 pixels, or the number of labels).
    dropout : float
        Dropout rate, kept on at inference for Monte-Carlo dropout.
    init_std : float
        Standard deviation of the normal weight initialisation.
    luminosity_head : {"auto", "softplus", "log_linear"}
        How the features become L. "softplus": L = scale · softplus(raw), the paper's head.
        "log_linear": L = scale · exp(w·x + raw), with a dropout-free linear term in x: the standardised
        labels, or the first ``n_components`` whitened principal components of the standardised spectrum.
        "auto": log_linear in labels mode, softplus in spectra mode (how models were built before the
        option existed, so their checkpoints load unchanged; training now always names the head).
    n_components : int
        Principal components of the spectrum feeding a spectra-mode log-linear term.
    n_quadratic : int
        The products z_i·z_j (i ≤ j < n_quadratic) of the leading whitened components also feed that
        term, which makes ln L a quadratic polynomial in the spectrum's leading components plus the
        network's correction. Line depths are smooth functions of T_eff, log g and the abundances and
        ln L is nearly linear in those labels, so the polynomial reaches the luminous giants where the
        parallaxes hardly constrain L. 0 (how models were built before the option existed) is linear.
    """

    mode: Literal["spectra", "labels"] = "spectra"
    offset_model: Literal["constant", "multivariate"] = "constant"
    n_inputs: int = N_PIXELS
    dropout: float = 0.3
    init_std: float = 0.05
    luminosity_head: Literal["auto", "softplus", "log_linear"] = "auto"
    n_components: int = 32
    n_quadratic: int = 0

    @property
    def uses_log_linear(self) -> bool:
        """Whether L has the multiplicative log-linear form (see ``luminosity_head``)."""
        if self.luminosity_head == "auto":
            return self.mode == "labels"
        if self.luminosity_head not in ("softplus", "log_linear"):
            raise ValueError(f"unknown luminosity head {self.luminosity_head!r}; use auto, softplus or log_linear")
        return self.luminosity_head == "log_linear"

    def to_dict(self) -> dict:
        return asdict(self)


class SpectraBranch(nn.Module):
    """Conv1D(2, 8) → dropout → Conv1D(4, 8) → MaxPool(4) → dropout → Dense(164) → dropout → Dense(64)."""

    def __init__(self, n_pixels: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 2, kernel_size=8)
        self.conv2 = nn.Conv1d(2, 4, kernel_size=8)
        self.pool = nn.MaxPool1d(4)
        n_flat = 4 * ((n_pixels - 14) // 4)
        self.dense1 = nn.Linear(n_flat, 164)
        self.dense2 = nn.Linear(164, 64)
        self.dropout = nn.Dropout(dropout)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic part: the first convolution (N, 7514) → (N, 2, 7507)."""
        return torch.relu(self.conv1(x.unsqueeze(1)))

    def body(self, h: torch.Tensor) -> torch.Tensor:
        """Stochastic part: stem output → (N, 64) features."""
        h = torch.relu(self.conv2(self.dropout(h)))
        h = self.dropout(self.pool(h).flatten(1))
        h = self.dropout(torch.relu(self.dense1(h)))
        return torch.relu(self.dense2(h))


class LabelsBranch(nn.Module):
    """Dense(128, ReLU) → dropout → Dense(64, ReLU) → dropout → Dense(64, ReLU) on standardised labels."""

    def __init__(self, n_labels: int, dropout: float):
        super().__init__()
        self.dense1 = nn.Linear(n_labels, 128)
        self.dense2 = nn.Linear(128, 64)
        self.dense3 = nn.Linear(64, 64)
        self.dropout = nn.Dropout(dropout)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.dense1(x))

    def body(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(self.dense2(self.dropout(h))))
        return torch.relu(self.dense3(h))


class OffsetMLP(nn.Module):
    """Δϖ (mas) from standardised (G, BP−RP, Teff): Dense(32, tanh) → dropout → Dense(16, tanh) → dropout → Dense(1)."""

    def __init__(self, dropout: float):
        super().__init__()
        self.dense1 = nn.Linear(3, 32)
        self.dense2 = nn.Linear(32, 16)
        self.out = nn.Linear(16, 1)
        self.dropout = nn.Dropout(dropout)

    def stem(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense1(z))

    def body(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.tanh(self.dense2(self.dropout(h))))
        return self.out(h).squeeze(-1)


class ZeroPointNet(nn.Module):
    """Luminosity network with heteroscedastic heads and a jointly fitted parallax zero-point.

    Inputs are standardised inside the model with statistics stored as buffers (so they travel
    in the checkpoint). ``fakemag_scale`` sets the natural size of L and σ_L² = scale² · exp(raw_s).

    - spectra mode (the paper): L = scale · softplus(raw);
    - labels mode (ours), or ``luminosity_head="log_linear"``: L = scale · exp(w·x + raw), a
      dropout-free log-linear term in the standardised labels (or in the spectrum's leading whitened
      principal components, stored as the ``projection`` buffer) plus the network's correction. To first
      order log L is linear in the labels (log L = log M + 4 log T_eff − log g, and BC_K is smooth in
      T_eff), so the network extrapolates like the physics
      to the luminous giants, which are all distant and where L is nearly degenerate with the
      zero-point; a softplus MLP there under-predicts L by a few per cent and biases Δϖ.
      The same happens to the paper's spectra network on the mock: its L is 6–9 % low for the
      luminous, distant giants (log L > 2, d > 4 kpc) although a ridge regression on the same
      spectra has no such trend, and the fitted Δϖ is ≈ 11 µas too high.

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n = config.n_inputs
        self.branch = SpectraBranch(n, config.dropout) if config.mode == "spectra" else LabelsBranch(n, config.dropout)
        self.fakemag_head = nn.Linear(64, 1)
        self.log_var_head = nn.Linear(64, 1)
        spectra_pca = config.uses_log_linear and config.mode == "spectra"
        n_linear = config.n_components + config.n_quadratic * (config.n_quadratic + 1) // 2 if spectra_pca else n
        self.log_linear = nn.Linear(n_linear, 1) if config.uses_log_linear else None
        if config.offset_model == "constant":
            self.offset_mas = nn.Parameter(torch.zeros(()))
            self.offset_mlp = None
        elif config.offset_model == "multivariate":
            self.offset_mas = None
            self.offset_mlp = OffsetMLP(config.dropout)
        else:
            raise ValueError(f"unknown offset model {config.offset_model!r}")
        self.register_buffer("input_mean", torch.zeros(n))
        self.register_buffer("input_std", torch.ones(n))
        self.register_buffer("offset_input_mean", torch.zeros(3))
        self.register_buffer("offset_input_std", torch.ones(3))
        self.register_buffer("fakemag_scale", torch.ones(()))
        if spectra_pca:
            if not 0 <= config.n_quadratic <= config.n_components:
                raise ValueError(f"n_quadratic {config.n_quadratic} is not in [0, n_components={config.n_components}]")
            self.register_buffer("projection", torch.zeros(config.n_components, n))
            first, second = torch.triu_indices(config.n_quadratic, config.n_quadratic)
            self.register_buffer("quadratic_pairs", torch.stack([first, second]), persistent=False)
        else:
            self.projection = None
        self._initialise(config.init_std)

    def _initialise(self, std: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv1d):
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)
        # start near L = scale and σ_L = 0.3·scale
        nn.init.constant_(self.fakemag_head.bias, 0.0 if self.log_linear is not None else math.log(math.e - 1.0))
        nn.init.constant_(self.log_var_head.bias, 2.0 * math.log(0.3))
        if self.log_linear is not None:
            nn.init.zeros_(self.log_linear.weight)

    def set_statistics(
        self,
        input_mean: torch.Tensor,
        input_std: torch.Tensor,
        fakemag_scale: float,
        offset_input_mean: torch.Tensor | None = None,
        offset_input_std: torch.Tensor | None = None,
    ) -> None:
        """Store the training set's standardisation statistics (zero std is replaced by 1)."""
        self.input_mean.copy_(input_mean)
        self.input_std.copy_(torch.where(input_std > 0, input_std, torch.ones_like(input_std)))
        self.fakemag_scale.fill_(fakemag_scale)
        if offset_input_mean is not None:
            self.offset_input_mean.copy_(offset_input_mean)
            self.offset_input_std.copy_(offset_input_std)

    def set_projection(self, standardised: torch.Tensor) -> None:
        """Fit the whitened principal components of standardised training spectra (rows) for the log-linear term.

        Parameters
        ----------
        standardised : Tensor, shape (N, n_pixels)
            Training spectra after :meth:`set_statistics`'s standardisation (a random subset suffices).
        """
        k = self.config.n_components
        _, singular, vectors = torch.pca_lowrank(standardised, q=k, center=True, niter=4)
        score_std = singular / math.sqrt(max(len(standardised) - 1, 1))
        self.projection.copy_((vectors / torch.clamp(score_std, min=1e-12)).T)

    def log_linear_inputs(self, standardised: torch.Tensor) -> torch.Tensor:
        """The log-linear term's inputs: the standardised labels, or the spectrum's leading whitened
        principal components z followed by the products z_i·z_j (i ≤ j < ``n_quadratic``)."""
        if self.projection is None:
            return standardised
        components = standardised @ self.projection.T
        if self.config.n_quadratic == 0:
            return components
        first, second = self.quadratic_pairs
        return torch.cat([components, components[:, first] * components[:, second]], dim=1)

    def weight_penalty(self) -> torch.Tensor:
        """Sum of squared weights (for the L2 term), biases and the offset excluded."""
        return sum((p**2).sum() for name, p in self.named_parameters() if name.endswith("weight"))

    def _heads(self, features: torch.Tensor, log_linear: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.fakemag_scale
        raw = self.fakemag_head(features).squeeze(-1)
        if log_linear is None:
            fakemag = scale * nn.functional.softplus(raw)
        else:
            fakemag = scale * torch.exp(torch.clamp(raw + log_linear, max=30.0))
        log_var = self.log_var_head(features).squeeze(-1) + 2.0 * torch.log(scale)
        return fakemag, log_var

    def _body(self, h: torch.Tensor, body_dtype: torch.dtype | None) -> torch.Tensor:
        """The branch's stochastic body, under autocast to ``body_dtype`` when given; float32 out."""
        if body_dtype is None:
            return self.branch.body(h)
        with torch.autocast(h.device.type, dtype=body_dtype):
            return self.branch.body(h).float()

    def forward(
        self,
        inputs: torch.Tensor,
        offset_inputs: torch.Tensor | None = None,
        n_samples: int = 1,
        body_dtype: torch.dtype | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predict fakemag, its log-variance and the offset.

        Parameters
        ----------
        inputs : Tensor, shape (N, n_inputs)
            Spectra or labels, not standardised.
        offset_inputs : Tensor, shape (N, 3), optional
            G (mag), BP−RP (mag), Teff (K); required for the multivariate offset.
        n_samples : int
            Number of passes through the stochastic layers; outputs get a trailing axis of this
            length when ``n_samples > 1``. Dropout is active only in training mode or after
            :func:`enable_mc_dropout`.
        body_dtype : torch.dtype, optional
            Run the repeated (dropout) body of the luminosity branch under autocast to this dtype
            (bfloat16 or float16: mixed-precision inference). Everything evaluated once per star,
            the heads and the offset stay in float32.

        Returns
        -------
        dict of Tensor
            ``fakemag`` (L), ``log_var`` (ln σ_L²) and ``offset`` (mas), each of shape (N,) or (N, n_samples).
        """
        n = inputs.shape[0]
        standardised = (inputs - self.input_mean) / self.input_std
        h = self.branch.stem(standardised)
        log_linear = None
        if self.log_linear is not None:
            log_linear = self.log_linear(self.log_linear_inputs(standardised)).squeeze(-1)
        if n_samples > 1:
            h = h.repeat_interleave(n_samples, dim=0)
            log_linear = None if log_linear is None else log_linear.repeat_interleave(n_samples, dim=0)
        fakemag, log_var = self._heads(self._body(h, body_dtype), log_linear)
        if self.offset_mlp is None:
            offset = self.offset_mas.expand(fakemag.shape[0])
        else:
            if offset_inputs is None:
                raise ValueError("the multivariate offset model needs offset_inputs (G, BP-RP, Teff)")
            z = self.offset_mlp.stem((offset_inputs - self.offset_input_mean) / self.offset_input_std)
            if n_samples > 1:
                z = z.repeat_interleave(n_samples, dim=0)
            offset = self.offset_mlp.body(z)
        outputs = {"fakemag": fakemag, "log_var": log_var, "offset": offset}
        if n_samples > 1:
            outputs = {k: v.reshape(n, n_samples) for k, v in outputs.items()}
        return outputs


def enable_mc_dropout(model: nn.Module) -> None:
    """Evaluation mode everywhere except the dropout layers, which stay stochastic (Monte-Carlo dropout)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.train()
