"""Stellar physics of mock stars: masses, Teff, log g, luminosity, K-band absolute magnitude and colours.

Luminosity always obeys L/L_⊙ = (M/M_⊙) (T_eff/T_⊙)⁴ / (g/g_⊙), i.e. L = 4πR²σT⁴ with g = GM/R².
Red-giant-branch stars draw log g and derive L; red-clump stars draw L (a standard candle) and
derive log g; dwarfs follow a main-sequence mass–radius relation.
"""

from __future__ import annotations

import numpy as np

T_SUN = 5772.0  # K (IAU 2015)
LOGG_SUN = 4.438  # dex (cgs)
MBOL_SUN = 4.74  # mag (IAU 2015)
THETA_SUN = 5040.0 / T_SUN

EVOLUTIONARY_STATES = ("rgb", "red_clump", "dwarf")


def log_luminosity(mass: np.ndarray, teff: np.ndarray, logg: np.ndarray) -> np.ndarray:
    """log10(L/L_⊙) from mass (M_⊙), T_eff (K) and log g (dex, cgs)."""
    return np.log10(mass) + 4.0 * np.log10(teff / T_SUN) - (logg - LOGG_SUN)


def logg_from_luminosity(mass: np.ndarray, teff: np.ndarray, log_lum: np.ndarray) -> np.ndarray:
    """log g (dex, cgs) of a star of mass (M_⊙), T_eff (K) and log10(L/L_⊙): the inverse of :func:`log_luminosity`."""
    return LOGG_SUN + np.log10(mass) + 4.0 * np.log10(teff / T_SUN) - log_lum


def bolometric_correction_k(teff: np.ndarray) -> np.ndarray:
    """K-band bolometric correction BC_K = M_bol − M_K (mag), linear in θ = 5040/T_eff.

    Anchored at the Sun (BC_K,⊙ = 4.74 − 3.27 = 1.47) with a slope of 2.6 mag per unit θ,
    which gives ≈ 1.96 for a 4,750 K giant and ≈ 2.6 at 3,900 K.
    """
    return 1.47 + 2.6 * (5040.0 / np.asarray(teff, float) - THETA_SUN)


def absmag_k(log_lum: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """Absolute 2MASS K_s magnitude from log10(L/L_⊙) and T_eff (K)."""
    return MBOL_SUN - 2.5 * log_lum - bolometric_correction_k(teff)


def intrinsic_colours(teff: np.ndarray) -> dict[str, np.ndarray]:
    """Intrinsic colours (mag) as smooth functions of T_eff: ``j_k``, ``h_k``, ``g_k`` and ``bp_rp``.

    Anchored on the Sun (G−K ≈ 1.40, BP−RP ≈ 0.82) and on a 4,750 K giant (G−K ≈ 2.45, BP−RP ≈ 1.28).
    """
    dtheta = 5040.0 / np.asarray(teff, float) - THETA_SUN
    return {
        "j_k": 0.36 + 1.75 * dtheta,
        "h_k": 0.045 + 0.27 * dtheta,
        "g_k": 1.40 + 5.6 * dtheta,
        "bp_rp": 0.82 + 2.0 * dtheta + 2.5 * dtheta**2,
    }


def draw_giant_masses(rng: np.random.Generator, component: np.ndarray) -> np.ndarray:
    """Masses (M_⊙) of giants: young thin disk broad around 1.3 M_⊙; thick disk and bulge old (≈1 M_⊙)."""
    thin = rng.lognormal(np.log(1.3), 0.3, size=component.shape)
    old = rng.normal(1.0, 0.1, size=component.shape)
    return np.clip(np.where(component == 0, thin, old), 0.8, 3.5)


def draw_giants(
    rng: np.random.Generator, fe_h: np.ndarray, mass: np.ndarray, red_clump_fraction: float
) -> dict[str, np.ndarray]:
    """Draw red-giant-branch and red-clump stars.

    Parameters
    ----------
    rng : numpy.random.Generator
    fe_h : ndarray
        [Fe/H] of each star (dex): metal-poor giants are hotter.
    mass : ndarray
        Mass of each star (M_⊙).
    red_clump_fraction : float
        Fraction of core-helium-burning red-clump stars.

    Returns
    -------
    dict of ndarray
        ``teff`` (K), ``logg`` (dex), ``log_lum`` (log10 L/L_⊙), ``state`` (index into EVOLUTIONARY_STATES).
    """
    n = len(fe_h)
    is_rc = rng.random(n) < red_clump_fraction
    # RGB: dN/dlogg ∝ 10^(0.75 logg) on 0.8 < logg < 3.6 (evolution slows low on the branch), by inverse CDF
    k, lo, hi = 0.75 * np.log(10.0), 0.8, 3.6
    u = rng.random(n)
    logg_rgb = np.log(np.exp(k * lo) + u * (np.exp(k * hi) - np.exp(k * lo))) / k
    teff_rgb = 4600.0 + 330.0 * (logg_rgb - 2.5) - 280.0 * fe_h + 150.0 * (mass - 1.2) + rng.normal(0, 40, n)
    teff_rgb = np.clip(teff_rgb, 3500.0, 5500.0)
    log_lum_rgb = log_luminosity(mass, teff_rgb, logg_rgb)
    # Red clump: L ≈ 52 L_⊙ (M_K ≈ −1.6) with 0.05 dex scatter
    teff_rc = np.clip(4800.0 - 250.0 * fe_h + 100.0 * (mass - 1.2) + rng.normal(0, 50, n), 4300.0, 5400.0)
    log_lum_rc = rng.normal(1.72, 0.05, n)
    logg_rc = logg_from_luminosity(mass, teff_rc, log_lum_rc)
    return {
        "teff": np.where(is_rc, teff_rc, teff_rgb),
        "logg": np.where(is_rc, logg_rc, logg_rgb),
        "log_lum": np.where(is_rc, log_lum_rc, log_lum_rgb),
        "state": np.where(is_rc, 1, 0),
    }


def draw_dwarfs(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw main-sequence dwarfs with 4,300 K < T_eff < 5,800 K, M ∝ (T/T_⊙)², R ∝ M^0.85.

    Returns
    -------
    dict of ndarray
        ``teff`` (K), ``logg`` (dex), ``log_lum`` (log10 L/L_⊙), ``mass`` (M_⊙), ``state`` (all 2).
    """
    teff = rng.uniform(4300.0, 5800.0, n)
    mass = (teff / T_SUN) ** 2.0 * rng.normal(1.0, 0.03, n)
    radius = mass**0.85
    logg = LOGG_SUN + np.log10(mass) - 2.0 * np.log10(radius)
    return {
        "teff": teff,
        "logg": logg,
        "log_lum": log_luminosity(mass, teff, logg),
        "mass": mass,
        "state": np.full(n, 2),
    }
