"""Fine 2-D histograms of a zeropoint output, and the re-binning a map asks of them for its visible window.

Each plane of :data:`MAP_PLANES` holds, for each side of the training-domain flag, the :data:`STATISTICS` of the
stars in each fine bin. A window of any size is answered by summing blocks of fine bins down to at most
:data:`DISPLAY_BINS`: exact sums, whose cost depends on the grid, not on the number of rows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from zpdist.io.atomic import atomic_path
from zpdist.maps import color_limits
from zpdist.zeropoint_maps.table import COORDINATES

#: The (x, y) planes of the Δϖ maps: (G, BP−RP), (Teff, G), (BP−RP, Teff).
MAP_PLANES = (("phot_g_mean_mag", "bp_rp"), ("teff", "phot_g_mean_mag"), ("bp_rp", "teff"))
#: Statistics kept per fine bin: stars with finite coordinates, those with a finite Δϖ, ΣΔϖ (µas), ΣΔϖ² (µas²).
STATISTICS = ("count", "n", "sum", "sumsq")
#: Most bins a map shows across and up (the fine bins are summed in blocks down to this).
DISPLAY_BINS = (300, 240)
#: Bins of the Δϖ-against-G curve over the full G range.
PROFILE_BINS = 64


@dataclass(frozen=True, eq=False)
class GaiaHistograms:
    """Fine 2-D histograms of a zeropoint output, and the re-binning the maps ask of them.

    Attributes
    ----------
    edges : dict
        Coordinate -> fine bin edges (mag for G and BP−RP, K for Teff).
    planes : dict
        ``(x, y)`` of :data:`MAP_PLANES` -> array of shape (4, 2, ny, nx): :data:`STATISTICS` × flag side
        (inside, outside) × y bin × x bin.
    rows : ndarray, shape (2,)
        Rows inside and outside the training domain (every row, with or without coordinates).
    n_files : int
    source : str
        The table opened, for display.
    seconds : float
        Time to build the histograms, or to read them from the cache.
    from_cache : bool
    """

    edges: dict[str, np.ndarray]
    planes: dict[tuple[str, str], np.ndarray]
    rows: np.ndarray
    n_files: int
    source: str
    seconds: float = 0.0
    from_cache: bool = False
    _limits: dict = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.rows.sum())

    @property
    def fine_bins(self) -> int:
        """Fine bins per axis."""
        return len(self.edges[COORDINATES[0]]) - 1

    def window(
        self,
        plane: tuple[str, str],
        statistics: tuple[str, ...],
        sides: tuple[int, ...],
        x_range: tuple[float, float] | None = None,
        y_range: tuple[float, float] | None = None,
        max_bins: tuple[int, int] = DISPLAY_BINS,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fine bins covering a visible window, summed in blocks to at most ``max_bins``.

        Parameters
        ----------
        plane : (str, str)
            (x, y) columns, one of :data:`MAP_PLANES`.
        statistics : tuple of str
            Names from :data:`STATISTICS`.
        sides : tuple of int
            Flag sides summed: 0 inside the training domain, 1 outside.
        x_range, y_range : (float, float) or None
            The window, in the columns' units (mag, K); None for the whole grid.
        max_bins : (int, int)
            Most bins across and up.

        Returns
        -------
        x_edges, y_edges : ndarray
            Edges of the returned bins (they cover the window, snapped outwards to fine edges).
        values : ndarray, shape (len(statistics), ny, nx)
            Exact sums of the fine bins of each block.
        """
        x_edges, y_edges = self.edges[plane[0]], self.edges[plane[1]]
        (i0, nx, kx), (j0, ny, ky) = (
            _blocks(edges, limits, most) for edges, limits, most in ((x_edges, x_range, max_bins[0]),
                                                                     (y_edges, y_range, max_bins[1]))
        )  # fmt: skip
        values = self._sum_sides(plane, statistics, sides, np.s_[j0 : j0 + ny * ky, i0 : i0 + nx * kx])
        values = np.pad(values, ((0, 0), (0, ny * ky - values.shape[1]), (0, nx * kx - values.shape[2])))
        values = values.reshape(len(statistics), ny, ky, nx, kx).sum(axis=(2, 4))
        return _coarse_edges(x_edges, i0, kx, nx), _coarse_edges(y_edges, j0, ky, ny), values

    def map(
        self,
        plane: tuple[str, str],
        kind: str,
        sides: tuple[int, ...],
        x_range: tuple[float, float] | None = None,
        y_range: tuple[float, float] | None = None,
        max_bins: tuple[int, int] = DISPLAY_BINS,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A map of ``plane`` over a window (see :meth:`window`): stars per bin (``kind="count"``) or their mean Δϖ
        (``kind="mean"``, µas).

        Returns
        -------
        x_edges, y_edges : ndarray
        values : ndarray, shape (ny, nx)
            NaN in bins without stars (``"count"``) or without a Δϖ (``"mean"``).
        """
        if kind == "count":
            x_edges, y_edges, (count,) = self.window(plane, ("count",), sides, x_range, y_range, max_bins)
            return x_edges, y_edges, np.where(count > 0, count, np.nan)
        x_edges, y_edges, (n, total) = self.window(plane, ("n", "sum"), sides, x_range, y_range, max_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return x_edges, y_edges, np.where(n > 0, total / n, np.nan)

    def _sum_sides(
        self, plane: tuple[str, str], statistics: tuple[str, ...], sides: tuple[int, ...], window: tuple = np.s_[:, :]
    ) -> np.ndarray:
        """``statistics`` of ``plane`` over ``window`` (y, x slices), summed over the flag ``sides``: a copy of the
        window only."""
        rows = [STATISTICS.index(s) for s in statistics]
        return sum(self.planes[plane][(rows, side, *window)] for side in sides)

    def profile(self, column: str, sides: tuple[int, ...], bins: int = PROFILE_BINS) -> pd.DataFrame:
        """Mean and standard deviation of Δϖ (µas) in ``bins`` bins of ``column`` over its full range.

        Marginalises the first plane holding ``column``; a star with a Δϖ has all three coordinates, so
        every such star counts.

        Returns
        -------
        pandas.DataFrame
            ``x_mid`` (the column's unit), ``n``, ``mean`` and ``std`` (µas; NaN where a bin is empty).
        """
        plane = next(p for p in MAP_PLANES if column in p)
        other = 1 if plane[0] == column else 2  # the other coordinate's axis
        counts = self._sum_sides(plane, ("n", "sum", "sumsq"), sides).sum(axis=other)  # (3 statistics, fine bins)
        factor = max(1, -(-counts.shape[1] // bins))
        counts = np.pad(counts, ((0, 0), (0, -counts.shape[1] % factor)))
        n, total, squares = counts.reshape(3, -1, factor).sum(axis=2)
        edges = _coarse_edges(self.edges[column], 0, factor, len(n))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, total / n, np.nan)
            std = np.sqrt(np.maximum(np.where(n > 1, squares / n - mean**2, np.nan), 0.0))
        return pd.DataFrame({"x_mid": 0.5 * (edges[1:] + edges[:-1]), "n": n, "mean": mean, "std": std})

    def robust_range(self, column: str, percentiles: tuple[float, float] = (0.01, 99.99)) -> tuple[float, float]:
        """Range holding the given percentiles of the stars with that coordinate (fine-bin precision; mag or K)."""
        plane = next(p for p in MAP_PLANES if column in p)
        counts = self._sum_sides(plane, ("count",), (0, 1))[0].sum(axis=0 if plane[0] == column else 1)
        cumulative = np.cumsum(counts)
        edges = self.edges[column]
        if cumulative[-1] == 0:
            return float(edges[0]), float(edges[-1])
        lo, hi = np.searchsorted(cumulative, np.asarray(percentiles) / 100 * cumulative[-1], side="left")
        return float(edges[lo]), float(edges[min(hi + 1, len(edges) - 1)])

    def color_limits(self, plane: tuple[str, str], sides: tuple[int, ...]) -> tuple[float, float]:
        """Colour range of a mean-Δϖ map (µas): :func:`zpdist.maps.color_limits` of the whole-grid map's bins."""
        key = (plane, sides)
        if key not in self._limits:
            self._limits[key] = color_limits(self.map(plane, "mean", sides)[2])
        return self._limits[key]

    def to_npz(self, path: str | os.PathLike, fingerprint: str) -> None:
        """Write the arrays and ``fingerprint`` to ``path`` atomically (compressed .npz)."""
        arrays = {f"edges_{c}": e for c, e in self.edges.items()}
        arrays.update({f"plane_{x}|{y}": a for (x, y), a in self.planes.items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            np.savez_compressed(out, fingerprint=np.array(fingerprint), rows=self.rows, n_files=self.n_files, **arrays)

    @classmethod
    def from_npz(cls, path: str | os.PathLike, fingerprint: str, source: str) -> GaiaHistograms | None:
        """The histograms written at ``path`` for ``fingerprint``; None otherwise (or when unreadable)."""
        started = time.perf_counter()
        try:
            with np.load(path) as cached:
                if str(cached["fingerprint"]) != fingerprint:
                    return None
                edges = {c: cached[f"edges_{c}"] for c in COORDINATES}
                planes = {(x, y): cached[f"plane_{x}|{y}"] for x, y in MAP_PLANES}
                rows, n_files = cached["rows"], int(cached["n_files"])
        except (OSError, KeyError, ValueError):
            return None
        return cls(edges, planes, rows, n_files, source, time.perf_counter() - started, from_cache=True)


def _blocks(edges: np.ndarray, limits: tuple[float, float] | None, most: int) -> tuple[int, int, int]:
    """The blocks of fine bins covering ``limits`` (the whole grid when None): the first fine bin, the number of
    blocks (at most ``most``; the last may run past the grid) and the fine bins per block."""
    n = len(edges) - 1
    if limits is None or not all(np.isfinite(limits)):
        start, stop = 0, n
    else:
        width = (edges[-1] - edges[0]) / n
        lo, hi = sorted(limits)
        start = int(np.clip(np.floor((lo - edges[0]) / width), 0, n - 1))
        stop = int(np.clip(np.ceil((hi - edges[0]) / width), start + 1, n))
    block = max(1, -(-(stop - start) // most))
    return start, -(-(stop - start) // block), block


def _coarse_edges(edges: np.ndarray, start: int, block: int, n_blocks: int) -> np.ndarray:
    """Edges of ``n_blocks`` blocks of ``block`` fine bins from fine bin ``start`` (may run past the grid)."""
    width = (edges[-1] - edges[0]) / (len(edges) - 1)
    return edges[0] + width * (start + block * np.arange(n_blocks + 1))
