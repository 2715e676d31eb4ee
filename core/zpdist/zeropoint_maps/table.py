"""Opening a ``zpdist zeropoint`` output as one table of G, BP−RP, Teff, Δϖ and the training-domain flag.

``zpdist zeropoint`` writes, per input file and in the same row order, Δϖ and its flag but not G, BP−RP and
Teff unless run with ``--keep-input-columns``; those are then read from the input file of the same name (the
input glob recorded in ``zeropoint.json``), joined row by row, after checking that both files hold the same
number of rows. The table is read as a dask DataFrame of float32 columns, one partition per output file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zpdist.errors import MissingInputError
from zpdist.io.tables import TableError
from zpdist.units import mas_to_uas
from zpdist.zeropoint import ZEROPOINT_FILE, ZeroPointColumns, find_inputs

#: Columns of the table: the three coordinates (G and BP−RP in mag, Teff in K), Δϖ (µas) and the flag.
COORDINATES = ("phot_g_mean_mag", "bp_rp", "teff")
VALUE = "zp_offset_uas"
FLAG = "outside_training_domain"
META = pd.DataFrame({**{c: pd.Series(dtype=np.float32) for c in (*COORDINATES, VALUE)}, FLAG: pd.Series(dtype=bool)})
#: The columns every ``zpdist zeropoint`` output file holds.
OUTPUT_COLUMNS = ("zp_offset", "zp_outside_training_domain")


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
    """A ``zpdist zeropoint`` output, opened.

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
        """The folder of the first output file."""
        return Path(self.partitions[0].output).parent

    def files(self) -> list[str]:
        """Every file read, outputs and coordinate files, without repeats."""
        return list(dict.fromkeys(f for p in self.partitions for f in (p.output, p.coordinates)))

    def to_dask(self) -> dd.DataFrame:
        """One pandas partition per output file: :data:`COORDINATES`, :data:`VALUE` (float32) and :data:`FLAG`."""
        return dd.from_map(read_partition, self.partitions, names=self.columns, meta=META, enforce_metadata=False)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """[min, max] of each coordinate over the finite values (mag, mag, K), from the footers' statistics when
        all files have them.

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


def _check_aligned(coordinates: str | os.PathLike, coordinate_rows: int, output: str | os.PathLike, rows: int) -> None:
    if coordinate_rows != rows:
        raise TableError(
            f"{coordinates} holds {coordinate_rows:,} rows but {output} {rows:,}: not the input of that zeropoint "
            "output"
        )


def read_partition(partition: GaiaPartition, names: ZeroPointColumns) -> pd.DataFrame:
    """The :data:`META` columns of one partition; Δϖ converted from mas to µas, a missing flag read as outside.

    Raises
    ------
    TableError
        If the coordinate file does not hold as many rows as the output file (naming both).
    """
    output = pq.read_table(partition.output, columns=list(OUTPUT_COLUMNS))
    source = pq.read_table(partition.coordinates, columns=list(names.inputs))
    _check_aligned(partition.coordinates, source.num_rows, partition.output, output.num_rows)
    frame = {c: _float32(source, n) for c, n in zip(COORDINATES, names.inputs, strict=True)}
    frame[VALUE] = mas_to_uas(_float32(output, "zp_offset"))
    flag = pc.fill_null(output.column("zp_outside_training_domain"), True)
    frame[FLAG] = flag.to_numpy(zero_copy_only=False).astype(bool)
    return pd.DataFrame(frame)


class _Folder:
    """What one output folder's ``zeropoint.json`` says: the input columns, and the input files by name (read on
    first use)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        path = folder / ZEROPOINT_FILE
        self.record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        config = self.record.get("config")
        self.columns = ZeroPointColumns(**config["columns"]) if config else ZeroPointColumns()
        self._inputs: dict[str, Path] | None = None

    def input_file(self, output: Path, lacking: list[str]) -> Path:
        """The input file of the same name as ``output``, which lacks the ``lacking`` columns.

        Raises
        ------
        MissingInputError
            If the record's input glob matches nothing.
        TableError
            If the folder has no record, or no input file of that name.
        """
        if "input" not in self.record:
            where = f"its folder has no {ZEROPOINT_FILE}"
        else:
            if self._inputs is None:
                try:
                    self._inputs = {p.name: p for p in find_inputs(self.record["input"])}
                except MissingInputError as exc:
                    raise MissingInputError(
                        f"{self.folder / ZEROPOINT_FILE}: its input files {self.record['input']!r} (which hold "
                        f"{', '.join(self.columns.inputs)}) are not found from {Path.cwd()}"
                    ) from exc
            if output.name in self._inputs:
                return self._inputs[output.name]
            where = f"no input file of that name matches {self.record['input']!r}"
        raise TableError(
            f"{output}: lacks {', '.join(lacking)}, and {where} (or run `zpdist zeropoint --keep-input-columns`)"
        )


def _partition(output: Path, folder: _Folder) -> GaiaPartition:
    """One output file and where its coordinates are, checked."""
    metadata = pq.read_metadata(output)
    if missing := [c for c in OUTPUT_COLUMNS if c not in metadata.schema.names]:
        raise TableError(f"{output}: not a `zpdist zeropoint` output (no column {', '.join(missing)})")
    lacking = [c for c in folder.columns.inputs if c not in metadata.schema.names]
    if not lacking:
        return GaiaPartition(str(output), str(output), metadata.num_rows)
    coordinates = folder.input_file(output, lacking)
    source = pq.read_metadata(coordinates)
    _check_aligned(coordinates, source.num_rows, output, metadata.num_rows)
    if missing := [c for c in folder.columns.inputs if c not in source.schema.names]:
        raise TableError(f"{coordinates}: missing column(s) {', '.join(missing)}")
    return GaiaPartition(str(output), str(coordinates), metadata.num_rows)


def open_zeropoint_output(path: str | os.PathLike) -> GaiaTable:
    """Open the output of ``zpdist zeropoint``: a folder (its ``*.parquet``), a glob, or one file.

    Parameters
    ----------
    path : str or path-like

    Raises
    ------
    MissingInputError
        If nothing matches, or the input files named in ``zeropoint.json`` cannot be found.
    TableError
        If a file lacks the zeropoint columns, or G, BP−RP, Teff are neither in it nor in a row-aligned
        input file, or the folders' ``zeropoint.json`` files name different input columns.
    """
    outputs = find_inputs(path)
    folders = {parent: _Folder(parent) for parent in dict.fromkeys(p.parent for p in outputs)}
    names = {folder.columns for folder in folders.values()}
    if len(names) > 1:
        raise TableError(f"{path}: the {ZEROPOINT_FILE} files of these folders name different input columns")
    partitions = tuple(_partition(output, folders[output.parent]) for output in outputs)
    return GaiaTable(partitions, names.pop(), str(path))
