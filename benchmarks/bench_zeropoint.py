"""Throughput of ``zpdist zeropoint`` beside the raw Parquet read rate of the same files, and peak memory.

For each catalog size (synthetic Gaia-like Parquet from ``zpdist mock-gaia``, 10⁶ rows per file) this times,
in the same run:

- the raw read: streaming the four columns the job reads (source_id, G, BP−RP, Teff) with pyarrow in batches,
  in this process on one core, which is the limit a per-core zeropoint rate can approach;
- ``apply_offset_model`` on a fresh ``LocalCluster`` of 1 and of 2 single-threaded worker processes, with the
  default T = 100 Monte-Carlo passes; the cluster's start-up is excluded, the model loading included;
- the peak resident memory (VmHWM) of each worker process and of this process.

It then extrapolates the time for 139 million rows (a Gaia table with G, BP−RP and Teff) from the per-worker
rate, here and on a 16-worker cluster. The offset model is a two-epoch labels-mode run on 2,000 mock stars
(the cost does not depend on training). Never run by the tests; no assertions.

Usage: ``python benchmarks/bench_zeropoint.py [--sizes 1000000 10000000] [--with-1e8] [--data DIR]``.
Prints a Markdown table and writes it to ``benchmarks/results/zeropoint.md``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
import warnings
from pathlib import Path

import pyarrow.parquet as pq

from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog
from zpdist.zeropoint import ZeroPointConfig, apply_offset_model, find_inputs

GAIA_ROWS = 139_000_000
PARTITION_ROWS = 1_000_000
RESULTS = Path(__file__).resolve().parent / "results" / "zeropoint.md"


def _peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry a spawning parent's peak over execve)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: kB on Linux, bytes on macOS


def trained_run(folder: Path) -> Path:
    """A small multivariate labels-mode run (torch imported here only: spawned workers re-import this module)."""
    from zpdist.mock.config import InjectedOffset, MockConfig
    from zpdist.mock.generate import write_mock
    from zpdist.nn.train import TrainConfig, train

    run = folder / "run"
    if not (run / "model.pt").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offset = InjectedOffset(model="multivariate")
            write_mock(MockConfig(n_stars=2000, seed=1, write_spectra=False, offset=offset), folder / "mock", False)
            config = TrainConfig(mode="labels", offset_model="multivariate", epochs=2, device="cpu",
                                 offset_mc_passes=20, fit_mc_samples=3)  # fmt: skip
            train(folder / "mock" / "allstar.fits", run, config, progress=False, log=lambda m: None)
    return run


def catalog(folder: Path, n_rows: int) -> Path:
    """The synthetic catalog of ``n_rows`` rows (written once, then reused)."""
    path = folder / f"gaia_{n_rows}"
    config = GaiaCatalogConfig(n_rows=n_rows, partition_rows=PARTITION_ROWS, seed=0)
    if len(list(path.glob("*.parquet"))) != config.n_partitions:
        write_gaia_catalog(config, path, workers=2, progress=False)
    return path


def raw_read_rate(path: Path, columns: list[str], batch_rows: int) -> float:
    """Rows per second streaming ``columns`` of every file under ``path`` (one core)."""
    start, rows = time.perf_counter(), 0
    for file in find_inputs(path):
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
            rows += batch.num_rows
    return rows / (time.perf_counter() - start)


def zeropoint_run(run: Path, path: Path, out: Path, n_workers: int, config: ZeroPointConfig) -> dict:
    """Seconds, rows/s and the workers' peak RSS of one job on a fresh LocalCluster."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        record = apply_offset_model(run, path, out, config, scheduler=client, progress=False,
                                    log=lambda m: None)  # fmt: skip
        seconds = time.perf_counter() - start
        worker_rss = client.run(_peak_rss_bytes)
    return {
        "seconds": seconds,
        "rate": record["n_rows"] / seconds,
        "worker_rss_mb": max(worker_rss.values()) / 2**20,
    }


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="catalog sizes")
    parser.add_argument("--with-1e8", action="store_true", help="also 10^8 rows (about 4 GB of Parquet)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes to compare")
    parser.add_argument("--mc-samples", type=int, default=100, help="Monte-Carlo passes T (default 100)")
    parser.add_argument("--data", type=Path, help="folder for the catalogs and the run (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = [*args.sizes, *([100_000_000] if args.with_1e8 else [])]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        run = trained_run(data)
        config = ZeroPointConfig(mc_samples=args.mc_samples)
        columns = [config.columns.source_id, *config.columns.inputs]
        rows = []
        for n_rows in sizes:
            path = catalog(data, n_rows)
            read = raw_read_rate(path, columns, config.batch_rows)
            for n_workers in args.workers:
                result = zeropoint_run(run, path, data / f"out_{n_rows}_{n_workers}", n_workers, config)
                rows.append((n_rows, n_workers, read, result))
    per_worker = max(r["rate"] / w for _, w, _, r in rows if w == 1) if 1 in args.workers else None
    lines = [
        f"zeropoint (T = {config.mc_samples} Monte-Carlo passes, {PARTITION_ROWS:,} rows per file) on "
        f"{platform.node()} ({platform.processor() or platform.machine()}), in the same run as the raw read",
        "",
        "| rows | workers | raw read (rows/s, 1 core) | zeropoint (rows/s) | per worker (rows/s) | read / per-worker "
        "| time (s) | peak RSS per worker (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n_rows, n_workers, read, r in rows:
        lines.append(
            f"| {n_rows:,} | {n_workers} | {read:,.0f} | {r['rate']:,.0f} | {r['rate'] / n_workers:,.0f} "
            f"| {read / (r['rate'] / n_workers):.1f} | {r['seconds']:.1f} | {r['worker_rss_mb']:.0f} |"
        )
    lines += ["", f"Peak RSS of the driver process: {_peak_rss_bytes() / 2**20:.0f} MB."]
    if per_worker:
        lines.append(
            f"Extrapolated for {GAIA_ROWS:,} rows from the 1-worker rate ({per_worker:,.0f} rows/s per core): "
            f"{GAIA_ROWS / per_worker / 3600:.2f} h on 1 core, {GAIA_ROWS / per_worker / 2 / 60:.0f} min on "
            f"2 workers, {GAIA_ROWS / per_worker / 16 / 60:.1f} min on a 16-worker "
            "cluster (each worker on a free core, storage keeping up)."
        )
    table = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n", encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    main()
