"""Training: the composition of the table's cuts, the data module, the model, the warm start, the trainer and
the offset summary into a run folder.

A run folder holds ``model.pt`` (best weights, ``torch.load(..., weights_only=True)``-safe),
``checkpoint.pt`` (everything needed by ``--resume``, written atomically every epoch),
``train_config.json`` and ``summary.json`` (the fitted offset with its errors and the cut counts).
The data (:mod:`zpdist.nn.datamodule`), the loop (:mod:`zpdist.nn.trainer`) and what happens around
it (:mod:`zpdist.nn.callbacks`) live in their own modules.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zpdist import __version__
from zpdist.config import TrainConfig
from zpdist.errors import InputError
from zpdist.io.atomic import write_text_atomic
from zpdist.io.spectra import SpectraReader
from zpdist.io.tables import TableError, read_table
from zpdist.nn import data
from zpdist.nn.callbacks import Checkpoint, EarlyStopping, LearningRateSchedule, Progress
from zpdist.nn.datamodule import StarData, star_data
from zpdist.nn.device import resolve_device
from zpdist.nn.infer import MODEL_FILE, save_model
from zpdist.nn.model import ModelConfig, ZeroPointNet
from zpdist.nn.offset_fit import offset_summary
from zpdist.nn.trainer import Trainer, TrainState
from zpdist.nn.warm_start import parameter_groups, warm_start_log_linear
from zpdist.selection import (
    OFFSET_INPUT_COLUMNS,
    CutResult,
    apply_cuts,
    format_report,
    require_nonempty,
    training_cuts,
)

CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "train_config.json"


def _prepare_table(
    table_path: Path, config: TrainConfig, log: Callable[[str], None], spectra_path: Path | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[CutResult]]:
    """The table with ``k_corr`` (and ``has_spectrum`` in spectra mode), the rows that pass the cuts, the cut report."""
    table = read_table(table_path, required=("k",), require_gaia=True)
    if not np.isfinite(table["parallax"].to_numpy(float)).any():
        column = table.attrs["column_map"]["parallax"]
        raise TableError(f"{table_path}: column {column} has no valid parallax (all missing/NaN)")
    table = data.add_corrected_k(table)
    n_flagged = int(table["ak_flag"].sum())
    if n_flagged:
        log(f"A_K missing or negative for {n_flagged} of {len(table)} stars: used A_K = 0 (flagged)")
    extra: tuple[str, ...] = ()
    if config.mode == "spectra":
        with SpectraReader(spectra_path, expected_rows=len(table)) as reader:  # shape check before any work
            table["has_spectrum"] = np.where(reader.has_spectrum, 1.0, np.nan)
        extra += ("has_spectrum",)
    if config.mode == "labels":
        extra += data.choose_label_columns(table, config.label_columns)
    if config.offset_model == "multivariate":
        missing = [c for c in OFFSET_INPUT_COLUMNS if c not in table]
        if missing:
            raise TableError(f"{table_path}: the multivariate offset model needs column(s) {', '.join(missing)}")
        extra += tuple(c for c in OFFSET_INPUT_COLUMNS if c not in extra)
    cuts = training_cuts(config.cuts, extra, "valid network inputs")
    keep, report = apply_cuts(table, cuts)
    log(format_report(report, len(table)))
    require_nonempty(keep, report, str(table_path))
    return table, keep, report


def _build_model(config: TrainConfig, stars: StarData) -> ZeroPointNet:
    """The network for ``config``, standardised with the training stars' statistics, on the data's device."""
    spectra_polynomial = config.mode == "spectra" and config.luminosity_head == "log_linear"
    model = ZeroPointNet(
        ModelConfig(
            config.mode, config.offset_model, stars.n_inputs, config.dropout, luminosity_head=config.luminosity_head,
            n_quadratic=config.n_quadratic if spectra_polynomial else 0,
        )
    )  # fmt: skip
    s = stars.statistics
    offset = (None, None) if s.offset_mean is None else (torch.as_tensor(s.offset_mean), torch.as_tensor(s.offset_std))
    model.set_statistics(torch.as_tensor(s.input_mean), torch.as_tensor(s.input_std), s.fakemag_scale, *offset)
    if model.needs_projection:
        model.set_projection((torch.as_tensor(stars.pca_sample()) - model.input_mean) / model.input_std)
    return model.to(stars.device)


def _trainer(
    model: ZeroPointNet, stars: StarData, config: TrainConfig, out_dir: Path, progress: bool, log: Callable[[str], None]
) -> tuple[Trainer, Checkpoint]:
    """Adam with the paper's schedule, early stopping, progress and a checkpoint in ``out_dir``."""
    optimiser = torch.optim.Adam(parameter_groups(model, config), lr=config.learning_rate)
    checkpoint = Checkpoint(out_dir / CHECKPOINT_FILE, config)
    callbacks = [
        LearningRateSchedule(optimiser, config.lr_factor, config.lr_patience),
        EarlyStopping(config.early_stopping_patience),
        Progress(progress, log),
        checkpoint,
    ]
    return Trainer(model, optimiser, stars, callbacks, config.epochs, config.l2, config.seed), checkpoint


def train(
    table_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    spectra_path: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the network and fit the zero-point; write the run folder; return the summary.

    Parameters
    ----------
    table_path : path-like
        allStar-like table with Gaia columns (FITS, Parquet or CSV).
    out_dir : path-like
        Run folder (created).
    config : TrainConfig
    spectra_path : path-like, optional
        HDF5 spectra row-aligned with the table (needed in spectra mode).
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if present.
    progress : bool
        Show progress bars.
    log : callable
        Where messages (cut table, epoch results) go.

    Returns
    -------
    dict
        The content of ``summary.json``.
    """
    table_path, out_dir = Path(table_path), Path(out_dir)
    if config.mode == "spectra" and spectra_path is None:
        raise InputError("spectra mode needs --spectra FILE (or use --mode labels)")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    table, keep, report = _prepare_table(table_path, config, log, spectra_path)
    label_columns = data.choose_label_columns(table, config.label_columns) if config.mode == "labels" else ()
    stars = star_data(
        table, np.flatnonzero(keep), config, device, label_columns, spectra_path, config.max_memory_gb, log
    )
    model = _build_model(config, stars)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer, checkpoint = _trainer(model, stars, config, out_dir, progress, log)
    if resume and checkpoint.path.exists():
        checkpoint.restore(trainer)
        log(f"resuming from epoch {trainer.state.epoch} of {checkpoint.path}")
    elif config.warm_start and model.can_warm_start:
        warm = warm_start_log_linear(model, stars.train_stars(), log=log)
        val_loss = trainer.set_warm_start(asdict(warm))
        log(f"epoch 0 (warm start): val {val_loss:.4f}")
    started = time.perf_counter()
    state = trainer.fit()
    train_seconds = time.perf_counter() - started

    offset = offset_summary(
        model, stars.all_stars(), device, config.fit_mc_samples, config.offset_mc_passes, config.seed,
        astrometry=(stars.k_corr, stars.parallax, stars.parallax_error),
    )  # fmt: skip
    summary = {
        **offset,
        **_run_summary(table, stars, config, state, report, label_columns, device),
        "train_seconds": train_seconds,
        "table": str(table_path),
        "spectra": None if spectra_path is None else str(spectra_path),
        "zpdist_version": __version__,
        "torch_version": torch.__version__,
    }
    _write_run(out_dir, model, summary, list(offset), config, stars)
    log(
        f"zero-point offset: {summary['offset_uas']:.1f} ± {summary['offset_uas_err']:.1f} µas "
        f"(stat {summary['offset_uas_err_stat']:.1f}, MC {summary['offset_uas_err_mc']:.1f}); "
        f"{summary['n_train']} training + {summary['n_val']} validation stars, {summary['epochs_run']} epochs"
    )
    return summary


def _write_run(
    out_dir: Path, model: ZeroPointNet, summary: dict, offset_keys: list[str], config: TrainConfig, stars: StarData
) -> None:
    """Write ``model.pt`` (best weights and what predict needs to know), ``summary.json`` and ``train_config.json``,
    each atomically and only once training has ended, so a failed run never leaves them out of step."""
    metadata = {
        "label_columns": summary["label_columns"], "train": config.to_dict(),
        "summary": {k: summary[k] for k in offset_keys},
        "offset_input_range": stars.offset_input_range(),  # the training stars' G, BP-RP, Teff domain
    }  # fmt: skip
    save_model(out_dir / MODEL_FILE, model.cpu(), metadata)
    write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    write_text_atomic(out_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))


def _run_summary(
    table: pd.DataFrame,
    stars: StarData,
    config: TrainConfig,
    state: TrainState,
    report: list[CutResult],
    label_columns: tuple[str, ...],
    device: torch.device,
) -> dict:
    """The summary's entries about the data, the cuts and the training (in ``summary.json``'s order)."""
    return {
        "n_input_rows": len(table),
        "n_train": stars.n_train,
        "n_val": stars.n_val,
        "mode": config.mode,
        "offset_model": config.offset_model,
        "label_columns": list(label_columns),
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val,
        "warm_start": state.warm_start,
        "device": str(device),
        "n_ak_flagged": int(table["ak_flag"].sum()),
        "cuts": [r.to_dict() for r in report],
        "history": state.history,
    }
