"""Dashboard speed: re-rendering a datashaded map after a filter change, and preparing a 100k-row download.

For 277k stars (APOGEE DR14-sized) and 10M stars, times the server side of a filter change on the Δϖ map over
(G, BP−RP) — mask, point subset, datashader aggregation and the Bokeh model update, with the plot attached as in a
session — beside datashader's raw aggregation of the same filtered points on the same grid, in the same run; their
ratio is the dashboard's overhead. Then times writing a 100k-row selection (all catalog columns) in each format.

Never run by the tests. Usage: ``python benchmarks/bench_dashboard.py [--sizes 277000 10000000] [--repeats 3]``.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd

from zpdist.catalog import PASSTHROUGH_COLUMNS, UNITS
from zpdist.dashboard.export import FORMATS, prepare_download
from zpdist.dashboard.state import Catalog, DashboardState
from zpdist.dashboard.views.base import RASTER_BINS, datashaded_map, dimension

#: Teff windows the benchmark alternates between (K).
FILTERS = ((4000.0, 4800.0), (4200.0, 5000.0))


def _catalog(n_stars: int, seed: int = 0) -> Catalog:
    """A catalog with the columns the Δϖ map and its filter use (derived columns added as on loading)."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(3800, 5300, n_stars)
    frame = pd.DataFrame({
        "phot_g_mean_mag": rng.uniform(8, 17, n_stars),
        "bp_rp": 1.0 + (5300 - teff) / 1000 + rng.normal(0, 0.1, n_stars),
        "teff": teff,
        "zp_offset": -0.05 + 0.003 * rng.normal(size=n_stars),
    })  # fmt: skip
    frame["zp_offset_uas"] = 1000 * frame["zp_offset"]
    return Catalog(frame, {}, Path("synthetic.parquet"), ("phot_g_mean_mag", "bp_rp", "teff", "zp_offset"))


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_map(n_stars: int, repeats: int) -> dict:
    """Seconds for a filter change on an attached map, and for datashader alone on the same points."""
    catalog = _catalog(n_stars)
    state = DashboardState(catalog)
    x, y = dimension(catalog, "phot_g_mean_mag"), dimension(catalog, "bp_rp")
    plot = hv.renderer("bokeh").get_plot(datashaded_map(state, x, y, "zp_offset_uas", "Δϖ"))
    count = iter(range(10**9))

    def change_filter() -> None:
        state.set_range("teff", FILTERS[next(count) % 2])

    change_filter()  # warm up (numba compilation)
    dashboard = _best(change_filter, repeats)
    assert plot.handles["source"].data  # the Bokeh model was updated
    points = state.filtered(["phot_g_mean_mag", "bp_rp", "zp_offset_uas"])
    canvas = ds.Canvas(plot_width=RASTER_BINS[0], plot_height=RASTER_BINS[1], x_range=x.range, y_range=y.range)

    def aggregate() -> None:
        canvas.points(points, "phot_g_mean_mag", "bp_rp", agg=ds.mean("zp_offset_uas"))

    aggregate()
    raw = _best(aggregate, repeats)
    return {"n": n_stars, "n_filtered": len(points), "dashboard_s": dashboard, "datashader_s": raw}


def bench_download(n_rows: int, repeats: int) -> list[dict]:
    """Seconds to write a selection of ``n_rows`` with every catalog column, per format (via load → write)."""
    rng = np.random.default_rng(1)
    names = list(dict.fromkeys([*PASSTHROUGH_COLUMNS, *UNITS]))
    frame = pd.DataFrame({c: rng.normal(size=n_rows) for c in names if c != "apogee_id"})
    frame.insert(0, "apogee_id", [f"2M{i:016d}" for i in range(n_rows)])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for fmt in FORMATS:
            seconds = _best(lambda fmt=fmt: prepare_download(frame, fmt, {"export": {}}, Path(folder)), repeats)
            path = max(Path(folder).glob(f"*{FORMATS[fmt]}"), key=lambda p: p.stat().st_mtime)
            rows.append({"format": fmt, "seconds": seconds, "mb": path.stat().st_size / 1e6, "columns": frame.shape[1]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[277_000, 10_000_000], help="catalog sizes (stars)")
    parser.add_argument("--download-rows", type=int, default=100_000, help="rows of the download (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure; the best is kept (default 3)")
    args = parser.parse_args()
    logging.getLogger("astropy").setLevel(logging.ERROR)  # 'dex' is not a FITS unit: said once per file
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}\n")
    print(
        "| stars | after filter | map re-render after a filter change (s) | datashader aggregation alone (s) | ratio |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        r = bench_map(n, args.repeats)
        print(f"| {r['n']:,} | {r['n_filtered']:,} | {r['dashboard_s']:.3f} | {r['datashader_s']:.3f} | "
              f"{r['dashboard_s'] / r['datashader_s']:.1f} |", flush=True)  # fmt: skip
    print(f"\n| download of {args.download_rows:,} rows | columns | seconds | size (MB) |")
    print("|---|---:|---:|---:|")
    for r in bench_download(args.download_rows, args.repeats):
        print(f"| {r['format']} | {r['columns']} | {r['seconds']:.2f} | {r['mb']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
