"""Placeholder: being written (issue 4)."""

from __future__ import annotations

import argparse


def add_select_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``zpdist select``."""
    sub.add_parser("select", help="apply the paper's cuts and report each one's count")


def run_select(args: argparse.Namespace) -> None:
    """Run ``zpdist select``."""
    raise NotImplementedError("zpdist select is being written")
