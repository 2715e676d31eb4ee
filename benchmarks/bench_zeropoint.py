"""Throughput of ``zpdist zeropoint`` beside the raw Parquet read rate of the same files, in the same run.

For each catalog size (synthetic Gaia-like Parquet from ``zpdist mock-gaia``, 10⁶ rows per file; default 10⁷ and
10⁸ rows, about 5.4 GB of input for 10⁸) this times, in interleaved rounds (read, zeropoint, read, zeropoint, ...),
so that a machine whose speed drifts moves both alike:

- the raw read: streaming the four columns the job reads (source_id, G, BP−RP, Teff) with pyarrow in batches of
  the job's size, in this process on one core (the yardstick of the issue), and on the job's dask workers (one
  file per task, the same parallelism as the job);
- ``apply_offset_model`` with T = 100 Monte-Carlo passes on a ``LocalCluster`` of single-threaded worker processes
  (one per core, what ``zpdist zeropoint`` starts by default), started once beforehand, and with dask's threaded
  scheduler in this process (``--scheduler threads``: no scatter, no messages between processes); each round
  includes reading the model (the table kept in the run folder) and writing every output file. The table itself
  is built once, before the rounds, and timed apart, and the compiled kernel loaded once in every process;
- the peak resident memory (VmHWM) of each worker process and of this process;
- once per size, the whole command ``zpdist zeropoint`` in a new process (Python, dask cluster start-up included).

Then the ratio of the job's rows/s to each read rate (the target: ≥ 0.5 of the one-core read). The offset model is
a two-epoch labels-mode run on 2,000 mock stars (the cost does not depend on training). The machine may be shared:
the load averages at the start and the end are printed with the table. Never run by the tests; no assertions.

Usage: ``python benchmarks/bench_zeropoint.py [--sizes 10000000 100000000] [--rounds 3] [--data DIR]``.
Prints a Markdown table and writes it to ``benchmarks/results/zeropoint.md``. Without ``--data`` the catalogs go to
a temporary folder removed at the end; outputs are removed after each round.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog
from zpdist.nn.offset_export import OffsetEvaluator, offset_table_path, tabulated_evaluator_from_run
from zpdist.parallel import map_tasks
from zpdist.zeropoint import PartitionTask, ZeroPointConfig, apply_offset_model, find_inputs, process_partition

GAIA_ROWS = 1_800_000_000
PARTITION_ROWS = 1_000_000
RESULTS = Path(__file__).resolve().parent / "results" / "zeropoint.md"
#: What each round measures, in the order of the table's columns.
RATES = ("read_here", "read_workers", "zeropoint", "zeropoint_threads")


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


def catalog(folder: Path, n_rows: int, log) -> Path:
    """The synthetic catalog of ``n_rows`` rows (written once, then reused)."""
    path = folder / f"gaia_{n_rows}"
    config = GaiaCatalogConfig(n_rows=n_rows, partition_rows=PARTITION_ROWS, seed=0)
    if len(list(path.glob("*.parquet"))) != config.n_partitions:
        start = time.perf_counter()
        write_gaia_catalog(config, path, workers=os.cpu_count() or 1, progress=False)
        log(f"wrote {n_rows:,} rows in {time.perf_counter() - start:.0f} s to {path}")
    return path


def read_file(columns: list[str], batch_rows: int, path: str) -> int:
    """Stream ``columns`` of one Parquet file in batches; return its rows (also a task of the read on the workers)."""
    rows = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
        rows += batch.num_rows
    return rows


def warm_up(evaluator: OffsetEvaluator, config: ZeroPointConfig, source: Path) -> None:
    """Run one input file through the job's own path in this process, as in each worker before the rounds: numba
    loads the compiled kernel for the job's column types from its on-disk cache (about 0.3 s), once per process.
    The rounds time the steady state, the whole command the cold start."""
    target = source.parent.parent / f"warm_up-{os.getpid()}.parquet"  # beside the catalog folder
    process_partition(evaluator, config, PartitionTask(str(source), str(target)))
    target.unlink()


def _own_cpu_seconds() -> float:
    """User and system CPU seconds of this process so far."""
    times = os.times()
    return times.user + times.system


def timed(client, work: Callable[[], int]) -> tuple[float, float]:
    """Rows per second of ``work()`` (which returns its rows) and its CPU nanoseconds per row, this process and the
    workers together: a cost per row that, unlike the rate, does not depend on how busy a shared machine is."""
    cpu = _own_cpu_seconds() + sum(client.run(_own_cpu_seconds).values())
    start = time.perf_counter()
    rows = work()
    seconds = time.perf_counter() - start
    cpu = _own_cpu_seconds() + sum(client.run(_own_cpu_seconds).values()) - cpu
    return rows / seconds, cpu / rows * 1e9


def whole_command(run: Path, path: Path, out: Path, workers: int) -> float:
    """Seconds of ``zpdist zeropoint`` as a new process, cluster start-up included (output removed afterwards)."""
    command = [sys.executable, "-m", "zpdist.cli", "zeropoint", "--run", str(run), "--input", str(path),
               "--out", str(out), "--workers", str(workers), "--quiet"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return seconds


def measure(client, run: Path, path: Path, out: Path, config: ZeroPointConfig, rounds: int) -> dict:
    """Interleaved rounds of the two reads and the job on one catalog: (rows/s, CPU ns per row) of each round."""
    columns = [config.columns.source_id, *config.columns.inputs]
    files = [str(f) for f in find_inputs(path)]
    quiet = {"progress": False, "log": lambda m: None}
    work = {
        "read_here": lambda: sum(read_file(columns, config.batch_rows, f) for f in files),
        "zeropoint": lambda: apply_offset_model(run, path, out, config, scheduler=client, **quiet)["n_rows"],
        "read_workers": lambda: sum(n for _, n in map_tasks(client, read_file, files, (columns, config.batch_rows))),
        "zeropoint_threads": lambda: apply_offset_model(run, path, out, config, scheduler="threads", **quiet)["n_rows"],
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, job in work.items():
            results[name].append(timed(client, job))
            shutil.rmtree(out, ignore_errors=True)
    return results


def report(rows: list[tuple], n_workers: int, build: tuple[float | None, dict], loads: tuple, mc_samples: int) -> str:
    """The Markdown tables of the measurements."""
    lines = [
        f"`zpdist zeropoint` (T = {mc_samples} Monte-Carlo passes, {PARTITION_ROWS:,} rows per file, {n_workers} "
        f"single-threaded dask workers) against the raw Parquet read of the same four columns, interleaved rounds on "
        f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores). The machine was shared with other jobs: "
        f"load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end. CPU: user + system time of the client "
        "and the workers together, per row.",
        "",
        "| rows | round | read, 1 core (Mrows/s) | read, workers (Mrows/s) | zeropoint, cluster (Mrows/s) | "
        "zeropoint, threads (Mrows/s) | cluster / read 1 core | threads / read 1 core | CPU per row: read, cluster, "
        "threads (ns) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for n_rows, results, _, _ in rows:
        for i, (here, workers, job, threads) in enumerate(zip(*(results[k] for k in RATES), strict=True), 1):
            lines.append(f"| {n_rows:,} | {i} | {here[0] / 1e6:.1f} | {workers[0] / 1e6:.1f} | {job[0] / 1e6:.2f} | "
                         f"{threads[0] / 1e6:.2f} | {job[0] / here[0]:.2f} | {threads[0] / here[0]:.2f} | "
                         f"{here[1]:.0f}, {job[1]:.0f}, {threads[1]:.0f} |")  # fmt: skip
        summary.append([_medians(results, job) for job in ("zeropoint", "zeropoint_threads")])
    lines += ["", f"| rows | scheduler | median zeropoint (Mrows/s) | median ratio to the 1-core read | median CPU "
              f"ratio, read / zeropoint | the same × {n_workers} (free cores) | whole command, new process (s) | peak "
              "RSS per worker (MB) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for medians, (n_rows, _, command_s, rss) in zip(summary, rows, strict=True):
        for name, (rate, ratio, cpu) in zip(("cluster", "threads"), medians, strict=True):
            command, memory = (f"{command_s:.1f}", f"{rss:.0f}") if name == "cluster" else ("–", "–")
            lines.append(f"| {n_rows:,} | {name} | {rate / 1e6:.2f} | {ratio:.2f} | {cpu:.2f} | "
                         f"{n_workers * cpu:.2f} | {command} | {memory} |")  # fmt: skip
    return "\n".join(lines + _notes(build, summary[-1][0][0], n_workers))


def _medians(results: dict, job: str) -> tuple[float, float, float]:
    """Median over the rounds of ``job``'s rows/s, of its ratio to the 1-core read, and of the read's CPU per row over
    the job's."""
    pairs = list(zip(results["read_here"], results[job], strict=True))
    return (
        statistics.median(rate for _, (rate, _) in pairs),
        statistics.median(rate / here for (here, _), (rate, _) in pairs),
        statistics.median(here_cpu / cpu for (_, here_cpu), (_, cpu) in pairs),
    )


def _notes(build: tuple[float | None, dict], rate: float, n_workers: int) -> list[str]:
    """The lines under the tables: memory, the table's build time and interpolation error, all of Gaia."""
    seconds, errors = build
    inside, table = errors["training_domain"], errors["table"]
    return [
        "",
        "Peak RSS of this process (the client, which also read on one core and ran the threaded job): "
        f"{_peak_rss_bytes() / 2**20:.0f} MB. "
        "Table of the offset model built once, before the rounds, and kept in the run folder"
        + (f": {seconds:.1f} s." if seconds is not None else " (by an earlier run)."),
        f"Interpolation error against the exact T-pass evaluation ({errors['points']:,} random points each): inside "
        f"the training domain Δϖ max {inside['zp_offset']['max_uas']:.4f} µas (RMS "
        f"{inside['zp_offset']['rms_uas']:.4f}), spread max {inside['zp_offset_model_error']['max_uas']:.3f} µas "
        f"(RMS {inside['zp_offset_model_error']['rms_uas']:.4f}); over the whole table Δϖ max "
        f"{table['zp_offset']['max_uas']:.3f} µas (RMS {table['zp_offset']['rms_uas']:.4f}), spread max "
        f"{table['zp_offset_model_error']['max_uas']:.3f} µas (RMS {table['zp_offset_model_error']['rms_uas']:.4f}).",
        f"At the median rate of the largest size, {GAIA_ROWS:,} rows (all of Gaia DR3) take "
        f"{GAIA_ROWS / rate / 60:.0f} min on these {n_workers} workers.",
    ]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 100_000_000], help="catalog sizes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="dask workers (default: one per core)")
    parser.add_argument("--mc-samples", type=int, default=100, help="Monte-Carlo passes T (default 100)")
    parser.add_argument("--data", type=Path, help="folder for the catalogs and the run (default: a temporary one)")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        run = trained_run(data)
        config = ZeroPointConfig(mc_samples=args.mc_samples)
        cells = (config.table_cells, config.table_outer_cells)
        table = (run, config.mc_samples, config.seed, cells, config.table_extent)
        kept = offset_table_path(*table).exists()
        start = time.perf_counter()
        tabulated, _ = tabulated_evaluator_from_run(*table)
        build = (None if kept else time.perf_counter() - start, tabulated.errors)
        rows = []
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        with cluster, Client(cluster) as client:
            for n_rows in args.sizes:
                path = catalog(data, n_rows, print)
                warm_up(tabulated, config, find_inputs(path)[0])
                client.run(warm_up, tabulated, config, find_inputs(path)[0])
                rates = measure(client, run, path, data / "out", config, args.rounds)
                rss = max(client.run(_peak_rss_bytes).values()) / 2**20
                rows.append((n_rows, rates, whole_command(run, path, data / "out", args.workers), rss))
                if args.data is None:
                    shutil.rmtree(path)
    loads.append(os.getloadavg()[0])
    table = report(rows, args.workers, build, tuple(loads), config.mc_samples)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n", encoding="utf-8")
    print(table)
    return table


if __name__ == "__main__":
    main()
