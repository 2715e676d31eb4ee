"""Chemical abundances of mock stars: [Fe/H] and the 15 [X/Fe] ratios with Galactic structure.

- thin disk: radial [Fe/H] gradient of −0.06 dex/kpc (and −0.1 dex/kpc vertically), low-α sequence;
- thick disk: metal-poor, α-enhanced, no gradient;
- bar/bulge: metal-rich and metal-poor groups, α-knee at higher [Fe/H], element-specific offsets;
- red giants: first dredge-up lowers [C/Fe] and raises [N/Fe] more in more massive stars.
"""

from __future__ import annotations

import numpy as np

from zpdist.io.columns import ELEMENTS

COMPONENTS = ("thin_disk", "thick_disk", "bulge")
FEH_RADIAL_GRADIENT = -0.06  # dex/kpc, thin disk
#: Star-to-star scatter of each true [X/Fe] about its Galactic trend (dex).
INTRINSIC_SCATTER_DEX = 0.03
#: The resulting scatter of [C/N] at fixed mass and composition (dex).
CN_BASE_SCATTER_DEX = float(np.sqrt(2.0) * INTRINSIC_SCATTER_DEX)

# [X/Fe] = alpha_weight·[α/Fe] + feh_slope·[Fe/H] + zero_point + bulge_offset·(in bulge), per element
_ELEMENT_RESPONSE: dict[str, tuple[float, float, float, float]] = {
    "C": (0.30, 0.00, -0.05, -0.05),
    "N": (0.00, 0.10, 0.25, 0.10),
    "O": (0.90, 0.00, 0.00, 0.05),
    "NA": (0.20, 0.15, 0.00, 0.08),
    "MG": (1.00, 0.00, 0.00, 0.04),
    "AL": (0.80, 0.00, 0.00, 0.08),
    "SI": (0.70, 0.00, 0.00, 0.03),
    "S": (0.80, 0.00, 0.02, 0.00),
    "K": (0.50, 0.00, -0.02, 0.00),
    "CA": (0.60, 0.00, 0.00, -0.02),
    "TIII": (0.70, 0.00, 0.00, 0.05),
    "V": (0.20, 0.05, -0.03, 0.00),
    "MN": (-0.60, 0.25, -0.05, -0.05),
    "CO": (0.30, 0.05, 0.00, 0.06),
    "NI": (0.20, 0.08, 0.00, 0.03),
}
# Measurement-noise scale (dex at SNR = 100) and the fraction of stars with no measurement
_ELEMENT_NOISE: dict[str, tuple[float, float]] = {
    "C": (0.03, 0.02), "N": (0.04, 0.03), "O": (0.03, 0.02), "NA": (0.10, 0.15), "MG": (0.02, 0.01),
    "AL": (0.04, 0.03), "SI": (0.03, 0.01), "S": (0.06, 0.05), "K": (0.05, 0.05), "CA": (0.03, 0.02),
    "TIII": (0.10, 0.15), "V": (0.09, 0.12), "MN": (0.03, 0.03), "CO": (0.08, 0.10), "NI": (0.03, 0.02),
}  # fmt: skip


def draw_iron_and_alpha(
    rng: np.random.Generator, component: np.ndarray, r_kpc: np.ndarray, z_kpc: np.ndarray, r0_kpc: float
) -> tuple[np.ndarray, np.ndarray]:
    """True [Fe/H] and [α/Fe] (dex) of stars in each component at Galactocentric R and z (kpc)."""
    n = len(component)
    thin_feh = 0.05 + FEH_RADIAL_GRADIENT * (r_kpc - r0_kpc) - 0.1 * np.abs(z_kpc) + rng.normal(0, 0.18, n)
    thick_feh = rng.normal(-0.45, 0.25, n)
    rich = rng.random(n) < 0.6
    bulge_feh = np.where(rich, rng.normal(0.25, 0.15, n), rng.normal(-0.35, 0.2, n))
    fe_h = np.choose(component, [thin_feh, thick_feh, bulge_feh])
    fe_h = np.clip(fe_h, -1.5, 0.6)
    thin_alpha = np.clip(0.02 - 0.12 * fe_h, -0.05, 0.15)
    thick_alpha = np.clip(0.12 - 0.3 * fe_h, 0.12, 0.32)
    bulge_alpha = np.clip(0.18 - 0.25 * fe_h, 0.0, 0.32)
    alpha = np.choose(component, [thin_alpha, thick_alpha, bulge_alpha]) + rng.normal(0, 0.03, n)
    return fe_h, alpha


def draw_element_ratios(
    rng: np.random.Generator,
    fe_h: np.ndarray,
    alpha_fe: np.ndarray,
    component: np.ndarray,
    mass: np.ndarray,
    is_giant: np.ndarray,
) -> dict[str, np.ndarray]:
    """True [X/Fe] (dex) for the 15 elements, keyed by canonical name (``c_fe`` … ``ni_fe``)."""
    in_bulge = (component == 2).astype(float)
    dredge_up = np.where(is_giant, mass - 1.2, 0.0)
    out = {}
    for element in ELEMENTS:
        alpha_weight, feh_slope, zero_point, bulge_offset = _ELEMENT_RESPONSE[element]
        value = alpha_weight * alpha_fe + feh_slope * fe_h + zero_point + bulge_offset * in_bulge
        if element == "C":
            value = value - 0.25 * dredge_up - np.where(is_giant, 0.1, 0.0)
        elif element == "N":
            value = value + 0.35 * dredge_up + np.where(is_giant, 0.15, 0.0)
        out[f"{element.lower()}_fe"] = value + rng.normal(0, INTRINSIC_SCATTER_DEX, len(fe_h))
    return out


def scatter_mass_tracers(
    rng: np.random.Generator, c_fe: np.ndarray, n_fe: np.ndarray, is_giant: np.ndarray, scatter_dex: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Widen the [C/N]–mass relation of giants to a total scatter of ``scatter_dex`` (dex) at fixed mass.

    Each giant's [C/Fe] moves by −δ/2 and [N/Fe] by +δ/2, δ ~ N(0, √(scatter² − 0.042²)), so [C/N] moves by −δ
    and [C/Fe] + [N/Fe] is kept (the CN cycle turns C into N, it does not make either); dwarfs are untouched.

    Returns
    -------
    c_fe, n_fe : ndarray
        The new [C/Fe] and [N/Fe] (dex).
    delta_cn : ndarray
        The change of [C/N] of each star (dex; 0 for dwarfs).
    """
    extra = np.sqrt(max(scatter_dex**2 - CN_BASE_SCATTER_DEX**2, 0.0))
    delta = np.where(is_giant, rng.normal(0.0, extra, len(c_fe)), 0.0)
    return c_fe - 0.5 * delta, n_fe + 0.5 * delta, -delta


def observe_element_ratios(
    rng: np.random.Generator, truth: dict[str, np.ndarray], snr: np.ndarray, teff: np.ndarray
) -> dict[str, np.ndarray]:
    """Observed [X/Fe] with errors and flags: noise ∝ 1/SNR (worse for T_eff < 4000 K); NaN when unmeasured.

    Returns
    -------
    dict of ndarray
        ``<x>_fe``, ``<x>_fe_err`` (NaN where missing) and ``<x>_fe_flag`` (1 where missing, else 0).
    """
    out = {}
    cool_penalty = np.where(teff < 4000.0, 1.5, 1.0)
    for element in ELEMENTS:
        name = f"{element.lower()}_fe"
        scale, missing_fraction = _ELEMENT_NOISE[element]
        err = scale * np.sqrt(0.3 + (100.0 / snr) ** 2) * cool_penalty
        missing = rng.random(len(snr)) < missing_fraction * (100.0 / np.clip(snr, 50, None))
        observed = truth[name] + rng.normal(0, 1, len(snr)) * err
        out[name] = np.where(missing, np.nan, observed)
        out[f"{name}_err"] = np.where(missing, np.nan, err)
        out[f"{name}_flag"] = missing.astype(np.int32)
    return out
