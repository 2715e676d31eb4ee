"""The network of Leung & Bovy (2019) in PyTorch, composed of an input branch, a luminosity head and an offset model.

Predicted Gaia parallax (docs/method.md §2–§3):

    ϖ_pred = L · 10^(−0.2 K_corr) + Δϖ(G, BP−RP, Teff)

The luminosity branch never sees K_corr or G: a branch that did could absorb the zero-point into
L (L' = L + Δϖ·10^(0.2 K)) and the offset would not be identifiable.

The components live in :mod:`zpdist.nn.luminosity` (branches and heads) and :mod:`zpdist.nn.offset`
(offset models); each splits into a deterministic *stem* (the layers before the first dropout) and a
stochastic *body*, so Monte-Carlo dropout evaluates the stems once per star and only repeats the bodies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from zpdist.errors import ConfigError
from zpdist.io.spectra import N_PIXELS
from zpdist.nn.luminosity import LogLinearHead, LuminosityHead, PrincipalComponents, SoftplusHead, input_branch
from zpdist.nn.offset import offset_model


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
            raise ConfigError(f"unknown luminosity head {self.luminosity_head!r}; use auto, softplus or log_linear")
        return self.luminosity_head == "log_linear"

    def to_dict(self) -> dict:
        return asdict(self)


class ZeroPointNet(nn.Module):
    """Luminosity network with heteroscedastic heads and a jointly fitted parallax zero-point.

    Composed of an input branch (:mod:`zpdist.nn.luminosity`: spectra CNN or labels MLP), a
    luminosity head (features → L, ln σ_L²) and an offset model (:mod:`zpdist.nn.offset`: Δϖ from
    G, BP−RP, Teff). Inputs are standardised inside the model with statistics stored as buffers (so
    they travel in the checkpoint); the head's ``scale`` sets the natural size of L.

    - spectra mode (the paper): L = scale · softplus(raw);
    - labels mode (ours), or ``luminosity_head="log_linear"``: L = scale · exp(w·x + raw), a
      dropout-free log-linear term in the standardised labels (or in the spectrum's leading whitened
      principal components) plus the network's correction. A softplus MLP under-predicts L of the
      luminous, distant giants, where L is nearly degenerate with the zero-point, and biases Δϖ
      (docs/method.md §3; measured by ``benchmarks/recovery.py``).

    Parameters
    ----------
    config : ModelConfig

    Raises
    ------
    ConfigError
        If the mode, head or offset model is unknown, or ``n_quadratic`` is out of range.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n = config.n_inputs
        self.branch = input_branch(config.mode, n, config.dropout)
        self.head = _luminosity_head(config)
        self.offset = offset_model(config.offset_model, config.dropout)
        self.register_buffer("input_mean", torch.zeros(n))
        self.register_buffer("input_std", torch.ones(n))
        self._initialise(config.init_std)

    def _initialise(self, std: float) -> None:
        """Normal weights and zero biases in module order (this order consumes the RNG), then the head's start."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv1d):
                nn.init.normal_(module.weight, 0.0, std)
                nn.init.zeros_(module.bias)
        self.head.initialise()

    @property
    def can_warm_start(self) -> bool:
        """Whether the head has a log-linear term for :func:`zpdist.nn.warm_start.warm_start_log_linear`."""
        return self.head.can_warm_start

    @property
    def needs_projection(self) -> bool:
        """Whether :meth:`set_projection` must be called with training spectra before training."""
        return self.head.needs_projection

    def set_statistics(
        self,
        input_mean: torch.Tensor,
        input_std: torch.Tensor,
        fakemag_scale: float,
        offset_input_mean: torch.Tensor | None = None,
        offset_input_std: torch.Tensor | None = None,
    ) -> None:
        """Store the training set's standardisation statistics (zero std is replaced by 1) and L's scale."""
        self.input_mean.copy_(input_mean)
        self.input_std.copy_(torch.where(input_std > 0, input_std, torch.ones_like(input_std)))
        self.head.scale.fill_(fakemag_scale)
        if offset_input_mean is not None:
            self.offset.set_statistics(offset_input_mean, offset_input_std)

    def set_projection(self, standardised: torch.Tensor) -> None:
        """Fit the whitened principal components of standardised training spectra (rows) for the log-linear term.

        Parameters
        ----------
        standardised : Tensor, shape (N, n_pixels)
            Training spectra after :meth:`standardise` (a random subset suffices).
        """
        self.head.set_projection(standardised)

    def standardise(self, inputs: torch.Tensor) -> torch.Tensor:
        """Spectra or labels standardised with the training statistics."""
        return (inputs - self.input_mean) / self.input_std

    def penalised_weights(self) -> list[nn.Parameter]:
        """The parameters of the L2 term: the weights, biases and the offset excluded."""
        return [p for name, p in self.named_parameters() if name.endswith("weight")]

    def weight_penalty(self) -> torch.Tensor:
        """Sum of squared weights (for the L2 term), biases and the offset excluded."""
        return sum((p**2).sum() for p in self.penalised_weights())

    def _body(self, h: torch.Tensor, n_samples: int, body_dtype: torch.dtype | None) -> torch.Tensor:
        """``n_samples`` passes of the branch's stochastic body per star, under autocast to ``body_dtype`` when
        given; float32 out."""
        if body_dtype is None:
            return self.branch.sample_body(h, n_samples)
        with torch.autocast(h.device.type, dtype=body_dtype):
            return self.branch.sample_body(h, n_samples).float()

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
            G (mag), BP−RP (mag), Teff (K); required by an offset model that reads them.
        n_samples : int
            Number of passes through the stochastic layers; outputs get a trailing axis of this
            length when ``n_samples > 1``. Dropout is active only in training mode or after
            :func:`enable_mc_dropout`; with gradients off, the spectra branch's passes draw their own
            dropout masks (:meth:`zpdist.nn.luminosity.SpectraBranch.sample_body`).
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
        standardised = self.standardise(inputs)
        h = self.branch.stem(standardised)
        linear_inputs = self.head.linear_inputs(standardised)
        fakemag, log_var = self.head(self._body(h, n_samples, body_dtype), linear_inputs, n_samples)
        offset = self.offset(offset_inputs, n, n_samples)
        outputs = {"fakemag": fakemag, "log_var": log_var, "offset": offset}
        if n_samples > 1:
            outputs = {k: v.reshape(n, n_samples) for k, v in outputs.items()}
        return outputs


def _luminosity_head(config: ModelConfig) -> LuminosityHead:
    """The head ``config`` names: softplus, or log-linear in the labels or in the spectrum's principal components."""
    if not config.uses_log_linear:
        return SoftplusHead()
    if config.mode == "spectra":
        components = PrincipalComponents(config.n_inputs, config.n_components, config.n_quadratic)
        return LogLinearHead(config.n_inputs, components)
    return LogLinearHead(config.n_inputs)


#: Checkpoint keys of "zpdist-model-v1" (before the components) and their names now, by prefix.
V1_KEY_PREFIXES = (
    ("offset_mas", "offset.value"),
    ("offset_mlp.", "offset."),
    ("offset_input_", "offset.input_"),
    ("fakemag_head.", "head.fakemag."),
    ("log_var_head.", "head.log_var."),
    ("log_linear.", "head.linear."),
    ("projection", "head.components.projection"),
    ("fakemag_scale", "head.scale"),
)


def state_dict_from_v1(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A "zpdist-model-v1" state dict under the component names of :class:`ZeroPointNet` (tensors unchanged)."""

    def rename(key: str) -> str:
        for old, new in V1_KEY_PREFIXES:
            if key.startswith(old):
                return new + key[len(old) :]
        return key

    return {rename(key): value for key, value in state.items()}


def enable_mc_dropout(model: nn.Module) -> None:
    """Evaluation mode everywhere except the dropout layers, which stay stochastic (Monte-Carlo dropout)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.train()
