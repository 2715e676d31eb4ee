"""Gaia DR2-like astrometry of mock stars: the parallax noise law, the injected zero-point offset and, for the
realistic mock, its non-linear terms, a sky-correlated systematic field and outliers (docs/method.md §10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zpdist.errors import InputError
from zpdist.mock.config import InjectedOffset
from zpdist.mock.realism import AstrometricOutliers, NonlinearOffset, SkySystematics
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
    rng: np.random.Generator,
    true_parallax: np.ndarray,
    g_mag: np.ndarray,
    offset_mas: np.ndarray,
    noise_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw Gaia parallaxes: ϖ_true + Δϖ + N(0, s σ_ϖ), with a 10 % star-to-star scatter in σ_ϖ.

    Parameters
    ----------
    true_parallax, offset_mas : ndarray
        True parallax and the offset added to it (mas).
    g_mag : ndarray
        Gaia G (mag), which sets σ_ϖ.
    noise_scale : float
        s: the true noise over the quoted σ_ϖ (1 + f for an under-reported error, :class:`ParallaxUnderreport`).

    Returns
    -------
    parallax, parallax_error : ndarray
        Observed parallax and its quoted error σ_ϖ (mas).
    """
    sigma = parallax_error_dr2(g_mag) * rng.lognormal(0.0, 0.1, size=np.shape(g_mag))
    return true_parallax + offset_mas + rng.normal(0.0, sigma * noise_scale), sigma


def nonlinear_offset_terms(part: NonlinearOffset, offset: InjectedOffset, g_mag, bp_rp, teff) -> np.ndarray:
    """The shapes of :class:`NonlinearOffset`'s terms at G, BP−RP (mag), Teff (K), about ``offset``'s pivots.

    Returns
    -------
    ndarray, shape (N, 3)
        The step tanh((G − G_step)/width) (dimensionless), the colour curvature (min(BP−RP, max) − pivot)² (mag²) and
        the interaction (G − pivot)·(Teff − pivot) (mag kK). :func:`nonlinear_offset_mas` weighs them by the part's
        amplitudes; a fit that knows the injected form (``benchmarks/calibration.py``'s oracle) fits them.
    """
    g_mag, bp_rp, teff = (np.atleast_1d(np.asarray(v, float)) for v in (g_mag, bp_rp, teff))
    return np.column_stack(
        [
            np.tanh((g_mag - part.step_g) / part.step_width_mag),
            (np.minimum(bp_rp, part.bp_rp_max) - offset.pivot_bp_rp) ** 2,
            (g_mag - offset.pivot_g) * (teff - offset.pivot_teff) / K_PER_KK,
        ]
    )


def nonlinear_offset_mas(part: NonlinearOffset, offset: InjectedOffset, g_mag, bp_rp, teff) -> np.ndarray:
    """Non-linear Δϖ terms (mas) of :class:`NonlinearOffset` at G, BP−RP (mag), Teff (K), about ``offset``'s pivots."""
    amplitudes_uas = np.array([0.5 * part.step_uas, part.curvature_bp_rp, part.interaction_g_teff])
    value = nonlinear_offset_terms(part, offset, g_mag, bp_rp, teff) @ amplitudes_uas
    return uas_to_mas(value.reshape(np.broadcast(g_mag, bp_rp, teff).shape))


@dataclass(frozen=True)
class SkyField:
    """A smooth isotropic Gaussian random field on the sky (µas): random Fourier features in 3-D, cut by the sphere.

    f(n̂) = rms √(2/N) Σ_j cos(k_j · n̂ + φ_j) with k_j ~ N(0, I/c₀²) and φ_j uniform: its covariance between two
    directions is rms² exp(−c²/2c₀²), c the chord between them, c₀ = 2 sin(θ₀/2) for the correlation angle θ₀.

    Attributes
    ----------
    wavevectors : ndarray, shape (N, 3)
        k_j (per unit chord).
    phases : ndarray, shape (N,)
        φ_j (rad).
    rms_uas : float
        The field's rms over realisations (µas).
    """

    wavevectors: np.ndarray
    phases: np.ndarray
    rms_uas: float

    @classmethod
    def draw(cls, rng: np.random.Generator, part: SkySystematics) -> SkyField:
        """One realisation of the field of :class:`SkySystematics` ``part``."""
        chord = 2.0 * np.sin(np.radians(part.correlation_deg) / 2.0)
        wavevectors = rng.normal(0.0, 1.0 / chord, (part.n_modes, 3))
        return cls(wavevectors, rng.uniform(0.0, 2.0 * np.pi, part.n_modes), part.rms_uas)

    def __call__(self, ra_deg: np.ndarray, dec_deg: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """The field (µas) in ICRS directions (deg)."""
        ra, dec = np.radians(np.asarray(ra_deg, float)), np.radians(np.asarray(dec_deg, float))
        unit = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
        amplitude = self.rms_uas * np.sqrt(2.0 / len(self.phases))
        out = np.empty(len(unit))
        for start in range(0, len(unit), chunk):
            rows = slice(start, start + chunk)
            out[rows] = amplitude * np.cos(unit[rows] @ self.wavevectors.T + self.phases).sum(axis=1)
        return out


def draw_outliers(
    rng: np.random.Generator, part: AstrometricOutliers, parallax_error: np.ndarray, has_parallax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Choose round(fraction × N) stars with a parallax and move them by ± U(min_sigma, max_sigma) σ_ϖ.

    Returns
    -------
    outlier : ndarray of bool
        The chosen stars.
    shift_mas : ndarray
        The shift added to each parallax (mas; 0 for the others).
    """
    candidates = np.flatnonzero(has_parallax)
    chosen = rng.choice(candidates, size=round(part.fraction * len(candidates)), replace=False)
    outlier = np.zeros(len(parallax_error), dtype=bool)
    outlier[chosen] = True
    size = rng.uniform(part.min_sigma, part.max_sigma, len(chosen)) * rng.choice([-1.0, 1.0], len(chosen))
    shift = np.zeros(len(parallax_error))
    shift[chosen] = size * np.asarray(parallax_error)[chosen]
    return outlier, shift
