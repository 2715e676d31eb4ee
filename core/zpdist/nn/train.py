"""Training: the composition of the table's cuts, the data module, the model, the warm start, the trainer and
the offset summary into a run folder.

A run folder holds ``model.pt`` (best weights, ``torch.load(..., weights_only=True)``-safe),
``checkpoint.pt`` (everything needed by ``--resume``), ``train_config.json``, ``summary.json`` (the fitted
offset with its errors and the cut counts) and ``zpdist.toml`` (the configuration tree). A run is written
into a sibling folder ``RUN_DIR.incomplete`` (its checkpoint after every epoch, atomically) and its files
are moved into ``RUN_DIR`` only once it has ended, so a failed or interrupted run never leaves ``RUN_DIR``
half-made or mixes two runs' files; ``--resume`` continues from the incomplete run's checkpoint, else from
the finished run's. The data (:mod:`zpdist.nn.datamodule`), the loop (:mod:`zpdist.nn.trainer`) and what
happens around it (:mod:`zpdist.nn.callbacks`) live in their own modules.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.config import CONFIG_FILE as SETTINGS_FILE
from zpdist.config import TrainConfig, ZpdistConfig, write_config
from zpdist.errors import InputError, OutputError
from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.io.atomic import write_text_atomic
from zpdist.io.spectra import MAX_NONFINITE_FRACTION, SpectraError, SpectraReader
from zpdist.io.tables import TableError, read_table
from zpdist.nn import data
from zpdist.nn.callbacks import Checkpoint, EarlyStopping, LearningRateSchedule, Progress, file_fingerprint
from zpdist.nn.datamodule import StarData, star_data
from zpdist.nn.device import resolve_device
from zpdist.nn.distance_prior import DistancePrior
from zpdist.nn.half_samples import half_sample_rows, half_sample_seed
from zpdist.nn.half_samples import summarise as summarise_half_samples
from zpdist.nn.infer import MODEL_FILE, save_model
from zpdist.nn.loss import ParallaxLikelihood
from zpdist.nn.model import ModelConfig, ZeroPointNet
from zpdist.nn.offset_fit import offset_summary
from zpdist.nn.offset_plane import COEFFICIENTS as PLANE_COEFFICIENTS
from zpdist.nn.trainer import Trainer, TrainState
from zpdist.nn.warm_start import FrozenStars, WarmStart, frozen_stars, parameter_groups, warm_start_log_linear
from zpdist.selection import (
    OFFSET_INPUT_COLUMNS,
    Cut,
    CutResult,
    apply_cuts,
    format_report,
    require_nonempty,
    training_cuts,
)
from zpdist.sky_floor import REFERENCE as SKY_FLOOR_REFERENCE
from zpdist.sky_floor import footprint_diameter_deg, sky_floor_uas
from zpdist.units import mas_to_uas

CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "train_config.json"
#: The files of a run folder, in the order they are moved into it when the run ends (the model last).
RUN_FILES = (CHECKPOINT_FILE, SUMMARY_FILE, CONFIG_FILE, SETTINGS_FILE, MODEL_FILE)
#: Suffix of the folder a run is written into until it ends (``RUN_DIR.incomplete``).
INCOMPLETE_SUFFIX = ".incomplete"
#: Name of the cut that removes spectra rows which are mostly NaN or ±inf.
NAN_SPECTRA_CUT = f"spectrum not NaN (at most {MAX_NONFINITE_FRACTION:.0%} of pixels NaN or inf)"


def _read_training_table(table_path: Path, log: Callable[[str], None]) -> pd.DataFrame:
    """The table with ``k_corr``; refused without a usable Gaia parallax and its error."""
    table = read_table(table_path, required=("k",), require_gaia=True)
    column = table.attrs["column_map"]["parallax"]
    if "parallax_error" not in table:
        raise TableError(f"{table_path}: no parallax error column {column}_ERROR beside {column}; training needs σϖ")
    if not np.isfinite(table["parallax"].to_numpy(float)).any():
        raise TableError(f"{table_path}: column {column} has no valid parallax (all missing/NaN)")
    table = data.add_corrected_k(table)
    n_flagged = int(table["ak_flag"].sum())
    if n_flagged:
        log(f"A_K missing or negative for {n_flagged} of {len(table)} stars: used A_K = 0 (flagged)")
    return table


def _subtract_l21(table: pd.DataFrame, table_path: Path, log: Callable[[str], None]) -> Cut:
    """Subtract the L21 zero-point from ``table["parallax"]`` (in place) and return the cut on L21's validity.

    Raises
    ------
    InputError
        If the table's parallaxes are not (E)DR3 or it lacks L21's columns (the message says which).
    """
    from zpdist.lindegren import L21_COLUMNS, table_l21

    l21 = table_l21(table)
    if l21 is None:
        missing = [c for c in L21_COLUMNS if c not in table]
        raise InputError(
            f"{table_path}: --parallax-correction l21 needs Gaia (E)DR3 parallaxes (this table's release: "
            f"{table.attrs.get('gaia_release') or 'unknown'}) and the columns {', '.join(L21_COLUMNS)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    zero_point, outside = l21
    table["parallax"] = table["parallax"].to_numpy(float) - zero_point
    table["l21_valid"] = np.where(outside, np.nan, 1.0)
    median = mas_to_uas(float(np.nanmedian(zero_point))) if (~outside).any() else float("nan")
    log(
        f"L21 zero-point subtracted from {int((~outside).sum())} parallaxes (median {median:.1f} µas); "
        f"{int(outside.sum())} stars outside its validity range"
    )
    return Cut("inside L21's validity range", ("l21_valid",), lambda t: np.isfinite(t["l21_valid"].to_numpy(float)))


def _mark_spectra(table: pd.DataFrame, spectra_path: Path, log: Callable[[str], None]) -> list[Cut]:
    """Add ``has_spectrum`` (the file's word) and ``spectrum_not_nan`` (the data's) to ``table``, NaN where false;
    return the cut on the latter. A row that is mostly NaN or ±inf is missing whatever the file says.

    Raises
    ------
    SpectraError
        If the file has no usable spectrum at all.
    """
    with SpectraReader(spectra_path, expected_rows=len(table)) as reader:
        present = reader.has_spectrum
        usable = reader.usable_rows()
    n_nan = int((present & ~usable).sum())
    if not usable.any():
        raise SpectraError(
            f"{spectra_path}: no usable spectrum: of {len(table)} rows, {int((~present).sum())} are marked without "
            f"one and {n_nan} have more than {MAX_NONFINITE_FRACTION:.0%} of their pixels NaN or inf"
        )
    if n_nan:
        log(f"{spectra_path}: {n_nan} of {len(table)} spectra are NaN (treated as missing, never filled in)")
    table["has_spectrum"] = np.where(present, 1.0, np.nan)
    table["spectrum_not_nan"] = np.where(usable | ~present, 1.0, np.nan)
    return [Cut(NAN_SPECTRA_CUT, ("spectrum_not_nan",), lambda t: np.isfinite(t["spectrum_not_nan"].to_numpy()))]


def _prepare_table(
    table_path: Path, config: TrainConfig, log: Callable[[str], None], spectra_path: Path | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[CutResult]]:
    """The table with ``k_corr`` (and ``has_spectrum`` in spectra mode), the rows that pass the cuts, the cut report."""
    table = _read_training_table(table_path, log)
    extra: tuple[str, ...] = ()
    extra_cuts: list[Cut] = [_subtract_l21(table, table_path, log)] if config.parallax_correction == "l21" else []
    if config.mode == "spectra":
        extra_cuts += _mark_spectra(table, spectra_path, log)
        extra += ("has_spectrum",)
    if config.mode == "labels":
        extra += data.choose_label_columns(table, config.label_columns)
    if config.offset_model == "multivariate":
        missing = [c for c in OFFSET_INPUT_COLUMNS if c not in table]
        if missing:
            raise TableError(f"{table_path}: the multivariate offset model needs column(s) {', '.join(missing)}")
        extra += tuple(c for c in OFFSET_INPUT_COLUMNS if c not in extra)
    cuts = training_cuts(config.cuts, extra, "valid network inputs") + extra_cuts
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
    model: ZeroPointNet,
    stars: StarData,
    config: TrainConfig,
    checkpoint: Checkpoint | None,
    progress: bool,
    log: Callable[[str], None],
    likelihood: ParallaxLikelihood,
) -> Trainer:
    """Adam with the paper's schedule, early stopping, progress and ``checkpoint`` (last; none for a half-sample)."""
    optimiser = torch.optim.Adam(parameter_groups(model, config), lr=config.learning_rate)
    callbacks = [
        LearningRateSchedule(optimiser, config.lr_factor, config.lr_patience),
        EarlyStopping(config.early_stopping_patience),
        Progress(progress, log),
        *([checkpoint] if checkpoint is not None else []),
    ]
    return Trainer(model, optimiser, stars, callbacks, config.epochs, config.l2, config.seed, likelihood)


def incomplete_folder(out_dir: str | os.PathLike) -> Path:
    """The folder a run is written into until it ends: ``RUN_DIR.incomplete``, beside ``RUN_DIR``.

    Raises
    ------
    OutputError
        If ``out_dir`` or that folder exists and is not a folder, or ``out_dir`` is the file system's root.
    """
    out_dir = Path(out_dir)
    resolved = out_dir.resolve()
    if not resolved.name:
        raise OutputError(f"{out_dir}: a run folder cannot be the root of the file system")
    staging = resolved.with_name(resolved.name + INCOMPLETE_SUFFIX)
    for folder in (out_dir, staging):
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder}: exists and is not a folder; choose another --out")
    return staging


def _clear(staging: Path, keep_checkpoint: bool = False) -> None:
    """Remove the run files from an incomplete run's folder, and the folder itself unless something is left."""
    for name in RUN_FILES:
        if not (keep_checkpoint and name == CHECKPOINT_FILE):
            (staging / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: the checkpoint kept, or files that are not zpdist's
        staging.rmdir()


def _resume_source(staging: Path, out_dir: Path, log: Callable[[str], None]) -> Path | None:
    """The checkpoint ``--resume`` continues from: the incomplete run's, else the finished run's, else None."""
    for folder in (staging, out_dir):
        if (folder / CHECKPOINT_FILE).is_file():
            return folder / CHECKPOINT_FILE
    log(f"no checkpoint in {out_dir} or {staging}: training from the start")
    return None


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished run's files from ``staging`` into ``out_dir`` (each rename atomic, the model last)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (staging / name).is_file():
            os.replace(staging / name, out_dir / name)
    _clear(staging)


def _selection_bias(trainer: Trainer, warm: WarmStart, frozen: FrozenStars, frame: GalactocentricFrameConfig) -> dict:
    """The expected selection bias of the paper's objective: the warm start's offset under the paper's likelihood
    minus under the selection-aware one, same frozen features (µas); empty without sightlines.

    The warm start is repeated, on a copy of the model and silently, under the objective not trained with.
    """
    if not trainer.data.has_sightlines:
        return {}
    trained_aware = trainer.likelihood.prior is not None
    prior = None if trained_aware else DistancePrior.from_frame(frame)
    other_warm = warm_start_log_linear(
        copy.deepcopy(trainer.model), frozen, log=lambda _: None, likelihood=replace(trainer.likelihood, prior=prior)
    )
    paper, aware = (other_warm, warm) if trained_aware else (warm, other_warm)
    return {"selection_bias_uas": mas_to_uas(paper.offset_mas - aware.offset_mas)}


def _fit(
    trainer: Trainer,
    checkpoint: Checkpoint | None,
    source: Path | None,
    config: TrainConfig,
    log: Callable[[str], None],
    frame: GalactocentricFrameConfig,
    diagnose: bool = True,
) -> tuple[TrainState, float]:
    """Restore ``source`` (or warm-start the model), then run the epochs: the final state and the time taken (s).
    ``diagnose``: also run the warm start under the paper's likelihood for the selection-bias diagnostic."""
    if source is not None:
        checkpoint.restore(trainer, source)
        log(f"resuming from epoch {trainer.state.epoch} of {source}")
    elif config.warm_start and trainer.model.can_warm_start:
        frozen = frozen_stars(trainer.model, trainer.data.train_stars())
        warm = warm_start_log_linear(trainer.model, frozen, log=log, likelihood=trainer.likelihood)
        bias = _selection_bias(trainer, warm, frozen, frame) if diagnose else {}
        val_loss = trainer.set_warm_start(asdict(warm) | bias)
        log(f"epoch 0 (warm start): val {val_loss:.4f}")
    started = time.perf_counter()
    state = trainer.fit()
    return state, time.perf_counter() - started


def train(
    table_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    spectra_path: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    settings: ZpdistConfig | None = None,
) -> dict:
    """Train the network and fit the zero-point; write the run folder; return the summary.

    The run is written into ``RUN_DIR.incomplete`` (:func:`incomplete_folder`) and its files moved into
    ``out_dir`` when it ends; if it fails, ``out_dir`` is as it was, and the incomplete folder is removed
    unless it holds a checkpoint for ``resume`` (the log says so).

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
        Continue from the checkpoint of the interrupted run (``RUN_DIR.incomplete/checkpoint.pt``), else from
        ``out_dir/checkpoint.pt``, if either exists; refused if it was written with another configuration
        (``epochs`` aside), table or spectra file.
    progress : bool
        Show progress bars.
    log : callable
        Where messages (cut table, epoch results) go.
    settings : ZpdistConfig, optional
        The configuration tree saved as ``zpdist.toml``; default: the defaults with ``config`` as ``[train]``.

    Returns
    -------
    dict
        The content of ``summary.json``.
    """
    table_path, out_dir = Path(table_path), Path(out_dir)
    if config.mode == "spectra" and spectra_path is None:
        raise InputError("spectra mode needs --spectra FILE (or use --mode labels)")
    staging = incomplete_folder(out_dir)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    table, keep, report = _prepare_table(table_path, config, log, spectra_path)
    label_columns = data.choose_label_columns(table, config.label_columns) if config.mode == "labels" else ()
    stars = star_data(
        table, np.flatnonzero(keep), config, device, label_columns, spectra_path, config.max_memory_gb, log
    )
    model = _build_model(config, stars)
    inputs = {"table": file_fingerprint(table_path)}
    if config.mode == "spectra":
        inputs["spectra"] = file_fingerprint(spectra_path)
    checkpoint = Checkpoint(staging / CHECKPOINT_FILE, config, inputs)
    settings = settings or ZpdistConfig(training=config.cuts, train=config)
    likelihood = training_likelihood(config, settings.frame)
    if likelihood.prior is not None and not stars.has_sightlines:
        log(f"warning: {table_path} has neither GLON/GLAT nor RA/DEC: the selection-aware likelihood falls back to "
            "the paper's (the magnitude limit may then bias the offset)")  # fmt: skip
        likelihood = replace(likelihood, prior=None)
    trainer = _trainer(model, stars, config, checkpoint, progress, log, likelihood)
    source = _resume_source(staging, out_dir, log) if resume else None
    if source is None:
        _clear(staging)  # a new run: an earlier incomplete one is abandoned
    staging.mkdir(parents=True, exist_ok=True)
    try:
        state, train_seconds = _fit(trainer, checkpoint, source, config, log, settings.frame)
        offset = _level_fit(model, stars, config, device, likelihood)
        if config.half_samples:
            fits = (table, keep, config, device, label_columns, spectra_path, likelihood, settings, log, progress)
            offset.update(_half_sample_fits(*fits))
            offset.update(_quoted_error(offset))
        offset.update(_sky_floor(table.attrs.get("gaia_release"), stars.sightlines()))
        summary = {
            **offset,
            **_run_summary(table, stars, config, state, report, label_columns, device),
            "train_seconds": train_seconds,
            "table": str(table_path),
            "spectra": None if spectra_path is None else str(spectra_path),
            "zpdist_version": __version__,
            "torch_version": torch.__version__,
        }
        _write_run(staging, model, summary, list(offset), config, stars, settings)
    except BaseException:
        _clear(staging, keep_checkpoint=True)
        if (staging / CHECKPOINT_FILE).exists():
            log(f"run incomplete: {out_dir} is unchanged; {staging} keeps the last checkpoint for --resume")
        raise
    _publish(staging, out_dir)
    _report(summary, log)
    return summary


def _silent(_message: str) -> None:
    """A log that keeps nothing."""


def _half_sample_fits(
    table: pd.DataFrame,
    keep: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    label_columns: tuple[str, ...],
    spectra_path: Path | None,
    likelihood: ParallaxLikelihood,
    settings: ZpdistConfig,
    log: Callable[[str], None],
    progress: bool,
) -> dict:
    """The whole fit (warm start, Adam, the level's fit) repeated on ``config.half_samples`` random halves of the
    selected stars, each with its own seed: :func:`zpdist.nn.half_samples.summarise` of their results. The halves'
    own messages (cut tables, epochs) are not logged: one line per half is."""
    rows, levels, planes = np.flatnonzero(keep), [], []
    for index in tqdm(range(config.half_samples), desc="half-samples", unit="fit", disable=not progress):
        half = replace(config, seed=half_sample_seed(config.seed, index), network_draws=0)
        torch.manual_seed(half.seed)
        stars = star_data(
            table, half_sample_rows(rows, index, config.seed), half, device, label_columns, spectra_path,
            config.max_memory_gb, _silent,
        )  # fmt: skip
        model = _build_model(half, stars)
        trainer = _trainer(model, stars, half, None, False, _silent, likelihood)
        state, _ = _fit(trainer, None, None, half, _silent, settings.frame, diagnose=False)
        fit = _level_fit(model, stars, half, device, likelihood)
        levels.append(fit["offset_uas"])
        if "offset_plane" in fit:
            planes.append(fit["offset_plane"])
        log(
            f"half-sample {index + 1}/{config.half_samples}: offset {fit['offset_uas']:.1f} µas "
            f"({stars.n_train} training stars, best epoch {state.best_epoch} of {state.epoch})"
        )
    return summarise_half_samples(levels, planes)


def _level_fit(
    model: ZeroPointNet, stars: StarData, config: TrainConfig, device: torch.device, likelihood: ParallaxLikelihood
) -> dict:
    """:func:`offset_summary` of a trained model over its stars, with ``config``'s passes, seed and network draws."""
    return offset_summary(
        model, stars.all_stars, device, config.fit_mc_samples, config.offset_mc_passes, config.seed,
        astrometry=(stars.k_corr, stars.parallax, stars.parallax_error), likelihood=likelihood,
        network_draws=config.network_draws,
    )  # fmt: skip


def _quoted_error(offset: dict) -> dict:
    """The half-samples' spread as the quoted error of the offset's level and plane, in place of the single fit's
    (:func:`offset_summary`'s); nothing changes when fewer than two halves gave a finite level."""
    half = offset["offset_uas_err_half_samples"]
    if not np.isfinite(half):
        return {}
    out = {"offset_uas_err": half, "offset_uas_err_level": half, "offset_uas_err_method": "half_samples"}
    if "offset_plane" in offset:
        spread, plane = offset["offset_plane_err_half_samples"], offset["offset_plane"]
        out["offset_plane"] = {name: [v[0], spread[name]] if name in spread else v for name, v in plane.items()}
    return out


def _report(summary: dict, log: Callable[[str], None]) -> None:
    """The fitted offset with its error's parts, the selection-bias diagnostic and the sky-systematics floor."""
    parts = (
        f"stat {summary['offset_uas_err_stat']:.1f}, network {summary['offset_uas_err_network']:.1f}, "
        f"offset MC {summary['offset_uas_err_mc']:.1f}"
    )
    if summary["offset_uas_err_method"] == "half_samples":
        parts = f"spread of {summary['half_samples']} half-sample fits; single-fit parts: {parts}"
    log(
        f"zero-point offset: {summary['offset_uas']:.1f} ± {summary['offset_uas_err']:.1f} µas ({parts}); "
        f"{summary['n_train']} training + {summary['n_val']} validation stars, {summary['epochs_run']} epochs"
    )
    if plane := summary.get("offset_plane"):
        log(
            "plane fitted to the offset model (pivot G 13, BP−RP 1.3, Teff 4750 K): "
            + ", ".join(f"{name} {plane[name][0]:+.2f} ± {plane[name][1]:.2f}" for name in PLANE_COEFFICIENTS)
        )
    _warn_selection_bias(summary, log)
    if summary["offset_uas_err_sky_floor"] is not None:
        log(
            f"on real Gaia {summary['gaia_release']} data add {summary['offset_uas_err_sky_floor']:.0f} µas for the "
            f"sky-correlated systematics over this {summary['sky_footprint_deg']:.0f}° footprint "
            f"({SKY_FLOOR_REFERENCE})"
        )
    _error_notes(summary, log)


def _error_notes(summary: dict, log: Callable[[str], None]) -> None:
    """What the quoted error leaves out, where it was measured to matter (docs/method.md §12, §13)."""
    if summary["mode"] == "spectra" and summary["offset_uas_err_method"] != "half_samples":
        log(
            "note: in spectra mode the single fit's error is not calibrated (on the realistic mock it was up to "
            "2.3× too small, docs/method.md §13); train with --half-samples 10 for one that is"
        )
    real_labels = summary["mode"] == "labels" and summary["offset_uas_err_sky_floor"] is not None
    if real_labels and "logg" in (summary.get("label_columns") or ()):
        log(
            "note: a log g whose calibration drifts with apparent magnitude biases the offset outside this error "
            "(about 13 µas per 0.01 dex/mag on the APOKASC-2 giants, where ASPCAP DR14's drift within each "
            "evolutionary state, -0.005 dex/mag for RGB and -0.002 for red-clump stars, moved the offset by +4 µas; "
            "docs/method.md §12)"
        )


def _sky_floor(gaia_release: str | None, sightline: np.ndarray | None) -> dict:
    """The footprint of the training stars (deg) and the sky-systematics floor of their mean offset (µas, None:
    not known for this release)."""
    diameter = float("nan") if sightline is None else footprint_diameter_deg(sightline)
    return {
        "sky_footprint_deg": diameter if np.isfinite(diameter) else None,
        "offset_uas_err_sky_floor": sky_floor_uas(gaia_release, diameter),
        "sky_floor_reference": SKY_FLOOR_REFERENCE,
    }


def training_likelihood(config: TrainConfig, frame: GalactocentricFrameConfig) -> ParallaxLikelihood:
    """The objective ``config`` asks for, the distance prior's Sun placed by ``frame``."""
    prior = DistancePrior.from_frame(frame) if config.likelihood == "selection" else None
    return ParallaxLikelihood(prior, config.outlier_fraction, config.luminosity_scatter)


def _warn_selection_bias(summary: dict, log: Callable[[str], None]) -> None:
    """Say, with its size, when the paper's objective is biased by more than the statistical error."""
    bias = summary.get("selection_bias_uas")
    if bias is None or abs(bias) <= summary["offset_uas_err_stat"]:
        return
    size = f"{bias:+.1f} µas, {abs(bias) / summary['offset_uas_err_stat']:.1f}× the statistical error"
    if summary["likelihood"] == "paper":
        log(
            f"warning: the magnitude limit biases the paper's objective here by about {size} (its warm start minus "
            "the selection-aware one's); train with --likelihood selection"
        )
    else:
        log(f"the paper's objective would have been biased by about {size} here (warm starts compared)")


def _write_run(
    folder: Path,
    model: ZeroPointNet,
    summary: dict,
    offset_keys: list[str],
    config: TrainConfig,
    stars: StarData,
    settings: ZpdistConfig,
) -> None:
    """Write ``model.pt`` (best weights and what predict needs to know), ``summary.json``, ``train_config.json``
    and ``zpdist.toml`` into ``folder``, each atomically and only once training has ended."""
    metadata = {
        "label_columns": summary["label_columns"], "train": config.to_dict(),
        "summary": {k: summary[k] for k in offset_keys},
        "offset_input_range": stars.offset_input_range(),  # the training stars' G, BP-RP, Teff domain
    }  # fmt: skip
    save_model(folder / MODEL_FILE, model.cpu(), metadata)
    write_text_atomic(folder / SUMMARY_FILE, json.dumps(summary, indent=2))
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
    write_config(settings, folder / SETTINGS_FILE)


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
        "selection_bias_uas": (state.warm_start or {}).get("selection_bias_uas"),
        "device": str(device),
        "n_ak_flagged": int(table["ak_flag"].sum()),
        "gaia_release": table.attrs.get("gaia_release"),  # which parallaxes this offset is the offset of
        "gaia_release_source": table.attrs.get("gaia_release_source"),
        "cuts": [r.to_dict() for r in report],
        "history": state.history,
    }
