"""Placeholder: being written (issue 4)."""

from __future__ import annotations

import argparse


def add_spectra_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``zpdist ingest spectra``."""


def run_ingest_spectra(args: argparse.Namespace) -> None:
    """Run ``zpdist ingest spectra``."""
    raise NotImplementedError("zpdist ingest spectra is being written")
