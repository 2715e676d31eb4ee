"""``zpdist mock-gaia``: a large synthetic Gaia-like catalog as partitioned Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_quiet, nonnegative_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", required=True, type=positive_int, help="number of stars")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--partition-rows", type=positive_int, default=1_000_000, help="rows per file (default 1000000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=positive_int, default=1, help="partitions drawn in parallel (threads, default 1)")
    add_quiet(p)


def run(args: argparse.Namespace) -> None:
    from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog

    config = GaiaCatalogConfig(n_rows=args.rows, partition_rows=args.partition_rows, seed=args.seed)
    paths = write_gaia_catalog(config, args.out, workers=args.workers, progress=not args.quiet)
    print(f"{config.n_rows:,} rows in {len(paths)} files written to {args.out}")


COMMAND = Command(
    name="mock-gaia",
    help="write a large synthetic Gaia-like catalog (G, BP-RP, Teff) as partitioned Parquet",
    description="Draw a reproducible Gaia-like catalog for `zpdist zeropoint`: exponential G number counts "
    "(3 < G < 21), a dwarf/giant mix, BP-RP from Teff plus reddening, Teff (teff_val, 2% missing) and "
    "source_id, written partition by partition to DIR/part-NNNNN.parquet with DIR/mock_gaia.json.",
    add_arguments=add_arguments,
    run=run,
)
