"""End-to-end steps used by the CLI: predicting a catalog from a trained run, and the mock demo."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.catalog import UNITS, build_catalog
from zpdist.errors import InputError
from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.io.catalog import read_catalog, write_catalog
from zpdist.io.spectra import MAX_NONFINITE_FRACTION, SpectraError, SpectraReader, fill_bad_pixels, nonfinite_rows
from zpdist.io.tables import read_table
from zpdist.nn import data
from zpdist.nn.device import default_mc_rows, resolve_device, resolve_precision
from zpdist.nn.distance_prior import DistancePrior
from zpdist.nn.infer import MCPrediction, load_model, mc_predict
from zpdist.nn.model import ZeroPointNet
from zpdist.nn.offset_export import level_error_mas
from zpdist.nn.selection_distance import selection_aware_distance
from zpdist.units import pc_to_kpc

#: Spectra rows read from disk per inference step.
SPECTRA_CHUNK_ROWS = 2048


def _selection_aware_distances(
    table: pd.DataFrame, prediction: MCPrediction, train: dict, frame: GalactocentricFrameConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """For a model trained with the selection-aware likelihood, each star's distance and error over that
    likelihood's prior (docs/method.md §12); None for the paper's, or without sky positions."""
    if train.get("likelihood") != "selection":
        return None
    lines = data.sightlines_of(table, np.arange(len(table)))
    if lines is None:
        return None
    prior = DistancePrior.from_frame(frame)
    lognormal = train.get("luminosity_scatter") == "lognormal"
    return selection_aware_distance(
        prediction.fakemag, prediction.fakemag_error, table["k_corr"].to_numpy(float), lines, prior, lognormal
    )


def predict_catalog(
    run_dir: str | os.PathLike,
    table_path: str | os.PathLike,
    out_path: str | os.PathLike,
    spectra_path: str | os.PathLike | None = None,
    mc_samples: int = 100,
    device: str = "auto",
    frame: GalactocentricFrameConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    precision: str = "auto",
) -> Path:
    """Predict distances and offsets for every star of a table and write the catalog.

    Parameters
    ----------
    run_dir : path-like
        A training run folder with ``model.pt``.
    table_path : path-like
        allStar-like table (any Gaia column names; rows without Gaia still get NN distances).
    out_path : path-like
        ``.parquet`` or ``.fits`` catalog (written atomically).
    spectra_path : path-like, optional
        Spectra row-aligned with the table, streamed in chunks (spectra-mode models).
    mc_samples : int
        Monte-Carlo dropout passes per star (paper: 100).
    device : str
        "auto", "cpu" or "cuda".
    frame : GalactocentricFrameConfig, optional
        Galactocentric frame; defaults to R0 = 8.125 kpc, z_⊙ = 20.8 pc.
    precision : {"auto", "float32", "bfloat16", "float16"}
        Arithmetic of the Monte-Carlo dropout layers: "auto" is bfloat16 on CUDA, float32 on CPU.
    """
    frame = frame or GalactocentricFrameConfig()
    torch_device = resolve_device(device)
    body_dtype = resolve_precision(precision, torch_device)  # a bad name fails before any work
    model, meta = load_model(run_dir, torch_device)
    table = data.add_corrected_k(read_table(table_path, required=("k",)))
    offsets = data.offset_inputs(table) if model.offset.needs_inputs else None
    max_rows = default_mc_rows(torch_device)
    prediction = MCPrediction.empty(len(table))
    if model.config.mode == "labels":
        inputs = data.label_inputs(table, data.choose_label_columns(table, meta["label_columns"]))
        step = max(1, 65536 // mc_samples) * 16
        for start in tqdm(range(0, len(table), step), desc="predicting", unit="chunk", disable=not progress):
            rows = np.arange(start, min(start + step, len(table)))
            z = None if offsets is None else offsets[rows]
            prediction.fill(rows, mc_predict(model, inputs[rows], z, mc_samples, torch_device, max_rows, precision))
    else:
        if spectra_path is None:
            raise InputError(f"{run_dir}: this is a spectra-mode model; give --spectra FILE")
        _predict_spectra(model, spectra_path, offsets, prediction, mc_samples, torch_device, precision, progress, log)
    after_l21 = meta["train"].get("parallax_correction", "none") == "l21"
    distance = _selection_aware_distances(table, prediction, meta["train"], frame)
    catalog = build_catalog(table, prediction, frame, level_error_mas(meta["summary"]), after_l21, distance)
    metadata = {
        "model": {"run_dir": str(Path(run_dir).resolve()), **meta["summary"], "mode": model.config.mode,
                  "offset_model": model.config.offset_model, "label_columns": meta["label_columns"]},
        "mc_samples": mc_samples,
        "device": str(torch_device),
        "mc_precision": "float32" if body_dtype is None else str(body_dtype).removeprefix("torch."),
        "frame": frame.to_dict(),
        "input_table": str(table_path),
        "gaia_release": table.attrs.get("gaia_release"),
        "gaia_release_source": table.attrs.get("gaia_release_source"),
        "spectra": None if spectra_path is None else str(spectra_path),
        "zpdist_version": __version__,
        "torch_version": torch.__version__,
        "n_rows": len(catalog),
        "n_with_distance": int(np.isfinite(catalog["dist"]).sum()),
    }  # fmt: skip
    path = write_catalog(catalog, out_path, metadata, UNITS)
    good = catalog["dist_error"] / catalog["dist"] < 0.1
    log(
        f"catalog: {path} ({len(catalog)} stars, {metadata['n_with_distance']} with an NN distance, "
        f"{int(good.sum())} with < 10 % distance error)"
    )
    return path


def _predict_spectra(
    model: ZeroPointNet,
    spectra_path: str | os.PathLike,
    offsets: np.ndarray | None,
    prediction: MCPrediction,
    mc_samples: int,
    device: torch.device,
    precision: str,
    progress: bool,
    log: Callable[[str], None],
) -> None:
    """Fill ``prediction`` from the spectra streamed in chunks; rows without a spectrum, or whose spectrum is mostly
    NaN or ±inf (:func:`zpdist.io.spectra.nonfinite_rows`), get none (NaN in the catalog), never a filled-in one.

    Raises
    ------
    SpectraError
        If no row of the file holds a usable spectrum.
    """
    n_missing = n_nan = 0
    with SpectraReader(spectra_path, expected_rows=len(prediction.fakemag)) as reader:
        has_spectrum = reader.has_spectrum
        chunks = reader.iter_chunks(SPECTRA_CHUNK_ROWS)
        total = -(-reader.n_rows // SPECTRA_CHUNK_ROWS)
        for start, block in tqdm(chunks, total=total, desc="predicting", unit="chunk", disable=not progress):
            rows = np.arange(start, start + len(block))
            nan_rows = nonfinite_rows(block) & has_spectrum[rows]
            missing = nan_rows | ~has_spectrum[rows]
            n_missing, n_nan = n_missing + int(missing.sum()), n_nan + int(nan_rows.sum())
            fill_bad_pixels(block)
            block[missing] = np.nan  # no spectrum: no NN prediction
            z = None if offsets is None else offsets[rows]
            prediction.fill(rows, mc_predict(model, block, z, mc_samples, device, default_mc_rows(device), precision))
    if n_missing == len(has_spectrum):
        raise SpectraError(
            f"{spectra_path}: no usable spectrum: of {n_missing} rows, {n_missing - n_nan} are marked without one "
            f"and {n_nan} have more than {MAX_NONFINITE_FRACTION:.0%} of their pixels NaN or inf"
        )
    if n_nan:
        log(f"{spectra_path}: {n_nan} of {len(has_spectrum)} spectra are NaN: no NN prediction for them")


def run_demo(
    out_dir: str | os.PathLike,
    n_stars: int = 30_000,
    mode: str = "labels",
    epochs: int = 40,
    device: str = "auto",
    seed: int = 42,
    log: Callable[[str], None] = print,
) -> Path:
    """Mock → train → predict on the embedded mock Galaxy; print the fit beside the truth; return the catalog path.

    The mock is rebuilt only if absent or made with another size or seed. Labels mode is the default
    because it runs in a couple of minutes on a laptop's CPU; ``mode="spectra"`` is the paper's network
    (about ten times slower on a CPU, and it needs ≳ 100,000 mock stars to have enough SNR > 200 spectra).
    """
    from zpdist.mock.config import MockConfig
    from zpdist.mock.generate import MockFiles, write_mock
    from zpdist.nn.train import TrainConfig, train
    from zpdist.precision import crossover_distance, format_profile, fractional_error_profile

    out_dir = Path(out_dir)
    files = MockFiles(out_dir / "mock")
    config = MockConfig(n_stars=n_stars, seed=seed, write_spectra=mode == "spectra")
    existing = json.loads(files.config.read_text())["config"] if files.config.exists() else None
    if existing != json.loads(config.to_json()) or (config.write_spectra and not files.spectra.exists()):
        log(f"[1/3] building the mock Galaxy ({n_stars} stars) in {files.folder}")
        write_mock(config, files.folder)
    else:
        log(f"[1/3] reusing the mock Galaxy in {files.folder}")
    run_dir = out_dir / f"run-{mode}"
    log(f"[2/3] training ({mode} mode, constant offset) into {run_dir}")
    summary = train(
        files.allstar, run_dir, TrainConfig(mode=mode, epochs=epochs, device=device),
        spectra_path=files.spectra if mode == "spectra" else None, log=log,
    )  # fmt: skip
    catalog_path = out_dir / "catalog.parquet"
    log(f"[3/3] predicting every star into {catalog_path}")
    spectra = files.spectra if mode == "spectra" else None
    predict_catalog(run_dir, files.allstar, catalog_path, spectra, device=device, log=log)
    catalog, _ = read_catalog(catalog_path)
    profile = fractional_error_profile(catalog)
    log("")
    log(f"injected offset: {config.offset.offset_uas:.1f} µas")
    log(f"fitted offset:   {summary['offset_uas']:.1f} ± {summary['offset_uas_err']:.1f} µas")
    log(format_profile(profile))
    log(f"the network is more precise than Gaia beyond {pc_to_kpc(crossover_distance(profile)):.2f} kpc")
    log(f"catalog: {catalog_path.resolve()}")
    return catalog_path
