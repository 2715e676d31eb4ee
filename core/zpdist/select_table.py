"""``zpdist select``: apply the paper's training cuts (METHOD §5) and abundance-map cuts (§7), reporting each.

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

import argparse
import dataclasses
import os
import tomllib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist import __version__
from zpdist.selection import (
    MAP_ELEMENTS,
    CutResult,
    MapCuts,
    TrainingCuts,
    apply_cuts,
    format_report,
    map_cuts,
    require_nonempty,
    training_cuts,
)

#: ``--mode`` choices: which cut sections apply, in order.
MODES: dict[str, tuple[str, ...]] = {"train": ("training",), "maps": ("maps",), "both": ("training", "maps")}

#: Config sections: name -> the dataclass whose fields are its keys.
CONFIG_SECTIONS: dict[str, type] = {"training": TrainingCuts, "maps": MapCuts}

SECTION_TITLES: dict[str, str] = {
    "training": "training cuts (METHOD §5)",
    "maps": "abundance-map cuts (METHOD §7)",
}

OUTPUT_SUFFIXES = (".parquet", ".fits")


def _accepts(default: object, value: object) -> bool:
    """True if a TOML ``value`` may replace a field whose default is ``default`` (ints for floats, no bools)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _section_to_cuts(cls: type, values: object, path: Path, section: str):
    """Build ``cls`` from one TOML section, checking every key and value type."""
    if not isinstance(values, dict):
        raise ValueError(f"{path}: [{section}] must be a table of key = value pairs")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(f"{path}: unknown key {key!r} in [{section}]; known keys: {', '.join(fields)}")
        default = fields[key].default
        if not _accepts(default, value):
            raise ValueError(
                f"{path}: [{section}] {key} = {value!r} must be a {type(default).__name__} (default {default!r})"
            )
    try:
        return cls(**values)
    except ValueError as exc:
        raise ValueError(f"{path}: [{section}]: {exc}") from exc


def read_cuts_config(path: str | os.PathLike | None) -> tuple[TrainingCuts, MapCuts]:
    """The cut thresholds of a TOML file with sections ``[training]`` and ``[maps]`` (both optional).

    Parameters
    ----------
    path : path-like or None
        The file; None gives the paper's defaults.

    Raises
    ------
    ValueError
        On invalid TOML, an unknown section or key, or a value of the wrong type (the message names the
        file and the key).
    """
    if path is None:
        return TrainingCuts(), MapCuts()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    unknown = [name for name in data if name not in CONFIG_SECTIONS]
    if unknown:
        raise ValueError(
            f"{path}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; expected [training] and/or [maps]"
        )
    training, maps = (_section_to_cuts(cls, data.get(name, {}), path, name) for name, cls in CONFIG_SECTIONS.items())
    return training, maps


def _written_by_zpdist(path: Path) -> bool:
    """True for a table written by :func:`zpdist.io.catalog.write_catalog` (it carries a ``zpdist`` block).

    Unreadable files give False: :func:`zpdist.io.tables.read_table` then reports the problem.
    """
    from zpdist.io.catalog import METADATA_KEY

    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return METADATA_KEY.encode() in (pq.read_schema(path).metadata or {})
        if name.endswith((".fits", ".fit")):
            from astropy.io import fits

            with fits.open(path) as hdul:
                return any("ZPMETA" in hdu.header for hdu in hdul)
    except (OSError, ValueError):
        return False
    return False


def read_selection_table(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read the table to select from, and its zpdist metadata (``{}`` for a survey file).

    A table zpdist wrote is read whole (its columns are canonical already); any other table is read onto
    the canonical columns by :func:`zpdist.io.tables.read_table`.
    """
    from zpdist.io.catalog import read_catalog
    from zpdist.io.tables import read_table

    path = Path(path)
    if not _written_by_zpdist(path):
        return read_table(path), {}
    table, metadata = read_catalog(path)
    table.attrs["source"] = str(path)
    return table, metadata


def _with_k_corr(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
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


def add_select_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``zpdist select``."""
    p = sub.add_parser(
        "select",
        help="apply the paper's cuts and report each one's count",
        description="Apply the training cuts (METHOD §5) and/or the abundance-map cuts (§7) to a table, print how "
        "many stars each cut removes and how many remain, and write the selected rows. Cuts whose columns are "
        "absent are reported as skipped (the map cuts on distance and z need a zpdist predict catalog).",
    )
    p.add_argument("--table", required=True, type=Path, help="allStar-like table or zpdist catalog")
    p.add_argument("--config", type=Path, help="TOML file with [training] and [maps] thresholds")
    p.add_argument("--mode", choices=tuple(MODES), default="both", help="which cuts to apply (default both)")
    p.add_argument("--element", choices=MAP_ELEMENTS, help="abundance of the map, for the [X/H] error cut")
    p.add_argument("--out", type=Path, help="write the selected rows here (.parquet or .fits)")
    p.add_argument("--report", action="store_true", help="print every cut's count (alone: print, write nothing)")


def run_select(args: argparse.Namespace) -> None:
    """Run ``zpdist select``."""
    from zpdist.ingest.allstar import write_table

    if args.out is None and not args.report:
        raise ValueError("nothing to do: give --out SELECTED.parquet to write the selection, or --report to print it")
    if args.out is not None and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{args.out}: the selected table must end in .parquet or .fits")
    training, maps = read_cuts_config(args.config)
    if args.element:
        maps = dataclasses.replace(maps, element=args.element)
    table, metadata = read_selection_table(args.table)
    cut_table, n_no_extinction = _with_k_corr(table)
    keep, sections = select_rows(cut_table, args.mode, training, maps)
    print(f"{args.table}: {len(table)} stars")
    if n_no_extinction and "training" in MODES[args.mode]:
        print(f"A_K missing or negative for {n_no_extinction} stars: A_K = 0 used, as zpdist train does")
    if args.report:
        print(format_sections(sections))
    print(f"selected: {int(keep.sum())} of {len(table)} stars")
    if args.out is None:
        return
    require_nonempty(keep, [r for _, _, results in sections for r in results], str(args.table))
    metadata = {
        **metadata,
        "selection": {
            "table": str(args.table.resolve()),
            "config": str(args.config.resolve()) if args.config else None,
            "mode": args.mode,
            "training_cuts": training.to_dict(),
            "map_cuts": maps.to_dict(),
            "sections": [
                {"title": title, "n_start": n_start, "cuts": [r.to_dict() for r in results]}
                for title, n_start, results in sections
            ],
            "n_in": len(table),
            "n_selected": int(keep.sum()),
            "zpdist_version": __version__,
        },
    }
    write_table(table.loc[keep].reset_index(drop=True), args.out, metadata)
    print(f"wrote {args.out}")
