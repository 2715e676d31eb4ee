"""Spectro-photometric distances of stars in a magnitude-limited sample, from the selection-aware prior (§12).

A network trained with the selection-aware likelihood predicts the *population's* L at given inputs: in a
sample limited in apparent magnitude the distant stars of those inputs are the luminous ones, so the distance
L̂ alone gives (d ∝ 1/L̂) is short for them. The distance of a star given its inputs, apparent magnitude and
sightline is the mean over the same prior the likelihood integrates,

    p(ϖ_t | L̂, σ_L, K, l, b) ∝ p_scatter(ϖ_t; L̂·10^(−0.2 K), σ_L·10^(−0.2 K)) · ρ(1/ϖ_t) · ϖ_t^(−3),

and :func:`selection_aware_distance` returns d = 1/E[ϖ_t] with σ_d = d·σ(ϖ_t)/E[ϖ_t], as the paper's
distance is 1/ϖ_NN with σ_d = d·σ_L/L (moments of d itself would be ruled by the prior's far tail). No Gaia
parallax enters: this is still the network's own distance, comparable with Gaia's.
"""

from __future__ import annotations

import numpy as np
import torch

from zpdist.nn.distance_prior import DistancePrior
from zpdist.nn.loss import log_prior_weight, prior_quadrature
from zpdist.units import kpc_to_pc

#: Stars per chunk (PRIOR_NODES values each).
_CHUNK = 65536


def _parallax_moments(
    prior: DistancePrior, line: torch.Tensor, mean: torch.Tensor, width: torch.Tensor, lognormal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of ϖ_t (mas) under the prior, by the likelihood's quadrature nodes."""
    nodes, log_mass = prior_quadrature(mean, width, lognormal)
    log_weight = log_mass + log_prior_weight(prior, line, nodes)
    weight = torch.softmax(log_weight, dim=1)
    first = (weight * nodes).sum(dim=1)
    second = (weight * nodes**2).sum(dim=1)
    return first, torch.sqrt((second - first**2).clamp_min(0.0))


def selection_aware_distance(
    fakemag: np.ndarray,
    fakemag_error: np.ndarray,
    k_corr: np.ndarray,
    sightline: np.ndarray,
    prior: DistancePrior,
    lognormal: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Each star's distance (pc) and its uncertainty under the selection-aware prior.

    Parameters
    ----------
    fakemag, fakemag_error : ndarray
        The network's L and its total uncertainty (Monte-Carlo model and predictive parts in quadrature).
    k_corr : ndarray
        Extinction-corrected K (mag).
    sightline : ndarray, shape (N, 3)
        Unit vectors towards the stars (:func:`zpdist.nn.distance_prior.sightlines`).
    prior : DistancePrior
    lognormal : bool
        The luminosity scatter's shape the network was trained with (Gaussian or lognormal).

    Returns
    -------
    distance, distance_error : ndarray
        1/E[ϖ_t] and its propagated error (pc); NaN where an input is not finite, L ≤ 0 or σ_L ≤ 0.
    """
    fakemag, fakemag_error, k_corr = (np.asarray(a, float) for a in (fakemag, fakemag_error, k_corr))
    sightline = np.asarray(sightline, float)
    scale = 10.0 ** (-0.2 * k_corr)
    ok = np.isfinite(fakemag * fakemag_error * scale) & np.isfinite(sightline).all(axis=1)
    ok &= (fakemag > 0) & (fakemag_error > 0)
    distance, error = np.full(len(fakemag), np.nan), np.full(len(fakemag), np.nan)
    rows = np.flatnonzero(ok)
    with torch.no_grad():
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            mean = torch.as_tensor(fakemag[part] * scale[part])
            width = torch.as_tensor(fakemag_error[part] * scale[part])
            first, spread = _parallax_moments(prior, torch.as_tensor(sightline[part]), mean, width, lognormal)
            distance[part] = kpc_to_pc(1.0 / first.numpy())
            error[part] = distance[part] * spread.numpy() / first.numpy()
    return distance, error
