"""``zpdist ingest spectra``: apStar/aspcapStar/npz spectra → one continuum-normalised N × 7514 HDF5 file.

Each input file is read (:mod:`zpdist.io.apstar`), put on the network's 7,514-pixel grid (apStar and aspcapStar
files are cut at the chip gaps; npz spectra on another wavelength grid are interpolated linearly in log λ, and
pixels outside that grid are bad), continuum-normalised chip by chip unless already normalised
(:mod:`zpdist.continuum`), and its bad pixels (APOGEE_PIXMASK bits, see :data:`DEFAULT_BAD_BITS`) set to 1.

Rows
----
With ``table``, the output has one row per table row, in the table's order: a row gets the file whose APOGEE_ID
(from the file's name, see :func:`zpdist.io.apstar.identify_file`) equals the row's ``APOGEE_ID``; when several
files share it, the one whose TELESCOPE and then FIELD also match the row's ``TELESCOPE``/``FIELD`` columns
(where the table has them and the files lie in the SDSS layout ``…/TELESCOPE/FIELD/``), else the first in
path order. Rows without a file are written as 1s and ``has_spectrum`` is False for them. Files matched to no
row are not read. Without ``table``, there is one row per file, in sorted path order.

Outputs, beside ``spectra.h5`` (for ``--out spectra.h5``):

- ``spectra.h5``: dataset ``spectra`` (N × 7514 float32), ``wavelength``, and ``has_spectrum`` (N, bool),
  read by :class:`zpdist.io.spectra.SpectraReader`; the configuration is in its attributes;
- ``spectra_rows.parquet``: one line per row: ``apogee_id``, ``telescope``, ``field``, ``file`` (empty if
  none), ``has_spectrum``, ``n_bad_pixels``;
- ``spectra.json``: the configuration, the counts and the timing.

Files are processed in batches on dask (a local cluster of one single-threaded worker process per core by
default, or an existing scheduler), with at most two batches per worker thread in flight, so memory stays
bounded whatever the number of files. The three outputs are written under temporary names beside their
targets and renamed together at the end, so a failed run leaves an earlier output and its sidecars intact
and consistent, and no partial file behind.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.continuum import ContinuumConfig, clean_normalised, normalise
from zpdist.errors import InputError, MissingInputError
from zpdist.io.apstar import (
    DEFAULT_BAD_BITS,
    FITS_SUFFIXES,
    SpectrumIdentity,
    StarSpectrum,
    bad_pixel_mask,
    identify_file,
    read_spectrum,
    read_wavelength,
)
from zpdist.io.atomic import atomic_paths
from zpdist.io.spectra import (
    N_APSTAR_PIXELS,
    N_PIXELS,
    SpectraError,
    SpectraWriter,
    apstar_to_grid,
    interpolate_to_grid,
)
from zpdist.io.tables import TableError
from zpdist.parallel import dask_executor, map_tasks

#: File-name patterns collected from a folder (recursively).
FOLDER_PATTERNS: tuple[str, ...] = tuple(
    f"{prefix}-*{suffix}" for prefix in ("apStar", "asStar", "aspcapStar") for suffix in FITS_SUFFIXES
)


@dataclass(frozen=True)
class IngestConfig:
    """How spectra are ingested; saved in the output's attributes and in its JSON record.

    Attributes
    ----------
    continuum : ContinuumConfig
        Continuum fit and bad-pixel thresholds.
    bad_bits : tuple of int
        APOGEE_PIXMASK bits that make a pixel bad.
    wavelength_file : str or None
        npz file with the ``wavelength`` grid (Å) of npz spectra that lack their own.
    batch_files : int
        Files per dask task.
    chunk_rows : int
        HDF5 chunk height of the output (rows).
    skip_unreadable : bool
        Write an unreadable file's row as missing (listed in the record) instead of stopping.
    """

    continuum: ContinuumConfig = field(default_factory=ContinuumConfig)
    bad_bits: tuple[int, ...] = DEFAULT_BAD_BITS
    wavelength_file: str | None = None
    batch_files: int = 32
    chunk_rows: int = 256
    skip_unreadable: bool = False

    def __post_init__(self):
        if self.batch_files < 1 or self.chunk_rows < 1:
            raise InputError(f"batch_files and chunk_rows must be positive (got {self.batch_files}, {self.chunk_rows})")
        bad_pixel_mask(np.zeros(1, np.int64), self.bad_bits)  # rejects unknown bits

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- one spectrum


def spectrum_to_grid(spectrum: StarSpectrum, config: IngestConfig) -> tuple[np.ndarray, np.ndarray]:
    """Put a spectrum read from its file on the 7,514-pixel grid, normalised, bad pixels set to 1.

    Returns
    -------
    flux : ndarray, shape (7514,), float32
        The normalised spectrum.
    bad : ndarray of bool, shape (7514,)
        Its bad pixels.

    Raises
    ------
    SpectraError
        If the spectrum is on neither the apStar grid, the 7,514-pixel grid, nor a given wavelength grid.
    """
    bad = bad_pixel_mask(spectrum.mask, config.bad_bits)
    if spectrum.wavelength is not None:
        flux, error, bad = interpolate_to_grid(spectrum.wavelength, spectrum.flux, spectrum.error, bad)
    elif len(spectrum.flux) == N_APSTAR_PIXELS:
        flux, bad = apstar_to_grid(spectrum.flux), apstar_to_grid(bad)
        error = None if spectrum.error is None else apstar_to_grid(spectrum.error)
    elif len(spectrum.flux) == N_PIXELS:
        flux, error = spectrum.flux, spectrum.error
    else:
        raise SpectraError(
            f"{spectrum.path}: spectrum has shape {spectrum.flux.shape}, expected ({N_APSTAR_PIXELS},) or "
            f"({N_PIXELS},) without a wavelength grid"
        )
    clean = clean_normalised if spectrum.normalised else normalise
    flux, _, bad = clean(flux, error, bad, config.continuum)
    return flux.astype(np.float32), bad


@functools.lru_cache(maxsize=4)
def _wavelength(path: str | None) -> np.ndarray | None:
    return None if path is None else read_wavelength(path)


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a task returns for its files, in order.

    Attributes
    ----------
    flux : ndarray, shape (n_files, 7514), float32
        Normalised spectra (1s for unreadable files).
    ok : ndarray of bool, shape (n_files,)
        False for unreadable files (only with ``skip_unreadable``).
    n_bad : ndarray of int, shape (n_files,)
        Bad pixels per spectrum (−1 if unreadable).
    identities : list of SpectrumIdentity or None
        Identity read from each file (None if unreadable).
    problems : list of str or None
        The error message of each unreadable file.
    """

    flux: np.ndarray
    ok: np.ndarray
    n_bad: np.ndarray
    identities: list[SpectrumIdentity | None]
    problems: list[str | None]


def process_files(paths: Sequence[str], config: IngestConfig) -> BatchResult:
    """Read and normalise a batch of files (runs on a dask worker).

    Raises
    ------
    SpectraError
        On an unreadable file, unless ``config.skip_unreadable``.
    """
    wavelength = _wavelength(config.wavelength_file)
    flux = np.ones((len(paths), N_PIXELS), np.float32)
    ok = np.zeros(len(paths), bool)
    n_bad = np.full(len(paths), -1, np.int64)
    identities: list[SpectrumIdentity | None] = [None] * len(paths)
    problems: list[str | None] = [None] * len(paths)
    for i, path in enumerate(paths):
        try:
            spectrum = read_spectrum(path, wavelength)
            flux[i], bad = spectrum_to_grid(spectrum, config)
        except SpectraError as exc:
            if not config.skip_unreadable:
                raise
            problems[i] = str(exc)
            continue
        ok[i], n_bad[i], identities[i] = True, int(bad.sum()), spectrum.identity
    return BatchResult(flux, ok, n_bad, identities, problems)


# ---------------------------------------------------------------- inputs and rows


def gather_files(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The spectrum files named by ``sources``, sorted by path, without duplicates.

    Each source is a file, a folder (its ``apStar-*``, ``asStar-*`` and ``aspcapStar-*`` FITS files, in
    sub-folders too), a glob pattern (``'spectra/**/*.fits'``), or ``@LIST``: a text file naming one source
    per line (relative paths are relative to the list's folder).

    Raises
    ------
    FileNotFoundError
        If a source matches nothing.
    """
    found: set[Path] = set()
    for source in sources:
        text = str(source)
        if text.startswith("@"):
            listing = Path(text[1:])
            lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines()]
            found.update(gather_files([listing.parent / line for line in lines if line and not line.startswith("#")]))
            continue
        path = Path(text)
        if path.is_dir():
            matches = {p for pattern in FOLDER_PATTERNS for p in path.rglob(pattern) if p.is_file()}
            if not matches:
                raise MissingInputError(
                    f"{path}: no apStar-*, asStar-* or aspcapStar-* FITS files in this folder or below "
                    "(name other files, such as npz spectra, one by one or with a glob pattern)"
                )
        elif path.is_file():
            matches = {path}
        else:
            matches = {Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()}
        if not matches:
            raise MissingInputError(f"no spectrum files match {text!r}")
        found |= matches
    return sorted(found)


def _text_column(values) -> np.ndarray:
    """A column of identifiers as stripped Python strings ('' for missing)."""
    out = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="replace")
        out.append("" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip())
    return np.array(out, dtype=object)


def read_table_identities(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """APOGEE_ID, and TELESCOPE and FIELD where present, of every row of an allStar-like table.

    Returns
    -------
    dict of ndarray
        ``apogee_id`` and, when the table has them, ``telescope`` and ``field`` (case-insensitive column names);
        strings, '' where missing.

    Raises
    ------
    TableError
        If the table cannot be read or has no APOGEE_ID column.
    """
    from zpdist.io.columns import resolve_columns
    from zpdist.io.tables import list_columns, read_columns

    path = Path(path)
    available = list_columns(path)
    id_column = resolve_columns(available).get("apogee_id")
    if id_column is None:
        raise TableError(f"{path}: required column 'apogee_id' is missing (looked for APOGEE_ID)")
    by_upper = {name.upper(): name for name in available}
    columns = {"apogee_id": id_column}
    columns.update({key: by_upper[key.upper()] for key in ("telescope", "field") if key.upper() in by_upper})
    raw = read_columns(path, list(columns.values()))
    return {key: _text_column(raw[name].to_numpy()) for key, name in columns.items()}


def match_files_to_rows(table: dict[str, np.ndarray], identities: Sequence[SpectrumIdentity]) -> tuple[np.ndarray, int]:
    """For each table row, the index of its file in ``identities`` (−1: none); see the module for the rule.

    Returns
    -------
    row_file : ndarray of int64, shape (n_rows,)
        File index per row.
    n_ambiguous : int
        Rows for which several files remained possible (the first in path order was taken).
    """
    by_id: dict[str, list[int]] = {}
    for index, identity in enumerate(identities):
        by_id.setdefault(identity.apogee_id, []).append(index)
    ids = table["apogee_id"]
    row_file = np.full(len(ids), -1, np.int64)
    n_ambiguous = 0
    for row, apogee_id in enumerate(ids):
        candidates = by_id.get(apogee_id, []) if apogee_id else []
        for key in ("telescope", "field"):
            wanted = table[key][row] if key in table else ""
            narrowed = [c for c in candidates if wanted and getattr(identities[c], key) == wanted]
            if narrowed:
                candidates = narrowed
        if candidates:
            row_file[row] = candidates[0]
            n_ambiguous += len(candidates) > 1
    return row_file, n_ambiguous


def plan_blocks(row_file: np.ndarray, batch_files: int, max_rows: int) -> list[tuple[int, int]]:
    """Split the rows into contiguous ``(start, stop)`` blocks of at most ``batch_files`` rows with a file and at
    most ``max_rows`` rows."""
    blocks, start, with_file = [], 0, 0
    for row, index in enumerate(row_file):
        if (index >= 0 and with_file == batch_files) or row - start == max_rows:
            blocks.append((start, row))
            start, with_file = row, 0
        with_file += int(index >= 0)
    if len(row_file) > start:
        blocks.append((start, len(row_file)))
    return blocks


# ---------------------------------------------------------------- running


def sidecar_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """The row list (``STEM_rows.parquet``) and the JSON record (``STEM.json``) written beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_rows.parquet"), out.with_suffix(".json")


def _write_rows(
    target: Path,
    files: list[Path],
    row_file: np.ndarray,
    table_ids: dict[str, np.ndarray] | None,
    identities: dict[int, SpectrumIdentity],
    has_spectrum: np.ndarray,
    n_bad: np.ndarray,
) -> None:
    """Write the per-row list to ``target``: the table's identity (or the file's), the file used, and its bad
    pixels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def from_file(index: int, key: str) -> str:
        identity = identities.get(index) or (identify_file(files[index]) if index >= 0 else None)
        return (getattr(identity, key) or "") if identity is not None else ""

    columns = {}
    for key in ("apogee_id", "telescope", "field"):
        if table_ids is not None and key in table_ids:
            columns[key] = [str(v) for v in table_ids[key]]
        else:
            columns[key] = [from_file(int(i), key) for i in row_file]
    columns["file"] = [str(files[i]) if i >= 0 else "" for i in row_file]
    columns["has_spectrum"] = has_spectrum
    columns["n_bad_pixels"] = n_bad
    pq.write_table(pa.table(columns), target)


def ingest_spectra(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    table: str | os.PathLike | None = None,
    config: IngestConfig | None = None,
    scheduler: str | object | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Normalise spectrum files onto the 7,514-pixel grid and write them, row-aligned, to one HDF5 file.

    Parameters
    ----------
    sources : sequence of str or path-like
        Files, folders, glob patterns or ``@LIST`` files (see :func:`gather_files`).
    out : path-like
        Output ``.h5`` file; ``STEM_rows.parquet`` and ``STEM.json`` are written beside it.
    table : path-like, optional
        allStar-like table (FITS, Parquet, CSV) the rows must align with (matching rule: see the module).
    config : IngestConfig, optional
        Continuum, bad pixels, batch sizes.
    scheduler : str, distributed.Client or None
        None: start a ``LocalCluster`` of ``n_workers`` single-threaded worker processes (default one per core);
        a scheduler address or a ``Client``: use that cluster (its workers must see the files); ``"threads"`` or
        ``"synchronous"``: dask's local schedulers, in this process.
    n_workers : int, optional
        Workers of the LocalCluster started when ``scheduler`` is None.
    progress : bool
        Show a progress bar.
    log : callable
        Where messages go.

    Returns
    -------
    dict
        The content of the JSON record (counts, timing, configuration, unreadable files).

    Raises
    ------
    FileNotFoundError
        If a source matches no file.
    SpectraError
        If a file is unreadable (unless ``config.skip_unreadable``); the message names the file.
    TableError
        If the table cannot be read or has no APOGEE_ID.
    """
    config = config or IngestConfig()
    out = Path(out)
    rows_path, record_path = sidecar_paths(out)
    started = time.perf_counter()
    files = gather_files(sources)
    _wavelength(config.wavelength_file)  # a bad wavelength file fails here, not in every task
    table_ids, row_file, n_ambiguous, n_unmatched = _match_rows(files, table, log)
    n_rows, file_rows = len(row_file), np.flatnonzero(row_file >= 0)
    with atomic_paths(out, rows_path, record_path) as (out_tmp, rows_tmp, record_tmp):
        written = _normalise_and_write(out_tmp, files, row_file, config, scheduler, n_workers, progress, log)
        identities, has_spectrum, n_bad = written.identities, written.has_spectrum, written.n_bad
        unreadable, compute_seconds = written.unreadable, written.compute_seconds
        mismatched = sum(identity.apogee_id != identify_file(files[i]).apogee_id for i, identity in identities.items())
        _write_rows(rows_tmp, files, row_file, table_ids, identities, has_spectrum, n_bad)
        n_spectra = int(has_spectrum.sum())
        seconds = time.perf_counter() - started
        per_thousand = 1000.0 * compute_seconds / len(file_rows) if len(file_rows) else None
        record = {
            "zpdist_version": __version__,
            "output": str(out),
            "rows_file": str(rows_path),
            "table": None if table is None else str(table),
            "sources": [str(s) for s in sources],
            "config": config.to_dict(),
            "n_files": len(files),
            "n_rows": n_rows,
            "n_with_spectrum": n_spectra,
            "n_without_spectrum": n_rows - n_spectra,
            "n_files_matching_no_row": n_unmatched,
            "n_rows_with_ambiguous_files": n_ambiguous,
            "n_header_id_differs_from_file_name": int(mismatched),
            "unreadable": unreadable,
            "seconds": seconds,
            "seconds_processing": compute_seconds,
            "seconds_per_1000_spectra": per_thousand,
        }
        record_tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    for problem in unreadable[:5]:
        log(f"warning: skipped {problem['error']}")
    if mismatched:
        log(f"warning: {mismatched:,} files carry an APOGEE_ID in their header that differs from their name")
    timing = f"{per_thousand:.1f} s per 1,000 spectra" if per_thousand is not None else "no spectra"
    log(
        f"wrote {out}: {n_rows:,} rows, {n_spectra:,} with a spectrum, {n_rows - n_spectra:,} without "
        f"({len(unreadable):,} unreadable); {compute_seconds:.1f} s processing ({timing}), {seconds:.1f} s in all"
    )
    return record


def _match_rows(
    files: list[Path], table: str | os.PathLike | None, log: Callable[[str], None]
) -> tuple[dict | None, np.ndarray, int, int]:
    """Which file fills each output row: (table identities, file index per row or −1, ambiguous rows,
    files matching no row). Without a table, one row per file."""
    table_ids = None if table is None else read_table_identities(table)
    if table_ids is not None and not len(table_ids["apogee_id"]):
        raise TableError(f"{table}: the table has no rows")
    if table_ids is None:
        row_file, n_ambiguous = np.arange(len(files), dtype=np.int64), 0
    else:
        row_file, n_ambiguous = match_files_to_rows(table_ids, [identify_file(p) for p in files])
    file_rows = np.flatnonzero(row_file >= 0)
    n_unmatched = len(files) - len(np.unique(row_file[file_rows]))
    log(
        f"{len(files):,} spectrum files, {len(row_file):,} output rows, {len(file_rows):,} of them with a file"
        + (f"; {n_unmatched:,} files match no table row" if n_unmatched else "")
    )
    if n_ambiguous:
        log(f"warning: {n_ambiguous:,} rows matched several files (same APOGEE_ID); the first in path order was used")
    return table_ids, row_file, n_ambiguous, n_unmatched


@dataclass
class _Written:
    """What :func:`_normalise_and_write` learnt about each row and file."""

    identities: dict[int, SpectrumIdentity]
    has_spectrum: np.ndarray
    n_bad: np.ndarray
    unreadable: list[dict[str, str]]
    compute_seconds: float


def _normalise_and_write(
    out: Path,
    files: list[Path],
    row_file: np.ndarray,
    config: IngestConfig,
    scheduler: str | object | None,
    n_workers: int | None,
    progress: bool,
    log: Callable[[str], None],
) -> _Written:
    """Normalise the files in blocks on dask and write every output row (1s and ``has_spectrum`` False where
    there is no file) to the HDF5 file ``out``."""
    n_rows, file_rows = len(row_file), np.flatnonzero(row_file >= 0)
    blocks = plan_blocks(row_file, config.batch_files, max_rows=max(config.batch_files, config.chunk_rows))
    block_rows = [np.arange(a, b)[row_file[a:b] >= 0] for a, b in blocks]
    work = [k for k, rows in enumerate(block_rows) if len(rows)]
    paths = [[str(files[row_file[r]]) for r in block_rows[k]] for k in work]
    written = _Written({}, np.zeros(n_rows, bool), np.full(n_rows, -1, np.int64), [], 0.0)
    attrs = {"zpdist_version": __version__, "zpdist_ingest_config": json.dumps(config.to_dict())}
    with SpectraWriter(out, n_rows, chunk_rows=config.chunk_rows, presence=True, attrs=attrs) as writer:
        for a, b in (blocks[k] for k, rows in enumerate(block_rows) if not len(rows)):
            writer.write(a, np.ones((b - a, N_PIXELS), np.float32), np.zeros(b - a, bool))
        with dask_executor(scheduler, n_workers, log) as executor:
            compute_started = time.perf_counter()
            with tqdm(total=len(file_rows), desc="ingest spectra", unit="spectrum", disable=not progress) as bar:
                for i, result in map_tasks(executor, functools.partial(process_files, config=config), paths):
                    (a, b), rows = blocks[work[i]], block_rows[work[i]]
                    block = np.ones((b - a, N_PIXELS), np.float32)
                    block[rows - a] = result.flux
                    written.has_spectrum[rows], written.n_bad[rows] = result.ok, result.n_bad
                    writer.write(a, block, written.has_spectrum[a:b])
                    for row, identity, problem in zip(rows, result.identities, result.problems, strict=True):
                        if identity is not None:
                            written.identities[int(row_file[row])] = identity
                        if problem is not None:
                            written.unreadable.append({"file": str(files[row_file[row]]), "error": problem})
                    bar.update(len(rows))
            written.compute_seconds = time.perf_counter() - compute_started
    return written
