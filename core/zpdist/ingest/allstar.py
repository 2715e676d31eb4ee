"""``zpdist ingest allstar``: an APOGEE allStar file (DR14, DR16, DR17), plus Gaia, to the canonical table.

The output is the table :func:`zpdist.io.tables.read_table` returns for the allStar (APOGEE's names in the
lower-case canonical spelling of :mod:`zpdist.io.columns`: ``teff``, ``logg``, ``fe_h``, ``mg_fe``, ...,
NaN for the −9999 marker, bit masks as integers) with Gaia's canonical fields (``parallax``,
``parallax_error``, ``phot_g_mean_mag``, ...) from the file's own ``GAIAEDR3_*``/``GAIA_*``/``GAIADR2_*``
columns or from a joined Gaia file (:mod:`zpdist.io.crossmatch`), plus bookkeeping columns: ``telescope``,
``field`` and ``extratarg`` where the allStar has them, and ``allstar_row``, the row's 0-based index in the
allStar file. ``zpdist train``, ``zpdist predict`` and ``read_table`` read it directly.

Duplicates: an allStar has several rows for stars observed in several fields or with both telescopes.
APOGEE flags all but the highest-S/N one with EXTRATARG bit 4 ("duplicate") and recommends dropping the
flagged rows. :func:`remove_duplicates` keeps exactly one row per APOGEE_ID: a row without bit 4 when the
star has one, then the highest SNR. On a complete allStar that is APOGEE's rule; without an EXTRATARG
column it is the highest-SNR row; and in a subset of an allStar (e.g. a cross-match that kept only a
flagged row of a star) it keeps the star rather than losing it. Rows with an empty APOGEE_ID are kept.

Main survey: EXTRATARG bit 0 marks stars outside the main survey (ancillary, cluster and other targeted
programmes). They are kept, as the paper did; select them out with ``extratarg & 1 == 0`` if needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist import __version__
from zpdist.io.columns import normalise_gaia_release
from zpdist.io.crossmatch import MATCH_SEPARATION, MatchSummary, join_gaia_file
from zpdist.io.tables import list_columns, read_columns, read_table

#: allStar bookkeeping columns carried into the table: canonical name -> allStar name.
BOOKKEEPING_COLUMNS: dict[str, str] = {"telescope": "TELESCOPE", "field": "FIELD", "extratarg": "EXTRATARG"}

#: The 0-based row of each star in the allStar file it was read from.
ALLSTAR_ROW = "allstar_row"

#: EXTRATARG bit set on every observation of a star but the highest-S/N one (DR14, DR16, DR17).
DUPLICATE_BIT = 4

#: Units of the columns this command adds (the others are in :data:`zpdist.catalog.UNITS`).
INGEST_UNITS: dict[str, str] = {"gaia_ra": "deg", "gaia_dec": "deg", MATCH_SEPARATION: "arcsec"}


@dataclass(frozen=True)
class DuplicateSummary:
    """What :func:`remove_duplicates` did.

    Attributes
    ----------
    n_removed : int
        Rows removed.
    n_removed_flagged : int
        Of those, rows with EXTRATARG bit 4 set.
    n_kept_flagged : int
        Rows kept although bit 4 is set, because no unflagged row of that star was in the table.
    rule : str
        The rule, in words.
    """

    n_removed: int
    n_removed_flagged: int
    n_kept_flagged: int
    rule: str

    def to_dict(self) -> dict:
        return asdict(self)


def read_allstar(path: str | Path) -> pd.DataFrame:
    """Read an allStar-like file (FITS memory-mapped, Parquet or CSV) onto the canonical columns.

    Only the columns zpdist uses are read, so a multi-GB DR17 allStar costs a few hundred MB.

    Parameters
    ----------
    path : path-like
        DR14 (``allStar-l31c.2``), DR16 or DR17 allStar, or a table with the same column names.

    Returns
    -------
    pandas.DataFrame
        The canonical columns of :func:`zpdist.io.tables.read_table`, the bookkeeping columns of
        :data:`BOOKKEEPING_COLUMNS` that exist (strings stripped, EXTRATARG as int64) and ``allstar_row``.

    Raises
    ------
    TableError
        If the file cannot be read or has no APOGEE_ID column.
    """
    path = Path(path)
    table = read_table(path, required=("apogee_id",))
    by_upper = {name.upper(): name for name in list_columns(path)}
    extra = {canonical: by_upper[name] for canonical, name in BOOKKEEPING_COLUMNS.items() if name in by_upper}
    raw = read_columns(path, list(extra.values()))
    for canonical, name in extra.items():
        values = raw[name].to_numpy()
        table[canonical] = values.astype(np.int64) if values.dtype.kind in "iu" else values
    table[ALLSTAR_ROW] = np.arange(len(table), dtype=np.int64)
    return table


def remove_duplicates(table: pd.DataFrame) -> tuple[pd.DataFrame, DuplicateSummary]:
    """Keep one row per APOGEE_ID: unflagged (EXTRATARG bit 4 clear) first, then the highest SNR.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table with ``apogee_id``; ``extratarg`` and ``snr`` are used when present. Rows with an
        empty ``apogee_id`` are all kept. Ties keep the earlier row.

    Returns
    -------
    table : pandas.DataFrame
        The rows kept, in their original order.
    summary : DuplicateSummary
    """
    n = len(table)
    ids = table["apogee_id"].astype(str).str.strip().to_numpy()
    if "extratarg" in table:
        flagged = (table["extratarg"].to_numpy(np.int64) & (1 << DUPLICATE_BIT)) != 0
        rule = "one row per APOGEE_ID: rows without EXTRATARG bit 4 (duplicate) first, then the highest SNR"
    else:
        flagged = np.zeros(n, dtype=bool)
        rule = "one row per APOGEE_ID: the highest SNR (no EXTRATARG column)"
    snr = table["snr"].to_numpy(float) if "snr" in table else np.zeros(n)
    rank = pd.DataFrame({"id": ids, "flagged": flagged, "snr": np.nan_to_num(snr, nan=-np.inf), "row": np.arange(n)})
    rank = rank.sort_values(["id", "flagged", "snr", "row"], ascending=[True, True, False, True], kind="stable")
    keep = np.zeros(n, dtype=bool)
    keep[rank.loc[~rank["id"].duplicated(), "row"].to_numpy()] = True
    keep |= ids == ""
    out = table.loc[keep].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    summary = DuplicateSummary(
        n_removed=int((~keep).sum()),
        n_removed_flagged=int((~keep & flagged).sum()),
        n_kept_flagged=int((keep & flagged).sum()),
        rule=rule,
    )
    return out, summary


def _gaia_origin(table: pd.DataFrame) -> str:
    """Where an allStar's own Gaia columns come from, e.g. ``"in-file GAIADR2_* columns"``."""
    column = table.attrs.get("column_map", {}).get("parallax")
    if column is None:
        return "none"
    prefix = column[: -len("PARALLAX")] if column.upper().endswith("PARALLAX") else ""
    return f"in-file {prefix}* columns" if prefix else f"in-file {column} column"


def ingest_allstar(
    allstar_path: str | Path,
    gaia_path: str | Path | None = None,
    join: str | None = None,
    radius_arcsec: float = 1.0,
    log: Callable[[str], None] = print,
    gaia_release: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Read an allStar, join Gaia, remove duplicate rows; nothing is written.

    Parameters
    ----------
    allstar_path : path-like
        The allStar file (see :func:`read_allstar`).
    gaia_path : path-like, optional
        A Gaia file to join (see :func:`zpdist.io.crossmatch.join_gaia_file`); it replaces the allStar's
        own Gaia columns. The join is done before duplicates are removed, so a row-aligned file lines up
        with the allStar's rows.
    join : str, optional
        Force a join of :data:`zpdist.io.crossmatch.JOIN_MODES`; default: chosen from the files.
    radius_arcsec : float
        Positional match radius (arcsec).
    log : callable
        Receives the summary lines.
    gaia_release : {"DR2", "EDR3", "DR3"}, optional
        The release of the Gaia astrometry, when the column names do not say it (a Gaia archive table has
        bare names); it overrides what the names say.

    Returns
    -------
    table : pandas.DataFrame
        The canonical table.
    metadata : dict
        JSON-serialisable record of the inputs, the join and the counts.

    Raises
    ------
    InputError
        If ``gaia_release`` is not one of the releases above.
    """
    stated = normalise_gaia_release(gaia_release) if gaia_release is not None else None
    table = read_allstar(allstar_path)
    n_in = len(table)
    log(f"{allstar_path}: {n_in} rows")
    match: MatchSummary | None = None
    if gaia_path is not None:
        table, match = join_gaia_file(table, gaia_path, join, radius_arcsec)
        log(f"Gaia from {gaia_path}: {match.describe()}")
    origin = f"{match.mode} join" if match else _gaia_origin(table)
    if stated is not None:
        table.attrs.update(gaia_release=stated, gaia_release_source="stated with --gaia-release")
    table, duplicates = remove_duplicates(table)
    log(f"duplicates removed: {duplicates.n_removed} rows ({duplicates.rule}); {len(table)} rows left")
    if duplicates.n_kept_flagged:
        log(f"  kept {duplicates.n_kept_flagged} rows flagged as duplicates: no unflagged row of those stars here")
    if "parallax" in table:
        n_parallax = int(np.isfinite(table["parallax"].to_numpy(float)).sum())
        log(f"Gaia parallax ({origin}) for {n_parallax} of {len(table)} rows")
    else:
        n_parallax = 0
        log("no Gaia parallax: give --gaia FILE, or zpdist train will not accept this table")
    metadata = {
        "ingest": {
            "command": "zpdist ingest allstar",
            "allstar": str(Path(allstar_path).resolve()),
            "gaia": str(Path(gaia_path).resolve()) if gaia_path is not None else None,
            "gaia_join": match.to_dict() if match else None,
            "gaia_origin": origin,
            "rows_in": n_in,
            "duplicates": duplicates.to_dict(),
            "rows_out": len(table),
            "rows_with_parallax": n_parallax,
            "column_map": table.attrs.get("column_map", {}),
            "gaia_release": table.attrs.get("gaia_release"),
            "gaia_release_source": table.attrs.get("gaia_release_source"),
        },
        "zpdist_version": __version__,
    }
    return table, metadata


def write_table(table: pd.DataFrame, path: str | Path, metadata: dict) -> Path:
    """Write a canonical table atomically (Parquet or FITS) with ``metadata`` as its ``zpdist`` block, and units.

    Used for the output of ``zpdist ingest allstar`` and ``zpdist select``.
    """
    from zpdist.catalog import UNITS
    from zpdist.io.catalog import write_catalog

    return write_catalog(table, path, metadata, {**UNITS, **INGEST_UNITS})
