"""The one dask pass over a zeropoint output into its fine histograms, and their cache beside the partitions."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable

import dask
import numpy as np
import pandas as pd

from zpdist.zeropoint_maps.histograms import MAP_PLANES, STATISTICS, GaiaHistograms
from zpdist.zeropoint_maps.table import COORDINATES, FLAG, VALUE, GaiaTable, open_zeropoint_output

#: Fine bins per axis of each plane.
FINE_BINS = 1024
#: Cache of the histograms, written beside the first partition; bump the version when its content changes.
CACHE_FILE = "gaia_scale_histograms.npz"
CACHE_VERSION = 1


def grid_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fine bin of each value on the regular grid ``edges``, −1 for NaN.

    Bins are ``[lo, hi)`` but the last, which holds its upper edge (as :func:`zpdist.maps.bin_index`); finite
    values outside the grid, which only float rounding produces since the grid spans the data, go to the
    nearest edge bin.

    Parameters
    ----------
    values : ndarray
    edges : ndarray, shape (n + 1,)
        Equally spaced, increasing, in the values' unit.

    Returns
    -------
    ndarray of int64
    """
    n = len(edges) - 1
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    position = np.floor((np.where(finite, values, edges[0]) - edges[0]) * (n / (edges[-1] - edges[0])))
    return np.where(finite, np.clip(position, 0, n - 1), -1).astype(np.int64)


def histogram_partition(frame: pd.DataFrame, edges: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fine histograms of one partition.

    Parameters
    ----------
    frame : pandas.DataFrame
        The columns of :data:`zpdist.zeropoint_maps.table.META`.
    edges : dict
        Coordinate -> fine edges (mag, K).

    Returns
    -------
    dict of ndarray
        ``"rows"``: rows inside and outside the training domain, shape (2,); for each plane ``"x|y"`` of
        :data:`MAP_PLANES`, shape (4 :data:`STATISTICS`, 2 flag sides, ny, nx), float64.
    """
    outside = frame[FLAG].to_numpy(bool).astype(np.int64)
    value = frame[VALUE].to_numpy(np.float64)
    has_value = np.isfinite(value)
    index = {c: grid_index(frame[c].to_numpy(), edges[c]) for c in COORDINATES}
    result = {"rows": np.bincount(outside, minlength=2)}
    for x, y in MAP_PLANES:
        nx, ny = len(edges[x]) - 1, len(edges[y]) - 1
        placed = (index[x] >= 0) & (index[y] >= 0)
        cell = ((outside * ny + index[y]) * nx + index[x])[placed]
        with_value = has_value[placed]
        v, cell_v = value[placed][with_value], cell[with_value]
        size = 2 * ny * nx
        stats = np.empty((len(STATISTICS), 2, ny, nx))
        stats[0] = np.bincount(cell, minlength=size).reshape(2, ny, nx)
        stats[1] = np.bincount(cell_v, minlength=size).reshape(2, ny, nx)
        stats[2] = np.bincount(cell_v, weights=v, minlength=size).reshape(2, ny, nx)
        stats[3] = np.bincount(cell_v, weights=v * v, minlength=size).reshape(2, ny, nx)
        result[f"{x}|{y}"] = stats
    return result


def _add_histograms(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sum partial histograms into the first (which the dask graph owns alone)."""
    total = parts[0]
    for part in parts[1:]:
        for key, array in part.items():
            total[key] += array
    return total


def build_histograms(
    table: GaiaTable, bins: int = FINE_BINS, progress: bool = True, scheduler: str = "threads"
) -> GaiaHistograms:
    """One dask pass over ``table`` building its :class:`GaiaHistograms` on ``bins`` × ``bins`` grids.

    Parameters
    ----------
    table : GaiaTable
    bins : int
        Fine bins per axis.
    progress : bool
        Show dask's progress bar.
    scheduler : str
        A dask local scheduler (``"threads"``, ``"synchronous"``).
    """
    from dask.diagnostics import ProgressBar

    started = time.perf_counter()
    edges = {c: np.linspace(lo, hi, bins + 1) for c, (lo, hi) in table.ranges().items()}
    parts = [dask.delayed(histogram_partition)(frame, edges) for frame in table.to_dask().to_delayed()]
    while len(parts) > 1:  # a tree of sums: a few partial grids in memory at a time
        parts = [dask.delayed(_add_histograms)(*parts[i : i + 4]) for i in range(0, len(parts), 4)]
    with ProgressBar() if progress else contextlib.nullcontext():
        (total,) = dask.compute(parts[0], scheduler=scheduler)
    planes = {(x, y): total[f"{x}|{y}"] for x, y in MAP_PLANES}
    seconds = time.perf_counter() - started
    return GaiaHistograms(edges, planes, total["rows"], len(table.partitions), table.source, seconds)


def fingerprint(table: GaiaTable, bins: int) -> str:
    """A hash of the table's files (names, sizes, modification times), its column names and the grid: the key of
    the cache."""
    stats = {f: os.stat(f) for f in table.files()}
    key = [
        CACHE_VERSION,
        bins,
        list(table.columns.inputs),
        [(f, s.st_size, s.st_mtime_ns) for f, s in stats.items()],
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def load_gaia_histograms(
    path: str | os.PathLike,
    bins: int = FINE_BINS,
    progress: bool = True,
    cache: bool = True,
    log: Callable[[str], None] = print,
) -> GaiaHistograms:
    """The histograms of the zeropoint output at ``path``: from :data:`CACHE_FILE` beside its first partition if it
    matches the files, else built by :func:`build_histograms` and cached there (a folder that cannot be written is
    skipped, with a note).

    Parameters
    ----------
    path : str or path-like
        Folder, glob or file of the zeropoint output (see :func:`zpdist.zeropoint_maps.table.open_zeropoint_output`).
    bins : int
        Fine bins per axis.
    progress : bool
        Show the progress of the pass.
    cache : bool
        Read and write the cache.
    log : callable
        Receives a line on where the histograms come from.
    """
    table = open_zeropoint_output(path)
    key = fingerprint(table, bins)
    cache_path = table.folder / CACHE_FILE
    if cache and (cached := GaiaHistograms.from_npz(cache_path, key, table.source)) is not None:
        log(f"zpdist: Gaia-scale histograms read from {cache_path} ({cached.seconds:.1f} s)")
        return cached
    log(f"zpdist: building the Gaia-scale histograms of {table.n_rows:,} rows in {len(table.partitions)} files"
        + (f" (cached in {cache_path})" if cache else ""))  # fmt: skip
    histograms = build_histograms(table, bins, progress)
    if cache:
        try:
            histograms.to_npz(cache_path, key)
        except OSError as exc:
            log(f"zpdist: cannot cache the histograms in {cache_path} ({exc})")
    return histograms
