"""Maps of a catalog's stars aggregated per pixel, as datashader's ``Canvas.points`` does (same pixel of every
point, same count, and the same mean to single precision), with what does not depend on the session computed once
per catalog: each star's pixel in a map's full view (a 16-bit index) and the averaged column in single precision,
kept while the process runs. A filter change is then one pass over the stars' pixels, values and the filter mask
(7 bytes a star), without copying the filtered stars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import holoviews as hv
import numba
import numpy as np

from zpdist_dashboard.state import Catalog

#: Aggregation grid of the datashaded maps (bins across, bins up): coarser than the screen, so that a sparse
#: catalog stays visible; zooming re-aggregates at this resolution.
RASTER_BINS = (200, 160)
# The maps' parallel loops (numba's OpenMP threads) wait for work asleep rather than spinning: on this 2-core
# machine with its other core busy, spinning threads made a filter change of 10⁷ stars 48 ms instead of 29 ms.
# OpenMP reads the setting once, when the first parallel loop runs; a value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
#: A map has at most SPARE pixels; the stars it does not draw (outside its view, without a value, filtered out) are
#: counted in the SPARE_BINS bins above, each in the one its position in the catalog picks (so that a run of them
#: does not queue on one bin), and never shown.
SPARE, SPARE_BINS = 1 << 15, 1 << 13


@numba.njit(parallel=True, cache=True)
def pixel_index(
    x: np.ndarray, y: np.ndarray, values: np.ndarray, view: tuple[float, float, float, float], bins: tuple[int, int]
) -> np.ndarray:
    """Each point's pixel ``row * bins[0] + column`` in ``view = (x0, x1, y0, y1)`` split into ``bins = (across,
    up)``, as datashader's ``Canvas.points`` maps it (edges included, the top one in the last pixel); a spare bin
    (:data:`SPARE` and above) for points outside the view or whose value is not finite (give ``x`` as ``values`` to
    count points)."""
    x0, x1, y0, y1 = view
    nx, ny = bins
    sx, sy = nx / (x1 - x0), ny / (y1 - y0)
    tx, ty = -x0 * sx, -y0 * sy
    out = np.empty(len(x), np.uint16)
    for i in numba.prange(len(x)):
        xi, yi = x[i], y[i]
        if x0 <= xi <= x1 and y0 <= yi <= y1 and np.isfinite(values[i]):
            out[i] = min(int(yi * sy + ty), ny - 1) * nx + min(int(xi * sx + tx), nx - 1)
        else:
            out[i] = SPARE + (i & (SPARE_BINS - 1))
    return out


@numba.njit(parallel=True, cache=True)
def _sum_count(
    pixels: np.ndarray, values: np.ndarray, mask: np.ndarray, n_slices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the sum of ``values`` and the number of the points where ``mask`` holds (``n_slices`` slices of the
    points summed in parallel). Every point adds to its bin, those outside ``mask`` nothing: a filter mask follows
    no order, and a branch on it would be mispredicted for one point in two. A bin's sum and count lie side by side,
    in the cache line a point touches."""
    size = (len(pixels) + n_slices - 1) // n_slices
    totals = np.zeros((n_slices, 2 * (SPARE + SPARE_BINS)))
    for s in numba.prange(n_slices):
        slice_totals = totals[s]
        for i in range(s * size, min(len(pixels), (s + 1) * size)):
            k, chosen = 2 * np.int64(pixels[i]), mask[i]
            slice_totals[k] += values[i] * chosen
            slice_totals[k + 1] += chosen
    summed = totals.sum(axis=0)
    return summed[: 2 * SPARE : 2], summed[1 : 2 * SPARE : 2]


@numba.njit(parallel=True, cache=True)
def _count(pixels: np.ndarray, mask: np.ndarray, n_slices: int) -> np.ndarray:
    """Per pixel, the number of points where ``mask`` holds (as :func:`_sum_count`)."""
    size = (len(pixels) + n_slices - 1) // n_slices
    counts = np.zeros((n_slices, SPARE + SPARE_BINS), np.int32)
    for s in numba.prange(n_slices):
        slice_counts = counts[s]
        for i in range(s * size, min(len(pixels), (s + 1) * size)):
            slice_counts[pixels[i]] += mask[i]
    return counts[:, :SPARE].sum(axis=0)


@dataclass(frozen=True, eq=False)
class MapRaster:
    """A map of a catalog's stars over (``x``, ``y``): their count per pixel, or the mean of ``value``.

    Attributes
    ----------
    x, y : ndarray
        The stars' coordinates (the catalog's columns, not copied).
    values : ndarray of float32 or None
        The column averaged per pixel, in single precision (a copy: half the bytes a filter change reads; the image
        is single precision too, and the sums are double); None for a count map. Values beyond float32's range
        (about 3.4e38) count as not finite.
    view : tuple of float
        The full view ``(x0, x1, y0, y1)``, in the columns' units.
    bins : tuple of int
        Pixels across and up (:data:`RASTER_BINS`).
    pixels : ndarray of uint16
        Each star's pixel in the full view (:func:`pixel_index`).
    """

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray | None
    view: tuple[float, float, float, float]
    bins: tuple[int, int]
    pixels: np.ndarray

    @classmethod
    def of(cls, catalog: Catalog, x: hv.Dimension, y: hv.Dimension, value: str | None) -> MapRaster:
        """The map of ``catalog`` over the ranges of ``x`` and ``y``, made once per process."""

        def make() -> MapRaster:
            xs, ys = (catalog.frame[d.name].to_numpy(float) for d in (x, y))
            with np.errstate(over="ignore"):
                values = catalog.frame[value].to_numpy(np.float32) if value else None
            view = (*map(float, x.range), *map(float, y.range))
            pixels = pixel_index(xs, ys, xs if values is None else values, view, RASTER_BINS)
            return cls(xs, ys, values, view, RASTER_BINS, pixels)

        key = ("raster", x.name, y.name, value, tuple(x.range), tuple(y.range))
        return catalog.shared.get(key, make, keep=True)

    @property
    def n_pixels(self) -> int:
        return self.bins[0] * self.bins[1]

    def aggregate(self, mask: np.ndarray, view: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """The image (``bins[1]`` rows up by ``bins[0]`` columns across, float32) of the stars in ``mask`` over
        ``view`` (default the full view): count per pixel, or the mean value; NaN where no star falls."""
        if view is None or view == self.view:
            pixels = self.pixels
        else:
            pixels = pixel_index(self.x, self.y, self.x if self.values is None else self.values, view, self.bins)
        if self.values is None:
            counts = _count(pixels, mask, numba.get_num_threads())[: self.n_pixels]
            image = counts.astype(np.float32)
        else:
            sums, counts = _sum_count(pixels, self.values, mask, numba.get_num_threads())
            sums, counts = sums[: self.n_pixels], counts[: self.n_pixels]
            with np.errstate(invalid="ignore", divide="ignore"):
                image = (sums / counts).astype(np.float32)
        image[counts == 0] = np.nan
        return image.reshape(self.bins[1], self.bins[0])
