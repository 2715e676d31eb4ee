"""The training objective: the heteroscedastic loss of Leung & Bovy (2019) in parallax space (docs/method.md §4),
its selection-aware form, which marginalises each star's luminosity scatter with a distance prior (§12), and
either one mixed with a broad component for astrometric outliers (§12)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from zpdist.nn.batch import Batch
from zpdist.nn.distance_prior import DistancePrior

#: Quadrature nodes over each star's true parallax: the likelihood's integral (around the posterior) and the
#: prior's normalisation (around the prior); their spans in standard deviations.
POSTERIOR_NODES, POSTERIOR_SPAN = 48, 8.0
PRIOR_NODES, PRIOR_SPAN = 96, 7.0
#: Width of the outlier component, in units of each star's total parallax uncertainty √(σ_pred² + σ_ϖ²).
OUTLIER_WIDTH = 20.0
#: Largest ln-width of the lognormal scatter (a factor e³ ≈ 20 in L): wider is no information, and the nodes'
#: exponentials would overflow.
MAX_LN_WIDTH = 3.0
#: ln weight given to a non-positive true parallax (no distance): finite, so that gradients stay finite.
_NO_DISTANCE = -1.0e4


def predicted_parallax(fakemag: torch.Tensor, k_corr: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """ϖ_pred (mas) = L · 10^(−0.2 K_corr) + Δϖ."""
    return fakemag * torch.pow(10.0, -0.2 * k_corr) + offset


def has_parallax_label(parallax: torch.Tensor, parallax_error: torch.Tensor, k_corr: torch.Tensor) -> torch.Tensor:
    """True for stars whose parallax, parallax error and K_corr are all finite."""
    return torch.isfinite(parallax) & torch.isfinite(parallax_error) & torch.isfinite(k_corr)


def parallax_nll(
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    fakemag: torch.Tensor,
    log_var: torch.Tensor,
    k_corr: torch.Tensor,
    offset: torch.Tensor,
) -> torch.Tensor:
    """Per-star negative log-likelihood of the Gaia parallax; NaN-labelled stars contribute 0.

    ℓ = ½ (ϖ_G − ϖ_pred)² / (σ_pred² + σ_ϖ²) + ½ ln(σ_pred² + σ_ϖ²),  σ_pred = σ_L · 10^(−0.2 K_corr).

    Parameters
    ----------
    parallax, parallax_error : Tensor
        Gaia parallax and error (mas); NaN where missing (masked, never filled).
    fakemag, log_var : Tensor
        Predicted L and ln σ_L².
    k_corr : Tensor
        Extinction-corrected K magnitude (mag).
    offset : Tensor
        Predicted zero-point offset Δϖ (mas).

    Returns
    -------
    Tensor
        ℓ per star, 0 where the star has no valid parallax.
    """
    valid = has_parallax_label(parallax, parallax_error, k_corr)
    zero = torch.zeros_like(parallax)
    plx = torch.where(valid, parallax, zero)
    err = torch.where(valid, parallax_error, zero)
    k = torch.where(valid, k_corr, zero)
    pred = predicted_parallax(fakemag, k, offset)
    variance = torch.exp(log_var) * torch.pow(10.0, -0.4 * k) + err**2
    loss = 0.5 * (plx - pred) ** 2 / variance + 0.5 * torch.log(variance)
    return torch.where(valid, loss, zero)


def mean_parallax_nll(
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    fakemag: torch.Tensor,
    log_var: torch.Tensor,
    k_corr: torch.Tensor,
    offset: torch.Tensor,
) -> torch.Tensor:
    """Mean of :func:`parallax_nll` over the stars that have a parallax label."""
    return PAPER_LIKELIHOOD.mean_nll(parallax, parallax_error, fakemag, log_var, k_corr, offset)


def log_prior_weight(prior: DistancePrior, sightline: torch.Tensor, true_parallax: torch.Tensor) -> torch.Tensor:
    """ln[ρ(d)·d³] at d = 1/ϖ (ϖ in mas, d in kpc); :data:`_NO_DISTANCE` where ϖ ≤ 0."""
    positive = true_parallax > 0
    weight = prior.log_weight(sightline[:, None, :], 1.0 / true_parallax.clamp_min(1e-6))
    return torch.where(positive, weight, torch.full_like(weight, _NO_DISTANCE))


def quadrature_nodes(centre: torch.Tensor, width: torch.Tensor, span: float, n: int):
    """``n`` equally spaced nodes over centre ± span·width per star (no gradient) and ln of their spacing."""
    unit = torch.linspace(-span, span, n, device=centre.device, dtype=centre.dtype)
    nodes = (centre[:, None] + width[:, None] * unit).detach()
    return nodes, torch.log(2.0 * span * width.detach() / (n - 1))


def log_scatter(true_parallax: torch.Tensor, mean: torch.Tensor, width: torch.Tensor, lognormal: bool):
    """ln of the luminosity scatter's density in ϖ_t at the nodes ``true_parallax`` (N, n), without 1/√(2π):
    Gaussian N(ϖ̂, σ), or lognormal with median ϖ̂ and ln-width σ/ϖ̂ (zero density at ϖ_t ≤ 0)."""
    if not lognormal:
        return -0.5 * ((true_parallax - mean[:, None]) / width[:, None]) ** 2 - torch.log(width)[:, None]
    relative = ((width / mean.clamp_min(1e-12)).clamp_max(MAX_LN_WIDTH))[:, None]
    log_nodes = torch.log(true_parallax.clamp_min(1e-9))
    eta = log_nodes - torch.log(mean.clamp_min(1e-12))[:, None]
    return -0.5 * (eta / relative) ** 2 - torch.log(relative) - log_nodes


def prior_quadrature(mean: torch.Tensor, width: torch.Tensor, lognormal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes over ± :data:`PRIOR_SPAN` of the luminosity scatter (equally spaced in ϖ_t, or in ln ϖ_t for the
    lognormal) and, at each, ln of the scatter's density times the node's step (without 1/√(2π)): sums of
    exp(that + f) over the nodes are ∫ p_scatter · e^f dϖ_t."""
    if not lognormal:
        nodes, log_step = quadrature_nodes(mean, width, PRIOR_SPAN, PRIOR_NODES)
        return nodes, log_scatter(nodes, mean, width, False) + log_step[:, None]
    relative = (width / mean.clamp_min(1e-12)).clamp_max(MAX_LN_WIDTH)
    unit = torch.linspace(-PRIOR_SPAN, PRIOR_SPAN, PRIOR_NODES, device=mean.device, dtype=mean.dtype)
    nodes = mean[:, None] * torch.exp(relative[:, None] * unit)
    log_step = torch.log(2.0 * PRIOR_SPAN * relative / (PRIOR_NODES - 1))  # in ln ϖ_t, where the density is N/σ_ln
    return nodes, -0.5 * unit**2 - torch.log(relative)[:, None] + log_step[:, None]


def _log_normalisation(
    prior: DistancePrior, line: torch.Tensor, mean: torch.Tensor, width: torch.Tensor, lognormal: bool
) -> torch.Tensor:
    """ln ∫ p_scatter(ϖ_t) ρ d³ dϖ_t (without 1/√(2π)) over :func:`prior_quadrature`'s nodes."""
    nodes, log_mass = prior_quadrature(mean, width, lognormal)
    return torch.logsumexp(log_mass + log_prior_weight(prior, line, nodes), dim=1)


def selection_aware_nll(
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    fakemag: torch.Tensor,
    log_var: torch.Tensor,
    k_corr: torch.Tensor,
    offset: torch.Tensor,
    sightline: torch.Tensor,
    prior: DistancePrior,
    lognormal: bool = False,
) -> torch.Tensor:
    """Per-star negative log-likelihood of the Gaia parallax given the star's apparent magnitude and sightline.

    The star's true parallax ϖ_t = L_t · 10^(−0.2 K_corr) has the network's Gaussian N(L̂, σ_L) in L, times
    the number of stars at that distance at this apparent magnitude, ρ(d)·d³ with d = 1/ϖ_t (the distance
    prior); the likelihood integrates N(ϖ_G; ϖ_t + Δϖ, σ_ϖ) over that normalised prior:

        ℓ = −ln ∫ N(ϖ_G; ϖ_t + Δϖ, σ_ϖ) N(ϖ_t; ϖ̂, σ_pred) ρ d³ dϖ_t + ln ∫ N(ϖ_t; ϖ̂, σ_pred) ρ d³ dϖ_t − ½ ln 2π,

    which is the paper's ℓ (:func:`parallax_nll`) when ρ d³ is constant. With ``lognormal`` the scatter is
    lognormal instead: median L̂, ln-width σ_L/L̂ (a multiplicative scatter, as from mass or log g errors, whose
    luminous tail is longer). Both integrals are sums over
    equally spaced nodes: around the Gaussian product of prior and likelihood (kept at ϖ_t > 0 for at least half
    the nodes, so that an astrometric outlier with a negative parallax still has a finite ℓ), and around the prior.

    Parameters
    ----------
    parallax, parallax_error, fakemag, log_var, k_corr, offset : Tensor
        As for :func:`parallax_nll`.
    sightline : Tensor, shape (N, 3)
        Unit vectors towards each star (:func:`zpdist.nn.distance_prior.sightlines`); NaN: the paper's ℓ.
    prior : DistancePrior
    lognormal : bool
        The luminosity scatter's shape: Gaussian (False, the paper's) or lognormal.

    Returns
    -------
    Tensor
        ℓ per star, 0 where the star has no valid parallax.
    """
    paper = parallax_nll(parallax, parallax_error, fakemag, log_var, k_corr, offset)
    valid = has_parallax_label(parallax, parallax_error, k_corr) & torch.isfinite(sightline).all(dim=1)
    if lognormal:  # a lognormal needs a positive median: a star whose L̂ is not keeps the paper's ℓ
        valid &= (fakemag > 0) & (log_var > -80.0)
    one = torch.ones_like(parallax)
    observed = torch.where(valid, parallax - offset, one)
    error = torch.where(valid, parallax_error, one)
    scale = torch.pow(10.0, -0.2 * torch.where(valid, k_corr, torch.zeros_like(k_corr)))
    mean = torch.where(valid, fakemag, one) * scale
    width = torch.exp(0.5 * torch.where(valid, log_var, torch.zeros_like(log_var))) * scale
    line = torch.where(valid[:, None], sightline, torch.ones_like(sightline) / math.sqrt(3.0))
    precision = width.detach() ** -2 + error**-2
    spread = precision**-0.5
    centre = (mean.detach() * width.detach() ** -2 + observed.detach() * error**-2) / precision
    centre = torch.maximum(centre, 0.5 * POSTERIOR_SPAN * spread)  # half the nodes at ϖ_t > 0, even for outliers
    nodes, log_step = quadrature_nodes(centre, spread, POSTERIOR_SPAN, POSTERIOR_NODES)
    log_weighted = log_scatter(nodes, mean, width, lognormal) + log_prior_weight(prior, line, nodes)
    log_like = -0.5 * ((observed[:, None] - nodes) / error[:, None]) ** 2 - torch.log(error)[:, None]
    log_joint = torch.logsumexp(log_weighted + log_like, dim=1) + log_step
    # the prior's mass where the measurement is, a lower bound of its normalisation: when the scatter's own nodes
    # miss it (an L̂ near 0 puts them where ρ·d³ vanishes), ℓ would otherwise run to −∞
    log_mass_here = torch.logsumexp(log_weighted, dim=1) + log_step
    log_norm = torch.maximum(_log_normalisation(prior, line, mean, width, lognormal), log_mass_here)
    aware = log_norm - log_joint  # their Gaussians lack 1/√(2π): the −½ ln 2π of ℓ is already there
    return torch.where(valid, aware, paper)


def with_outliers(
    core: torch.Tensor,
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    fakemag: torch.Tensor,
    log_var: torch.Tensor,
    k_corr: torch.Tensor,
    offset: torch.Tensor,
    fraction: float,
    width: float = OUTLIER_WIDTH,
) -> torch.Tensor:
    """ℓ of the mixture (1 − f)·p_core + f·p_broad: a fraction ``fraction`` of the parallaxes are outliers.

    The broad component is the paper's Gaussian with its variance σ_pred² + σ_ϖ² scaled by ``width``²: a star
    many σ from its prediction then costs a bounded ℓ and pulls the offset by a factor ≈ ``width``² less than
    under the Gaussian alone (Hogg, Bovy & Lang 2010, arXiv:1008.4686, §3: a mixture for bad data points).

    Parameters
    ----------
    core : Tensor
        ℓ per star of the good component (:func:`parallax_nll` or :func:`selection_aware_nll`); 0 where the
        star has no valid parallax (it stays 0).
    parallax, parallax_error, fakemag, log_var, k_corr, offset : Tensor
        As for :func:`parallax_nll`.
    fraction : float
        Prior probability f that a star's parallax is an outlier, 0 < f < 1.
    width : float
        The broad component's width in units of the star's total uncertainty.
    """
    log_width = math.log(width)
    broad = parallax_nll(parallax, parallax_error * width, fakemag, log_var + 2.0 * log_width, k_corr, offset)
    good, bad = math.log1p(-fraction) - core, math.log(fraction) - broad
    valid = has_parallax_label(parallax, parallax_error, k_corr)
    mixed = -torch.logsumexp(torch.stack([good, bad]), dim=0)  # logaddexp's second derivative can be NaN
    return torch.where(valid, mixed, torch.zeros_like(core))


@dataclass(frozen=True)
class ParallaxLikelihood:
    """The training objective over a batch: the paper's (``prior`` None) or the selection-aware one, each
    optionally mixed with a broad outlier component.

    Attributes
    ----------
    prior : DistancePrior, optional
        The distance prior of :func:`selection_aware_nll`; batches then carry sightlines.
    outlier_fraction : float
        The fraction f of :func:`with_outliers`; 0: no outlier component.
    scatter : {"gaussian", "lognormal"}
        Shape of the luminosity scatter in the selection-aware likelihood (the paper's is Gaussian).
    """

    prior: DistancePrior | None = None
    outlier_fraction: float = 0.0
    scatter: str = "gaussian"

    @property
    def is_gaussian(self) -> bool:
        """True for the paper's Gaussian alone: the offset's level then has a least-squares solution."""
        return self.prior is None and self.outlier_fraction == 0.0

    @property
    def name(self) -> str:
        """ "paper" or "selection" (the good component), as recorded in summaries."""
        return "paper" if self.prior is None else "selection"

    def nll(self, parallax, parallax_error, fakemag, log_var, k_corr, offset, sightline=None) -> torch.Tensor:
        """ℓ per star (arguments as for :func:`selection_aware_nll`; without sightlines, the paper's ℓ)."""
        astrometry = (parallax, parallax_error, fakemag, log_var, k_corr, offset)
        if self.prior is None or sightline is None:
            core = parallax_nll(*astrometry)
        else:
            core = selection_aware_nll(*astrometry, sightline, self.prior, self.scatter == "lognormal")
        if self.outlier_fraction == 0.0:
            return core
        return with_outliers(core, *astrometry, self.outlier_fraction)

    def mean_nll(self, parallax, parallax_error, fakemag, log_var, k_corr, offset, sightline=None) -> torch.Tensor:
        """Mean of :meth:`nll` over the stars that have a parallax label."""
        n_valid = has_parallax_label(parallax, parallax_error, k_corr).sum().clamp(min=1)
        return self.nll(parallax, parallax_error, fakemag, log_var, k_corr, offset, sightline).sum() / n_valid

    def mean(self, batch: Batch, fakemag: torch.Tensor, log_var: torch.Tensor, offset: torch.Tensor):
        """:meth:`mean_nll` of ``batch``'s stars for the network's L, ln σ_L² and Δϖ (mas)."""
        astrometry = (batch.parallax, batch.parallax_error, fakemag, log_var, batch.k_corr, offset)
        return self.mean_nll(*astrometry, batch.sightline)


#: The paper's objective.
PAPER_LIKELIHOOD = ParallaxLikelihood()
