"""APOKASC-2 consistency check (issue 10): Δϖ of the Kepler giants from spectroscopic labels against seismic ones.

From ``merged_APOKASC2_x_GaiaDR2_6676.fits`` (in ``../shared/realdata`` or ``$ZPDIST_REALDATA``), the 6,529 giants
with a seismic mass and radius go into four tables, written under ``--workdir``:

- ``spectroscopic.fits``: the ASPCAP (DR14) labels as they are;
- ``seismic.fits``: log g = 4.438 + log10 M − 2 log10 R (cgs, M and R in solar units from ``Mcorr``, ``Rcorr``) and
  ``MASS`` = ``Mcorr``, trained with mass as a fifth label;
- ``spectroscopic-detrended.fits``: ASPCAP log g minus its linear trend against K relative to the seismic log g
  (the mean difference kept). A diagnostic, not a method: it borrows the seismic scale to ask whether that trend
  is what separates the two fits.
- ``spectroscopic-drift-removed.fits``: ASPCAP log g minus only its conditional drift with K (below), per
  evolutionary state (unclassified stars unchanged), the median K's log g kept. Also a diagnostic: it asks how
  much of the disagreement is the part of the labels' error no method fed these labels could see.

The trend of log g_ASPCAP − log g_seis with K is fitted by least squares with 4σ clipping (error from the
residual scatter), and shown binned in a PNG; the same fit with the seismic log g, T_eff, [Fe/H] and [Mg/Fe] as
further terms, per evolutionary state, gives the part of the trend the spectroscopic labels cannot reveal
(:func:`conditional_trends`). Each table is trained (labels mode, the tool's defaults plus
``--train-args``) for every seed, and the table printed and written to ``benchmarks/results/apokasc*.md`` gives
each fit, its quoted error and the spectroscopic fits' distance from the seismic fit of the same seed in
combined σ. The Kepler field's sky-systematics floor (17 µas, Lindegren et al. 2018) is common to all the fits
and cancels in their differences, so it is left out. Never run by the tests (they check its helpers).

Usage::

    python benchmarks/apokasc.py --seeds 0 1 2 [--train-args "--half-samples 10"] [--workdir DIR] [--jobs 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import numpy as np
from astropy.table import Table

from zpdist.io.columns import missing_to_nan
from zpdist.mock.stars import LOGG_SUN

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import RESULTS, run_zpdist

REALDATA = Path(os.environ.get("ZPDIST_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
MERGED = "merged_APOKASC2_x_GaiaDR2_6676.fits"
#: The labels of each table (the seismic one adds the mass).
SPECTROSCOPIC_LABELS = "teff,logg,fe_h,mg_fe"
LABELS = {
    "spectroscopic": SPECTROSCOPIC_LABELS,
    "seismic": SPECTROSCOPIC_LABELS + ",mass",
    "spectroscopic-detrended": SPECTROSCOPIC_LABELS,
    "spectroscopic-drift-removed": SPECTROSCOPIC_LABELS,
}


def logg_trend(
    logg_spec: np.ndarray, logg_seis: np.ndarray, k_mag: np.ndarray, covariates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of log g_spec − log g_seis (dex) against K − 10 (mag), clipped at 4σ five times.

    Parameters
    ----------
    logg_spec, logg_seis, k_mag : ndarray, shape (N,)
        The two log g (dex) and K (mag); stars where any is NaN are left out.
    covariates : ndarray, shape (N, m), optional
        Further columns of the design (left out where NaN): the K slope is then the trend at fixed covariates.

    Returns
    -------
    coefficients : ndarray, shape (2 + m,)
        Intercept (dex, at K = 10 and zero covariates), K slope (dex/mag), then one per covariate.
    errors : ndarray, shape (2 + m,)
        Their standard errors from the scatter about the fit.
    """
    difference = logg_spec - logg_seis
    extra = np.empty((len(difference), 0)) if covariates is None else np.asarray(covariates, float)
    extra = extra.reshape(len(difference), -1)  # one covariate may come as a 1-D array
    ok = np.isfinite(difference) & np.isfinite(k_mag) & np.isfinite(extra).all(axis=1)
    design, target = np.column_stack([np.ones(ok.sum()), k_mag[ok] - 10.0, extra[ok]]), difference[ok]
    keep = np.ones(len(target), bool)
    for clip in range(6):  # five clippings, then the fit to the stars the last one kept
        coefficients = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
        residual = target - design @ coefficients
        if clip < 5:
            keep = np.abs(residual) < 4.0 * 1.4826 * np.median(np.abs(residual[keep]))
    covariance = np.linalg.inv(design[keep].T @ design[keep]) * np.var(residual[keep], ddof=design.shape[1])
    return coefficients, np.sqrt(np.diag(covariance))


def _evolutionary_state(table: Table) -> np.ndarray:
    """APOKASC-2's ``ES`` as stripped strings: "RGB", "RC", or "-9999.0" where unclassified."""
    return np.char.strip(np.asarray(table["ES"]).astype(str))


def k_magnitudes(table: Table) -> np.ndarray:
    """2MASS K (mag) of each star, NaN where missing (−9999) or not a magnitude (outside 0–30)."""
    k_mag = missing_to_nan(table["K"])
    k_mag[(k_mag < 0) | (k_mag > 30)] = np.nan
    return k_mag


def conditional_trends(table: Table, logg_seis: np.ndarray, k_mag: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """The drift of ASPCAP's log g with K that its other labels cannot explain, per evolutionary state.

    log g_ASPCAP − log g_seis is fitted (:func:`logg_trend`) against K with the seismic log g, its square, and the
    ASPCAP T_eff, [Fe/H] and [Mg/Fe] as further terms, separately for the RGB and red-clump stars of APOKASC-2's
    ``ES`` column. The K slope is then the drift at fixed seismic log g and ASPCAP T_eff and abundances: a luminosity
    learned from the spectroscopic labels alone cannot absorb it. (Pooled over both states the same fit gives a
    slope of the other sign: the two states' log g offsets differ and the red clump's share changes with K, a
    mixture the labels do not resolve either; docs/method.md §12.) The pivots 2.5 dex and 4700 K are a typical
    giant's; they set only the intercept's meaning.

    Parameters
    ----------
    table : astropy.table.Table
        APOKASC-2 rows with ``LOGG`` (dex), ``TEFF`` (K), ``FE_H``, ``MG_FE`` (dex) and ``ES``; −9999 is missing.
    logg_seis : ndarray, shape (N,)
        Seismic log g (dex).
    k_mag : ndarray, shape (N,)
        K (mag), NaN where missing (:func:`k_magnitudes`).

    Returns
    -------
    dict
        For "RGB" and "RC": the K slope (dex/mag), its standard error (dex/mag) and the state's number of members.
    """
    pivot = logg_seis - 2.5
    teff = (missing_to_nan(table["TEFF"]) - 4700.0) / 1000.0
    covariates = np.column_stack([pivot, pivot**2, teff, missing_to_nan(table["FE_H"]), missing_to_nan(table["MG_FE"])])
    state, logg_aspcap = _evolutionary_state(table), missing_to_nan(table["LOGG"])
    trends = {}
    for name in ("RGB", "RC"):
        member = state == name
        logg_spec = np.where(member, logg_aspcap, np.nan)
        coefficients, errors = logg_trend(logg_spec, logg_seis, k_mag, covariates)
        trends[name] = (float(coefficients[1]), float(errors[1]), int(member.sum()))
    return trends


def _without_drift(table: Table, slope_dex_per_mag: np.ndarray, k_mag: np.ndarray) -> Table:
    """``table`` with each star's ``slope_dex_per_mag`` × (K − median K) (dex) taken from LOGG where K is known;
    the log g at the median K is kept."""
    shift = slope_dex_per_mag * (k_mag - np.nanmedian(k_mag))
    out = table.copy()
    out["LOGG"] = np.where(np.isfinite(shift), table["LOGG"] - shift, table["LOGG"])
    return out


def write_tables(merged: Path, work: Path, plot: Path | None = None) -> dict:
    """The tables of the module docstring under ``work`` (and the trend's PNG at ``plot`` if given); returns the
    log g trend (dex, dex/mag, errors), the conditional trends (:func:`conditional_trends`) and the stars."""
    table = Table.read(merged)
    table = table[(table["Mcorr"] > 0) & (table["Rcorr"] > 0)]
    seismic = table.copy()
    seismic["LOGG"] = LOGG_SUN + np.log10(table["Mcorr"]) - 2.0 * np.log10(table["Rcorr"])
    seismic["MASS"] = table["Mcorr"]
    logg_seis = np.asarray(seismic["LOGG"], float)
    k_mag = k_magnitudes(table)
    coefficients, errors = logg_trend(missing_to_nan(table["LOGG"]), logg_seis, k_mag)
    conditional = conditional_trends(table, logg_seis, k_mag)
    state = _evolutionary_state(table)
    drift = np.select([state == name for name in conditional], [slope for slope, _, _ in conditional.values()], 0.0)
    tables = {"spectroscopic": table, "seismic": seismic,
              "spectroscopic-detrended": _without_drift(table, np.full(len(table), coefficients[1]), k_mag),
              "spectroscopic-drift-removed": _without_drift(table, drift, k_mag)}  # fmt: skip
    for name, out in tables.items():
        out.write(work / f"{name}.fits", overwrite=True)
    if plot is not None:
        _plot_trend(np.asarray(table["LOGG"] - seismic["LOGG"]), k_mag, coefficients, plot)
    return {"intercept_dex": coefficients[0], "slope_dex_per_mag": coefficients[1],
            "intercept_err": errors[0], "slope_err": errors[1], "n_stars": len(table),
            "conditional": conditional}  # fmt: skip


def _plot_trend(difference: np.ndarray, k_mag: np.ndarray, coefficients: np.ndarray, path: Path) -> None:
    """log g_spec − log g_seis against K: the stars, their medians in K quintiles and the fitted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.isfinite(difference) & np.isfinite(k_mag) & (np.abs(difference) < 0.5)
    edges = np.percentile(k_mag[ok], np.linspace(0, 100, 6))
    bins = [ok & (k_mag >= lo) & (k_mag <= hi) for lo, hi in pairwise(edges)]
    centres, medians = [np.median(k_mag[b]) for b in bins], [np.median(difference[b]) for b in bins]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(k_mag[ok], difference[ok], s=2, alpha=0.2, color="grey", label="APOKASC-2 giants")
    ax.plot(centres, medians, "o", color="C0", label="median per K quintile")
    grid = np.linspace(np.nanmin(k_mag[ok]), np.nanmax(k_mag[ok]), 10)
    ax.plot(grid, coefficients[0] + coefficients[1] * (grid - 10.0), color="C1",
            label=f"fit: {coefficients[1]:+.4f} dex/mag")  # fmt: skip
    ax.set_ylim(-0.3, 0.3)
    ax.set_xlabel("K (mag)")
    ax.set_ylabel("log g (ASPCAP) − log g (seismic) (dex)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def train(name: str, seed: int, work: Path, train_args: list[str], threads: int | None) -> dict:
    """Train ``name``'s table with ``seed`` (a finished run is reused); its offset and errors (µas)."""
    run = work / f"{name}-seed{seed}"
    if not (run / "summary.json").exists():
        args = ["train", "--table", str(work / f"{name}.fits"), "--mode", "labels", "--labels", LABELS[name],
                "--seed", str(seed), "--out", str(run), "--quiet", *train_args]  # fmt: skip
        run_zpdist(args, work / f"{name}-seed{seed}.log", threads)
    summary = json.loads((run / "summary.json").read_text())
    return {"table": name, "seed": seed, "offset_uas": summary["offset_uas"], "error_uas": summary["offset_uas_err"],
            "method": summary.get("offset_uas_err_method", "")}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one fit per table each)")
    parser.add_argument("--workdir", type=Path, help="where the tables and runs go (default: a temporary folder)")
    parser.add_argument("--train-args", default="", help="extra `zpdist train` options, one quoted string")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once (default 1)")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    args = parser.parse_args(argv)
    merged = REALDATA / MERGED
    if not merged.is_file():
        parser.error(f"{merged} not found: set ZPDIST_REALDATA to the folder of the real data files")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="zpdist-apokasc-"))
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    plot = RESULTS / "apokasc-logg-trend.png"
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed (pip install -e '.[bench]'): the trend's PNG is not drawn")
        plot = None
    trend = write_tables(merged, work, plot)
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    jobs = [(name, seed) for seed in args.seeds for name in LABELS]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda job: train(*job, work, shlex.split(args.train_args), threads), jobs))
    fits = {(row["table"], row["seed"]): row for row in rows}
    lines = ["| seed | table | Δϖ (µas) | error (µas) | error from | minus seismic (µas) | in combined σ |",
             "|---:|---|---:|---:|---|---:|---:|"]  # fmt: skip
    for row in rows:
        seismic = fits[("seismic", row["seed"])]
        difference = row["offset_uas"] - seismic["offset_uas"]
        sigma = np.hypot(row["error_uas"], seismic["error_uas"])
        apart = "" if row["table"] == "seismic" else f"{difference:+.1f} | {abs(difference) / sigma:.1f}"
        lines.append(f"| {row['seed']} | {row['table']} | {row['offset_uas']:.1f} | {row['error_uas']:.1f} | "
                     f"{row['method']} | {apart or ' | '} |")  # fmt: skip
    conditional = "; ".join(
        f"{name} {slope:+.4f} ± {error:.4f} dex/mag ({n} stars)"
        for name, (slope, error, n) in trend["conditional"].items()
    )
    text = (
        f"# APOKASC-2: spectroscopic against seismic labels\n\n{platform.machine()}, {os.cpu_count()} cores; command: "
        f"`python benchmarks/apokasc.py {' '.join(sys.argv[1:])}`\n\n{trend['n_stars']} giants. log g (ASPCAP) − "
        f"log g (seismic) = {trend['intercept_dex']:+.4f} ± {trend['intercept_err']:.4f} dex at K = 10, slope "
        f"{trend['slope_dex_per_mag']:+.4f} ± {trend['slope_err']:.4f} dex/mag "
        f"(`benchmarks/results/apokasc-logg-trend.png`). At fixed seismic log g, T_eff, [Fe/H] and [Mg/Fe] "
        f"(per evolutionary state): {conditional}.\n\n" + "\n".join(lines) + "\n"
    )
    (RESULTS / f"apokasc{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
