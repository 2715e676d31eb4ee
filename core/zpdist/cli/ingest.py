"""``zpdist ingest allstar`` and ``zpdist ingest spectra``: the real-data entry points."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_dask, add_quiet, positive_float, positive_int, refuse_input_as_output
from zpdist.errors import OutputError


def add_allstar_arguments(parser: argparse.ArgumentParser) -> None:
    from zpdist.io.crossmatch import JOIN_MODES

    parser.add_argument("--allstar", required=True, type=Path, help="allStar file, DR14/DR16/DR17 (FITS/Parquet/CSV)")
    parser.add_argument(
        "--gaia",
        type=Path,
        help="Gaia astrometry to join when the allStar lacks it (or to replace its own): a row-aligned .npz "
        "(astroNN's gaiadr2_apogeedr14 parallax file) or a Gaia table (FITS/Parquet/CSV)",
    )
    parser.add_argument(
        "--gaia-join",
        choices=JOIN_MODES,
        help="how to join --gaia (default: row for .npz; source_id when both sides have one; else position)",
    )
    parser.add_argument(
        "--match-radius-arcsec", type=positive_float, default=1.0, help="positional match radius (default 1 arcsec)"
    )
    parser.add_argument(
        "--gaia-release", choices=("DR2", "EDR3", "DR3"),
        help="the release of the Gaia astrometry, when the column names do not say it (a Gaia archive table has "
        "bare names: state DR3 for gaiadr3.gaia_source); recorded in the output, it decides whether L21 applies",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="output table, .parquet (or .fits)")


def run_allstar(args: argparse.Namespace) -> None:
    """Read, join, de-duplicate, print the counts, write atomically."""
    from zpdist.ingest.allstar import ingest_allstar, write_table

    if args.out.suffix.lower() not in (".parquet", ".fits"):
        raise OutputError(f"{args.out}: the output table must end in .parquet or .fits")
    refuse_input_as_output(args.out, args.allstar, args.gaia)
    table, metadata = ingest_allstar(
        args.allstar, args.gaia, args.gaia_join, args.match_radius_arcsec, gaia_release=args.gaia_release
    )
    write_table(table, args.out, metadata)
    print(f"wrote {args.out}: {len(table)} rows, {table.shape[1]} columns; provenance in its 'zpdist' metadata")


def _bad_bits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated bit numbers, got {text!r}") from exc


def add_spectra_arguments(parser: argparse.ArgumentParser) -> None:
    from zpdist.ingest.spectra import IngestConfig

    defaults = IngestConfig()
    continuum = defaults.continuum
    parser.add_argument(
        "--apstar",
        required=True,
        nargs="+",
        metavar="DIR_OR_FILES",
        help="apStar/asStar/aspcapStar FITS or npz spectra: files, folders (their apStar-*, asStar-*, aspcapStar-* "
        "FITS files, recursively), quoted glob patterns, or @LIST (a text file naming one per line)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file (e.g. spectra.h5)")
    parser.add_argument(
        "--table",
        type=Path,
        help="allStar-like table (FITS/Parquet/CSV): write one row per table row, matched by APOGEE_ID (then "
        "TELESCOPE, FIELD); rows without a file are 1s with has_spectrum False. Default: one row per file",
    )
    add_dask(parser)
    parser.add_argument(
        "--wavelength",
        type=Path,
        metavar="NPZ",
        help="npz file with the 'wavelength' grid (Å, vacuum) of npz spectra that do not carry their own",
    )
    parser.add_argument(
        "--bad-bits",
        type=_bad_bits,
        default=defaults.bad_bits,
        metavar="BITS",
        help="APOGEE_PIXMASK bits that make a pixel bad, comma-separated "
        f"(default {','.join(map(str, defaults.bad_bits))}: astroNN's)",
    )
    parser.add_argument(
        "--degree",
        type=positive_int,
        default=continuum.degree,
        help=f"Chebyshev degree of each chip's continuum (default {continuum.degree})",
    )
    parser.add_argument(
        "--batch-files",
        type=positive_int,
        default=defaults.batch_files,
        help=f"files per task (default {defaults.batch_files})",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="write unreadable files' rows as missing (listed in STEM.json) instead of stopping",
    )
    add_quiet(parser)


def run_spectra(args: argparse.Namespace) -> None:
    from zpdist.continuum import ContinuumConfig
    from zpdist.ingest.spectra import IngestConfig, ingest_spectra, sidecar_paths

    for output in (args.out, *sidecar_paths(args.out)):
        refuse_input_as_output(output, args.table, args.wavelength)
    config = IngestConfig(
        continuum=ContinuumConfig(degree=args.degree),
        bad_bits=args.bad_bits,
        wavelength_file=None if args.wavelength is None else str(args.wavelength),
        batch_files=args.batch_files,
        skip_unreadable=args.skip_unreadable,
    )
    ingest_spectra(
        args.apstar,
        args.out,
        table=args.table,
        config=config,
        scheduler=args.scheduler,
        n_workers=args.workers,
        progress=not args.quiet,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_subparsers(dest="ingest_what", required=True, metavar="WHAT")
    allstar = what.add_parser(
        "allstar",
        help="allStar (+ Gaia) -> canonical Parquet table",
        description="Read an APOGEE allStar file and join Gaia astrometry; write the canonical table.",
    )
    add_allstar_arguments(allstar)
    spectra = what.add_parser(
        "spectra",
        help="apStar/aspcapStar files -> normalised spectra.h5",
        description="Normalise apStar or aspcapStar spectra onto the 7,514-pixel grid, row-aligned with a table.",
    )
    add_spectra_arguments(spectra)


def run(args: argparse.Namespace) -> None:
    (run_allstar if args.ingest_what == "allstar" else run_spectra)(args)


COMMAND = Command(
    name="ingest",
    help="turn real APOGEE/Gaia files into the canonical table and spectra the trainer reads",
    description="Real-data ingestion: 'allstar' reads an APOGEE allStar file (DR14/DR16/DR17) and joins Gaia; "
    "'spectra' normalises apStar/aspcapStar spectra onto the network's 7,514-pixel grid.",
    add_arguments=add_arguments,
    run=run,
)
