"""``zpdist mock``: write the embedded mock Galaxy."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import finite_float, nonnegative_int, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--n-stars", type=positive_int, default=30_000,
        help="stars passing the APOGEE-like selection (default 30000)",
    )  # fmt: skip
    p.add_argument(
        "--offset-uas", type=finite_float, default=-52.3, help="injected zero-point at the pivot, µas (default -52.3)"
    )
    p.add_argument(
        "--offset-model",
        choices=("constant", "multivariate"),
        default="constant",
        help="constant offset, or one depending on G, BP-RP and Teff (slopes in mock.json)",
    )
    p.add_argument("--no-spectra", action="store_true", help="skip spectra.h5 (labels-mode work only)")
    p.add_argument("--seed", type=nonnegative_int, default=42, help="random seed (default 42)")
    realism = p.add_mutually_exclusive_group()
    realism.add_argument(
        "--realistic",
        action="store_true",
        help="switch every part of the realistic mock family on at its defaults (docs/method.md §10): "
        "magnitude-limited selection in fields, [C/N] mass scatter, spectral nuisances, under-reported σϖ, "
        "sky-correlated parallax systematics, non-linear offsets, astrometric outliers",
    )
    realism.add_argument(
        "--realism",
        type=Path,
        metavar="FILE.toml",
        help="switch on the realism parts named as tables in FILE.toml, with their parameters (docs/method.md §10)",
    )


def run(args: argparse.Namespace) -> None:
    from zpdist.mock.config import InjectedOffset, MockConfig
    from zpdist.mock.generate import write_mock
    from zpdist.mock.realism import Realism, load_realism

    if args.realistic:
        realism = Realism.realistic()
    else:
        realism = load_realism(args.realism) if args.realism is not None else Realism()
    config = MockConfig(
        n_stars=args.n_stars,
        seed=args.seed,
        offset=InjectedOffset(model=args.offset_model, offset_uas=args.offset_uas),
        write_spectra=not args.no_spectra,
        realism=realism,
    )
    files = write_mock(config, args.out)
    written = [files.allstar.name, files.truth.name, files.config.name]
    written += [files.spectra.name] if config.write_spectra else []
    print(f"mock written to {files.folder}: {', '.join(written)}")


COMMAND = Command(
    name="mock",
    help="write the embedded mock Galaxy (allStar FITS, spectra HDF5, truth Parquet)",
    description="Draw a deterministic mock APOGEE x Gaia sample with known truth: DIR/allstar.fits "
    "(DR16 column names, -9999 missing), DIR/spectra.h5 (N x 7514 float32), DIR/truth.parquet, DIR/mock.json. "
    "The easy mock by default; --realistic or --realism FILE.toml for the realistic family. DIR is written whole "
    "or not at all: a failed run leaves a previous mock there as it was.",
    add_arguments=add_arguments,
    run=run,
)
