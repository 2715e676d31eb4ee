"""``zpdist select``: apply the paper's cuts and report each one's count; thresholds from the ``[training]`` and
``[maps]`` sections of the configuration."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_config, refuse_input_as_output
from zpdist.errors import InputError, OutputError
from zpdist.selection import MAP_ELEMENTS

#: ``--mode`` choices (see :data:`zpdist.select_table.MODES`).
MODE_CHOICES = ("train", "maps", "both")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", required=True, type=Path, help="allStar-like table or zpdist catalog")
    add_config(p, "[training] and [maps]")
    p.add_argument("--mode", choices=MODE_CHOICES, default="both", help="which cuts to apply (default both)")
    p.add_argument("--element", choices=MAP_ELEMENTS, help="abundance of the map, for the [X/H] error cut")
    p.add_argument("--out", type=Path, help="write the selected rows here (.parquet or .fits)")
    p.add_argument("--report", action="store_true", help="print every cut's count (alone: print, write nothing)")


def run(args: argparse.Namespace) -> None:
    from zpdist import __version__
    from zpdist.config import config_path_beside, load_config, write_config
    from zpdist.ingest.allstar import write_table
    from zpdist.select_table import (
        MODES,
        OUTPUT_SUFFIXES,
        format_sections,
        read_selection_table,
        select_rows,
        with_k_corr,
    )  # fmt: skip
    from zpdist.selection import require_nonempty

    if args.out is None and not args.report:
        raise InputError("nothing to do: give --out SELECTED.parquet to write the selection, or --report to print it")
    if args.out is not None and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"{args.out}: the selected table must end in .parquet or .fits")
    if args.out is not None:
        refuse_input_as_output(args.out, args.table, args.config)
    config = load_config(args.config)
    training, maps = config.training, config.maps
    if args.element:
        maps = dataclasses.replace(maps, element=args.element)
    table, metadata = read_selection_table(args.table)
    cut_table, n_no_extinction = with_k_corr(table)
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
    write_config(config, config_path_beside(args.out))
    print(f"wrote {args.out}")


COMMAND = Command(
    name="select",
    help="apply the paper's cuts and report each one's count",
    description="Apply the training cuts (docs/method.md §5) and/or the abundance-map cuts (§7) to a table, print how "
    "many stars each cut removes and how many remain, and write the selected rows. Cuts whose columns are "
    "absent are reported as skipped (the map cuts on distance and z need a zpdist predict catalog).",
    add_arguments=add_arguments,
    run=run,
)
