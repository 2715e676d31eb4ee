"""``zpdist select``: apply the paper's training cuts (docs/method.md §5) and abundance-map cuts (§7), reporting each.

The table is an allStar-like survey file (read onto the canonical columns by
:func:`zpdist.io.tables.read_table`) or a table zpdist wrote (``zpdist ingest allstar`` output or a
``zpdist predict`` catalog, recognised by its ``zpdist`` metadata block and read whole, so a catalog's
``dist``, ``z_gc``, ... are kept). Thresholds come from :class:`zpdist.selection.TrainingCuts` and
:class:`zpdist.selection.MapCuts`, overridden by a TOML file::

    [training]
    min_snr = 100.0
    max_parallax_error = 0.2

    [maps]
    max_abs_z = 0.5
    element = "mg_fe"

The selected rows are written (Parquet or FITS, atomically) with the input's metadata and a ``selection``
block recording the thresholds and every cut's count.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist.selection import (
    CutResult,
    MapCuts,
    TrainingCuts,
    apply_cuts,
    format_report,
    map_cuts,
    training_cuts,
)

#: ``--mode`` choices: which cut sections apply, in order.
MODES: dict[str, tuple[str, ...]] = {"train": ("training",), "maps": ("maps",), "both": ("training", "maps")}

SECTION_TITLES: dict[str, str] = {
    "training": "training cuts (docs/method.md §5)",
    "maps": "abundance-map cuts (docs/method.md §7)",
}

OUTPUT_SUFFIXES = (".parquet", ".fits")


def read_selection_table(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read the table to select from, and its zpdist metadata (``{}`` for a survey file).

    A table zpdist wrote is read whole (its columns are canonical already); any other table is read onto
    the canonical columns by :func:`zpdist.io.tables.read_table`.
    """
    from zpdist.io.catalog import read_catalog, read_metadata
    from zpdist.io.tables import read_table

    path = Path(path)
    if read_metadata(path) is None:  # a survey file, not one zpdist wrote
        return read_table(path), {}
    table, metadata = read_catalog(path)
    table.attrs["source"] = str(path)
    return table, metadata


def with_k_corr(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``table`` with ``k_corr`` (as ``zpdist train`` builds it) when it has K and no k_corr yet.

    Returns the table and the number of stars whose A_K was missing or negative (0 used).
    """
    from zpdist.nn.data import add_corrected_k

    if "k_corr" in table or "k" not in table:
        return table, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = add_corrected_k(table)
    return table, int(table["ak_flag"].sum())


def select_rows(
    table: pd.DataFrame, mode: str, training: TrainingCuts, maps: MapCuts
) -> tuple[np.ndarray, list[tuple[str, int, list[CutResult]]]]:
    """Apply the cut sections of ``mode`` in order.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical table; a ``k_corr`` column is needed for the K_corr and luminosity cuts.
    mode : str
        A key of :data:`MODES`.
    training, maps : TrainingCuts, MapCuts
        The thresholds.

    Returns
    -------
    keep : ndarray of bool
        Rows passing every cut that could be applied (cuts whose columns are absent are skipped).
    sections : list of (title, stars at the start, per-cut results)
        Each section starts from the stars the previous one left.
    """
    names = MODES[mode]
    cuts = [training_cuts(training) if name == "training" else map_cuts(maps) for name in names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a skipped cut's reason is in its CutResult
        keep, report = apply_cuts(table, [cut for section in cuts for cut in section])
    sections = []
    start, n_before = 0, len(table)
    for name, section in zip(names, cuts, strict=True):
        results = report[start : start + len(section)]
        title = SECTION_TITLES[name] + (f", element {maps.element}" if name == "maps" else "")
        sections.append((title, n_before, results))
        start += len(section)
        n_before = results[-1].remaining
    return keep, sections


def format_sections(sections: Sequence[tuple[str, int, list[CutResult]]]) -> str:
    """The per-cut tables of :func:`select_rows`, one per section, under their titles."""
    return "\n".join(f"{title}:\n{format_report(results, n_start)}" for title, n_start, results in sections)
