"""Calibration of Δϖ and its error over many realisations of the realistic mock (issue 10).

For each realisation (seed s, injected constant offset drawn uniformly in [−60, −30] µas): ``zpdist mock`` with the
realistic family minus its non-linear offset (so that a constant fit has a defined truth), ``zpdist train`` in the
chosen mode under each chosen likelihood, and in labels mode ``zpdist predict`` for per-star distance pulls. The
truth of a realisation is the injected constant plus the mean of the sky-correlated systematic over the training
stars (the fit cannot tell them apart; that mean is what a sky-systematics floor covers on real data).

With ``--offset-model multivariate`` (labels mode) the mock injects the paper-like plane in G, BP−RP and Teff
plus the realistic family's non-linear terms, the network fits its multivariate offset, and each realisation
adds: the per-star RMS of the fitted Δϖ against the injected one over the training stars, the fraction of the
injected Δϖ's variance it explains, the pulls of the fitted plane's coefficients (``summary.json``'s
``offset_plane``) against the least-squares plane of the injected Δϖ over the same stars, and the oracle floor of
the first two (a fit that knows every true parallax and the injected functional form).

Prints, and writes under ``benchmarks/results/``: one row per realisation (fit, error, truth, pull), the pull mean
and width per likelihood with their standard errors, and PNG plots of the pulls and of the distance pulls
(d − d_true)/σ_d against SNR and distance. Never run by the tests (they check its oracle floor).

Usage::

    python benchmarks/calibration.py --realisations 20 --n-stars 34000 --mode labels \\
        --likelihood selection paper [--workdir DIR] [--keep] [--jobs 2] [--train-args "--outlier-fraction 0"]
    python benchmarks/calibration.py --realisations 5 --offset-model multivariate --likelihood selection

``--jobs N`` runs N realisations at once, each with its share of the cores (``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
#: Every part of the realistic family except the non-linear offset (docs/method.md §10).
REALISM_PARTS = (
    "selection", "mass_tracers", "saturation", "continuum", "rv_shifts", "sky_residuals", "lsf", "snr",
    "parallax_noise", "sky_systematics", "outliers",
)  # fmt: skip
ZPDIST = [str(Path(sys.executable).with_name("zpdist"))]


def run_zpdist(args: list[str], log: Path, threads: int | None = None) -> None:
    """Run ``zpdist ARGS`` (this Python's), appending its output to ``log``, on ``threads`` threads if given."""
    env = os.environ | ({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})
    with open(log, "a") as out:
        subprocess.run([*ZPDIST, *args], check=True, stdout=out, stderr=subprocess.STDOUT, env=env)


#: The extra realism part of a multivariate realisation: the non-linear terms on top of the injected plane.
NONLINEAR_PART = "nonlinear_offset"


def _training_truth(mock: Path, run: Path) -> pd.DataFrame:
    """truth.parquet's rows of the run's training stars (after the paper's cuts), in the table's order, with the
    Gaia ``parallax`` and ``parallax_error`` (mas) the training read."""
    from zpdist.config import TrainConfig
    from zpdist.nn.train import _prepare_table

    config = TrainConfig(
        **{k: v for k, v in json.loads((run / "train_config.json").read_text()).items() if k in ("mode",)}
    )
    spectra = mock / "spectra.h5" if config.mode == "spectra" else None
    table, keep, _ = _prepare_table(mock / "allstar.fits", config, lambda _: None, spectra)
    truth = pd.read_parquet(mock / "truth.parquet").set_index("apogee_id").loc[table["apogee_id"].to_numpy()[keep]]
    return truth.assign(
        parallax=table["parallax"].to_numpy()[keep], parallax_error=table["parallax_error"].to_numpy()[keep]
    )


def _truth(mock: Path, run: Path) -> tuple[float, int]:
    """Injected offset + mean sky systematic over the run's training stars (µas), and their number."""
    truth = _training_truth(mock, run)
    return 1000.0 * float((truth["offset_mas"] + truth["parallax_systematic_mas"]).mean()), len(truth)


def _oracle_basis(inputs: np.ndarray) -> np.ndarray:
    """The injected Δϖ's own functional form: the plane (:func:`zpdist.nn.offset_plane.design_matrix`) and the
    default :class:`~zpdist.mock.realism.NonlinearOffset`'s terms (:func:`zpdist.mock.gaia.nonlinear_offset_terms`:
    the step in G, the saturating colour curvature, the G × Teff interaction)."""
    from zpdist.mock.config import InjectedOffset
    from zpdist.mock.gaia import nonlinear_offset_terms
    from zpdist.mock.realism import NonlinearOffset
    from zpdist.nn.offset_plane import design_matrix

    terms = nonlinear_offset_terms(NonlinearOffset(), InjectedOffset(model="multivariate"), *inputs.T)
    return np.column_stack([design_matrix(inputs), terms])


def _oracle_floor(truth: pd.DataFrame, injected: np.ndarray, inputs: np.ndarray) -> dict:
    """How well Δϖ per star could be known from these stars' parallaxes if every true parallax were known.

    Weighted least squares of ϖ_G − ϖ_true on the plane, and on the injected functional form
    (:func:`_oracle_basis`), with the astrometric outliers dropped: the parallax noise and the sky-correlated
    systematic are all that is left. Returns the per-star RMS (µas) and variance explained of each, the floor
    below which no method that learns L from the data can go on this sample.
    """
    clean = ~truth["parallax_outlier"].to_numpy(bool)
    residual = 1000.0 * (truth["parallax"] - truth["parallax_true"]).to_numpy()
    weight = 1.0 / (1000.0 * truth["parallax_error"].to_numpy()) ** 2
    form, row = _oracle_basis(inputs), {}
    for name, basis in (("plane", form[:, :4]), ("form", form)):
        scaled = basis * np.sqrt(weight)[:, None]
        coefficients = np.linalg.lstsq(scaled[clean], (residual * np.sqrt(weight))[clean], rcond=None)[0]
        error = basis @ coefficients - injected
        row |= {f"oracle_{name}_rms_uas": float(np.sqrt(np.mean(error**2))),
                f"oracle_{name}_variance_explained": float(1.0 - np.var(error) / np.var(injected))}  # fmt: skip
    return row


def _multivariate_recovery(mock: Path, run: Path, catalog: Path) -> dict:
    """The fitted Δϖ(G, BP−RP, Teff) against the injected one over the run's training stars.

    The injected Δϖ per star is ``offset_mas`` plus the mean sky systematic over the training stars (a constant
    the fit cannot tell from the level); the injected plane is its least-squares plane over the same stars (the
    non-linear terms project onto it). Returns the per-star RMS (µas), the fraction of the injected Δϖ's
    variance explained, and per plane coefficient the fitted value, its error, the injected value and the pull;
    and the oracle floor of the same numbers (:func:`_oracle_floor`).
    """
    from zpdist.nn.offset_plane import COEFFICIENTS, design_matrix

    truth = _training_truth(mock, run)
    injected = 1000.0 * (truth["offset_mas"] + truth["parallax_systematic_mas"].mean()).to_numpy()
    fitted = 1000.0 * pd.read_parquet(catalog).set_index("apogee_id").loc[truth.index, "zp_offset"].to_numpy()
    inputs = truth[["g", "bp_rp", "teff"]].to_numpy(float)
    ok = np.isfinite(fitted) & np.isfinite(injected) & np.isfinite(inputs).all(axis=1)
    residual = fitted[ok] - injected[ok]
    plane_true = np.linalg.lstsq(design_matrix(inputs[ok]), injected[ok], rcond=None)[0]
    plane = json.loads((run / "summary.json").read_text())["offset_plane"]
    row = {"star_rms_uas": float(np.sqrt(np.mean(residual**2))),
           "variance_explained": float(1.0 - np.var(residual) / np.var(injected[ok]))}  # fmt: skip
    row |= _oracle_floor(truth[ok], injected[ok], inputs[ok])
    for name, true in zip(COEFFICIENTS, plane_true, strict=True):
        value, error = plane[name]
        row |= {name: value, f"{name}_err": error, f"{name}_true": float(true), f"{name}_pull": (value - true) / error}
    return row


def _distance_pulls(mock: Path, catalog: Path) -> pd.DataFrame:
    """(d − d_true)/σ_d per star of the catalog with a finite distance, with SNR and true distance."""
    cat = pd.read_parquet(catalog)
    truth = pd.read_parquet(mock / "truth.parquet").set_index("apogee_id")
    cat = cat[np.isfinite(cat["dist"]) & (cat["dist_error"] > 0)]
    d_true = truth.loc[cat["apogee_id"], "distance_pc"].to_numpy()
    return pd.DataFrame(
        {"pull": (cat["dist"].to_numpy() - d_true) / cat["dist_error"].to_numpy(), "snr": cat["snr"].to_numpy(),
         "d_true_pc": d_true}
    )  # fmt: skip


def realisation(index: int, args: argparse.Namespace, work: Path, realism: Path) -> list[dict]:
    """Mock, train under each likelihood, (labels) predict: one row per likelihood."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    rng = np.random.default_rng(1000 + index)
    offset = float(rng.uniform(-60.0, -30.0))
    mock, log = work / f"mock{index}", work / f"log{index}.txt"
    mock_args = ["mock", "--out", str(mock), "--n-stars", str(args.n_stars), "--seed", str(100 + index)]
    mock_args += ["--offset-uas", f"{offset:.3f}", "--realism", str(realism), "--offset-model", args.offset_model]
    if not (mock / "truth.parquet").exists():  # a mock kept by an interrupted run is reused
        run_zpdist(mock_args + (["--no-spectra"] if args.mode == "labels" else []), log, threads)
    rows = []
    for likelihood in args.likelihood:
        run = work / f"run{index}_{likelihood}"
        train = ["train", "--table", str(mock / "allstar.fits"), "--mode", args.mode, "--out", str(run)]
        train += ["--likelihood", likelihood, "--seed", str(index), "--quiet", "--offset", args.offset_model]
        train += shlex.split(args.train_args)
        if args.mode == "spectra":
            train += ["--spectra", str(mock / "spectra.h5")]
        started = time.perf_counter()
        if not (run / "summary.json").exists():  # a finished run of an interrupted benchmark is reused
            run_zpdist(train, log, threads)
        seconds = time.perf_counter() - started
        summary = json.loads((run / "summary.json").read_text())
        truth, n_train = _truth(mock, run)
        row = {
            "realisation": index, "likelihood": likelihood, "injected_uas": offset, "truth_uas": truth,
            "fit_uas": summary["offset_uas"], "error_uas": summary["offset_uas_err"],
            "error_stat_uas": summary["offset_uas_err_stat"], "n_stars": n_train,
            "selection_bias_uas": summary.get("selection_bias_uas"), "train_s": seconds,
        }  # fmt: skip
        row["pull"] = (row["fit_uas"] - truth) / row["error_uas"]
        if args.mode == "labels":
            catalog = run / "catalog.parquet"
            run_zpdist(
                ["predict", "--run", str(run), "--table", str(mock / "allstar.fits"), "--out", str(catalog), "--quiet"],
                log,
                threads,
            )
            _distance_pulls(mock, catalog).assign(likelihood=likelihood, realisation=index).to_parquet(
                work / f"dist{index}_{likelihood}.parquet"
            )
            if args.offset_model == "multivariate":
                row |= _multivariate_recovery(mock, run, catalog)
        rows.append(row)
        print(
            f"realisation {index} {likelihood:9s}: fit {row['fit_uas']:7.2f} ± {row['error_uas']:.2f}  truth "
            f"{truth:7.2f}  pull {row['pull']:+.2f}  ({n_train} stars, {seconds:.0f} s)",
            flush=True,
        )
    if not args.keep:
        shutil.rmtree(mock, ignore_errors=True)
    return rows


def _pull_table(rows: pd.DataFrame) -> str:
    lines = ["| likelihood | realisations | pull mean | pull width | mean error (µas) | RMS(fit − truth) (µas) |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, group in rows.groupby("likelihood"):
        n, pulls = len(group), group["pull"].to_numpy()
        width = pulls.std(ddof=1) if n > 1 else float("nan")
        lines.append(
            f"| {name} | {n} | {pulls.mean():+.2f} ± {width / np.sqrt(n):.2f} | {width:.2f} ± "
            f"{width / np.sqrt(2 * (n - 1)) if n > 1 else float('nan'):.2f} | {group['error_uas'].mean():.2f} | "
            f"{np.sqrt(np.mean((group['fit_uas'] - group['truth_uas']) ** 2)):.2f} |"
        )
    return "\n".join(lines)


def _reachable_rms(rows: pd.DataFrame) -> np.ndarray:
    """Per realisation, the root-mean-square per-star error (µas) of a fit with the injected functional form's
    oracle shape and its level off by the run's quoted error: √(σ_level² + oracle_form_rms²). Every star's residual
    carries the level's error, whatever the shape; the two are taken as independent (they share the parallaxes)."""
    return np.hypot(rows["error_uas"].to_numpy(float), rows["oracle_form_rms_uas"].to_numpy(float))


def _multivariate_table(rows: pd.DataFrame) -> str:
    """Per likelihood: mean per-star RMS and variance explained, and per plane coefficient the mean fitted and
    injected values with the pull mean and width."""
    from zpdist.nn.offset_plane import COEFFICIENTS

    lines = ["| likelihood | coefficient | mean fitted | mean injected | mean error | pull mean | pull width |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    summary = []
    for name, group in rows.groupby("likelihood"):
        n = len(group)
        reachable = _reachable_rms(group)
        summary.append(
            f"- {name}, {n} realisations: per-star RMS against the injected Δϖ {group['star_rms_uas'].mean():.2f} µas "
            f"(range {group['star_rms_uas'].min():.2f}–{group['star_rms_uas'].max():.2f}); variance explained "
            f"{group['variance_explained'].mean():.0%} (range {group['variance_explained'].min():.0%}–"
            f"{group['variance_explained'].max():.0%}); the oracle floor (true parallaxes known, outliers dropped): "
            f"a plane {group['oracle_plane_rms_uas'].mean():.2f} µas, "
            f"{group['oracle_plane_variance_explained'].mean():.0%}; "
            f"the injected functional form {group['oracle_form_rms_uas'].mean():.2f} µas, "
            f"{group['oracle_form_variance_explained'].mean():.0%}; that form with the level off by its quoted "
            f"error {np.sqrt(np.mean(reachable**2)):.2f} µas (RMS over realisations; below 3 µas in "
            f"{int((reachable < 3.0).sum())} of {n})"
        )
        for coefficient in COEFFICIENTS:
            pulls = group[f"{coefficient}_pull"].to_numpy()
            width = pulls.std(ddof=1) if n > 1 else float("nan")
            fitted, injected = group[coefficient].mean(), group[f"{coefficient}_true"].mean()
            error = group[f"{coefficient}_err"].mean()
            lines.append(
                f"| {name} | {coefficient} | {fitted:+.2f} | {injected:+.2f} | {error:.2f} | "
                f"{pulls.mean():+.2f} ± {width / np.sqrt(n):.2f} | {width:.2f} |"
            )
    return "Multivariate offset against the injected one:\n\n" + "\n".join(summary) + "\n\n" + "\n".join(lines)


def _binned_pulls(ax, group: pd.DataFrame, column: str, bins: np.ndarray, name: str) -> None:
    """Median and half the 16–84 % width of the distance pulls in bins of ``column``."""
    index = np.digitize(group[column], bins)
    centres, medians, widths = [], [], []
    for i in range(1, len(bins)):
        pulls = group["pull"].to_numpy()[index == i]
        if len(pulls) > 10:
            lo, mid, hi = np.percentile(pulls, [16, 50, 84])
            centres.append(np.sqrt(bins[i - 1] * bins[i]))
            medians.append(mid)
            widths.append((hi - lo) / 2)
    ax.errorbar(centres, medians, yerr=widths, marker="o", capsize=3, label=f"{name}: median ± half 16–84 %")


def _plots(rows: pd.DataFrame, distances: pd.DataFrame | None, stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, group in rows.groupby("likelihood"):
        ax.hist(group["pull"], bins=np.linspace(-6, 12, 37), alpha=0.6, label=f"{name} ({len(group)} realisations)")
    grid = np.linspace(-6, 12, 400)
    scale = len(rows) / rows["likelihood"].nunique() * 0.5
    ax.plot(grid, scale * np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1)")
    ax.set_xlabel("pull (Δϖ_fit − Δϖ_true) / σ")
    ax.set_ylabel("realisations")
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_name(stem.name + "-pulls.png"), dpi=120)
    written.append(stem.with_name(stem.name + "-pulls.png"))
    if distances is not None and len(distances):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for name, group in distances.groupby("likelihood"):
            _binned_pulls(axes[0], group, "snr", np.geomspace(50, 1000, 9), name)
            _binned_pulls(axes[1], group, "d_true_pc", np.geomspace(200, 20000, 11), name)
        for ax, label in zip(axes, ("SNR", "true distance (pc)"), strict=True):
            for level, style in ((0, "-"), (1, ":"), (-1, ":")):
                ax.axhline(level, color="k", ls=style, lw=0.5)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("(d − d_true) / σ_d")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(stem.with_name(stem.name + "-distances.png"), dpi=120)
        written.append(stem.with_name(stem.name + "-distances.png"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realisations", type=int, default=20)
    parser.add_argument("--first", type=int, default=0, help="index of the first realisation (seeds follow it)")
    parser.add_argument("--n-stars", type=int, default=34000, help="mock stars (≈ 8,000 pass the training cuts)")
    parser.add_argument("--mode", choices=("labels", "spectra"), default="labels")
    parser.add_argument("--likelihood", nargs="+", choices=("selection", "paper"), default=["selection", "paper"])
    parser.add_argument("--workdir", type=Path, help="where mocks and runs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the mocks")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--jobs", type=int, default=1, help="realisations run at once (default 1)")
    parser.add_argument("--train-args", default="", help="extra `zpdist train` options, one quoted string")
    parser.add_argument(
        "--offset-model", choices=("constant", "multivariate"), default="constant",
        help="constant: the realistic family without its non-linear offset (default); multivariate: the injected "
        "plane plus the non-linear terms, fitted by the multivariate offset model (labels mode)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.offset_model == "multivariate" and args.mode != "labels":
        parser.error("--offset-model multivariate needs --mode labels (the per-star Δϖ comes from `zpdist predict`)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="zpdist-calibration-"))
    work.mkdir(parents=True, exist_ok=True)
    realism = work / "realism.toml"
    parts = REALISM_PARTS + ((NONLINEAR_PART,) if args.offset_model == "multivariate" else ())
    realism.write_text("".join(f"[{part}]\n" for part in parts))
    rows = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        indices = range(args.first, args.first + args.realisations)
        for done in pool.map(lambda index: realisation(index, args, work, realism), indices):
            rows += done
            pd.DataFrame(rows).to_csv(work / "rows.csv", index=False)
    frame = pd.DataFrame(rows).sort_values(["realisation", "likelihood"], ignore_index=True)
    distances = None
    parts = sorted(work.glob("dist*.parquet"))
    if parts:
        distances = pd.concat([pd.read_parquet(p) for p in parts])
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"calibration-{args.mode}{args.tag}"
    header = (
        f"# Δϖ calibration over realisations of the realistic mock ({args.mode} mode)\n\n"
        f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
        f"{args.n_stars} mock stars per realisation; command: `python benchmarks/calibration.py "
        f"{' '.join(sys.argv[1:])}`\n\n"
    )
    table = _pull_table(frame)
    if args.offset_model == "multivariate":
        table += "\n\n" + _multivariate_table(frame)
    rows_md = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    rows_md += "\n".join("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |"
                          for r in frame.itertuples(index=False))  # fmt: skip
    dist_md = ""
    if distances is not None:
        dist_md = "\n\nPer-star distance pulls (d − d_true)/σ_d:\n\n| likelihood | stars | median | half 16–84 % |\n"
        dist_md += "|---|---:|---:|---:|\n"
        for name, group in distances.groupby("likelihood"):
            lo, hi = np.percentile(group["pull"], [16, 84])
            dist_md += f"| {name} | {len(group)} | {np.median(group['pull']):+.2f} | {(hi - lo) / 2:.2f} |\n"
    text = header + table + dist_md + "\n\n" + rows_md + "\n"
    stem.with_suffix(".md").write_text(text)
    frame.to_csv(stem.with_suffix(".csv"), index=False)
    plots = _plots(frame, distances, stem)
    print(text)
    print("written:", stem.with_suffix(".md"), *plots)


if __name__ == "__main__":
    main()
