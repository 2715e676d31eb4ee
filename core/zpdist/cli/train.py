"""``zpdist train``: fit the network and the parallax zero-point (defaults: :class:`zpdist.config.TrainConfig`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from zpdist.cli.command import Command
from zpdist.cli.options import add_config, add_device, add_quiet, nonnegative_int, positive_float, positive_int
from zpdist.config import TrainConfig

_DEFAULTS = TrainConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    p.add_argument("--table", required=True, type=Path, help="allStar-like table with Gaia columns (FITS/Parquet/CSV)")
    p.add_argument("--spectra", type=Path, help="HDF5 spectra row-aligned with the table (spectra mode)")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    add_config(p, "[training] and [train]")
    p.add_argument(
        "--mode", choices=("spectra", "labels"), help=f"luminosity from spectra or labels (default {d.mode})"
    )
    p.add_argument(
        "--offset", dest="offset_model", choices=("constant", "multivariate"),
        help=f"zero-point model (default {d.offset_model})",
    )  # fmt: skip
    p.add_argument(
        "--labels", help="labels-mode inputs, comma-separated canonical names (default teff,logg,fe_h, alpha_m or "
        "mg_fe, and c_fe,n_fe when present)",
    )  # fmt: skip
    p.add_argument(
        "--luminosity-head", choices=("log_linear", "softplus"),
        help="log_linear (default): L = scale·exp(w·x + raw), a dropout-free log-linear term in the labels or "
        "in the spectrum's 32 leading whitened principal components and the products of the first "
        "--quadratic-components of them, times the network's correction; softplus: the paper's "
        "L = scale·softplus(raw)",
    )  # fmt: skip
    p.add_argument(
        "--quadratic-components", dest="n_quadratic", type=nonnegative_int, metavar="N",
        help=f"spectra mode, log_linear head: products of the N leading components also enter ln L (default "
        f"{d.n_quadratic}; 0 = linear)",
    )  # fmt: skip
    p.add_argument(
        "--no-warm-start", dest="warm_start", action="store_const", const=False,
        help="start Adam from scratch instead of from a full-batch L-BFGS fit of the log-linear term and the "
        "offset (the warm start is also epoch 0's candidate for early stopping)",
    )  # fmt: skip
    p.add_argument("--epochs", type=positive_int, help=f"maximum epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=positive_int, help=f"stars per step (default {d.batch_size})")
    p.add_argument("--learning-rate", type=positive_float, help=f"Adam learning rate (default {d.learning_rate:g})")
    p.add_argument(
        "--patience", dest="early_stopping_patience", type=nonnegative_int, metavar="EPOCHS",
        help=f"early-stopping patience in epochs (default {d.early_stopping_patience})",
    )  # fmt: skip
    p.add_argument(
        "--parallax-correction", choices=("none", "l21"),
        help="l21: fit the offset that remains after subtracting the Lindegren et al. (2021) zero-point from each "
        "Gaia (E)DR3 parallax (needs its columns: nu_eff_used_in_astrometry, pseudocolour, "
        "astrometric_params_solved, G; stars outside its range are cut). Default none",
    )  # fmt: skip
    p.add_argument(
        "--likelihood", choices=("selection", "paper"),
        help="selection: marginalise each star's luminosity scatter with a distance prior from a Galactic density "
        "model at its apparent magnitude, which removes the bias a magnitude limit gives the paper's objective "
        "(needs GLON/GLAT or RA/DEC, else the paper's is used); paper: Leung & Bovy's Gaussian in parallax. Default "
        f"{d.likelihood}",
    )  # fmt: skip
    p.add_argument(
        "--outlier-fraction", type=float, metavar="F",
        help="mix the likelihood with a broad component (20x each star's total parallax uncertainty) holding this "
        "fraction of the parallaxes, so that spurious parallaxes cannot pull the offset "
        f"(default {d.outlier_fraction:g})",
    )  # fmt: skip
    p.add_argument(
        "--luminosity-scatter", choices=("gaussian", "lognormal"),
        help="with --likelihood selection: the shape of each star's luminosity scatter about the network's L, "
        f"Gaussian in L (the paper's) or lognormal with median L (default {d.luminosity_scatter})",
    )  # fmt: skip
    p.add_argument(
        "--half-samples", type=nonnegative_int, metavar="K",
        help="after the fit, repeat it on K random halves of the selected stars (each with its own seed) and quote "
        "their spread as the offset's error: it then holds the network's own fit to the data and the training's "
        "randomness (delete-half jackknife; about K/2 more trainings; 10 recommended). "
        f"Default {d.half_samples}: statistical and network errors in quadrature",
    )  # fmt: skip
    p.add_argument(
        "--max-memory-gb", type=positive_float, metavar="GB",
        help=f"spectra mode: hold the selected spectra in memory up to this size, else stream them from the HDF5 "
        f"file (default {d.max_memory_gb:g} GB)",
    )  # fmt: skip
    add_device(p)
    p.add_argument("--seed", type=nonnegative_int, help=f"random seed (default {d.seed})")
    p.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run (RUN_DIR.incomplete/checkpoint.pt) or a finished one (RUN_DIR/checkpoint.pt) "
        "with the same configuration, table and spectra",
    )  # fmt: skip
    add_quiet(p)


#: Options that set a key of the [train] section (argparse dest = TrainConfig field).
TRAIN_KEYS = (
    "mode", "offset_model", "luminosity_head", "n_quadratic", "warm_start", "epochs", "batch_size", "learning_rate",
    "early_stopping_patience", "device", "seed", "max_memory_gb", "parallax_correction", "likelihood",
    "outlier_fraction", "luminosity_scatter", "half_samples",
)  # fmt: skip


def run(args: argparse.Namespace) -> None:
    from zpdist.config import CONFIG_FILE, load_config
    from zpdist.nn.train import train

    given = {key: getattr(args, key) for key in TRAIN_KEYS}
    given["label_columns"] = tuple(args.labels.split(",")) if args.labels else None
    config = load_config(args.config).replace("train", **given)
    train(
        args.table, args.out, config.train, spectra_path=args.spectra, resume=args.resume, progress=not args.quiet,
        settings=config,
    )  # fmt: skip
    print(f"run written to {args.out} (configuration: {args.out / CONFIG_FILE})")


COMMAND = Command(
    name="train",
    help="train the network and fit the parallax zero-point",
    description="Apply the paper's cuts (each reported), train with Adam (lr 1e-3 halved on plateau, batch 64, "
    "40 epochs, 10% validation, early stopping), and write RUN_DIR/model.pt, summary.json, train_config.json.",
    add_arguments=add_arguments,
    run=run,
)
