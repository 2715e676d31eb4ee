"""The ``zpdist`` command: mock / train / predict / demo / serve / mock-gaia / zeropoint / ingest / select / fetch.

Run ``zpdist COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from zpdist import __version__

DESCRIPTION = """\
zpdist: spectro-photometric distances and the Gaia parallax zero-point, fitted together
(Leung & Bovy 2019, MNRAS 489, 2079). A PyTorch network learns each star's luminosity from its
APOGEE spectrum (or labels) while fitting the Gaia parallax offset Δϖ, constant or as a function
of G, BP-RP and Teff.

Typical session on the embedded mock Galaxy:
  zpdist mock --out data/mock --n-stars 30000
  zpdist train --table data/mock/allstar.fits --spectra data/mock/spectra.h5 --out runs/spec
  zpdist predict --run runs/spec --table data/mock/allstar.fits --spectra data/mock/spectra.h5 \\
                 --out runs/spec/catalog.parquet
or all of it at once: zpdist demo --out data/demo
"""


def _add_mock(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mock",
        help="write the embedded mock Galaxy (allStar FITS, spectra HDF5, truth Parquet)",
        description="Draw a deterministic mock APOGEE x Gaia sample with known truth: DIR/allstar.fits "
        "(DR16 column names, -9999 missing), DIR/spectra.h5 (N x 7514 float32), DIR/truth.parquet, DIR/mock.json.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--n-stars", type=int, default=30_000, help="stars passing the APOGEE-like selection (default 30000)"
    )
    p.add_argument(
        "--offset-uas", type=float, default=-52.3, help="injected zero-point at the pivot, µas (default -52.3)"
    )
    p.add_argument(
        "--offset-model",
        choices=("constant", "multivariate"),
        default="constant",
        help="constant offset, or one depending on G, BP-RP and Teff (slopes in mock.json)",
    )
    p.add_argument("--no-spectra", action="store_true", help="skip spectra.h5 (labels-mode work only)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the network and fit the parallax zero-point",
        description="Apply the paper's cuts (each reported), train with Adam (lr 1e-3 halved on plateau, batch 64, "
        "40 epochs, 10% validation, early stopping), and write RUN_DIR/model.pt, summary.json, "
        "train_config.json.",
    )
    p.add_argument("--table", required=True, type=Path, help="allStar-like table with Gaia columns (FITS/Parquet/CSV)")
    p.add_argument("--spectra", type=Path, help="HDF5 spectra row-aligned with the table (spectra mode)")
    p.add_argument("--mode", choices=("spectra", "labels"), default="spectra", help="luminosity from spectra or labels")
    p.add_argument(
        "--offset", choices=("constant", "multivariate"), default="constant", help="zero-point model (default constant)"
    )
    p.add_argument("--labels", help="labels-mode inputs, comma-separated canonical names (default teff,logg,fe_h,"
                   "alpha_m or mg_fe)")  # fmt: skip
    p.add_argument(
        "--luminosity-head", choices=("log_linear", "softplus"), default="log_linear",
        help="log_linear (default): L = scale·exp(w·x + raw), a dropout-free log-linear term in the labels or "
        "in the spectrum's 32 leading whitened principal components and the products of the first "
        "--quadratic-components of them, times the network's correction; softplus: the paper's "
        "L = scale·softplus(raw)",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument(
        "--quadratic-components", type=int, default=16, metavar="N",
        help="spectra mode, log_linear head: products of the N leading components also enter ln L (default 16; "
        "0 = linear)",
    )  # fmt: skip
    p.add_argument(
        "--no-warm-start", dest="warm_start", action="store_false",
        help="start Adam from scratch instead of from a full-batch L-BFGS fit of the log-linear term and the "
        "offset (the warm start is also epoch 0's candidate for early stopping)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40)")
    p.add_argument("--batch-size", type=int, default=64, help="stars per step (default 64)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (default 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="Monte-Carlo-dropout distances and offsets for every star, as a catalog",
        description="Predict L, NN parallax and distance with model and predictive errors, the offset per star, "
        "offset-corrected Gaia parallaxes, the combined distance and Galactocentric coordinates.",
    )
    p.add_argument("--run", required=True, type=Path, help="training run folder")
    p.add_argument("--table", required=True, type=Path, help="allStar-like table")
    p.add_argument("--spectra", type=Path, help="spectra row-aligned with the table (spectra-mode models)")
    p.add_argument("--out", required=True, type=Path, help="catalog path, .parquet or .fits")
    p.add_argument("--mc-samples", type=int, default=100, help="Monte-Carlo dropout passes (default 100)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="arithmetic of the repeated dropout layers: auto (default) is bfloat16 on CUDA (float16 on GPUs "
        "without it) and float32 on CPU; heads, offset and the once-per-star layers always run in float32",
    )
    p.add_argument("--r0-kpc", type=float, default=8.125, help="Sun-Galactic centre distance (default 8.125 kpc)")
    p.add_argument("--z-sun-pc", type=float, default=20.8, help="Sun's height above the plane (default 20.8 pc)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="mock -> train -> predict on the embedded mock Galaxy, then print the summary",
        description="The main job on a fresh machine: build the mock (if absent), train, predict, and print "
        "the fitted offset beside the injected one and the catalog path.",
    )
    p.add_argument("--out", type=Path, default=Path("data/demo"), help="folder (default data/demo)")
    p.add_argument("--n-stars", type=int, default=30_000, help="mock size (default 30000)")
    p.add_argument(
        "--mode", choices=("spectra", "labels"), default="labels",
        help="network mode (default labels: minutes on a CPU; spectra is the paper's network, use >= 100000 stars)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=42, help="mock seed (default 42)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``zpdist``."""
    parser = argparse.ArgumentParser(
        prog="zpdist", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"zpdist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_mock, _add_train, _add_predict, _add_demo):
        add(sub)
    from zpdist.fetch import add_fetch_parser
    from zpdist.ingest.cli import add_ingest_parser
    from zpdist.mock.gaia_catalog import add_mock_gaia_parser
    from zpdist.select_table import add_select_parser
    from zpdist.zeropoint import add_zeropoint_parser
    from zpdist_dashboard.serve import add_serve_parser

    for add in (add_serve_parser, add_mock_gaia_parser, add_zeropoint_parser, add_ingest_parser, add_select_parser,
                add_fetch_parser):  # fmt: skip
        add(sub)
    return parser


def _run_mock(args: argparse.Namespace) -> None:
    from zpdist.mock.config import InjectedOffset, MockConfig
    from zpdist.mock.generate import write_mock

    config = MockConfig(
        n_stars=args.n_stars,
        seed=args.seed,
        offset=InjectedOffset(model=args.offset_model, offset_uas=args.offset_uas),
        write_spectra=not args.no_spectra,
    )
    files = write_mock(config, args.out)
    print(f"mock written to {files.folder}: {files.allstar.name}, {files.truth.name}, {files.config.name}"
          + (f", {files.spectra.name}" if config.write_spectra else ""))  # fmt: skip


def _run_train(args: argparse.Namespace) -> None:
    from zpdist.nn.train import TrainConfig, train

    config = TrainConfig(
        mode=args.mode,
        offset_model=args.offset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        early_stopping_patience=args.patience,
        seed=args.seed,
        device=args.device,
        label_columns=tuple(args.labels.split(",")) if args.labels else None,
        luminosity_head=args.luminosity_head,
        n_quadratic=args.quadratic_components,
        warm_start=args.warm_start,
    )
    train(args.table, args.out, config, spectra_path=args.spectra, resume=args.resume, progress=not args.quiet)
    print(f"run written to {args.out}")


def _run_predict(args: argparse.Namespace) -> None:
    from zpdist.galactocentric import GalactocentricFrameConfig
    from zpdist.pipeline import predict_catalog

    frame = GalactocentricFrameConfig(r0_kpc=args.r0_kpc, z_sun_pc=args.z_sun_pc)
    predict_catalog(
        args.run, args.table, args.out, args.spectra, args.mc_samples, args.device, frame,
        progress=not args.quiet, precision=args.precision,
    )  # fmt: skip


def _run_demo(args: argparse.Namespace) -> None:
    from zpdist.pipeline import run_demo

    run_demo(args.out, args.n_stars, args.mode, args.epochs, args.device, args.seed)


def _run_serve(args: argparse.Namespace) -> None:
    from zpdist_dashboard.serve import run_serve

    run_serve(args)


def _run_mock_gaia(args: argparse.Namespace) -> None:
    from zpdist.mock.gaia_catalog import run_mock_gaia

    run_mock_gaia(args)


def _run_zeropoint(args: argparse.Namespace) -> None:
    from zpdist.zeropoint import run_zeropoint

    run_zeropoint(args)


def _run_ingest(args: argparse.Namespace) -> None:
    from zpdist.ingest.cli import run_ingest

    run_ingest(args)


def _run_select(args: argparse.Namespace) -> None:
    from zpdist.select_table import run_select

    run_select(args)


def _run_fetch(args: argparse.Namespace) -> None:
    from zpdist.fetch import run_fetch

    run_fetch(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 with a one-line message on bad input)."""
    from zpdist.io.spectra import SpectraError
    from zpdist.io.tables import TableError
    from zpdist.selection import EmptySelectionError

    args = build_parser().parse_args(argv)
    warnings.filterwarnings("default", category=UserWarning)
    runners = {
        "mock": _run_mock, "train": _run_train, "predict": _run_predict, "demo": _run_demo, "serve": _run_serve,
        "mock-gaia": _run_mock_gaia, "zeropoint": _run_zeropoint, "ingest": _run_ingest, "select": _run_select,
        "fetch": _run_fetch,
    }  # fmt: skip
    try:
        runners[args.command](args)
    except (TableError, SpectraError, EmptySelectionError, OSError, ValueError) as exc:
        print(f"zpdist {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zpdist {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
