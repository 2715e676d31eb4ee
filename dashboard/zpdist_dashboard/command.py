"""``zpdist serve``, contributed to the ``zpdist`` command line through the ``zpdist.commands`` entry point."""

from __future__ import annotations

import argparse

from zpdist.cli.command import Command


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from zpdist_dashboard.serve import add_serve_arguments

    add_serve_arguments(p)


def _run(args: argparse.Namespace) -> None:
    from zpdist_dashboard.serve import run_serve

    run_serve(args)


COMMAND = Command(
    name="serve",
    help="open the interactive dashboard (zero-point, distances, abundance maps) in a browser",
    description="Serve the dashboard over a catalog written by `zpdist predict` or `zpdist demo`.",
    add_arguments=_add_arguments,
    run=_run,
)
