"""The luminosity side of the network: input branches (spectra → features, labels → features) and heads
(features → L and ln σ_L²).

A branch is split into a deterministic *stem* (the layers before the first dropout) and a stochastic
*body*, so Monte-Carlo dropout evaluates the stem once per star and only repeats the body. A head's
:meth:`LuminosityHead.forward` is the one implementation of "features → (L, ln σ_L²)": the network's
forward pass calls it with the head's own parameters, and the warm start's likelihood calls it through
:meth:`LuminosityHead.evaluate` with float64 copies of them, some of which it fits.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from zpdist.errors import ConfigError

#: Width of the features a branch hands to a head.
N_FEATURES = 64


class SpectraBranch(nn.Module):
    """Conv1D(2, 8) → dropout → Conv1D(4, 8) → MaxPool(4) → dropout → Dense(164) → dropout → Dense(64)."""

    def __init__(self, n_pixels: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 2, kernel_size=8)
        self.conv2 = nn.Conv1d(2, 4, kernel_size=8)
        self.pool = nn.MaxPool1d(4)
        n_flat = 4 * ((n_pixels - 14) // 4)
        self.dense1 = nn.Linear(n_flat, 164)
        self.dense2 = nn.Linear(164, N_FEATURES)
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
        self.dense3 = nn.Linear(64, N_FEATURES)
        self.dropout = nn.Dropout(dropout)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic part: the first layer (N, n_labels) → (N, 128)."""
        return torch.relu(self.dense1(x))

    def body(self, h: torch.Tensor) -> torch.Tensor:
        """Stochastic part: stem output → (N, 64) features."""
        h = self.dropout(torch.relu(self.dense2(self.dropout(h))))
        return torch.relu(self.dense3(h))


#: The input branches by their ``ModelConfig.mode`` name.
BRANCHES: dict[str, type[nn.Module]] = {"spectra": SpectraBranch, "labels": LabelsBranch}


def input_branch(mode: str, n_inputs: int, dropout: float) -> nn.Module:
    """The input branch for ``mode`` (a key of :data:`BRANCHES`).

    Raises
    ------
    ConfigError
        If the mode is unknown.
    """
    if mode not in BRANCHES:
        raise ConfigError(f"unknown mode {mode!r}; use {' or '.join(BRANCHES)}")
    return BRANCHES[mode](n_inputs, dropout)


class PrincipalComponents(nn.Module):
    """The leading whitened principal components z of a standardised spectrum, then the products z_i·z_j
    (i ≤ j < ``n_quadratic``): the inputs of a spectra-mode log-linear term.

    Parameters
    ----------
    n_pixels : int
    n_components : int
    n_quadratic : int
        0 for a linear term; at most ``n_components``.
    """

    def __init__(self, n_pixels: int, n_components: int, n_quadratic: int):
        super().__init__()
        if not 0 <= n_quadratic <= n_components:
            raise ConfigError(f"n_quadratic {n_quadratic} is not in [0, n_components={n_components}]")
        self.n_quadratic = n_quadratic
        self.register_buffer("projection", torch.zeros(n_components, n_pixels))
        first, second = torch.triu_indices(n_quadratic, n_quadratic)
        self.register_buffer("quadratic_pairs", torch.stack([first, second]), persistent=False)

    @property
    def n_outputs(self) -> int:
        """Components plus products."""
        return len(self.projection) + self.n_quadratic * (self.n_quadratic + 1) // 2

    def fit(self, standardised: torch.Tensor) -> None:
        """Fit the whitened principal components of standardised training spectra (rows; a random subset suffices)."""
        k = len(self.projection)
        _, singular, vectors = torch.pca_lowrank(standardised, q=k, center=True, niter=4)
        score_std = singular / math.sqrt(max(len(standardised) - 1, 1))
        self.projection.copy_((vectors / torch.clamp(score_std, min=1e-12)).T)

    def forward(self, standardised: torch.Tensor) -> torch.Tensor:
        components = standardised @ self.projection.T
        if self.n_quadratic == 0:
            return components
        first, second = self.quadratic_pairs
        return torch.cat([components, components[:, first] * components[:, second]], dim=1)


class LuminosityHead(nn.Module):
    """Features (N, 64) → L and ln σ_L², in units set by the ``scale`` buffer: σ_L² = scale² · exp(raw_s).

    Subclasses define how L follows from the raw output (:meth:`forward`) and, for a log-linear
    term, its inputs (:meth:`linear_inputs`).

    Attributes
    ----------
    can_warm_start : bool
        Whether :mod:`zpdist.nn.warm_start` can fit this head.
    needs_projection : bool
        Whether :meth:`set_projection` must be called (with training spectra) before training.
    """

    can_warm_start = False
    needs_projection = False

    def __init__(self):
        super().__init__()
        self.fakemag = nn.Linear(N_FEATURES, 1)
        self.log_var = nn.Linear(N_FEATURES, 1)
        self.register_buffer("scale", torch.ones(()))

    def initialise(self) -> None:
        """Start near σ_L = 0.3·scale (after the weights' normal initialisation)."""
        nn.init.constant_(self.log_var.bias, 2.0 * math.log(0.3))

    @torch.no_grad()
    def rescale(self, factor: float) -> None:
        """Multiply every L (and σ_L) by ``factor``."""
        self.scale.mul_(factor)

    def linear_inputs(self, standardised: torch.Tensor) -> torch.Tensor | None:
        """The inputs of a log-linear term for standardised network inputs (None: the head has no such term)."""
        return None

    def slow_parameters(self) -> list[nn.Parameter]:
        """Parameters that, after a warm start, Adam moves at a reduced learning rate (none by default)."""
        return []

    def set_projection(self, standardised: torch.Tensor) -> None:
        """Fit the input projection of the log-linear term from standardised training spectra."""
        raise TypeError(f"{type(self).__name__} has no input projection")

    def log_variance(self, features: torch.Tensor) -> torch.Tensor:
        """ln σ_L² of each row of ``features``."""
        return self.log_var(features).squeeze(-1) + 2.0 * torch.log(self.scale)

    def forward(
        self, features: torch.Tensor, linear_inputs: torch.Tensor | None = None, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L and ln σ_L² of each row of ``features``.

        Parameters
        ----------
        features : Tensor, shape (N · repeats, 64)
            Branch features, ``repeats`` consecutive rows per star (Monte-Carlo samples).
        linear_inputs : Tensor, shape (N, n_linear), optional
            :meth:`linear_inputs` of the N stars, for a head with a log-linear term.
        repeats : int
            Rows of ``features`` per star.

        Returns
        -------
        fakemag, log_var : Tensor, shape (N · repeats,)
        """
        raise NotImplementedError

    def evaluate(
        self, params: dict[str, torch.Tensor], features: torch.Tensor, linear_inputs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` with ``params`` (name → tensor, e.g. float64 copies being fitted) in place of the head's own.

        Parameters and buffers not named in ``params`` are the head's own.
        """
        return torch.func.functional_call(self, params, (features, linear_inputs))


class SoftplusHead(LuminosityHead):
    """The paper's head: L = scale · softplus(raw)."""

    def initialise(self) -> None:
        """Start near L = scale and σ_L = 0.3·scale."""
        super().initialise()
        nn.init.constant_(self.fakemag.bias, math.log(math.e - 1.0))

    def forward(
        self, features: torch.Tensor, linear_inputs: torch.Tensor | None = None, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.fakemag(features).squeeze(-1)
        return self.scale * functional.softplus(raw), self.log_variance(features)


class LogLinearHead(LuminosityHead):
    """L = scale · exp(w·x + raw): a dropout-free log-linear term in x times the network's correction.

    x is the standardised labels, or (with ``components``) the spectrum's leading whitened principal
    components and their products. To first order ln L is linear in the labels (ln L = ln M + 4 ln T_eff
    − ln g, and BC_K is smooth in T_eff), so the network extrapolates like the physics to the luminous
    giants, which are all distant and where L is nearly degenerate with the zero-point.

    Parameters
    ----------
    n_inputs : int
        Length of the standardised network input (used when ``components`` is None).
    components : PrincipalComponents, optional
        The spectra's input projection.
    """

    can_warm_start = True

    def __init__(self, n_inputs: int, components: PrincipalComponents | None = None):
        super().__init__()
        self.linear = nn.Linear(n_inputs if components is None else components.n_outputs, 1)
        self.components = components
        self.needs_projection = components is not None

    def initialise(self) -> None:
        """Start at L = scale and σ_L = 0.3·scale, with no log-linear trend."""
        super().initialise()
        nn.init.constant_(self.fakemag.bias, 0.0)
        nn.init.zeros_(self.linear.weight)

    def linear_inputs(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised if self.components is None else self.components(standardised)

    def slow_parameters(self) -> list[nn.Parameter]:
        """The log-linear term, which the warm start fits."""
        return list(self.linear.parameters())

    def set_projection(self, standardised: torch.Tensor) -> None:
        if self.components is None:
            raise TypeError("this log-linear head takes the labels as they are: it has no input projection")
        self.components.fit(standardised)

    def forward(
        self, features: torch.Tensor, linear_inputs: torch.Tensor | None = None, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.fakemag(features).squeeze(-1)
        trend = self.linear(linear_inputs).squeeze(-1)
        if repeats > 1:
            trend = trend.repeat_interleave(repeats, dim=0)
        fakemag = self.scale * torch.exp(torch.clamp(raw + trend, max=30.0))
        return fakemag, self.log_variance(features)
