"""Applying a trained offset model to very large Gaia-like tables, partition by partition, with dask.

For every row of every input Parquet file this writes, in a file of the same name under the output folder
and in the same row order:

- ``zp_offset``: the offset model's Δϖ (mas) with dropout off (the deterministic network);
- ``zp_offset_model_error``: the standard deviation of Δϖ over T Monte-Carlo dropout passes (mas);
- ``zp_offset_error``: that spread and the statistical error of the offset's fitted level, in quadrature (mas);
  the level's error is common to all stars (fully correlated), the Monte-Carlo spread is per star;
- ``zp_outside_training_domain``: True where G, BP−RP or Teff lie outside the range of the training stars, or
  are missing (the value is still written where the inputs are finite, NaN otherwise).

A constant model writes its constant, its Monte-Carlo spread and statistical error on every row (flag False).

The T Monte-Carlo passes are T draws of the thinned network (one dropout mask per pass, drawn once from the
seed and shared by all stars), as in the offset model's ``shared_mask_passes`` (:mod:`zpdist.nn.offset`).

The model is read once, by the client, into the offset model's torch-free export
(:mod:`zpdist.nn.offset_export`) that is broadcast once to each dask worker; workers never import torch nor read
the run folder. A network offset is exported as a table of Δϖ and its T-pass spread on a 65³ grid (2 MB) over
(G, BP−RP, Teff), read by trilinear interpolation (:class:`~zpdist.nn.offset_export.TabulatedOffsetEvaluator`, a
compiled kernel): about 10 ns a row instead of about 5 µs for the exact T = 100 passes. Its interpolation error
against the exact evaluator is measured on random points when the table is built and written to
``zeropoint.json``; above ``table_tolerance_uas`` inside the training domain, every row is evaluated exactly. The
grid covers the training domain in equal cells and reaches 10 half-widths of it beyond its centre in growing ones;
rows beyond that are evaluated exactly, so outside the training domain a row gets the same (extrapolated, flagged)
values as before, to the table's measured error. The table is built once per model and settings and kept in the
run folder.

Each task streams its input files one after the other (only the columns it needs, float32 or float64 as stored) in
batches of ``batch_rows`` rows and writes each output atomically (temporary file, then rename), plain: no
dictionary, no compression, no statistics (:data:`WRITE_OPTIONS`). Peak memory is bounded by the batch size,
whatever the size of the table, and an interrupted job can be resumed: finished partitions are skipped. On a
2-core machine a row costs about 45 ns of CPU in all (read 18, interpolation 10, write 12), against 18 for
reading its four columns alone.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.errors import InputError, MissingInputError, OutputError
from zpdist.io.atomic import atomic_path, write_text_atomic
from zpdist.io.tables import TableError
from zpdist.nn.offset_export import (
    OUTPUT_DTYPES,
    OffsetEvaluator,
    TabulatedOffsetEvaluator,
    offset_evaluator_from_run,
    tabulated_evaluator_from_run,
)
from zpdist.parallel import dask_executor, map_tasks, worker_threads

ZEROPOINT_FILE = "zeropoint.json"
#: Columns written for every input row; never null (NaN where an input is missing), which spares the writer the
#: definition levels of nullable columns.
OUTPUT_FIELDS = (
    pa.field("zp_offset", pa.float32(), nullable=False, metadata={"unit": "mas"}),
    pa.field("zp_offset_error", pa.float32(), nullable=False, metadata={"unit": "mas"}),
    pa.field("zp_offset_model_error", pa.float32(), nullable=False, metadata={"unit": "mas"}),
    pa.field("zp_outside_training_domain", pa.bool_(), nullable=False),
)
#: Parquet options of the output files. Measured on 10⁶ rows of ``zpdist mock-gaia`` (source_id and the four outputs,
#: one core, 11 ns a row in all): dictionary encoding, pyarrow's default, costs 165 ns a row (it is tried first, and
#: Δϖ, its errors and the identifiers hardly repeat); Snappy shrinks the float32 outputs by 3 % for a third more time
#: and LZ4 leaves source_id as it is, so nothing is compressed; statistics (min/max per row group) cost 1 ns a row
#: and serve little in a table joined row by row with its inputs (which have their own), so none are written.
WRITE_OPTIONS = {"use_dictionary": False, "compression": "none", "write_statistics": False}


@dataclass(frozen=True)
class ZeroPointColumns:
    """Names of the input columns.

    Attributes
    ----------
    g : str
        Gaia G magnitude (mag).
    bp_rp : str
        Gaia BP−RP colour (mag).
    teff : str
        Effective temperature (K), e.g. DR2 ``teff_val`` or DR3 ``teff_gspphot``.
    source_id : str or None
        Identifier copied to the output when present (None: copy nothing).
    """

    g: str = "phot_g_mean_mag"
    bp_rp: str = "bp_rp"
    teff: str = "teff_val"
    source_id: str | None = "source_id"

    @property
    def inputs(self) -> tuple[str, str, str]:
        """The offset model's inputs, in its order: G, BP−RP, Teff."""
        return (self.g, self.bp_rp, self.teff)


@dataclass(frozen=True)
class ZeroPointConfig:
    """How to apply an offset model; saved in ``zeropoint.json`` beside the output.

    Attributes
    ----------
    columns : ZeroPointColumns
        Input column names.
    mc_samples : int
        Monte-Carlo dropout passes T (≥ 2).
    seed : int
        Seed of the T dropout masks.
    batch_rows : int
        Rows read, evaluated and written at a time, one row group of the output (memory bound: about 100 bytes
        per row plus the input columns kept).
    mc_block : int
        Star-samples (stars × T) evaluated at a time in exact Monte-Carlo passes (memory bound: 64 bytes each).
    keep_input_columns : bool
        Copy every input column to the output (default: only ``columns.source_id``).
    table_cells : int
        Cells of the network offset's interpolation table across the training domain, per input, with 30 % as
        many again on each side out to ``table_extent`` (40: 65 nodes per input). 0 evaluates every row exactly.
    table_extent : float
        Reach of the table in half-widths of the training domain from its centre; rows beyond are evaluated
        exactly.
    table_tolerance_uas : float
        Largest interpolation error (µas) of Δϖ or of its spread inside the training domain, measured when the
        table is built; a table with a larger one is not used (every row evaluated exactly).
    """

    columns: ZeroPointColumns = field(default_factory=ZeroPointColumns)
    mc_samples: int = 100
    seed: int = 0
    batch_rows: int = 262_144
    mc_block: int = 1_048_576
    keep_input_columns: bool = False
    table_cells: int = 40
    table_extent: float = 10.0
    table_tolerance_uas: float = 0.5

    def __post_init__(self):
        if self.mc_samples < 2:
            raise InputError(f"mc_samples must be at least 2 (got {self.mc_samples})")
        if self.batch_rows < 1 or self.mc_block < 1:
            raise InputError("batch_rows and mc_block must be positive")
        if self.table_cells < 0 or self.table_extent <= 1 or self.table_tolerance_uas <= 0:
            raise InputError(
                f"table_cells must be >= 0, table_extent > 1 and table_tolerance_uas > 0 (got {self.table_cells}, "
                f"{self.table_extent}, {self.table_tolerance_uas})"
            )

    @property
    def table_outer_cells(self) -> int:
        """Cells of the table on each side of the training domain, per input."""
        return max(1, round(0.3 * self.table_cells))

    def to_dict(self) -> dict:
        return asdict(self)


def find_inputs(input_glob: str | os.PathLike) -> list[Path]:
    """The Parquet files of ``input_glob`` (a glob pattern, a folder or a file), sorted by name.

    Raises
    ------
    FileNotFoundError
        If nothing matches.
    """
    pattern = str(input_glob)
    if Path(pattern).is_dir():
        pattern = str(Path(pattern) / "*.parquet")
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not paths:
        raise MissingInputError(f"no input files match {pattern!r}")
    return paths


def check_input(path: Path, columns: ZeroPointColumns, needs_inputs: bool) -> int:
    """Check that ``path`` is Parquet with the needed columns; return its number of rows.

    Raises
    ------
    TableError
        Naming the file, and the missing columns or the reason it cannot be read.
    """
    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableError(f"{path}: not a readable Parquet file ({exc})") from exc
    if needs_inputs:
        missing = [c for c in columns.inputs if c not in metadata.schema.names]
        if missing:
            raise TableError(
                f"{path}: missing column(s) {', '.join(missing)} (set the names with --g-column, --bp-rp-column, "
                f"--teff-column; the file has {', '.join(metadata.schema.names)})"
            )
    return metadata.num_rows


@dataclass(frozen=True)
class PartitionTask:
    """One task: an input file and where its output goes."""

    source: str
    target: str


def _float_column(column: pa.Array) -> np.ndarray:
    """A numeric Arrow column as a numpy float array, NaN where null: no copy for a float column without nulls
    (float32 stays float32); nulls are filled by Arrow, in its own memory pool, which dask workers do not trim."""
    if not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64())
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(float("nan"), column.type))
    return column.to_numpy(zero_copy_only=False)


def process_partition(evaluator: OffsetEvaluator, config: ZeroPointConfig, partition: PartitionTask) -> dict:
    """Evaluate the offset model on one input file and write its output file (runs on a dask worker).

    Returns
    -------
    dict
        ``file``, ``rows``, ``outside`` (rows flagged outside the training domain) and ``missing`` (rows with a
        missing input), counts for ``zeropoint.json``.
    """
    columns = config.columns
    try:
        source = pq.ParquetFile(partition.source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableError(f"{partition.source}: not a readable Parquet file ({exc})") from exc
    schema = source.schema_arrow
    multivariate = evaluator.needs_inputs
    if config.keep_input_columns:
        copied = list(schema.names)
    else:
        copied = [columns.source_id] if columns.source_id in schema.names else []
    wanted = list(dict.fromkeys(copied + (list(columns.inputs) if multivariate else [])))
    if multivariate and (missing := [c for c in columns.inputs if c not in schema.names]):
        raise TableError(f"{partition.source}: missing column(s) {', '.join(missing)}")
    out_schema = pa.schema([schema.field(c).remove_metadata() for c in copied] + list(OUTPUT_FIELDS)).with_metadata(
        {"zpdist_version": __version__, "zpdist_source": os.path.basename(partition.source)}
    )
    counts = {"file": os.path.basename(partition.source), "rows": 0, "outside": 0, "missing": 0}
    # buffers reused from batch to batch (fresh ones cost page faults on dask workers, which hand freed memory back)
    names = columns.inputs if multivariate else ()  # the constant model reads no input
    capacity = min(config.batch_rows, source.metadata.num_rows)
    outputs = {name: np.empty(capacity, dtype) for name, dtype in OUTPUT_DTYPES.items()}
    missing = np.empty(capacity, bool)
    with atomic_path(partition.target) as tmp, pq.ParquetWriter(tmp, out_schema, **WRITE_OPTIONS) as writer:
        for batch in source.iter_batches(batch_size=config.batch_rows, columns=wanted, use_threads=False):
            n = batch.num_rows
            result = {name: values[:n] for name, values in outputs.items()}
            evaluator.evaluate_into([_float_column(batch.column(name)) for name in names], result, config.mc_block)
            counts["rows"] += n
            counts["missing"] += int(np.count_nonzero(np.isnan(result["zp_offset"], out=missing[:n])))  # NaN: missing
            counts["outside"] += int(np.count_nonzero(result["zp_outside_training_domain"]))
            arrays = [batch.column(c) for c in copied] + [pa.array(result[f.name], f.type) for f in OUTPUT_FIELDS]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=out_schema))  # copies: the buffers are free
    return counts


def process_partitions(
    evaluator: OffsetEvaluator, config: ZeroPointConfig, partitions: list[PartitionTask]
) -> list[dict]:
    """:func:`process_partition` on each of ``partitions`` in turn: one dask task; a list of their counts."""
    return [process_partition(evaluator, config, partition) for partition in partitions]


def task_groups(items: list, share: int) -> list[list]:
    """Consecutive ``items`` in groups of decreasing size, each 1 / ``share`` of the items left (at least one)."""
    groups, first = [], 0
    while first < len(items):
        size = max(1, (len(items) - first) // share)
        groups.append(items[first : first + size])
        first += size
    return groups


def _run_tasks(
    executor: str | object,
    evaluator: OffsetEvaluator,
    config: ZeroPointConfig,
    parts: list[PartitionTask],
    progress: bool,
) -> list[dict]:
    """Run :func:`process_partition` on every partition (the evaluator sent once to each worker); results in the
    order of ``parts``.

    Consecutive partitions are grouped into tasks (:func:`process_partitions`) of decreasing size, each a share of
    what remains (guided self-scheduling): a dask task costs the client and the worker a few ms of CPU (measured:
    4 and 6 ms on a busy 2-core machine, 10 ns a row of a 10⁶-row file), while the last tasks, of one partition,
    keep the workers' idle tail short. Each file is still written atomically: an interrupted job resumes file by
    file. A local scheduler, which runs its tasks in windows (:func:`~zpdist.parallel.map_tasks`), gets one
    partition per task.
    """
    groups = task_groups(parts, len(parts) + 1 if isinstance(executor, str) else 2 * worker_threads(executor))
    results: list[list[dict]] = [[] for _ in groups]
    with tqdm(total=len(parts), desc="zeropoint", unit="partition", disable=not progress) as bar:
        for i, counts in map_tasks(executor, process_partitions, groups, shared=(evaluator, config)):
            results[i] = counts
            bar.update(len(counts))
    return [counts for group in results for counts in group]


def _output_counts(target: Path) -> dict:
    """The counts of :func:`process_partition`, read back from an output file written earlier."""
    counts = {"file": target.name, "rows": 0, "outside": 0, "missing": 0}
    columns = ["zp_offset", "zp_outside_training_domain"]
    for batch in pq.ParquetFile(target).iter_batches(columns=columns):
        counts["rows"] += batch.num_rows
        counts["missing"] += int(np.isnan(batch.column(0).to_numpy(zero_copy_only=False)).sum())
        counts["outside"] += int(batch.column(1).to_numpy(zero_copy_only=False).sum())
    return counts


def _offset_evaluator(
    run_dir: str | os.PathLike, config: ZeroPointConfig, log: Callable[[str], None]
) -> tuple[OffsetEvaluator, dict, dict]:
    """The run's offset model as the workers evaluate it, its metadata, and how it evaluates (for zeropoint.json)."""
    if not config.table_cells:
        evaluator, metadata = offset_evaluator_from_run(run_dir, config.mc_samples, config.seed)
        return evaluator, metadata, {"method": "exact"}
    cells = (config.table_cells, config.table_outer_cells)
    evaluator, metadata = tabulated_evaluator_from_run(
        run_dir, config.mc_samples, config.seed, cells, config.table_extent, log
    )
    if not isinstance(evaluator, TabulatedOffsetEvaluator):
        return evaluator, metadata, {"method": "exact"}
    reach = evaluator.extent * evaluator.half_width
    evaluation = {
        "method": "table",
        "nodes_per_input": evaluator.nodes_per_axis,
        "table_range": {
            name: [float(c - r), float(c + r)]
            for name, c, r in zip(config.columns.inputs, evaluator.centre, reach, strict=True)
        },
        "interpolation_error_uas": evaluator.errors,
    }
    if evaluator.max_error_uas > config.table_tolerance_uas:
        log(
            f"offset table: interpolation error up to {evaluator.max_error_uas:.3g} µas in the training domain, "
            f"above table_tolerance_uas = {config.table_tolerance_uas}: every row is evaluated exactly (raise "
            "table_cells for a finer table)"
        )
        return evaluator.exact, metadata, {**evaluation, "method": "exact (table above tolerance)"}
    return evaluator, metadata, evaluation


def _model_summary(metadata: dict, evaluator: OffsetEvaluator) -> dict:
    return {
        "offset_model": metadata["train"]["offset_model"],
        "mode": metadata["train"]["mode"],
        "offset_input_range": metadata.get("offset_input_range"),
        "level_error_mas": evaluator.level_error_mas,
        **metadata["summary"],
    }


def apply_offset_model(
    run_dir: str | os.PathLike,
    input_glob: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: ZeroPointConfig | None = None,
    scheduler: str | object | None = None,
    n_workers: int | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Apply a trained run's offset model to every row of a partitioned Gaia-like Parquet table.

    Parameters
    ----------
    run_dir : path-like
        Training run folder holding ``model.pt``.
    input_glob : str or path-like
        Glob pattern of the input Parquet files (``**`` allowed), or a folder (its ``*.parquet``).
    out_dir : path-like
        Output folder: one Parquet file per input file, of the same name, rows in the same order, and
        ``zeropoint.json`` (configuration, model summary, counts).
    config : ZeroPointConfig, optional
        Column names, Monte-Carlo passes, seed and batch sizes.
    scheduler : str, distributed.Client or None
        None: start a ``LocalCluster`` of ``n_workers`` single-threaded worker processes (default: one per core);
        a scheduler address (``tcp://host:8786``) or a ``Client``: use that cluster (workers must see the input
        and output folders); ``"threads"`` or ``"synchronous"``: dask's local schedulers, in this process.
    n_workers : int, optional
        Workers of the LocalCluster started when ``scheduler`` is None.
    resume : bool
        Keep output files already written by an interrupted run with the same configuration and model.
    progress : bool
        Show a progress bar.
    log : callable
        Where messages go.

    Returns
    -------
    dict
        The content of ``zeropoint.json``.

    Raises
    ------
    FileNotFoundError
        If no input file matches or the run has no model.
    TableError
        If an input file is not Parquet or lacks a column (the message names both).
    InputError
        On inputs sharing a file name, or a resume with another configuration.
    OutputError
        On an output folder that would overwrite the inputs.

    ``zeropoint.json`` is written first with status "running", and always ends "complete", "failed" or
    "interrupted" (with the error).
    """
    config = config or ZeroPointConfig()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    sources = find_inputs(input_glob)
    evaluator, metadata, evaluation = _offset_evaluator(run_dir, config, log)
    rows_in = [check_input(path, config.columns, evaluator.needs_inputs) for path in sources]
    targets = _output_paths(sources, input_glob, out_dir)
    record = {
        "status": "running",
        "run": str(Path(run_dir).resolve()),
        "input": str(Path(input_glob).absolute()),  # a glob: absolute, so it resolves from anywhere
        "config": config.to_dict(),
        "model": _model_summary(metadata, evaluator),
        "evaluation": evaluation,
        "zpdist_version": __version__,
    }
    record_path = out_dir / ZEROPOINT_FILE
    done = _already_written(record_path, record, targets, rows_in, log) if resume else set()
    write_text_atomic(record_path, json.dumps(record, indent=2))
    todo = [(s, t) for s, t in zip(sources, targets, strict=True) if t not in done]
    parts = [PartitionTask(str(s), str(t)) for s, t in todo]
    log(f"{len(sources)} input files, {sum(rows_in):,} rows; {len(parts)} partitions to write to {out_dir}")
    try:
        with dask_executor(scheduler, n_workers, log) as executor:
            written = _run_tasks(executor, evaluator, config, parts, progress)
    except BaseException as exc:  # the record must never stay "running": say how it ended, then re-raise
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        write_text_atomic(record_path, json.dumps({**record, "status": status, "error": str(exc)}, indent=2))
        raise
    results = dict(zip([t for _, t in todo], written, strict=True))
    counts = [results[t] if t in results else _output_counts(t) for t in targets]
    record = _completed(record, counts, time.perf_counter() - started)
    write_text_atomic(record_path, json.dumps(record, indent=2))
    log(
        f"zero-point offsets written for {record['n_rows']:,} rows in {len(targets)} files "
        f"({record['seconds']:.1f} s); {record['n_outside_training_domain']:,} outside the training domain, "
        f"{record['n_missing_inputs']:,} with a missing input"
    )
    return record


def _completed(record: dict, counts: list[dict], seconds: float) -> dict:
    """The ``zeropoint.json`` record of a finished run: totals over the partitions' counts and the timing."""
    n_rows = sum(c["rows"] for c in counts)
    return {
        **record,
        "status": "complete",
        "n_files": len(counts),
        "n_rows": n_rows,
        "n_outside_training_domain": sum(c["outside"] for c in counts),
        "n_missing_inputs": sum(c["missing"] for c in counts),
        "seconds": seconds,
        "rows_per_second": n_rows / seconds if seconds > 0 else None,
        "partitions": counts,
    }


def _output_paths(sources: list[Path], input_glob: str | os.PathLike, out_dir: Path) -> list[Path]:
    """One output per input, named after it in ``out_dir``; refused if two share a name or one is its input."""
    targets = [out_dir / path.name for path in sources]
    if len(set(targets)) < len(targets):
        raise InputError(f"input files matching {str(input_glob)!r} share names; outputs are named after inputs")
    if out_dir.resolve() in {folder.resolve() for folder in {s.parent for s in sources}}:  # one resolve per folder
        raise OutputError(f"--out {out_dir} is the input folder: the outputs would overwrite the inputs")
    return targets


def _already_written(
    record_path: Path, record: dict, targets: list[Path], rows_in: list[int], log: Callable[[str], None]
) -> set[Path]:
    """Outputs a previous run with the same model and configuration wrote completely (for ``--resume``)."""
    if not record_path.exists():
        return set()
    previous = json.loads(record_path.read_text(encoding="utf-8"))
    keys = ("run", "config", "model")
    if {k: previous.get(k) for k in keys} != json.loads(json.dumps({k: record[k] for k in keys})):
        raise InputError(f"{record_path}: written with another model or configuration; cannot resume")
    done = {t for t, n in zip(targets, rows_in, strict=True) if t.exists() and pq.read_metadata(t).num_rows == n}
    log(f"resuming: {len(done)} of {len(targets)} partitions already written")
    return done
