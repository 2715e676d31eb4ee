"""Distance precision of the network against Gaia: binned median fractional errors and their crossover."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from zpdist.units import pc_to_kpc

#: Default distance bin edges (pc).
DISTANCE_BINS_PC = np.array([0, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000], dtype=float)


def gaia_fractional_error(catalog: pd.DataFrame) -> np.ndarray:
    """Gaia's fractional distance error σ_ϖ/ϖ of the offset-corrected parallax; ∞ for ϖ ≤ 0 (counts as worse).

    Parameters
    ----------
    catalog : pandas.DataFrame
        With ``parallax_corrected`` and ``parallax_corrected_error`` (mas).
    """
    parallax = catalog["parallax_corrected"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(parallax > 0, catalog["parallax_corrected_error"].to_numpy(float) / parallax, np.inf)


def fractional_error_profile(catalog: pd.DataFrame, bins_pc: np.ndarray = DISTANCE_BINS_PC) -> pd.DataFrame:
    """Median fractional distance errors of the network and of Gaia (offset-corrected 1/ϖ) in NN-distance bins.

    Parameters
    ----------
    catalog : pandas.DataFrame
        A zpdist catalog (``dist``, ``dist_error``, ``parallax_corrected``, ``parallax_corrected_error``).
    bins_pc : ndarray
        Bin edges in pc.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``d_lo``, ``d_hi`` (pc), ``n``, ``nn_frac_error`` and ``gaia_frac_error`` (medians).
        Gaia's fractional error is :func:`gaia_fractional_error`.
    """
    dist = catalog["dist"].to_numpy(float)
    nn = catalog["dist_error"].to_numpy(float) / dist
    gaia = gaia_fractional_error(catalog)
    ok = np.isfinite(dist) & np.isfinite(nn) & np.isfinite(catalog["parallax_corrected_error"].to_numpy(float))
    rows = []
    for lo, hi in itertools.pairwise(bins_pc):
        m = ok & (dist >= lo) & (dist < hi)
        rows.append({
            "d_lo": lo, "d_hi": hi, "n": int(m.sum()),
            "nn_frac_error": float(np.median(nn[m])) if m.any() else np.nan,
            "gaia_frac_error": float(np.median(gaia[m])) if m.any() else np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)


def crossover_distance(profile: pd.DataFrame) -> float:
    """Distance (pc) beyond which the network's median fractional error is below Gaia's.

    Linear interpolation of log(NN/Gaia) between bin centres at its first change of sign from
    positive to negative; NaN if the network never becomes more precise, the first bin's centre
    if it is more precise everywhere.
    """
    p = profile.dropna(subset=["nn_frac_error", "gaia_frac_error"])
    p = p[p["n"] > 0]
    if p.empty:
        return float("nan")
    centre = 0.5 * (p["d_lo"].to_numpy() + p["d_hi"].to_numpy())
    with np.errstate(divide="ignore"):
        ratio = np.log(p["nn_frac_error"].to_numpy() / p["gaia_frac_error"].to_numpy())
    if ratio[0] < 0:
        return float(centre[0])
    for i in range(1, len(ratio)):
        if ratio[i] < 0 <= ratio[i - 1]:
            if not np.isfinite(ratio[i]):
                return float(centre[i])
            f = ratio[i - 1] / (ratio[i - 1] - ratio[i])
            return float(centre[i - 1] + f * (centre[i] - centre[i - 1]))
    return float("nan")


def format_profile(profile: pd.DataFrame) -> str:
    """Plain-text table of a :func:`fractional_error_profile`."""
    lines = [f"{'distance (kpc)':>15}  {'n':>6}  {'NN σd/d':>8}  {'Gaia σϖ/ϖ':>9}"]
    for r in profile.itertuples():
        bin_kpc = f"{pc_to_kpc(r.d_lo):6.2f}-{pc_to_kpc(r.d_hi):<6.2f}"
        lines.append(f"{bin_kpc}   {r.n:6d}  {r.nn_frac_error:8.3f}  {r.gaia_frac_error:9.3f}")
    return "\n".join(lines)
