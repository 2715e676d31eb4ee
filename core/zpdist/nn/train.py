"""Training: cuts, split, standardisation, Adam with the paper's schedule, early stopping, checkpoints.

A run folder holds ``model.pt`` (best weights, ``torch.load(..., weights_only=True)``-safe),
``checkpoint.pt`` (everything needed by ``--resume``, written atomically every epoch),
``train_config.json`` and ``summary.json`` (the fitted offset with its errors and the cut counts).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.config import TrainConfig
from zpdist.io.atomic import atomic_path, write_text_atomic
from zpdist.io.spectra import SpectraReader
from zpdist.io.tables import TableError, read_table
from zpdist.nn import data
from zpdist.nn.device import default_mc_rows, resolve_device
from zpdist.nn.infer import (
    MODEL_FILE,
    deterministic_offset,
    fit_offset_level,
    global_offset_passes,
    mc_predict,
    save_model,
)
from zpdist.nn.loss import mean_parallax_nll
from zpdist.nn.model import ModelConfig, ZeroPointNet, enable_mc_dropout
from zpdist.nn.warm_start import warm_start_log_linear
from zpdist.photometry import mag_parallax_to_fakemag
from zpdist.selection import (
    OFFSET_INPUT_COLUMNS,
    apply_cuts,
    format_report,
    require_nonempty,
    training_cuts,
)

CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "train_config.json"


#: Training spectra used to fit the principal components of a spectra-mode log-linear term.
PCA_SAMPLE_ROWS = 8000


@dataclass
class _Arrays:
    """Tensors of the selected stars, on the training device."""

    inputs: torch.Tensor
    offset_inputs: torch.Tensor | None
    k_corr: torch.Tensor
    parallax: torch.Tensor
    parallax_error: torch.Tensor

    def batch(self, index: torch.Tensor) -> tuple:
        z = None if self.offset_inputs is None else self.offset_inputs[index]
        return self.inputs[index], z, self.k_corr[index], self.parallax[index], self.parallax_error[index]


def _prepare_table(table_path: Path, config: TrainConfig, log: Callable[[str], None], spectra_path: Path | None = None):
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


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n < 2:
        raise ValueError(f"only {n} star(s) pass the cuts: at least 2 are needed for a training/validation split")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _to_device(array: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if array is None else torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)


def _parameter_groups(model: ZeroPointNet, config: TrainConfig) -> list[dict]:
    """Adam's parameter groups: the warm-started log-linear term and constant offset learn ``warm_lr_factor``
    times slower than the network, so its first noisy steps do not undo the warm start."""
    slow = []
    if config.warm_start and model.log_linear is not None:
        slow = [*model.log_linear.parameters(), *([] if model.offset_mas is None else [model.offset_mas])]
    fast = [p for p in model.parameters() if all(p is not q for q in slow)]
    groups = [{"params": fast}]
    if slow:
        groups.append({"params": slow, "lr": config.learning_rate * config.warm_lr_factor})
    return groups


def _epoch_loss(model: ZeroPointNet, arrays: _Arrays, l2: float, batch: int) -> float:
    """The training objective on held-out stars, with dropout on as in training and in Monte-Carlo inference.

    Dropout stays on because the network is never used without it: with dropout off, the spectra
    network's L is a few per cent away from its Monte-Carlo mean and that loss grows while the real one
    falls, which would drive the learning-rate schedule and early stopping on a model nobody uses.
    """
    enable_mc_dropout(model)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(arrays.parallax), batch):
            index = torch.arange(start, min(start + batch, len(arrays.parallax)), device=arrays.parallax.device)
            x, z, k, plx, err = arrays.batch(index)
            out = model(x, z)
            loss = mean_parallax_nll(plx, err, out["fakemag"], out["log_var"], k, out["offset"])
            total += float(loss) * len(index)
            count += len(index)
        return total / max(count, 1) + l2 * float(model.weight_penalty())


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


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
        raise ValueError("spectra mode needs --spectra FILE (or use --mode labels)")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    table, keep, report = _prepare_table(table_path, config, log, spectra_path)
    rows = np.flatnonzero(keep)
    train_idx, val_idx = _split(len(rows), config.validation_fraction, config.seed)
    label_columns = data.choose_label_columns(table, config.label_columns) if config.mode == "labels" else ()
    if config.mode == "labels":
        inputs = data.label_inputs(table, label_columns, rows)
    else:
        log(f"reading {len(rows)} spectra from {spectra_path}")
        inputs = data.spectra_inputs(spectra_path, len(table), rows)
    multivariate = config.offset_model == "multivariate"
    offsets = data.offset_inputs(table, rows) if multivariate else None
    k_corr = table["k_corr"].to_numpy()[rows]
    parallax = table["parallax"].to_numpy()[rows]
    parallax_error = table["parallax_error"].to_numpy()[rows]

    spectra_polynomial = config.mode == "spectra" and config.luminosity_head == "log_linear"
    model = ZeroPointNet(
        ModelConfig(
            config.mode, config.offset_model, inputs.shape[1], config.dropout, luminosity_head=config.luminosity_head,
            n_quadratic=config.n_quadratic if spectra_polynomial else 0,
        )
    )  # fmt: skip
    train_fakemag = mag_parallax_to_fakemag(k_corr[train_idx], parallax[train_idx])
    positive = train_fakemag[train_fakemag > 0]
    model.set_statistics(
        torch.as_tensor(inputs[train_idx].mean(0, dtype=np.float64)),
        torch.as_tensor(inputs[train_idx].std(0, dtype=np.float64)),
        float(np.median(positive)) if len(positive) else 1.0,
        None if offsets is None else torch.as_tensor(offsets[train_idx].mean(0, dtype=np.float64)),
        None if offsets is None else torch.as_tensor(offsets[train_idx].std(0, dtype=np.float64)),
    )
    if model.projection is not None:
        sample = np.random.default_rng(config.seed).permutation(train_idx)[:PCA_SAMPLE_ROWS]
        model.set_projection((torch.as_tensor(inputs[np.sort(sample)]) - model.input_mean) / model.input_std)
    model.to(device)

    def arrays(index: np.ndarray) -> _Arrays:
        return _Arrays(
            _to_device(inputs[index], device),
            _to_device(None if offsets is None else offsets[index], device),
            _to_device(k_corr[index], device),
            _to_device(parallax[index], device),
            _to_device(parallax_error[index], device),
        )

    train_arrays, val_arrays = arrays(train_idx), arrays(val_idx)
    optimiser = torch.optim.Adam(_parameter_groups(model, config), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    generator = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "history": [], "best_val": float("inf"), "best_epoch": 0, "bad_epochs": 0, "best_state": None}
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=True)
        current = json.loads(json.dumps(config.to_dict()))  # tuples as lists, as in the saved JSON
        if json.loads(saved["config_json"]) | {"epochs": config.epochs} != current | {"epochs": config.epochs}:
            raise ValueError(f"{checkpoint_path}: was written with a different configuration; cannot resume")
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        state = {k: saved[k] for k in state if k != "history"}
        state["history"] = json.loads(saved["history_json"])
        state["warm_start"] = json.loads(saved.get("warm_start_json", "null"))
        log(f"resuming from epoch {state['epoch']} of {checkpoint_path}")
    elif config.warm_start and model.log_linear is not None:
        warm = warm_start_log_linear(
            model, train_arrays.inputs, train_arrays.offset_inputs, train_arrays.k_corr, train_arrays.parallax,
            train_arrays.parallax_error, log=log,
        )  # fmt: skip
        # the warm-started model is epoch 0's candidate for early stopping: the network must beat it
        val_loss = _epoch_loss(model, val_arrays, config.l2, 4096)
        state.update(best_val=val_loss, best_epoch=0, best_state=copy.deepcopy(model.state_dict()))
        state["warm_start"] = {**asdict(warm), "val_loss": val_loss}
        log(f"epoch 0 (warm start): val {val_loss:.4f}")
    write_text_atomic(out_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))

    n_train = len(train_idx)
    steps = (n_train + config.batch_size - 1) // config.batch_size
    started = time.perf_counter()
    epochs = range(state["epoch"], config.epochs)
    epoch_bar = tqdm(epochs, "training", config.epochs, initial=state["epoch"], unit="epoch", disable=not progress)
    for epoch in epoch_bar:
        if state["bad_epochs"] >= config.early_stopping_patience:
            break
        model.train()
        epoch_start = time.perf_counter()
        order = torch.randperm(n_train, generator=generator).to(device)
        running = 0.0
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}", leave=False, disable=not progress, unit="batch"):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x, z, k, plx, err = train_arrays.batch(index)
            out = model(x, z)
            loss = mean_parallax_nll(plx, err, out["fakemag"], out["log_var"], k, out["offset"])
            loss = loss + config.l2 * model.weight_penalty()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            running += float(loss.detach()) * len(index)
        train_loss = running / n_train
        val_loss = _epoch_loss(model, val_arrays, config.l2, 4096)
        scheduler.step(val_loss)
        seconds = time.perf_counter() - epoch_start
        offset_now = float(model.offset_mas.detach()) * 1000 if model.offset_mas is not None else float("nan")
        record = {
            "epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
            "lr": optimiser.param_groups[0]["lr"], "seconds": seconds, "offset_uas": offset_now,
        }  # fmt: skip
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if val_loss < state["best_val"]:
            state.update(best_val=val_loss, best_epoch=epoch + 1, bad_epochs=0)
            state["best_state"] = copy.deepcopy(model.state_dict())
        else:
            state["bad_epochs"] += 1
        epoch_bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", offset_uas=f"{offset_now:.1f}")
        if not progress:
            log(
                f"epoch {epoch + 1}: train {train_loss:.4f}  val {val_loss:.4f}  lr {record['lr']:.2g}"
                f"  offset {offset_now:.1f} µas  ({seconds:.1f} s)"
            )
        _save_checkpoint(
            checkpoint_path,
            {
                "model": model.state_dict(), "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "config_json": json.dumps(config.to_dict()), "history_json": json.dumps(state["history"]),
                "warm_start_json": json.dumps(state.get("warm_start")),
                **{k: state[k] for k in ("epoch", "best_val", "best_epoch", "bad_epochs", "best_state")},
            },
        )  # fmt: skip
    train_seconds = time.perf_counter() - started
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])

    offset = _offset_summary(model, inputs, offsets, k_corr, parallax, parallax_error, config, device)
    summary = {
        **offset,
        "n_input_rows": len(table),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "mode": config.mode,
        "offset_model": config.offset_model,
        "label_columns": list(label_columns),
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val"],
        "warm_start": state.get("warm_start"),
        "device": str(device),
        "n_ak_flagged": int(table["ak_flag"].sum()),
        "cuts": [r.to_dict() for r in report],
        "history": state["history"],
        "train_seconds": train_seconds,
        "table": str(table_path),
        "spectra": None if spectra_path is None else str(spectra_path),
        "zpdist_version": __version__,
        "torch_version": torch.__version__,
    }
    # per-input [min, max] of the training stars' G, BP-RP, Teff: the domain the offset model has seen
    offset_range = None
    if offsets is not None:
        offset_range = np.stack([offsets[train_idx].min(0), offsets[train_idx].max(0)], 1).astype(float).tolist()
    metadata = {
        "label_columns": list(label_columns), "train": config.to_dict(), "summary": {k: summary[k] for k in offset},
        "offset_input_range": offset_range,
    }  # fmt: skip
    save_model(out_dir / MODEL_FILE, model.cpu(), metadata)
    write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    log(
        f"zero-point offset: {summary['offset_uas']:.1f} ± {summary['offset_uas_err']:.1f} µas "
        f"(stat {summary['offset_uas_err_stat']:.1f}, MC {summary['offset_uas_err_mc']:.1f}); "
        f"{summary['n_train']} training + {summary['n_val']} validation stars, {summary['epochs_run']} epochs"
    )
    return summary


def _offset_summary(
    model: ZeroPointNet,
    inputs: np.ndarray,
    offsets: np.ndarray | None,
    k_corr: np.ndarray,
    parallax: np.ndarray,
    parallax_error: np.ndarray,
    config: TrainConfig,
    device: torch.device,
) -> dict:
    """Bring the offset's level to the likelihood's optimum and report the global offset with its errors.

    Stochastic gradient steps leave a weakly constrained direction such as the zero-point jittering
    by a few µas from batch to batch, and a plateau schedule can freeze it wherever it happens to be.
    With the network frozen, the offset's level and a global luminosity scale enter the likelihood
    linearly, so their optimum follows exactly from weighted least squares (:func:`fit_offset_level`,
    with the loss's own variance σ_ϖ² + e^s). They are written back into the model; the error of that
    fit is the statistical error, and the spread over shared-mask Monte-Carlo passes of the offset
    branch is the model (dropout) error.
    """
    model = model.to(device)
    prediction = mc_predict(model, inputs, offsets, config.fit_mc_samples, device, default_mc_rows(device))
    current_offset = deterministic_offset(model, offsets, len(parallax), device)
    to_parallax = 10.0 ** (-0.2 * k_corr)
    sgd_offset = float(np.nanmean(current_offset))
    fit = fit_offset_level(
        current_offset,
        prediction.fakemag * to_parallax,
        parallax,
        parallax_error,
        np.sqrt(prediction.fakemag_pred_var) * to_parallax,
    )
    with torch.no_grad():
        if model.offset_mlp is None:
            model.offset_mas.add_(fit.shift)
        else:
            model.offset_mlp.out.bias.add_(fit.shift)
        model.fakemag_scale.mul_(fit.luminosity_scale)
    passes = global_offset_passes(model, offsets, config.offset_mc_passes, device, config.seed)
    stat, mc = fit.shift_error, float(np.std(passes))
    return {
        "offset_uas": 1000.0 * float(np.mean(passes)),
        "offset_uas_err": 1000.0 * float(np.hypot(stat, mc)),
        "offset_uas_err_stat": 1000.0 * stat,
        "offset_uas_err_mc": 1000.0 * mc,
        "offset_uas_before_polish": 1000.0 * sgd_offset,
        "luminosity_scale_polish": fit.luminosity_scale,
        "offset_mc_passes": config.offset_mc_passes,
    }
