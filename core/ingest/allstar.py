"""Placeholder: being written (issue 4)."""

from __future__ import annotations

import argparse


def add_allstar_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``zpdist ingest allstar``."""


def run_ingest_allstar(args: argparse.Namespace) -> None:
    """Run ``zpdist ingest allstar``."""
    raise NotImplementedError("zpdist ingest allstar is being written")
