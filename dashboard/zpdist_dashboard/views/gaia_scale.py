"""The Zero-point tab's Gaia-scale section: Δϖ maps of a ``zpdist zeropoint`` output of up to 10⁸ rows and more.

Design, chosen by measuring (``benchmarks/bench_dashboard.py --sections gaia``, on a shared 2-core CPU with other
jobs running): datashader re-aggregating the table persisted as a dask DataFrame scans every row on every pan
or zoom, so its cost grows with the table: 0.17–0.19 s per map and zoom at 10⁷ rows, about 2 s at 10⁸
(extrapolated) with 1.7 GB held in memory, and a zoom redraws every linked map. Instead, **one** dask pass over
the partitions (with a progress bar) builds fine fixed-grid 2-D histograms — for each plane (G, BP−RP),
(Teff, G), (BP−RP, Teff), each side of the training-domain flag, and each of :data:`STATISTICS` (stars, stars
with a Δϖ, ΣΔϖ, ΣΔϖ²) on :data:`FINE_BINS` ² bins, 200 MB in memory — and every view re-bins the visible window
of those arrays to about screen resolution by exact block sums: 0.015–0.04 s per map and zoom (Bokeh update
included), whatever the number of rows. The pass runs at 1.5–1.65 million rows/s (6–7 s for 10⁷ rows, about
65 s for 10⁸, once); the grid's ranges come from the Parquet footers' column statistics (no extra pass; a dask
min/max pass only when a file lacks them). The arrays are cached in :data:`CACHE_FILE` beside the partitions
(13 MB at 10⁷ rows), keyed by the files' names, sizes and modification times, so a restart reads them back
in about a second. The price of a precomputed grid: zooming in below the fine bin shows fine bins.

The table is opened as a dask DataFrame of float32 columns (:func:`GaiaTable.to_dask`): G, BP−RP, Teff,
Δϖ (µas) and the flag. ``zpdist zeropoint`` writes, per input file and in the same row order, Δϖ and its
flag but not G, BP−RP and Teff unless run with ``--keep-input-columns``; those are then read from the input
file of the same name (the input glob of ``zeropoint.json``), joined row by row, after checking that both
files hold the same number of rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.dataframe as dd
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zpdist.io.atomic import atomic_path
from zpdist.io.tables import TableError
from zpdist.maps import color_limits
from zpdist.zeropoint import ZEROPOINT_FILE, ZeroPointColumns, find_inputs
from zpdist_dashboard.views.base import LABELS, MAP_SIZE
from zpdist_dashboard.views.zeropoint import MAP_PLANES, OFFSET

#: Columns of the dask DataFrame: the three coordinates, Δϖ (µas) and the training-domain flag.
COORDINATES = ("phot_g_mean_mag", "bp_rp", "teff")
VALUE = "zp_offset_uas"
FLAG = "outside_training_domain"
META = pd.DataFrame({**{c: pd.Series(dtype=np.float32) for c in (*COORDINATES, VALUE)}, FLAG: pd.Series(dtype=bool)})
#: Statistics kept per fine bin: stars with finite coordinates, those with a finite Δϖ, ΣΔϖ (µas), ΣΔϖ² (µas²).
STATISTICS = ("count", "n", "sum", "sumsq")
#: Fine bins per axis of each plane.
FINE_BINS = 1024
#: Most bins a map shows across and up (the fine bins are summed in blocks down to this).
DISPLAY_BINS = (300, 240)
#: Bins of the Δϖ-against-G curve over the full G range.
PROFILE_BINS = 64
#: Cache of the histograms, written beside the first partition; bump the version when its content changes.
CACHE_FILE = "gaia_scale_histograms.npz"
CACHE_VERSION = 1
#: Which side(s) of the training-domain flag each choice of the toggle shows (0: inside, 1: outside).
OUTSIDE_CHOICES: dict[str, tuple[int, ...]] = {"hidden": (0,), "shown": (0, 1), "only": (1,)}


@dataclass(frozen=True)
class GaiaPartition:
    """One output file of ``zpdist zeropoint`` and the file holding its G, BP−RP and Teff, row-aligned.

    Attributes
    ----------
    output : str
        The zeropoint output file (Δϖ in mas and the flag).
    coordinates : str
        The file with the G, BP−RP, Teff columns: ``output`` itself, or the input file of the same name.
    rows : int
    """

    output: str
    coordinates: str
    rows: int


@dataclass(frozen=True)
class GaiaTable:
    """A ``zpdist zeropoint`` output opened for the dashboard.

    Attributes
    ----------
    partitions : tuple of GaiaPartition
    columns : ZeroPointColumns
        Names of G, BP−RP and Teff in the files (from ``zeropoint.json``, else the defaults).
    source : str
        What was opened (folder or glob), for display.
    """

    partitions: tuple[GaiaPartition, ...]
    columns: ZeroPointColumns
    source: str

    @property
    def n_rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def folder(self) -> Path:
        """The folder of the first output file, where the histogram cache goes."""
        return Path(self.partitions[0].output).parent

    def files(self) -> list[str]:
        """Every file read, outputs and coordinate files, without repeats."""
        return list(dict.fromkeys(f for p in self.partitions for f in (p.output, p.coordinates)))

    def fingerprint(self, bins: int) -> str:
        """A hash of the files' names, sizes and modification times, the column names and the grid."""
        stats = {f: os.stat(f) for f in self.files()}
        key = [
            CACHE_VERSION,
            bins,
            list(self.columns.inputs),
            [(f, s.st_size, s.st_mtime_ns) for f, s in stats.items()],
        ]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()

    def to_dask(self) -> dd.DataFrame:
        """One pandas partition per output file: :data:`COORDINATES`, :data:`VALUE` (float32) and :data:`FLAG`."""
        return dd.from_map(read_partition, self.partitions, names=self.columns, meta=META, enforce_metadata=False)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """[min, max] of each coordinate over the finite values, from the footers' statistics when all have them.

        A column whose statistics are missing in any file is scanned with dask instead; an all-NaN column
        gets (0, 1).
        """
        names = dict(zip(COORDINATES, self.columns.inputs, strict=True))
        found = {c: _footer_range([p.coordinates for p in self.partitions], n) for c, n in names.items()}
        missing = [c for c, r in found.items() if r is None]
        if missing:
            frame = self.to_dask()[missing]
            low, high = dask.compute(frame.min(), frame.max(), scheduler="threads")
            found.update({c: (float(low[c]), float(high[c])) for c in missing})
        return {c: (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else (0.0, 1.0) for c, (lo, hi) in found.items()}


def _footer_range(paths: list[str], column: str) -> tuple[float, float] | None:
    """[min, max] of ``column`` over every row group of ``paths`` from the Parquet footers; None if any lacks them."""
    low, high = np.inf, -np.inf
    for path in paths:
        metadata = pq.read_metadata(path)
        index = metadata.schema.names.index(column)
        for group in range(metadata.num_row_groups):
            chunk = metadata.row_group(group).column(index)
            stats = chunk.statistics
            if chunk.num_values == 0 or (stats is not None and stats.null_count == chunk.num_values):
                continue
            if stats is None or not stats.has_min_max or not (np.isfinite(stats.min) and np.isfinite(stats.max)):
                return None
            low, high = min(low, float(stats.min)), max(high, float(stats.max))
    return low, high


def _float32(table: pa.Table, column: str) -> np.ndarray:
    return pc.cast(table.column(column), pa.float32()).to_numpy(zero_copy_only=False)


def read_partition(partition: GaiaPartition, names: ZeroPointColumns) -> pd.DataFrame:
    """The :data:`META` columns of one partition; Δϖ converted from mas to µas, a missing flag read as outside.

    Raises
    ------
    TableError
        If the coordinate file does not hold as many rows as the output file (naming both).
    """
    output = pq.read_table(partition.output, columns=["zp_offset_mas", "zp_outside_training_domain"])
    source = pq.read_table(partition.coordinates, columns=list(names.inputs))
    if source.num_rows != output.num_rows:
        raise TableError(
            f"{partition.coordinates} holds {source.num_rows:,} rows but {partition.output} {output.num_rows:,}: "
            "not the input of that zeropoint output"
        )
    frame = {c: _float32(source, n) for c, n in zip(COORDINATES, names.inputs, strict=True)}
    frame[VALUE] = _float32(output, "zp_offset_mas") * np.float32(1000.0)
    flag = pc.fill_null(output.column("zp_outside_training_domain"), True)
    frame[FLAG] = flag.to_numpy(zero_copy_only=False).astype(bool)
    return pd.DataFrame(frame)


def _zeropoint_record(folder: Path) -> dict:
    path = folder / ZEROPOINT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _input_files(folder: Path, record: dict, columns: ZeroPointColumns) -> dict[str, Path] | None:
    """The input files of the zeropoint run of ``folder`` by name (None when its record names none).

    Raises
    ------
    FileNotFoundError
        If the record's input glob matches nothing.
    """
    if "input" not in record:
        return None
    try:
        return {p.name: p for p in find_inputs(record["input"])}
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{folder / ZEROPOINT_FILE}: its input files {record['input']!r} (which hold {', '.join(columns.inputs)}) "
            f"are not found from {Path.cwd()}"
        ) from exc


def open_zeropoint_output(path: str | os.PathLike) -> GaiaTable:
    """Open the output of ``zpdist zeropoint``: a folder (its ``*.parquet``), a glob, or one file.

    Parameters
    ----------
    path : str or path-like

    Raises
    ------
    FileNotFoundError
        If nothing matches, or the input files named in ``zeropoint.json`` cannot be found.
    TableError
        If a file lacks the zeropoint columns, or G, BP−RP, Teff are neither in it nor in a row-aligned
        input file.
    """
    outputs = find_inputs(path)
    records = {folder: _zeropoint_record(folder) for folder in dict.fromkeys(p.parent for p in outputs)}
    names = {
        ZeroPointColumns(**r["config"]["columns"]) if "config" in r else ZeroPointColumns() for r in records.values()
    }
    if len(names) > 1:
        raise TableError(f"{path}: the {ZEROPOINT_FILE} files of these folders name different input columns")
    columns = names.pop()
    inputs: dict[Path, dict[str, Path] | None] = {}
    partitions = []
    for output in outputs:
        metadata = pq.read_metadata(output)
        if missing := [c for c in ("zp_offset_mas", "zp_outside_training_domain") if c not in metadata.schema.names]:
            raise TableError(f"{output}: not a `zpdist zeropoint` output (no column {', '.join(missing)})")
        coordinates = output
        if any(c not in metadata.schema.names for c in columns.inputs):
            if output.parent not in inputs:
                inputs[output.parent] = _input_files(output.parent, records[output.parent], columns)
            if inputs[output.parent] is None or output.name not in inputs[output.parent]:
                lacking = ", ".join(c for c in columns.inputs if c not in metadata.schema.names)
                where = (
                    f"its folder has no {ZEROPOINT_FILE}"
                    if inputs[output.parent] is None
                    else f"no input file of that name matches {records[output.parent]['input']!r}"
                )
                raise TableError(
                    f"{output}: lacks {lacking}, and {where} (or run `zpdist zeropoint --keep-input-columns`)"
                )
            coordinates = inputs[output.parent][output.name]
            source = pq.read_metadata(coordinates)
            if source.num_rows != metadata.num_rows:
                raise TableError(
                    f"{coordinates} holds {source.num_rows:,} rows but {output} {metadata.num_rows:,}: not the input "
                    "of that zeropoint output"
                )
            if missing := [c for c in columns.inputs if c not in source.schema.names]:
                raise TableError(f"{coordinates}: missing column(s) {', '.join(missing)}")
        partitions.append(GaiaPartition(str(output), str(coordinates), metadata.num_rows))
    return GaiaTable(tuple(partitions), columns, str(path))


def grid_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fine bin of each value on the regular grid ``edges``, −1 for NaN.

    Bins are ``[lo, hi)`` but the last, which holds its upper edge (as :func:`zpdist.maps.bin_index`); finite
    values outside the grid, which only float rounding produces since the grid spans the data, go to the
    nearest edge bin.

    Parameters
    ----------
    values : ndarray
    edges : ndarray, shape (n + 1,)
        Equally spaced, increasing.

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
        :data:`META` columns.
    edges : dict
        Coordinate -> fine edges.

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
            The window, in the columns' units; None for the whole grid.
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
            ``x_mid``, ``n``, ``mean``, ``std`` (NaN where a bin is empty).
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
        """Range holding the given percentiles of the stars with that coordinate (fine-bin precision)."""
        plane = next(p for p in MAP_PLANES if column in p)
        counts = self._sum_sides(plane, ("count",), (0, 1))[0].sum(axis=0 if plane[0] == column else 1)
        cumulative = np.cumsum(counts)
        if cumulative[-1] == 0:
            edges = self.edges[column]
            return float(edges[0]), float(edges[-1])
        lo, hi = np.searchsorted(cumulative, np.asarray(percentiles) / 100 * cumulative[-1], side="left")
        edges = self.edges[column]
        return float(edges[lo]), float(edges[min(hi + 1, len(edges) - 1)])

    def color_limits(self, plane: tuple[str, str], sides: tuple[int, ...]) -> tuple[float, float]:
        """Colour range of a mean-Δϖ map (µas): :func:`zpdist.maps.color_limits` of the whole-grid map's bins."""
        key = (plane, sides)
        if key not in self._limits:
            _, _, (n, total) = self.window(plane, ("n", "sum"), sides)
            with np.errstate(invalid="ignore", divide="ignore"):
                self._limits[key] = color_limits(np.where(n > 0, total / n, np.nan))
        return self._limits[key]

    def to_npz(self, path: str | os.PathLike, fingerprint: str) -> None:
        """Write the arrays and ``fingerprint`` to ``path`` atomically (compressed .npz)."""
        arrays = {f"edges_{c}": e for c, e in self.edges.items()}
        arrays.update({f"plane_{x}|{y}": a for (x, y), a in self.planes.items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            np.savez_compressed(out, fingerprint=np.array(fingerprint), rows=self.rows, n_files=self.n_files, **arrays)

    @classmethod
    def from_npz(cls, path: str | os.PathLike, fingerprint: str, source: str) -> GaiaHistograms | None:
        """The histograms cached at ``path`` if written for ``fingerprint``; None otherwise (or unreadable)."""
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


def load_gaia_histograms(
    path: str | os.PathLike, bins: int = FINE_BINS, progress: bool = True, cache: bool = True
) -> GaiaHistograms:
    """The histograms of the zeropoint output at ``path``: from :data:`CACHE_FILE` if it matches the files,
    else built by :func:`build_histograms` and cached (a folder that cannot be written is skipped, with a note).

    Parameters
    ----------
    path : str or path-like
        Folder, glob or file of the zeropoint output (see :func:`open_zeropoint_output`).
    bins : int
        Fine bins per axis.
    progress : bool
        Show the progress of the pass and where the cache is.
    cache : bool
        Read and write the cache.
    """
    table = open_zeropoint_output(path)
    fingerprint = table.fingerprint(bins)
    cache_path = table.folder / CACHE_FILE
    if cache and (cached := GaiaHistograms.from_npz(cache_path, fingerprint, table.source)) is not None:
        if progress:
            print(f"zpdist: Gaia-scale histograms read from {cache_path} ({cached.seconds:.1f} s)", flush=True)
        return cached
    if progress:
        print(f"zpdist: building the Gaia-scale histograms of {table.n_rows:,} rows in {len(table.partitions)} "
              f"files (cached in {cache_path})", flush=True)  # fmt: skip
    histograms = build_histograms(table, bins, progress)
    if cache:
        try:
            histograms.to_npz(cache_path, fingerprint)
        except OSError as exc:
            print(f"zpdist: cannot cache the histograms in {cache_path} ({exc})", flush=True)
    return histograms


def shared_gaia_histograms(path: str | os.PathLike) -> GaiaHistograms:
    """The histograms of ``path``, built or read once per server process and shared by all sessions."""
    return pn.state.as_cached(f"zpdist-gaia:{path}", load_gaia_histograms, path=str(path))


def _short(column: str) -> str:
    return LABELS[column].split(" (")[0]


class GaiaScaleView(pn.viewable.Viewer):
    """Star counts and mean Δϖ maps of a Gaia-scale zeropoint output, and mean Δϖ against G.

    Every map re-bins the precomputed fine histograms for its visible range on each pan or zoom; the
    toggle chooses whether the stars outside the training domain are hidden, shown, or shown alone.
    """

    histograms = param.ClassSelector(class_=GaiaHistograms)
    outside = param.Selector(
        default="hidden", objects=list(OUTSIDE_CHOICES), doc="Stars outside the training domain: hidden, shown, only."
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._dimensions = {
            c: hv.Dimension(c, label=LABELS[c], range=self.histograms.robust_range(c)) for c in COORDINATES
        }

    def image(
        self,
        plane: tuple[str, str],
        statistic: str,
        outside: str,
        x_range: tuple[float, float] | None = None,
        y_range: tuple[float, float] | None = None,
    ) -> hv.Image:
        """A map of ``plane`` over the visible window: stars per bin (``"count"``) or mean Δϖ (``"mean"``, µas).

        Bins without stars are NaN. Without a window it covers the robust range of both coordinates.
        """
        x, y = (self._dimensions[c] for c in plane)
        x_range, y_range = x_range or x.range, y_range or y.range
        sides = OUTSIDE_CHOICES[outside]
        if statistic == "count":
            x_edges, y_edges, (count,) = self.histograms.window(plane, ("count",), sides, x_range, y_range)
            values, vdim = np.where(count > 0, count, np.nan), hv.Dimension("count", label="stars per bin")
        else:
            x_edges, y_edges, (n, total) = self.histograms.window(plane, ("n", "sum"), sides, x_range, y_range)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(n > 0, total / n, np.nan)
            vdim = hv.Dimension(VALUE, label=OFFSET.label, range=self.histograms.color_limits(plane, sides))
        bounds = (x_edges[0], y_edges[0], x_edges[-1], y_edges[-1])
        return hv.Image(np.flipud(values).astype(np.float32), bounds=bounds, kdims=[x, y], vdims=[vdim])

    def _map(self, plane: tuple[str, str], statistic: str) -> hv.DynamicMap:
        def render(x_range=None, y_range=None, outside=self.outside) -> hv.Image:
            return self.image(plane, statistic, outside, x_range, y_range)

        streams = [hv.streams.RangeXY(), hv.streams.Params(self, ["outside"])]
        if statistic == "count":
            title, style = f"Stars over ({_short(plane[0])}, {_short(plane[1])})", {"cmap": "viridis", "cnorm": "log"}
        else:
            title, style = f"mean Δϖ over ({_short(plane[0])}, {_short(plane[1])})", {"cmap": "plasma"}
        return hv.DynamicMap(render, streams=streams).opts(
            title=title, colorbar=True, tools=["hover"], active_tools=["wheel_zoom"], **MAP_SIZE, **style
        )

    def profile(self, outside: str) -> hv.Overlay:
        """Mean Δϖ (µas) in bins of G, with a band of ± one standard deviation of the stars' Δϖ."""
        profile = self.histograms.profile("phot_g_mean_mag", OUTSIDE_CHOICES[outside])
        xdim = hv.Dimension("phot_g_mean_mag", label=LABELS["phot_g_mean_mag"])
        band = hv.Spread((profile["x_mid"], profile["mean"], profile["std"]), xdim, [OFFSET, "std"])
        curve = hv.Curve((profile["x_mid"], profile["mean"]), xdim, OFFSET, label="mean Δϖ")
        return (band * curve).opts(
            hv.opts.Spread(alpha=0.3),
            hv.opts.Overlay(title="mean Δϖ against G (band: ± 1σ of the stars)", legend_position="bottom_left",
                            show_grid=True, **MAP_SIZE),
        )  # fmt: skip

    def _summary(self) -> str:
        h = self.histograms
        outside = int(h.rows[1])
        share = outside / h.n_rows if h.n_rows else 0.0
        origin = "read from the cache" if h.from_cache else "built"
        bins = len(h.edges[COORDINATES[0]]) - 1
        return (
            f"### Gaia-scale table\n**{h.source}**: {h.n_rows:,} rows in {h.n_files} files; {outside:,} ({share:.1%}) "
            f"outside the training domain. Fine histograms of {bins}² bins per plane, {origin} in {h.seconds:.1f} s; "
            "the maps re-bin them for the visible range."
        )

    def __panel__(self) -> pn.viewable.Viewable:
        toggle = pn.widgets.RadioButtonGroup.from_param(self.param.outside)
        maps = [self._map(MAP_PLANES[0], "count"), *(self._map(plane, "mean") for plane in MAP_PLANES)]
        profile = hv.DynamicMap(self.profile, streams=[hv.streams.Params(self, ["outside"])])
        return pn.Column(
            pn.pane.Markdown(self._summary(), sizing_mode="stretch_width"),
            pn.Row(pn.pane.Markdown("Stars outside the training domain:", margin=(8, 5)), toggle),
            pn.FlexBox(*(pn.pane.HoloViews(m) for m in maps), pn.pane.HoloViews(profile)),
        )
