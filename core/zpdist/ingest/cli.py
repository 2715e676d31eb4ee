"""``zpdist ingest allstar`` and ``zpdist ingest spectra``: the real-data entry points."""

from __future__ import annotations

import argparse


def add_ingest_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``zpdist ingest`` and its two sub-commands."""
    from zpdist.ingest.allstar import add_allstar_arguments
    from zpdist.ingest.spectra import add_spectra_arguments

    p = sub.add_parser(
        "ingest",
        help="turn real APOGEE/Gaia files into the canonical table and spectra the trainer reads",
        description="Real-data ingestion: 'allstar' reads an APOGEE allStar file (DR14/DR16/DR17) and joins Gaia; "
        "'spectra' normalises apStar/aspcapStar spectra onto the network's 7,514-pixel grid.",
    )
    what = p.add_subparsers(dest="ingest_what", required=True, metavar="WHAT")
    add_allstar_arguments(
        what.add_parser(
            "allstar",
            help="allStar (+ Gaia) -> canonical Parquet table",
            description="Read an APOGEE allStar file and join Gaia astrometry; write the canonical table.",
        )
    )
    add_spectra_arguments(
        what.add_parser(
            "spectra",
            help="apStar/aspcapStar files -> normalised spectra.h5",
            description="Normalise apStar or aspcapStar spectra onto the 7,514-pixel grid, row-aligned with a table.",
        )
    )


def run_ingest(args: argparse.Namespace) -> None:
    """Dispatch ``zpdist ingest WHAT``."""
    if args.ingest_what == "allstar":
        from zpdist.ingest.allstar import run_ingest_allstar

        run_ingest_allstar(args)
    else:
        from zpdist.ingest.spectra import run_ingest_spectra

        run_ingest_spectra(args)
