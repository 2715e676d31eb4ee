"""``zpdist zeropoint``: apply a trained offset model to a large Gaia-like Parquet table with dask."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_dask, add_quiet, mc_samples, nonnegative_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    from zpdist.zeropoint import ZeroPointConfig

    defaults = ZeroPointConfig()
    p.add_argument("--run", required=True, type=Path, metavar="RUN_DIR", help="training run folder (holds model.pt)")
    p.add_argument(
        "--input",
        required=True,
        metavar="GLOB",
        help="glob of input Parquet files, quoted (e.g. 'gaia/*.parquet'), or a folder",
    )
    p.add_argument("--out", required=True, type=Path, metavar="OUT_DIR", help="output folder")
    add_dask(p)
    p.add_argument(
        "--mc-samples",
        type=mc_samples,
        default=defaults.mc_samples,
        help=f"Monte-Carlo dropout passes (default {defaults.mc_samples})",
    )
    p.add_argument("--seed", type=nonnegative_int, default=defaults.seed, help="seed of the dropout masks (default 0)")
    columns = defaults.columns
    p.add_argument("--g-column", default=columns.g, help=f"G magnitude column (default {columns.g})")
    p.add_argument("--bp-rp-column", default=columns.bp_rp, help=f"BP-RP colour column (default {columns.bp_rp})")
    p.add_argument("--teff-column", default=columns.teff, help=f"Teff column in K (default {columns.teff})")
    p.add_argument(
        "--id-column",
        default=columns.source_id,
        help=f"identifier copied to the output when present (default {columns.source_id})",
    )
    p.add_argument("--keep-input-columns", action="store_true", help="copy every input column to the output")
    p.add_argument(
        "--batch-rows",
        type=positive_int,
        default=defaults.batch_rows,
        help=f"rows per read/evaluate/write step (memory bound; default {defaults.batch_rows})",
    )
    p.add_argument(
        "--exact", action="store_true",
        help="evaluate the offset model on every row (slow) instead of interpolating its tabulated Δϖ and spread; "
        f"the table's measured error is in OUT_DIR/zeropoint.json, and above {defaults.table_tolerance_uas} µas "
        "inside the training domain the job falls back to exact evaluation by itself",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="keep partitions already written by an interrupted run")
    add_quiet(p)


def run(args: argparse.Namespace) -> None:
    from zpdist.zeropoint import ZeroPointColumns, ZeroPointConfig, apply_offset_model

    config = ZeroPointConfig(
        columns=ZeroPointColumns(args.g_column, args.bp_rp_column, args.teff_column, args.id_column or None),
        mc_samples=args.mc_samples,
        seed=args.seed,
        batch_rows=args.batch_rows,
        keep_input_columns=args.keep_input_columns,
        **({"table_cells": 0} if args.exact else {}),
    )
    apply_offset_model(
        args.run,
        args.input,
        args.out,
        config,
        scheduler=args.scheduler,
        n_workers=args.workers,
        resume=args.resume,
        progress=not args.quiet,
    )


COMMAND = Command(
    name="zeropoint",
    help="apply a trained offset model to a large Gaia-like Parquet table with dask",
    description="Evaluate a run's parallax zero-point model on every row of a partitioned Parquet table "
    "(G, BP-RP, Teff columns), one output file per input file, same names and row order, in OUT_DIR: "
    "zp_offset (dropout off), zp_offset_error (Monte-Carlo dropout spread and the fitted level's "
    "statistical error in quadrature), zp_offset_model_error (the spread alone) and "
    "zp_outside_training_domain (inputs outside the training stars' range, or missing). "
    "OUT_DIR/zeropoint.json records the configuration, the model and the counts. Without --scheduler, a "
    "local dask cluster of --workers processes is started.",
    add_arguments=add_arguments,
    run=run,
)
