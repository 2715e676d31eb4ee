"""``zpdist serve``, the command this package adds to ``zpdist`` (entry point ``zpdist.commands``: ``serve``).

Importing this module costs nothing: Panel is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_config, port_number
from zpdist_dashboard.sources import CATALOG_ENV, DEMO_CATALOG, resolve_catalog_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``zpdist serve``."""
    p.add_argument("--catalog", type=Path, help=f"catalog (.parquet or .fits) to show (default ${CATALOG_ENV}, "
                   f"else {DEMO_CATALOG})")  # fmt: skip
    p.add_argument(
        "--gaia", metavar="GLOB",
        help="also map the output of `zpdist zeropoint` (its folder, or a quoted glob of its Parquet files) in the "
        "Zero-point tab; its histograms are built once, with progress, and cached beside it",
    )  # fmt: skip
    p.add_argument("--port", type=port_number, default=5006, help="port (default 5006)")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument(
        "--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
        help="also accept browser connections from this origin (repeatable), e.g. behind a proxy",
    )  # fmt: skip
    add_config(p, "[maps] (the quality toggles' thresholds)")
    p.add_argument("--show", action="store_true", help="open a browser tab")


def run(args: argparse.Namespace) -> None:
    """Serve the dashboard over the chosen catalog until interrupted.

    Raises
    ------
    zpdist.errors.InputError
        Without a catalog: the message says how to make one (the dashboard never trains).
    zpdist.errors.MissingInputError
        When the catalog or the Gaia-scale table named does not exist.
    zpdist.errors.FileFormatError
        When either cannot be read as what it should be.
    """
    from zpdist.config import load_config

    thresholds = load_config(args.config).maps
    catalog = resolve_catalog_path(args.catalog)
    from zpdist_dashboard.serve import serve  # Panel, only now

    serve(catalog, args.gaia, args.port, args.address, tuple(args.allow_websocket_origin), args.show, thresholds)


COMMAND = Command(
    name="serve",
    help="open the interactive dashboard (zero-point, distances, abundance maps) in a browser",
    description="Serve the dashboard over a catalog written by `zpdist predict` or `zpdist demo`: without "
    f"--catalog, ${CATALOG_ENV}, else {DEMO_CATALOG}. The dashboard only reads catalogs; without one it stops and "
    "says how to make one.",
    add_arguments=add_arguments,
    run=run,
)
