"""Gaia DR2-like astrometry of mock stars: the parallax noise law and the injected zero-point offset."""

from __future__ import annotations

import numpy as np

from zpdist.errors import InputError
from zpdist.mock.config import InjectedOffset
from zpdist.units import K_PER_KK, uas_to_mas

# σ_ϖ(G) = 0.04 mas · sqrt(1 + a z + b z²), z = 10^(0.4 (max(G, 13) − 15)): 0.04–0.05 mas for G ≤ 15,
# 0.10 mas at G = 17 and 0.70 mas at G = 20 (DR2-like, docs/method.md §10).
_SIGMA_FLOOR_MAS = 0.04
_SIGMA_A = 0.682
_SIGMA_B = 0.02368


def parallax_error_dr2(g_mag: np.ndarray) -> np.ndarray:
    """Median Gaia DR2-like parallax uncertainty (mas) at Gaia G magnitude ``g_mag``."""
    z = 10.0 ** (0.4 * (np.maximum(np.asarray(g_mag, float), 13.0) - 15.0))
    return _SIGMA_FLOOR_MAS * np.sqrt(1.0 + _SIGMA_A * z + _SIGMA_B * z**2)


def injected_offset_mas(offset: InjectedOffset, g_mag, bp_rp, teff) -> np.ndarray:
    """The zero-point offset Δϖ (mas) injected for stars with the given G, BP−RP (mag) and Teff (K)."""
    g_mag, bp_rp, teff = np.broadcast_arrays(
        np.asarray(g_mag, float), np.asarray(bp_rp, float), np.asarray(teff, float)
    )
    value = np.full(g_mag.shape, offset.offset_uas)
    if offset.model == "multivariate":
        value = (
            value
            + offset.slope_g * (g_mag - offset.pivot_g)
            + offset.slope_bp_rp * (bp_rp - offset.pivot_bp_rp)
            + offset.slope_teff * (teff - offset.pivot_teff) / K_PER_KK
        )
    elif offset.model != "constant":
        raise InputError(f"unknown offset model {offset.model!r}; expected 'constant' or 'multivariate'")
    return uas_to_mas(value)


def observe_parallax(
    rng: np.random.Generator, true_parallax: np.ndarray, g_mag: np.ndarray, offset_mas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw Gaia parallaxes: ϖ_true + Δϖ + N(0, σ_ϖ), with a 10 % star-to-star scatter in σ_ϖ.

    Returns
    -------
    parallax, parallax_error : ndarray
        Observed parallax and its quoted error (mas).
    """
    sigma = parallax_error_dr2(g_mag) * rng.lognormal(0.0, 0.1, size=np.shape(g_mag))
    return true_parallax + offset_mas + rng.normal(0.0, sigma), sigma
