"""Placeholder: being written (issue 4)."""

from __future__ import annotations

import argparse


def add_fetch_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``zpdist fetch``."""
    sub.add_parser("fetch", help="download the real survey files into data/")


def run_fetch(args: argparse.Namespace) -> None:
    """Run ``zpdist fetch``."""
    raise NotImplementedError("zpdist fetch is being written")
