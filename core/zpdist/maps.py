"""Binned statistics shared by the CLI and the dashboard: median maps, counts, masks and running medians.

Pure numpy/pandas. Bins are half-open ``[lo, hi)`` except the last one, which also holds its upper edge
(the convention of :func:`numpy.histogram`). Values or coordinates that are NaN never enter a bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

#: The paper's map binning (docs/method.md §7): 40 × 40 bins, bins with fewer than 10 stars masked.
DEFAULT_BINS = 40
DEFAULT_MIN_COUNT = 10
#: Percentiles of the unmasked bin values that set a map's colour range.
COLOR_PERCENTILES = (10.0, 90.0)
#: Factor turning a MAD into a Gaussian σ, and the asymptotic efficiency of the median (σ_median = 1.2533 σ/√n).
MAD_TO_SIGMA = 1.4826
MEDIAN_ERROR_FACTOR = np.sqrt(np.pi / 2)


@dataclass(frozen=True)
class BinnedMap:
    """A 2-D binned statistic.

    Attributes
    ----------
    x_edges, y_edges : ndarray
        Bin edges, shapes ``(nx + 1,)`` and ``(ny + 1,)``, in the units of the coordinates.
    statistic : ndarray
        Shape ``(ny, nx)`` (row = y bin), NaN where the bin is empty or masked.
    count : ndarray
        Shape ``(ny, nx)``: stars per bin (before masking).
    """

    x_edges: np.ndarray
    y_edges: np.ndarray
    statistic: np.ndarray
    count: np.ndarray

    @property
    def x_centres(self) -> np.ndarray:
        """Bin centres along x."""
        return 0.5 * (self.x_edges[1:] + self.x_edges[:-1])

    @property
    def y_centres(self) -> np.ndarray:
        """Bin centres along y."""
        return 0.5 * (self.y_edges[1:] + self.y_edges[:-1])


def bin_index(values: ArrayLike, edges: np.ndarray) -> np.ndarray:
    """Index of the bin of each value, −1 outside the edges or for NaN.

    Parameters
    ----------
    values : array_like
    edges : ndarray
        Increasing bin edges, shape ``(n + 1,)``.

    Returns
    -------
    ndarray of int
        In ``[0, n)``, or −1.
    """
    values = np.asarray(values, dtype=float)
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = len(edges) - 2
    index[~((values >= edges[0]) & (values <= edges[-1]))] = -1
    return index


def binned_median_map(
    x: ArrayLike,
    y: ArrayLike,
    values: ArrayLike,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    min_count: int = DEFAULT_MIN_COUNT,
) -> BinnedMap:
    """Median of ``values`` in 2-D bins of (x, y), masking bins with fewer than ``min_count`` stars.

    Parameters
    ----------
    x, y : array_like
        Coordinates of the stars (e.g. Galactocentric x, y in kpc).
    values : array_like
        The quantity to summarise (e.g. [Fe/H] in dex). Stars with NaN values are not counted.
    x_edges, y_edges : ndarray
        Bin edges.
    min_count : int
        Bins with fewer stars are set to NaN (counts are kept).

    Returns
    -------
    BinnedMap
    """
    values = np.asarray(values, dtype=float)
    ix, iy = bin_index(x, x_edges), bin_index(y, y_edges)
    nx, ny = len(x_edges) - 1, len(y_edges) - 1
    ok = (ix >= 0) & (iy >= 0) & np.isfinite(values)
    flat = iy[ok] * nx + ix[ok]
    count = np.bincount(flat, minlength=nx * ny)
    statistic = np.full(nx * ny, np.nan)
    if flat.size:
        medians = pd.Series(values[ok]).groupby(flat).median()
        statistic[medians.index.to_numpy()] = medians.to_numpy()
    statistic[count < min_count] = np.nan
    return BinnedMap(x_edges, y_edges, statistic.reshape(ny, nx), count.reshape(ny, nx))


def color_limits(statistic: np.ndarray, percentiles: tuple[float, float] = COLOR_PERCENTILES) -> tuple[float, float]:
    """Colour range of a map: the given percentiles of its finite bin values; (NaN, NaN) for an empty map."""
    finite = np.asarray(statistic, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, percentiles)
    return float(lo), float(hi)


def robust_edges(values: ArrayLike, n_bins: int, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """``n_bins + 1`` equal-width edges between two percentiles of the finite values (a single bin if constant).

    Parameters
    ----------
    values : array_like
    n_bins : int
    percentiles : tuple of float
        Lower and upper percentiles spanned by the edges.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.array([0.0, 1.0])
    lo, hi = np.percentile(values, percentiles)
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    return np.linspace(lo, hi, n_bins + 1)


def running_median(x: ArrayLike, y: ArrayLike, edges: np.ndarray, min_count: int = 1) -> pd.DataFrame:
    """Median of ``y`` in bins of ``x``, with its uncertainty and the 16th/84th percentiles.

    Parameters
    ----------
    x, y : array_like
    edges : ndarray
        Bin edges along x.
    min_count : int
        Bins with fewer stars get NaN statistics (their count is kept).

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``x_lo``, ``x_hi``, ``x_mid``, ``n``, ``median``, ``median_error``
        (√(π/2) · 1.4826 · MAD / √n, the error of the median for Gaussian scatter; NaN for n < 2),
        ``q16`` and ``q84``.
    """
    y = np.asarray(y, dtype=float)
    index = bin_index(x, edges)
    ok = (index >= 0) & np.isfinite(y)
    groups = pd.Series(y[ok]).groupby(index[ok])
    stats = pd.DataFrame({
        "n": groups.size(),
        "median": groups.median(),
        "q16": groups.quantile(0.16),
        "q84": groups.quantile(0.84),
    })  # fmt: skip
    mad = pd.Series(np.abs(y[ok] - stats["median"].reindex(index[ok]).to_numpy())).groupby(index[ok]).median()
    out = pd.DataFrame({"x_lo": edges[:-1], "x_hi": edges[1:], "x_mid": 0.5 * (edges[1:] + edges[:-1])})
    stats = stats.reindex(range(len(out)))
    out["n"] = stats["n"].fillna(0).astype(int).to_numpy()
    for name in ("median", "q16", "q84"):
        out[name] = stats[name].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = MEDIAN_ERROR_FACTOR * MAD_TO_SIGMA * mad.reindex(range(len(out))).to_numpy(float) / np.sqrt(out["n"])
    out["median_error"] = np.where(out["n"] >= 2, error, np.nan)
    out.loc[out["n"] < min_count, ["median", "q16", "q84", "median_error"]] = np.nan
    return out
