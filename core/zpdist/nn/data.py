"""Turning a canonical table (and spectra) into the arrays the network reads."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

from zpdist.errors import InputError
from zpdist.io.spectra import (
    MAX_NONFINITE_FRACTION,
    SpectraError,
    SpectraReader,
    fill_bad_pixels,
    nonfinite_rows,
)
from zpdist.nn.distance_prior import sightlines
from zpdist.photometry import extinction_corrected_mag
from zpdist.selection import OFFSET_INPUT_COLUMNS

#: Labels-mode inputs: Teff, log g, [Fe/H], the first α-like column present, and the mass tracers.
BASE_LABELS: tuple[str, str, str] = ("teff", "logg", "fe_h")
ALPHA_LABELS: tuple[str, ...] = ("alpha_m", "mg_fe")
#: [C/Fe] and [N/Fe] of a giant trace its mass (first dredge-up). At fixed Teff, log g and [Fe/H] the luminosity
#: scales with mass (L ∝ M T⁴/g), so without them ~20 % of L is unpredictable scatter; in a magnitude-limited
#: sample the distant stars of given labels are the more luminous ones (Malmquist), and a network fitted in
#: parallax space then under-predicts their L and biases the zero-point positive (docs/method.md §3).
MASS_LABELS: tuple[str, str] = ("c_fe", "n_fe")


def _has_values(table: pd.DataFrame, column: str) -> bool:
    return column in table and bool(np.isfinite(table[column].to_numpy(float)).any())


def choose_label_columns(table: pd.DataFrame, requested: Sequence[str] | None = None) -> tuple[str, ...]:
    """Labels-mode input columns: ``requested``, or the default set.

    The default is Teff, log g, [Fe/H], [α/M] or [Mg/Fe] (whichever exists), and [C/Fe] and [N/Fe]
    when both exist (see :data:`MASS_LABELS`).

    Raises
    ------
    ValueError
        If a needed column is absent (the message names it and the table's source).
    """
    source = table.attrs.get("source", "table")
    if requested:
        columns = tuple(requested)
    else:
        alpha = [c for c in ALPHA_LABELS if _has_values(table, c)]
        mass = MASS_LABELS if all(_has_values(table, c) for c in MASS_LABELS) else ()
        columns = (*BASE_LABELS, *alpha[:1], *mass)
    missing = [c for c in columns if c not in table]
    if missing:
        raise InputError(f"{source}: labels mode needs column(s) {', '.join(missing)}")
    return columns


def add_corrected_k(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``k_corr`` = K − A_K and ``ak_flag`` (True where A_K was missing or negative and 0 was used).

    Raises
    ------
    ValueError
        If the table has no K magnitude.
    """
    if "k" not in table:
        raise InputError(f"{table.attrs.get('source', 'table')}: required column 'k' (2MASS K/KS) is missing")
    if "ak" not in table:
        warnings.warn(
            f"{table.attrs.get('source', 'table')}: no extinction column (AK_TARG); using A_K = 0 for every star",
            stacklevel=2,
        )
    extinction = table["ak"].to_numpy(float) if "ak" in table else np.full(len(table), np.nan)
    k_corr, flag = extinction_corrected_mag(table["k"].to_numpy(float), extinction)
    table = table.copy()
    table["k_corr"] = k_corr
    table["ak_flag"] = flag
    return table


def label_inputs(table: pd.DataFrame, columns: Sequence[str], rows: np.ndarray | None = None) -> np.ndarray:
    """Float32 C-ordered matrix (one row per star) of the label columns (NaN kept)."""
    frame = table if rows is None else table.iloc[rows]
    return np.ascontiguousarray(frame[list(columns)].to_numpy(dtype=np.float32))


def offset_inputs(table: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """Float32 (N, 3) matrix of G, BP−RP, Teff, or NaN columns where absent."""
    frame = table if rows is None else table.iloc[rows]
    return np.column_stack(
        [
            frame[c].to_numpy(np.float32) if c in frame else np.full(len(frame), np.nan, np.float32)
            for c in OFFSET_INPUT_COLUMNS
        ]
    )


def sightlines_of(table: pd.DataFrame, rows: np.ndarray) -> np.ndarray | None:
    """Unit vectors (N, 3) towards the stars at ``rows``, from ``glon``/``glat`` or else ``ra``/``dec`` (ICRS, deg);
    None if the table has neither pair."""
    frame = table.iloc[rows]
    if "glon" in frame and "glat" in frame:
        return sightlines(frame["glon"].to_numpy(float), frame["glat"].to_numpy(float))
    if "ra" in frame and "dec" in frame:
        sky = SkyCoord(frame["ra"].to_numpy(float) * u.deg, frame["dec"].to_numpy(float) * u.deg).galactic
        return sightlines(sky.l.deg, sky.b.deg)
    return None


def spectra_inputs(spectra_path: str | os.PathLike, n_table_rows: int, rows: np.ndarray) -> np.ndarray:
    """Float32 spectra (len(rows), 7514) of the increasing table rows ``rows``, read in chunks into one array.

    Non-finite pixels (NaN, ±inf) become 1, the bad-pixel value (:func:`zpdist.io.spectra.fill_bad_pixels`);
    ``rows`` should be usable spectra (:meth:`zpdist.io.spectra.SpectraReader.usable_rows`), since a missing
    spectrum must never be filled in.

    Raises
    ------
    ValueError
        If ``rows`` is not strictly increasing.
    SpectraError
        If one of the rows is a missing spectrum (:func:`zpdist.io.spectra.nonfinite_rows`).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if np.any(np.diff(rows) <= 0):
        raise ValueError("spectra_inputs needs strictly increasing table rows")
    with SpectraReader(spectra_path, expected_rows=n_table_rows) as reader:
        block = reader.read_rows(rows)
    missing = rows[nonfinite_rows(block)]
    if len(missing):
        raise SpectraError(
            f"{spectra_path}: row {missing[0]} (and {len(missing) - 1} more) has no spectrum (more than "
            f"{MAX_NONFINITE_FRACTION:.0%} of its pixels NaN or ±inf) and cannot be a network input"
        )
    return fill_bad_pixels(block)
