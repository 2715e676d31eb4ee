"""Joining Gaia astrometry onto an allStar-like table: by row, by Gaia ``source_id``, or by sky position.

The readers turn a Gaia file into canonical columns (``ra``/``dec`` as the file gives them, ``parallax``,
``parallax_error``, ``phot_g_mean_mag``, ...) with NaN for missing values. The three join functions are
pure: they take the canonical allStar table and the Gaia table and return the joined table with a
:class:`MatchSummary`. A join replaces the allStar's own Gaia columns, if any; the Gaia position is
kept as ``gaia_ra``/``gaia_dec`` beside the APOGEE (2MASS, J2000) ``ra``/``dec``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist.errors import InputError
from zpdist.io.columns import (
    APOGEE_FIELDS,
    GAIA_FIELDS,
    GAIA_PREFIXES,
    MISSING_VALUE,
    gaia_prefixes_present,
    missing_to_nan,
    resolve_columns,
)
from zpdist.io.tables import TableError, list_columns, read_table

#: How a Gaia file is joined: row by row (same length and order), by Gaia source_id, or by sky position.
JOIN_MODES: tuple[str, ...] = ("row", "source_id", "position")

#: Arrays of astroNN's row-aligned ``.npz`` (e.g. ``astroNN_gaiadr2_apogeedr14_parallax.npz``):
#: canonical name -> key, matched case-insensitively. ``RA``/``DEC`` (deg): in astroNN's DR14 file they are the
#: allStar's own positions, to the last digit, not Gaia's.
NPZ_KEYS: dict[str, str] = {
    "ra": "RA",
    "dec": "DEC",
    "parallax": "parallax",
    "parallax_error": "parallax_error",
    "phot_g_mean_mag": "g",
}

#: Canonical columns every Gaia file must provide.
GAIA_REQUIRED: tuple[str, str] = ("parallax", "parallax_error")

#: The Gaia position columns of a joined table (the allStar keeps ``ra``/``dec`` for its own position).
GAIA_POSITION: dict[str, str] = {"ra": "gaia_ra", "dec": "gaia_dec"}

#: Rows of a row-aligned join whose positions differ by more than this (arcsec) count as "apart".
ROW_POSITION_TOLERANCE_ARCSEC = 1.0

#: Angular distance (arcsec) to the Gaia source kept by a positional join.
MATCH_SEPARATION = "gaia_match_sep_arcsec"


@dataclass(frozen=True)
class MatchSummary:
    """How a Gaia join went.

    Attributes
    ----------
    mode : str
        One of :data:`JOIN_MODES`.
    n_rows : int
        Rows of the allStar table.
    n_matched : int
        Rows that received a Gaia counterpart (row mode: whose Gaia row has a parallax).
    counts : dict
        Mode-specific counts, e.g. ``{"0": ..., "1": ..., ">1": ...}`` Gaia sources within the radius.
    radius_arcsec : float or None
        Match radius of a positional join.
    """

    mode: str
    n_rows: int
    n_matched: int
    counts: dict[str, int] = field(default_factory=dict)
    radius_arcsec: float | None = None

    def describe(self) -> str:
        """One line for the user."""
        if self.mode == "position":
            return (
                f"position match within {self.radius_arcsec:g} arcsec: {self.counts['0']} APOGEE rows with no Gaia "
                f"counterpart, {self.counts['1']} with one, {self.counts['>1']} with more than one (nearest kept)"
            )
        if self.mode == "source_id":
            return (
                f"source_id join: {self.n_matched} of {self.n_rows} rows found, {self.counts['no id']} without a "
                f"source_id, {self.counts['id not found']} with an id absent from the Gaia table"
            )
        checked = (
            f"; positions agree within {ROW_POSITION_TOLERANCE_ARCSEC:g} arcsec for "
            f"{self.counts['positions checked'] - self.counts['positions apart']} of {self.counts['positions checked']}"
            if self.counts
            else ""
        )
        return f"row-aligned join: {self.n_matched} of {self.n_rows} rows have a Gaia parallax{checked}"

    def to_dict(self) -> dict:
        return asdict(self)


def _source(frame: pd.DataFrame, default: str) -> str:
    return str(frame.attrs.get("source", default))


def is_npz(path: str | os.PathLike) -> bool:
    """True if ``path`` names a NumPy ``.npz`` archive."""
    return Path(path).name.lower().endswith(".npz")


def read_gaia_npz(path: str | os.PathLike) -> pd.DataFrame:
    """Read an astroNN-style row-aligned Gaia ``.npz`` onto canonical columns.

    Parameters
    ----------
    path : path-like
        Archive with 1-D arrays named as in :data:`NPZ_KEYS` (``parallax`` and ``parallax_error`` required;
        ``RA``, ``DEC`` in deg and ``g`` in mag optional), −9999 for missing.

    Returns
    -------
    pandas.DataFrame
        ``ra``, ``dec`` (deg), ``parallax``, ``parallax_error`` (mas), ``phot_g_mean_mag`` (mag),
        floats with NaN for missing; ``attrs["source"]`` is the path.

    Raises
    ------
    TableError
        If the file is not a readable archive, lacks a required array (the message lists the keys looked
        for and those present), or its arrays are not 1-D of one length.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            by_lower = {key.lower(): key for key in npz.files}
            missing = [NPZ_KEYS[c] for c in GAIA_REQUIRED if NPZ_KEYS[c].lower() not in by_lower]
            if missing:
                raise TableError(
                    f"{path}: no {', '.join(missing)} array; looked for {', '.join(NPZ_KEYS.values())} "
                    f"(case-insensitive), found {', '.join(npz.files) or 'no arrays'}"
                )
            arrays = {c: npz[by_lower[key.lower()]] for c, key in NPZ_KEYS.items() if key.lower() in by_lower}
    except TableError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TableError(f"{path}: not a readable .npz archive ({exc})") from exc
    shapes = {NPZ_KEYS[c]: a.shape for c, a in arrays.items()}
    if len(set(shapes.values())) != 1 or any(len(s) != 1 for s in shapes.values()):
        raise TableError(f"{path}: arrays must be 1-D and of one length, got shapes {shapes}")
    frame = pd.DataFrame({c: missing_to_nan(a) for c, a in arrays.items()})
    frame.attrs["source"] = str(path)
    frame.attrs["gaia_release"] = None  # an npz says nothing; astroNN's DR14 file holds DR2 (ingest states it)
    frame.attrs["gaia_release_source"] = f"{path.name}: a row-aligned npz carries no release"
    return frame


def _names_looked_for(canonical: str, prefix: str | None) -> list[str]:
    """File column names that map onto ``canonical``; Gaia fields under ``prefix`` (or every prefix)."""
    if canonical not in GAIA_FIELDS:
        return list(APOGEE_FIELDS.get(canonical, (canonical.upper(),)))
    prefixes = GAIA_PREFIXES if prefix is None else (prefix,)
    return [f"{p}{suffix}" for p in prefixes for suffix in GAIA_FIELDS[canonical]]


def read_gaia_table(path: str | os.PathLike, mode: str) -> pd.DataFrame:
    """Read a Gaia table (FITS, Parquet or CSV) with the columns a join of ``mode`` needs.

    Parameters
    ----------
    path : path-like
        Gaia archive names (``source_id``, ``ra``, ``dec``, ``parallax``, ...) or allStar-style prefixed
        ones (``GAIAEDR3_*``, ``GAIA_*``, ``GAIADR2_*``), matched case-insensitively; −9999 for missing.
    mode : str
        One of :data:`JOIN_MODES`: ``source_id`` also needs a source_id column, ``position`` needs ``ra``
        and ``dec`` (deg).

    Returns
    -------
    pandas.DataFrame
        The canonical Gaia fields present, and ``ra``/``dec`` when present.

    Raises
    ------
    TableError
        If a needed column is absent: the message lists the names looked for and the file's columns.
    """
    path = Path(path)
    available = list_columns(path)
    mapping = resolve_columns(available)
    needed = [*GAIA_REQUIRED, *{"source_id": ("source_id",), "position": ("ra", "dec")}.get(mode, ())]
    missing = [c for c in needed if c not in mapping]
    if missing:
        prefixes = gaia_prefixes_present(available)
        prefix = prefixes[0] if prefixes else None
        looked = "; ".join(f"{c}: {', '.join(_names_looked_for(c, prefix))}" for c in missing)
        shown = ", ".join(available[:40]) + (", ..." if len(available) > 40 else "")
        raise TableError(
            f"{path}: cannot use it for a {mode} Gaia join, column(s) {', '.join(missing)} not found; "
            f"looked for {looked} (case-insensitive); the file has {shown}"
        )
    table = read_table(path)
    keep = [c for c in (*GAIA_FIELDS, *GAIA_POSITION) if c in table]
    out = table[keep].copy()
    out.attrs = {k: table.attrs[k] for k in ("gaia_release", "gaia_release_source")} | {"source": str(path)}
    return out


def choose_join_mode(allstar: pd.DataFrame, gaia_path: str | os.PathLike, requested: str | None = None) -> str:
    """The join for a Gaia file: ``requested`` if given, else row for ``.npz``, else source_id, else position.

    source_id is chosen when the allStar has at least one valid (positive) ``source_id`` and the Gaia table
    has a source_id column.

    Raises
    ------
    ValueError
        If ``requested`` is not one of :data:`JOIN_MODES`.
    """
    if requested is not None:
        if requested not in JOIN_MODES:
            raise InputError(f"unknown Gaia join {requested!r}; choose one of {', '.join(JOIN_MODES)}")
        return requested
    if is_npz(gaia_path):
        return "row"
    has_ids = "source_id" in allstar and bool((allstar["source_id"].to_numpy() > 0).any())
    if has_ids and "source_id" in resolve_columns(list_columns(gaia_path)):
        return "source_id"
    return "position"


def _attach(allstar: pd.DataFrame, gaia: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``allstar`` without its own Gaia columns, plus ``gaia``'s row ``rows[i]`` on row i (-1: none).

    Floats of unmatched rows are NaN; integer columns (source_id, visibility_periods_used) are −9999.
    """
    replaced = [c for c in (*GAIA_FIELDS, *GAIA_POSITION.values(), MATCH_SEPARATION) if c in allstar]
    out = allstar.drop(columns=replaced)
    found = rows >= 0
    for name in gaia.columns:
        values = gaia[name].to_numpy()
        if values.dtype.kind in "iu":
            column = np.full(len(rows), int(MISSING_VALUE), dtype=np.int64)
        else:
            column = np.full(len(rows), np.nan)
        column[found] = values[rows[found]]
        out[GAIA_POSITION.get(name, name)] = column
    out.attrs = dict(allstar.attrs)
    # the astrometry now comes from the Gaia file: so does its release
    out.attrs["gaia_release"] = gaia.attrs.get("gaia_release")
    out.attrs["gaia_release_source"] = f"joined from {_source(gaia, 'the Gaia file')}: " + str(
        gaia.attrs.get("gaia_release_source", "release unknown")
    )
    return out


def join_by_row(allstar: pd.DataFrame, gaia: pd.DataFrame) -> tuple[pd.DataFrame, MatchSummary]:
    """Join a Gaia table aligned row by row with the allStar (same length, same order).

    When both tables carry positions, they are compared row by row as a check of the alignment (astroNN's
    DR14 ``.npz`` stores the allStar's own RA/DEC); the summary counts the rows more than
    :data:`ROW_POSITION_TOLERANCE_ARCSEC` apart.

    Raises
    ------
    ValueError
        If the row counts differ (the message names both files and both counts), or if more than half of
        the rows with positions on both sides are further apart than the tolerance.
    """
    if len(gaia) != len(allstar):
        raise InputError(
            f"row-aligned Gaia join: {_source(gaia, 'the Gaia table')} has {len(gaia)} rows but "
            f"{_source(allstar, 'the allStar table')} has {len(allstar)}; a row-aligned file needs one row per "
            f"allStar row, in the same order (use --gaia-join position or source_id otherwise)"
        )
    counts = {}
    if {"ra", "dec"} <= set(allstar) and {"ra", "dec"} <= set(gaia):
        separation = _separation_arcsec(allstar, gaia)
        checked = np.isfinite(separation)
        apart = checked & (separation > ROW_POSITION_TOLERANCE_ARCSEC)
        if 2 * apart.sum() > checked.sum() > 0:
            raise InputError(
                f"row-aligned Gaia join: the rows of {_source(gaia, 'the Gaia table')} do not line up with those of "
                f"{_source(allstar, 'the allStar table')}: {int(apart.sum())} of {int(checked.sum())} positions differ "
                f"by more than {ROW_POSITION_TOLERANCE_ARCSEC:g} arcsec (was either table re-ordered or filtered?)"
            )
        counts = {"positions checked": int(checked.sum()), "positions apart": int(apart.sum())}
    out = _attach(allstar, gaia, np.arange(len(allstar)))
    n_matched = int(np.isfinite(out["parallax"].to_numpy(float)).sum())
    return out, MatchSummary("row", len(allstar), n_matched, counts)


def _separation_arcsec(first: pd.DataFrame, second: pd.DataFrame) -> np.ndarray:
    """Angular distance (arcsec) between the ``ra``/``dec`` (deg) of two equally long tables, row by row."""
    from astropy.coordinates import SkyCoord

    ra1, dec1, ra2, dec2 = (frame[c].to_numpy(float) for frame in (first, second) for c in ("ra", "dec"))
    valid = np.isfinite(ra1) & np.isfinite(dec1) & np.isfinite(ra2) & np.isfinite(dec2)
    out = np.full(len(first), np.nan)
    out[valid] = (
        SkyCoord(ra1[valid], dec1[valid], unit="deg").separation(SkyCoord(ra2[valid], dec2[valid], unit="deg")).arcsec
    )
    return out


def join_by_source_id(allstar: pd.DataFrame, gaia: pd.DataFrame) -> tuple[pd.DataFrame, MatchSummary]:
    """Join a Gaia table on ``source_id``; allStar rows without a positive id, or an unknown one, get NaN.

    Both sides must come from the same Gaia release: DR2 source ids differ from (E)DR3 ones for a few per
    cent of sources.

    Raises
    ------
    ValueError
        If either side lacks ``source_id``, or the Gaia table repeats a source_id.
    """
    for frame, default in ((allstar, "the allStar table"), (gaia, "the Gaia table")):
        if "source_id" not in frame:
            raise InputError(
                f"source_id Gaia join: {_source(frame, default)} has no source_id column "
                f"(looked for {', '.join(_names_looked_for('source_id', None))})"
            )
    index = pd.Index(gaia["source_id"].to_numpy())
    if not index.is_unique:
        n_repeated = int(index.duplicated().sum())
        raise InputError(
            f"source_id Gaia join: {_source(gaia, 'the Gaia table')} repeats {n_repeated} source_id value(s)"
        )
    wanted = allstar["source_id"].to_numpy(np.int64)
    rows = index.get_indexer(wanted)
    has_id = wanted > 0
    rows[~has_id] = -1
    n_matched = int((rows >= 0).sum())
    counts = {"no id": int((~has_id).sum()), "id not found": int(has_id.sum()) - n_matched}
    return _attach(allstar, gaia, rows), MatchSummary("source_id", len(allstar), n_matched, counts)


def nearest_within(
    ra: np.ndarray, dec: np.ndarray, gaia_ra: np.ndarray, gaia_dec: np.ndarray, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each position, the nearest Gaia source within a radius, and how many lie within it.

    Parameters
    ----------
    ra, dec : ndarray
        Positions to match (deg); non-finite ones match nothing.
    gaia_ra, gaia_dec : ndarray
        Gaia positions (deg); non-finite ones are ignored.
    radius_arcsec : float
        Match radius (arcsec).

    Returns
    -------
    rows : ndarray of int
        Index into the Gaia arrays of the nearest source within the radius, −1 if none.
    separation : ndarray of float
        Its angular distance (arcsec), NaN if none.
    counts : ndarray of int
        Number of Gaia sources within the radius.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    if not radius_arcsec > 0:
        raise InputError(f"the match radius must be positive, got {radius_arcsec} arcsec")
    n = len(ra)
    rows = np.full(n, -1, dtype=np.int64)
    separation = np.full(n, np.nan)
    counts = np.zeros(n, dtype=np.int64)
    mine = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    theirs = np.flatnonzero(np.isfinite(gaia_ra) & np.isfinite(gaia_dec))
    if mine.size == 0 or theirs.size == 0:
        return rows, separation, counts
    i, j, sep2d, _ = search_around_sky(
        SkyCoord(ra[mine], dec[mine], unit="deg"),
        SkyCoord(gaia_ra[theirs], gaia_dec[theirs], unit="deg"),
        radius_arcsec * u.arcsec,
    )
    sep = sep2d.to_value(u.arcsec)
    counts[mine] = np.bincount(i, minlength=mine.size)
    order = np.lexsort((sep, i))
    first = order[np.unique(i[order], return_index=True)[1]]
    rows[mine[i[first]]] = theirs[j[first]]
    separation[mine[i[first]]] = sep[first]
    return rows, separation, counts


def join_by_position(
    allstar: pd.DataFrame, gaia: pd.DataFrame, radius_arcsec: float = 1.0
) -> tuple[pd.DataFrame, MatchSummary]:
    """Join the nearest Gaia source within ``radius_arcsec`` of each allStar position.

    APOGEE positions are 2MASS (epoch J2000), Gaia's are at J2015.5 (DR2) or J2016 (EDR3/DR3); proper
    motions are not propagated, so stars moving more than about ``radius_arcsec``/15 arcsec per year may
    be missed. The separation is kept as ``gaia_match_sep_arcsec``.

    Raises
    ------
    ValueError
        If either side lacks ``ra``/``dec``.
    """
    for frame, default in ((allstar, "the allStar table"), (gaia, "the Gaia table")):
        missing = [c for c in ("ra", "dec") if c not in frame]
        if missing:
            raise InputError(f"position Gaia join: {_source(frame, default)} has no {', '.join(missing)} column")
    rows, separation, counts = nearest_within(
        allstar["ra"].to_numpy(float),
        allstar["dec"].to_numpy(float),
        gaia["ra"].to_numpy(float),
        gaia["dec"].to_numpy(float),
        radius_arcsec,
    )
    out = _attach(allstar, gaia, rows)
    out[MATCH_SEPARATION] = separation
    tally = {"0": int((counts == 0).sum()), "1": int((counts == 1).sum()), ">1": int((counts > 1).sum())}
    summary = MatchSummary("position", len(allstar), int((rows >= 0).sum()), tally, float(radius_arcsec))
    return out, summary


def join_gaia_file(
    allstar: pd.DataFrame, gaia_path: str | os.PathLike, mode: str | None = None, radius_arcsec: float = 1.0
) -> tuple[pd.DataFrame, MatchSummary]:
    """Read a Gaia file and join it onto ``allstar``, choosing the join with :func:`choose_join_mode`.

    Parameters
    ----------
    allstar : pandas.DataFrame
        Canonical allStar table (``ra``/``dec`` in deg; ``source_id`` for a source_id join).
    gaia_path : path-like
        A row-aligned ``.npz`` (see :func:`read_gaia_npz`) or a Gaia table (see :func:`read_gaia_table`).
    mode : str, optional
        Force a join of :data:`JOIN_MODES`.
    radius_arcsec : float
        Positional match radius (arcsec).
    """
    mode = choose_join_mode(allstar, gaia_path, mode)
    gaia = read_gaia_npz(gaia_path) if is_npz(gaia_path) else read_gaia_table(gaia_path, mode)
    if mode == "row":
        return join_by_row(allstar, gaia)
    if mode == "source_id":
        return join_by_source_id(allstar, gaia)
    return join_by_position(allstar, gaia, radius_arcsec)
