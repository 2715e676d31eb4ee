"""``zpdist predict``: Monte-Carlo-dropout distances and offsets for every star, as a catalog."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import (
    add_config,
    add_device,
    add_quiet,
    finite_float,
    mc_samples,
    positive_float,
    refuse_input_as_output,
)
from zpdist.config import PRECISIONS, PredictConfig
from zpdist.galactocentric import GalactocentricFrameConfig

_DEFAULTS, _FRAME = PredictConfig(), GalactocentricFrameConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="training run folder")
    p.add_argument("--table", required=True, type=Path, help="allStar-like table")
    p.add_argument("--spectra", type=Path, help="spectra row-aligned with the table (spectra-mode models)")
    p.add_argument("--out", required=True, type=Path, help="catalog path, .parquet or .fits")
    add_config(p, "[predict] and [frame]")
    p.add_argument(
        "--mc-samples", type=mc_samples, help=f"Monte-Carlo dropout passes, 2 or more (default {_DEFAULTS.mc_samples})"
    )
    add_device(p)
    p.add_argument(
        "--precision", choices=PRECISIONS,
        help="arithmetic of the repeated dropout layers: auto (default) is bfloat16 on CUDA (float16 on GPUs "
        "without it) and float32 on CPU; heads, offset and the once-per-star layers always run in float32",
    )  # fmt: skip
    p.add_argument("--r0-kpc", type=positive_float, help=f"Sun-Galactic centre distance (default {_FRAME.r0_kpc} kpc)")
    p.add_argument("--z-sun-pc", type=finite_float, help=f"Sun's height above the plane (default {_FRAME.z_sun_pc} pc)")
    add_quiet(p)


def run(args: argparse.Namespace) -> None:
    from zpdist.config import config_path_beside, load_config, write_config
    from zpdist.pipeline import predict_catalog

    refuse_input_as_output(args.out, args.table, args.spectra, args.config)
    config = load_config(args.config)
    config = config.replace("predict", mc_samples=args.mc_samples, device=args.device, precision=args.precision)
    config = config.replace("frame", r0_kpc=args.r0_kpc, z_sun_pc=args.z_sun_pc)
    settings = config.predict
    predict_catalog(
        args.run, args.table, args.out, args.spectra, settings.mc_samples, settings.device, config.frame,
        progress=not args.quiet, precision=settings.precision,
    )  # fmt: skip
    write_config(config, config_path_beside(args.out))


COMMAND = Command(
    name="predict",
    help="Monte-Carlo-dropout distances and offsets for every star, as a catalog",
    description="Predict L, NN parallax and distance with model and predictive errors, the offset per star, "
    "offset-corrected Gaia parallaxes, the combined distance and Galactocentric coordinates.",
    add_arguments=add_arguments,
    run=run,
)
