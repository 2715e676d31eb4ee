"""Reading allStar-like tables (FITS, Parquet, CSV) into one canonical pandas DataFrame.

The surveys' −9999 "missing" marker becomes NaN here, through :func:`zpdist.io.columns.missing_to_nan`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist.errors import FileFormatError
from zpdist.io.columns import (
    APOGEE_FIELDS,
    GAIA_FIELDS,
    INTEGER_COLUMNS,
    MISSING_VALUE,
    STRING_COLUMNS,
    DuplicateColumnError,
    gaia_parallax_names_looked_for,
    gaia_release_from_columns,
    missing_to_nan,
    normalise_gaia_release,
    resolve_columns,
)

TABLE_SUFFIXES = (".fits", ".fit", ".fits.gz", ".parquet", ".pq", ".csv")


class TableError(FileFormatError):
    """A table cannot be read or lacks what is needed; the message names the file and the column."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in TABLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise TableError(f"{path}: unknown table format; expected one of {', '.join(TABLE_SUFFIXES)}")


def list_columns(path: str | os.PathLike) -> list[str]:
    """Names of the columns stored in a table file, without reading its rows."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    if suffix in (".fits", ".fit", ".fits.gz"):
        with _open_fits_table(path) as (_, hdu):
            return list(hdu.columns.names)
    with _reader_errors(path):
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return list(pd.read_csv(path, nrows=0).columns)


@contextlib.contextmanager
def _reader_errors(path: Path) -> Iterator[None]:
    """Turn a Parquet or CSV reader's own exceptions into a :class:`TableError` naming the file."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, pd.errors.EmptyDataError, pd.errors.ParserError, OSError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: not a readable table ({type(exc).__name__}: {exc})") from exc


@contextlib.contextmanager
def _open_fits_table(path: Path) -> Iterator:
    """The index and the table HDU of a FITS file that :func:`_best_table_hdu` picks (memory-mapped); the file is
    closed when the block ends."""
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=True)
    except (OSError, ValueError, TypeError) as exc:
        raise TableError(f"{path}: not a readable FITS file ({exc})") from exc
    try:
        try:
            index = _best_table_hdu(hdul)
        except (OSError, ValueError, TypeError) as exc:
            raise TableError(f"{path}: not a readable FITS file ({exc})") from exc
        if index is None:
            raise TableError(f"{path}: no table HDU found in the FITS file")
        yield index, hdul[index]
    finally:
        hdul.close()


def _best_table_hdu(hdul) -> int | None:
    """Index of the table HDU with the most columns zpdist recognises (the first such on a tie), or None.

    A survey table may sit behind an unrelated table (a header or a summary in HDU 1); the one holding the
    APOGEE/Gaia columns is the one meant.
    """
    from astropy.io import fits

    tables = [(i, h) for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU | fits.TableHDU) and h.columns.names]
    if not tables:
        return None

    def recognised(item: tuple) -> tuple[int, int]:
        try:
            return len(resolve_columns(list(item[1].columns.names))), -item[0]
        except DuplicateColumnError:  # reported when that table is read
            return 0, -item[0]

    return max(tables, key=recognised)[0]


def _fits_table_label(path: Path) -> str:
    """Which table :func:`read_table` reads from a FITS file, for messages: "HDU n" or "HDU n (EXTNAME)"."""
    with _open_fits_table(path) as (index, hdu):
        name = hdu.header.get("EXTNAME")
    return f"HDU {index}" + (f" ({name})" if name else "")


def read_columns(path: str | os.PathLike, columns: list[str]) -> pd.DataFrame:
    """Columns of a table file exactly as stored (names, dtypes and −9999 markers untouched).

    Parameters
    ----------
    path : path-like
        A FITS (first table HDU, memory-mapped), Parquet or CSV file.
    columns : list of str
        Names as they appear in the file.

    Raises
    ------
    TableError
        If the file cannot be read or a column is not one value per row.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix in (".parquet", ".pq", ".csv"):
        with _reader_errors(path):
            return pd.read_parquet(path, columns=columns) if suffix != ".csv" else pd.read_csv(path, usecols=columns)
    data = {}
    with _open_fits_table(path) as (_, hdu):
        try:
            for name in columns:
                values = np.asarray(hdu.data[name])
                if values.ndim != 1:
                    raise TableError(f"{path}: column {name!r} is not one value per row (shape {values.shape})")
                if values.dtype.kind in "SU":
                    values = np.char.strip(values.astype(str))
                # astype copies out of the memory map, which closes with the file
                data[name] = values.astype(values.dtype.newbyteorder("="))
        except TableError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise TableError(f"{path}: cannot read column data ({exc}); is the file truncated?") from exc
    return pd.DataFrame(data)


def _numeric(column: pd.Series, name: str) -> np.ndarray:
    """A text column that should hold numbers (a CSV cell with a typo makes pandas read strings): floats, empty
    cells as NaN; any other text raises a TableError (without the file name, which the caller adds)."""
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.where(~text.isin(["", "nan", "NaN", "None"])), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(np.isnan(values) & ~text.isin(["", "nan", "NaN", "None"]).to_numpy())
    if len(bad):
        raise TableError(
            f"column {name!r} should hold numbers but {len(bad)} row(s) hold text, e.g. {text.iloc[bad[0]]!r} in "
            f"data row {bad[0] + 1}"
        )
    return missing_to_nan(values)


def _canonicalise(raw: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    out = {}
    for canonical, source in mapping.items():
        values = raw[source].to_numpy()
        if values.dtype.kind in "iuf" and canonical not in INTEGER_COLUMNS:
            values = missing_to_nan(values)
        elif values.dtype.kind in "iuf" and canonical in INTEGER_COLUMNS and values.dtype.kind == "f":
            values = np.where(np.isfinite(values), values, MISSING_VALUE).astype(np.int64)
        elif values.dtype.kind in "OSU" and canonical not in STRING_COLUMNS:
            values = _numeric(raw[source], source)
            if canonical in INTEGER_COLUMNS:
                values = np.where(np.isfinite(values), values, MISSING_VALUE).astype(np.int64)
        elif values.dtype.kind == "O":
            values = values.astype(str)
        out[canonical] = values
    frame = pd.DataFrame(out)
    if "bp_rp" not in frame and {"phot_bp_mean_mag", "phot_rp_mean_mag"} <= set(frame):
        frame["bp_rp"] = frame["phot_bp_mean_mag"] - frame["phot_rp_mean_mag"]
    return frame


def _recorded_gaia_release(path: Path) -> tuple[str, str] | None:
    """The Gaia release a table written by zpdist (``zpdist ingest allstar``, ``select``) recorded, if any.

    Those tables carry canonical names, from which the release cannot be told, and their ``zpdist`` metadata
    block says which release their astrometry came from.
    """
    from zpdist.io.catalog import read_metadata

    ingest = (read_metadata(path) or {}).get("ingest") or {}
    if not ingest.get("gaia_release"):
        return None
    return ingest["gaia_release"], f"recorded by zpdist ingest in {path.name}: {ingest.get('gaia_release_source')}"


def read_table(
    path: str | os.PathLike,
    required: Iterable[str] = (),
    require_gaia: bool = False,
    gaia_release: str | None = None,
) -> pd.DataFrame:
    """Read an allStar-like table onto the canonical schema.

    Parameters
    ----------
    path : path-like
        A ``.fits``, ``.parquet`` or ``.csv`` file with APOGEE and Gaia column names (DR14, DR16
        ``GAIA_*``, DR17 ``GAIAEDR3_*`` or ``GAIADR2_*``), or already canonical names.
    required : iterable of str
        Canonical columns that must be present (see :mod:`zpdist.io.columns`).
    require_gaia : bool
        Raise if no Gaia parallax column is found, listing the names looked for.
    gaia_release : {"DR2", "EDR3", "DR3"}, optional
        The Gaia release of the file's astrometry, stated by the user; it overrides what the column names
        say (EDR3 and DR3 share one astrometric solution).

    Returns
    -------
    pandas.DataFrame
        Canonical columns only, floats with NaN for missing values (−9999 in the file), bit-mask
        columns as integers. ``df.attrs`` records the source file, the column mapping, the Gaia release
        (``"gaia_release"``: ``"DR2"``, ``"EDR3"``, ``"DR3"``, or None when neither the names nor the user
        say) and how it was decided (``"gaia_release_source"``): ``GAIAEDR3_*`` names are EDR3, ``GAIA_*``
        (DR16 allStar) and ``GAIADR2_*`` names DR2, bare names unknown.

    Raises
    ------
    TableError
        If the file cannot be read, or a required column is missing (the message names it).
    InputError
        If ``gaia_release`` is not one of the releases above.
    """
    path = Path(path)
    stated = normalise_gaia_release(gaia_release) if gaia_release is not None else None
    available = list_columns(path)

    def where() -> str:  # for messages only: naming the FITS HDU opens the file once more
        return f"{path} ({_fits_table_label(path)})" if _suffix(path).startswith(".fit") else str(path)

    try:
        mapping = resolve_columns(available)
    except DuplicateColumnError as exc:
        raise TableError(f"{where()}: {exc}") from exc
    if require_gaia and "parallax" not in mapping:
        raise TableError(
            f"{where()}: no Gaia parallax column; looked for {', '.join(gaia_parallax_names_looked_for())} "
            f"(case-insensitive)"
        )
    for name in required:
        if name not in mapping and not (name == "bp_rp" and {"phot_bp_mean_mag", "phot_rp_mean_mag"} <= set(mapping)):
            aliases = APOGEE_FIELDS.get(name) or GAIA_FIELDS.get(name) or (name,)
            raise TableError(f"{where()}: required column {name!r} is missing (looked for {', '.join(aliases)})")
    raw = read_columns(path, list(dict.fromkeys(mapping.values())))
    if raw.empty:
        raise TableError(f"{where()}: the table has columns but no rows")
    try:
        frame = _canonicalise(raw, mapping)
    except TableError as exc:
        raise TableError(f"{where()}: {exc}") from exc
    frame.attrs["source"] = str(path)
    frame.attrs["column_map"] = mapping
    release, how = gaia_release_from_columns(available)
    if release is None and (recorded := _recorded_gaia_release(path)) is not None:
        release, how = recorded
    if stated is not None:
        how = f"stated by the user (gaia_release={gaia_release!r}); from the names: {release or 'unknown'}, {how}"
        release = stated
    frame.attrs["gaia_release"] = release
    frame.attrs["gaia_release_source"] = how
    return frame
