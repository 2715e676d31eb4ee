"""``zpdist demo``: mock → train → predict on the embedded mock Galaxy, then the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_device, nonnegative_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("data/demo"), help="folder (default data/demo)")
    p.add_argument("--n-stars", type=positive_int, default=30_000, help="mock size (default 30000)")
    p.add_argument(
        "--mode", choices=("spectra", "labels"), default="labels",
        help="network mode (default labels: minutes on a CPU; spectra is the paper's network, use >= 100000 stars)",
    )  # fmt: skip
    p.add_argument("--epochs", type=positive_int, default=40, help="maximum epochs (default 40)")
    add_device(p)
    p.add_argument("--seed", type=nonnegative_int, default=42, help="mock seed (default 42)")


def run(args: argparse.Namespace) -> None:
    from zpdist.pipeline import run_demo

    run_demo(args.out, args.n_stars, args.mode, args.epochs, args.device or "auto", args.seed)


COMMAND = Command(
    name="demo",
    help="mock -> train -> predict on the embedded mock Galaxy, then print the summary",
    description="The main job on a fresh machine: build the mock (if absent), train, predict, and print "
    "the fitted offset beside the injected one and the catalog path. `zpdist serve --catalog "
    "DIR/catalog.parquet` then shows it.",
    add_arguments=add_arguments,
    run=run,
)
