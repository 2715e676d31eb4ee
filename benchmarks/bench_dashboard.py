"""Dashboard speed: re-rendering a datashaded map after a filter change, preparing a 100k-row download, and the
Gaia-scale section of the Zero-point tab.

For 277k stars (APOGEE DR14-sized) and 10M stars, times the server side of a filter change on the Δϖ map over
(G, BP−RP), made selectable and attached to a Bokeh plot as in a session: the mask, the aggregation and the Bokeh
models' update, each change to a filter state not seen before. Each change is paired with datashader's raw
aggregation (``Canvas.points``, the same mean on the same grid and view) of that change's filtered stars (copied out
untimed), timed right after it, then with the same change made by a second session (which finds the first one's
image); the pairs' medians and the median of their ratios are reported, the image shown checked against
datashader's. Then times writing a 100k-row selection (all catalog columns) in each format.

The Gaia-scale section (``--gaia-rows``, default 10⁶ and 10⁷; 10⁸ only when asked, about 5 GB of Parquet): writes a
mock Gaia table (``zpdist mock-gaia``) and a ``zpdist zeropoint``-shaped output beside it (Δϖ a smooth function
of G, BP−RP, Teff; flag outside a box), then times building the fine histograms (one dask pass, rows/s), writing
and reading their cache, the server side of a zoom on the mean-Δϖ map (re-binning and the Bokeh update, plot
attached) and of the flag toggle, and, for comparison, datashader aggregating the same zoom window from the
table persisted in memory as a dask DataFrame (the alternative design, whose cost grows with the rows).

Never run by the tests. Usage: ``python benchmarks/bench_dashboard.py [--sections map download gaia]
[--sizes 277000 10000000] [--pairs 15] [--gaia-rows 1e6 1e7] [--repeats 3]``. Prints Markdown tables; the map table
also goes to ``benchmarks/results/dashboard-map.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zpdist.catalog import PASSTHROUGH_COLUMNS, UNITS
from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog
from zpdist.zeropoint import OUTPUT_FIELDS, ZEROPOINT_FILE, ZeroPointConfig
from zpdist.zeropoint_maps.build import build_histograms
from zpdist.zeropoint_maps.histograms import DISPLAY_BINS, MAP_PLANES, GaiaHistograms
from zpdist.zeropoint_maps.table import VALUE, open_zeropoint_output
from zpdist_dashboard.export import FORMATS, DownloadFolder
from zpdist_dashboard.raster import RASTER_BINS
from zpdist_dashboard.state import Catalog, DashboardState
from zpdist_dashboard.views.base import datashaded_map, dimension, selectable
from zpdist_dashboard.views.gaia_scale import GaiaScaleView

#: Where the map table is written.
MAP_RESULTS = Path(__file__).resolve().parent / "results" / "dashboard-map.md"
#: The Teff window (K) of the first filter change; each later one is shifted by 1 K, so that every timed change
#: asks for a filter state no session has seen (nothing comes from the shared images).
TEFF_WINDOW = (4000.0, 4800.0)


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


def _seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_map(n_stars: int, pairs: int) -> dict:
    """Seconds (medians of ``pairs`` interleaved pairs, after one pair of warm-up) for a filter change on an attached
    map (filters no session has used: aggregated anew), for datashader alone on that change's filtered stars, and for
    the same change in a second session (the first one's image shared); the median and range of the pairs'
    ratios."""
    catalog = _catalog(n_stars)
    first, second = DashboardState(catalog), DashboardState(catalog)
    x, y, value = dimension(catalog, "phot_g_mean_mag"), dimension(catalog, "bp_rp"), "zp_offset_uas"
    plots = [
        hv.renderer("bokeh").get_plot(selectable(datashaded_map(s, x, y, value, "Δϖ"), s, x.name, y.name))
        for s in (first, second)
    ]
    canvas = ds.Canvas(plot_width=RASTER_BINS[0], plot_height=RASTER_BINS[1], x_range=x.range, y_range=y.range)
    times = []
    for shift in range(pairs + 1):
        window = (TEFF_WINDOW[0] + shift, TEFF_WINDOW[1] + shift)
        dashboard, _ = _seconds(lambda window=window: first.set_range("teff", window))
        points = first.filtered([x.name, y.name, value])
        raw, expected = _seconds(lambda points=points: canvas.points(points, x.name, y.name, agg=ds.mean(value)))
        shared, _ = _seconds(lambda window=window: second.set_range("teff", window))
        times.append((dashboard, raw, shared))
    for plot in plots:  # like with like: the image shown is datashader's, to single precision
        atol = 2.0**-24 * np.nanmax(np.abs(points[value]))
        shown = plot.handles["source"].data["image"][0]
        np.testing.assert_allclose(shown, expected.to_numpy(), rtol=2.0**-23, atol=atol, equal_nan=True)
    dashboard, raw, shared = np.array(times[1:]).T
    ratios = dashboard / raw
    return {"n": n_stars, "n_filtered": len(points), "pairs": pairs, "dashboard_s": np.median(dashboard),
            "datashader_s": np.median(raw), "ratio": np.median(ratios), "ratio_range": (ratios.min(), ratios.max()),
            "shared_s": np.median(shared)}  # fmt: skip


def bench_download(n_rows: int, repeats: int) -> list[dict]:
    """Seconds to write a selection of ``n_rows`` with every catalog column, per format (via load → write)."""
    rng = np.random.default_rng(1)
    names = list(dict.fromkeys([*PASSTHROUGH_COLUMNS, *UNITS]))
    frame = pd.DataFrame({c: rng.normal(size=n_rows) for c in names if c != "apogee_id"})
    frame.insert(0, "apogee_id", [f"2M{i:016d}" for i in range(n_rows)])
    rows, requests = [], iter(range(10**9))
    with tempfile.TemporaryDirectory() as parent:
        folder = DownloadFolder(parent, max_bytes=10**12)  # each timing a new request: the same one is not rewritten
        for fmt in FORMATS:
            seconds = _best(lambda fmt=fmt: folder.prepare(frame, fmt, {"export": {}}, {"n": next(requests)}), repeats)
            path = max(folder.path.glob(f"*{FORMATS[fmt]}"), key=lambda p: p.stat().st_mtime)
            rows.append({"format": fmt, "seconds": seconds, "mb": path.stat().st_size / 1e6, "columns": frame.shape[1]})
    return rows


#: Rows per file of the mock Gaia table (as `zpdist mock-gaia`'s default).
GAIA_PARTITION_ROWS = 1_000_000
#: The two windows a zoom alternates between on the (G, BP−RP) map: (G range, BP−RP range).
ZOOMS = (((12.0, 18.0), (0.5, 2.5)), ((14.0, 15.5), (1.0, 1.5)))


def synthetic_zeropoint(inputs: Path, out: Path) -> None:
    """Beside each file of ``inputs``, a file shaped as `zpdist zeropoint` writes it (source_id and the four output
    columns, same rows): Δϖ (mas) a smooth function of G, BP−RP and Teff, flagged outside 8 < G < 17 and
    3,500 < Teff < 7,000 K or where an input is missing; and ``zeropoint.json`` naming the inputs."""
    config = ZeroPointConfig()
    schema = pa.schema([pa.field("source_id", pa.int64()), *OUTPUT_FIELDS])
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(inputs.glob("*.parquet")):
        table = pq.read_table(path, columns=[config.columns.source_id, *config.columns.inputs])
        g, bp_rp, teff = (table.column(c).to_numpy(zero_copy_only=False) for c in config.columns.inputs)
        zp = (-0.05 + 0.003 * (g - 15.0) - 0.01 * (bp_rp - 1.0) + 2e-6 * (teff - 5000.0)).astype(np.float32)
        inside = (g > 8.0) & (g < 17.0) & (teff > 3500.0) & (teff < 7000.0)
        n = len(g)
        columns = [table.column(0), zp, np.full(n, 0.002, np.float32), np.zeros(n, np.float32), ~inside]
        pq.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=schema), out / path.name)
    record = {"status": "complete", "input": str(inputs / "*.parquet"), "config": config.to_dict()}
    (out / ZEROPOINT_FILE).write_text(json.dumps(record))


def bench_gaia(n_rows: int, repeats: int, folder: Path) -> dict:
    """Seconds to build, cache and re-read the histograms of ``n_rows``, and per zoom and toggle of a map; the same
    zoom by datashader over the table persisted as a dask DataFrame."""
    inputs, output = folder / f"gaia_{n_rows}", folder / f"zp_{n_rows}"
    if not (output / ZEROPOINT_FILE).exists():
        config = GaiaCatalogConfig(n_rows=n_rows, partition_rows=GAIA_PARTITION_ROWS)
        write_gaia_catalog(config, inputs, workers=os.cpu_count() or 1, progress=False)
        synthetic_zeropoint(inputs, output)
    table = open_zeropoint_output(output)
    start = time.perf_counter()
    histograms = build_histograms(table, progress=False)
    build = time.perf_counter() - start
    cache = folder / f"histograms_{n_rows}.npz"
    start = time.perf_counter()
    histograms.to_npz(cache, "benchmark")
    write = time.perf_counter() - start
    start = time.perf_counter()
    GaiaHistograms.from_npz(cache, "benchmark", table.source)
    read = time.perf_counter() - start

    view = GaiaScaleView(histograms=histograms, outside="shown")
    dmap = view._map(MAP_PLANES[0], "mean")
    plot = hv.renderer("bokeh").get_plot(dmap)
    zoom = next(s for s in dmap.streams if isinstance(s, hv.streams.RangeXY))
    count = iter(range(10**9))

    def change_zoom() -> None:
        x_range, y_range = ZOOMS[next(count) % 2]
        zoom.event(x_range=x_range, y_range=y_range)

    def toggle() -> None:
        view.outside = ("hidden", "shown")[next(count) % 2]

    change_zoom()
    zoom_s = _best(change_zoom, repeats)
    toggle()
    toggle_s = _best(toggle, repeats)
    assert plot.handles["source"].data["image"]  # the Bokeh model was updated

    frame = table.to_dask().persist(scheduler="threads")
    x, y = MAP_PLANES[0]
    canvas = ds.Canvas(*DISPLAY_BINS, x_range=ZOOMS[1][0], y_range=ZOOMS[1][1])

    def datashader_zoom() -> None:
        canvas.points(frame, x, y, agg=ds.mean(VALUE)).compute()

    datashader_zoom()
    datashader_s = _best(datashader_zoom, max(1, repeats - 1))
    return {
        "n": table.n_rows, "files": len(table.partitions), "build_s": build, "write_s": write, "read_s": read,
        "cache_mb": cache.stat().st_size / 1e6, "memory_mb": sum(a.nbytes for a in histograms.planes.values()) / 1e6,
        "zoom_s": zoom_s, "toggle_s": toggle_s, "datashader_s": datashader_s,
        "persisted_mb": sum(frame.memory_usage(deep=True).compute()) / 1e6,
    }  # fmt: skip


def _rows(text: str) -> int:
    return int(float(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("map", "download", "gaia"),
                        default=["map", "download", "gaia"], help="what to time (default: all)")  # fmt: skip
    parser.add_argument("--sizes", type=int, nargs="+", default=[277_000, 10_000_000], help="catalog sizes (stars)")
    parser.add_argument("--download-rows", type=int, default=100_000, help="rows of the download (default 100000)")
    parser.add_argument("--gaia-rows", type=_rows, nargs="+", default=[10**6, 10**7],
                        help="Gaia table sizes, e.g. 1e6 1e7 1e8 (default 1e6 1e7)")  # fmt: skip
    parser.add_argument("--gaia-data", type=Path, help="folder for the Gaia tables, kept (default: temporary)")
    parser.add_argument("--pairs", type=int, default=15, help="interleaved pairs per map figure (default 15)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings per download and Gaia figure; the best is kept (default 3)")  # fmt: skip
    args = parser.parse_args()
    logging.getLogger("astropy").setLevel(logging.ERROR)  # 'dex' is not a FITS unit: said once per file
    machine = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
               f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    print(machine + "\n")
    if "map" in args.sections:
        table = [
            f"| stars | after filter | map re-render after a filter change (s) | datashader aggregation alone (s) | "
            f"ratio (median of {args.pairs} pairs) | ratio range | the same change in a second session (s) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        print("\n".join(table))
        for n in args.sizes:
            r = bench_map(n, args.pairs)
            table.append(f"| {r['n']:,} | {r['n_filtered']:,} | {r['dashboard_s']:.4f} | {r['datashader_s']:.4f} | "
                         f"{r['ratio']:.2f} | {r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f} | "
                         f"{r['shared_s']:.4f} |")  # fmt: skip
            print(table[-1], flush=True)
        end = f"load average {os.getloadavg()[0]:.1f} at the end"
        print(end)
        command = "python benchmarks/bench_dashboard.py " + " ".join(sys.argv[1:])
        MAP_RESULTS.parent.mkdir(exist_ok=True)
        lines = ["# Dashboard map re-render after a filter change", "", f"`{command}`", "", f"{machine}; {end}", ""]
        MAP_RESULTS.write_text("\n".join([*lines, *table]) + "\n")
    if "download" in args.sections:
        print(f"\n| download of {args.download_rows:,} rows | columns | seconds | size (MB) |")
        print("|---|---:|---:|---:|")
        for r in bench_download(args.download_rows, args.repeats):
            print(f"| {r['format']} | {r['columns']} | {r['seconds']:.2f} | {r['mb']:.1f} |", flush=True)
    if "gaia" in args.sections:
        print(
            "\n| Gaia rows | files | build histograms (s) | rows/s | cache write / read (s) | cache (MB) | "
            "histograms in memory (MB) | zoom re-render (s) | flag toggle (s) | datashader on persisted dask, "
            "per zoom (s) | persisted (MB) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.gaia_data or Path(tmp)
            for n in args.gaia_rows:
                r = bench_gaia(n, args.repeats, folder)
                print(f"| {r['n']:,} | {r['files']} | {r['build_s']:.1f} | {r['n'] / r['build_s']:,.0f} | "
                      f"{r['write_s']:.1f} / {r['read_s']:.1f} | {r['cache_mb']:.1f} | {r['memory_mb']:.0f} | "
                      f"{r['zoom_s']:.3f} | {r['toggle_s']:.3f} | {r['datashader_s']:.3f} | "
                      f"{r['persisted_mb']:.0f} |", flush=True)  # fmt: skip
        if 10**8 not in args.gaia_rows:
            n, rate = r["n"], r["n"] / r["build_s"]
            print(f"| 10⁸ (extrapolated from {n:,}) | | {10**8 / rate:.0f} | {rate:,.0f} | | | {r['memory_mb']:.0f} | "
                  f"{r['zoom_s']:.3f} | {r['toggle_s']:.3f} | {r['datashader_s'] * 10**8 / n:.1f} | "
                  f"{r['persisted_mb'] * 10**8 / n:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
