"""A small mock -> train -> predict run: the loss falls, the offset moves to the truth, the catalog is right."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from zpdist.galactocentric import radec_distance_to_galactocentric
from zpdist.io.catalog import read_catalog
from zpdist.io.spectra import SpectraReader, SpectraWriter
from zpdist.nn.train import TrainConfig, train
from zpdist.pipeline import predict_catalog, run_demo

QUIET = {"progress": False, "log": lambda message: None}


@pytest.fixture(scope="module")
def labels_run(small_mock, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("labels-run")
    # 656 stars pass the cuts: batches of 16 give the few hundred Adam steps the offset needs to converge
    config = TrainConfig(mode="labels", epochs=25, batch_size=16, device="cpu")
    summary = train(small_mock.allstar, run_dir, config, **QUIET)
    return run_dir, summary


def test_labels_training_loss_falls_and_offset_moves_to_truth(labels_run):
    _, summary = labels_run
    history, warm = summary["history"], summary["warm_start"]
    # the warm start of the log-linear term does most of the fitting; Adam then lowers the loss further
    assert warm["loss_after"] < warm["loss_before"] - 0.5
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert summary["best_val_loss"] <= warm["val_loss"]  # epoch 0 (the warm start) is early stopping's first candidate
    # injected −52.3 µas, network starts at 0: the fit must land well past halfway, and be a finite measurement
    assert summary["offset_uas"] < -30.0
    assert abs(summary["offset_uas"] + 52.3) < 4 * summary["offset_uas_err"] + 10.0
    assert 0 < summary["offset_uas_err"] < 15.0
    assert summary["n_train"] + summary["n_val"] == summary["cuts"][-1]["remaining"]
    for key in ("offset_uas", "offset_uas_err", "n_train", "n_val", "mode", "offset_model", "epochs_run", "device"):
        assert key in summary


def test_run_folder_files_and_safe_loading(labels_run):
    run_dir, summary = labels_run
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    assert payload["model_config"]["mode"] == "labels"
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["offset_uas"] == pytest.approx(summary["offset_uas"])
    config = json.loads((run_dir / "train_config.json").read_text())
    assert config["batch_size"] == 16 and config["learning_rate"] == 1e-3 and config["cuts"]["min_snr"] == 200


def test_cut_counts_are_reported_in_order(labels_run, small_mock):
    _, summary = labels_run
    names = [c["name"] for c in summary["cuts"]]
    assert names[0] == "Gaia parallax present" and "SNR > 200" in names and "STARFLAG == 0" in names
    remaining = [c["remaining"] for c in summary["cuts"]]
    assert remaining == sorted(remaining, reverse=True)
    assert all(c["removed"] >= 0 for c in summary["cuts"])


@pytest.mark.parametrize("suffix", [".parquet", ".fits"])
def test_catalog_matches_truth(labels_run, small_mock, tmp_path, suffix):
    run_dir, summary = labels_run
    path = predict_catalog(run_dir, small_mock.allstar, tmp_path / f"catalog{suffix}", mc_samples=10, **QUIET)
    catalog, metadata = read_catalog(path)
    truth = pd.read_parquet(small_mock.truth)
    assert len(catalog) == len(truth)
    assert (catalog["apogee_id"].astype(str).to_numpy() == truth["apogee_id"].to_numpy()).all()
    assert metadata["model"]["offset_uas"] == pytest.approx(summary["offset_uas"])
    assert metadata["frame"]["r0_kpc"] == 8.125 and metadata["mc_samples"] == 10
    # the mock writes DR16 allStar names (GAIA_*: Gaia DR2 astrometry); the release travels to the catalog
    assert metadata["gaia_release"] == "DR2" and summary["gaia_release"] == "DR2"
    # distances of giants (the training population) within ~15 % of the truth in the median
    giants = (truth["state"] != "dwarf").to_numpy()
    ratio = catalog["dist"].to_numpy()[giants] / truth["distance_pc"].to_numpy()[giants]
    assert abs(np.nanmedian(ratio) - 1) < 0.05
    assert np.nanmedian(np.abs(ratio - 1)) < 0.15
    # errors: total ≥ model part, and offset-corrected parallax = raw − offset
    ok = np.isfinite(catalog["dist_error"])
    assert (catalog["dist_error"][ok] >= catalog["dist_model_error"][ok] - 1e-9).all()
    np.testing.assert_allclose(
        catalog["parallax_corrected"], catalog["parallax"] - catalog["zp_offset"], equal_nan=True
    )
    for column in ("weighted_dist", "weighted_dist_error", "nn_parallax", "x_gc", "r_gc", "phi_gc", "mg_fe", "ni_fe"):
        assert column in catalog


def test_galactocentric_position_of_true_distance_is_the_mock_position(small_mock):
    truth = pd.read_parquet(small_mock.truth)
    galcen = radec_distance_to_galactocentric(truth["ra"], truth["dec"], truth["distance_pc"])
    for axis in ("x_gc", "y_gc", "z_gc"):
        np.testing.assert_allclose(galcen[axis], truth[axis], atol=1e-6)


def test_spectra_mode_trains_and_predicts(small_mock, tmp_path):
    config = TrainConfig(mode="spectra", epochs=2, device="cpu", fit_mc_samples=5, offset_mc_passes=20)
    summary = train(small_mock.allstar, tmp_path / "run", config, spectra_path=small_mock.spectra, **QUIET)
    assert summary["mode"] == "spectra" and summary["epochs_run"] == 2
    assert summary["history"][1]["train_loss"] < summary["history"][0]["train_loss"]
    assert np.isfinite(summary["offset_uas"]) and summary["offset_uas_err"] > 0
    path = predict_catalog(
        tmp_path / "run", small_mock.allstar, tmp_path / "c.parquet", small_mock.spectra, mc_samples=3, **QUIET
    )
    catalog, metadata = read_catalog(path)
    assert len(catalog) == 3000 and np.isfinite(catalog["dist"]).all()
    assert metadata["device"] == "cpu" and metadata["mc_precision"] == "float32"  # "auto" on CPU
    # mixed precision (bfloat16 dropout body) gives the float32 distances to well within their errors
    path16 = predict_catalog(tmp_path / "run", small_mock.allstar, tmp_path / "c16.parquet", small_mock.spectra,
                             mc_samples=1, precision="bfloat16", **QUIET)  # fmt: skip
    path32 = predict_catalog(tmp_path / "run", small_mock.allstar, tmp_path / "c32.parquet", small_mock.spectra,
                             mc_samples=1, precision="float32", **QUIET)  # fmt: skip
    (low, meta16), (full, _) = read_catalog(path16), read_catalog(path32)
    assert meta16["mc_precision"] == "bfloat16"
    shift = np.abs(low["dist"] - full["dist"]) / full["dist_error"]
    assert np.median(shift) < 0.05 and shift.max() < 0.5


def test_rows_without_a_spectrum_are_cut_from_training_and_get_no_prediction(small_mock, tmp_path):
    with SpectraReader(small_mock.spectra) as reader:
        spectra = reader.read_rows(np.arange(reader.n_rows))
    has_spectrum = np.arange(len(spectra)) >= 1000
    spectra[~has_spectrum] = 1.0
    path = tmp_path / "partial.h5"
    with SpectraWriter(path, len(spectra), presence=True) as writer:
        writer.write(0, spectra, has_spectrum=has_spectrum)
    config = TrainConfig(mode="spectra", epochs=1, device="cpu", fit_mc_samples=2, offset_mc_passes=10)
    summary = train(small_mock.allstar, tmp_path / "run", config, spectra_path=path, **QUIET)
    cut = next(c for c in summary["cuts"] if "has_spectrum" in c["name"])
    assert cut["removed"] > 0 and summary["n_train"] + summary["n_val"] == cut["remaining"]
    catalog, _ = read_catalog(predict_catalog(tmp_path / "run", small_mock.allstar, tmp_path / "c.parquet", path,
                                              mc_samples=2, **QUIET))  # fmt: skip
    assert np.isnan(catalog["fakemag"].to_numpy()[:1000]).all()
    assert np.isfinite(catalog["fakemag"].to_numpy()[1000:]).all()


def test_multivariate_offset_is_a_function_of_colour_magnitude_teff(small_mock, tmp_path):
    config = TrainConfig(mode="labels", offset_model="multivariate", epochs=3, device="cpu", offset_mc_passes=50)
    summary = train(small_mock.allstar, tmp_path / "run", config, **QUIET)
    assert summary["offset_model"] == "multivariate" and summary["offset_uas_err_mc"] > 0
    catalog, _ = read_catalog(predict_catalog(tmp_path / "run", small_mock.allstar, tmp_path / "c.parquet",
                                              mc_samples=5, **QUIET))  # fmt: skip
    has_inputs = catalog[["phot_g_mean_mag", "bp_rp", "teff"]].notna().all(axis=1)
    assert catalog.loc[has_inputs, "zp_offset"].std() > 0
    assert catalog.loc[~has_inputs, "zp_offset"].isna().all()


def test_resume_continues_the_same_run(small_mock, tmp_path):
    first = train(small_mock.allstar, tmp_path, TrainConfig(mode="labels", epochs=2, device="cpu"), **QUIET)
    resumed = train(
        small_mock.allstar, tmp_path, TrainConfig(mode="labels", epochs=3, device="cpu"), resume=True, **QUIET
    )
    assert resumed["epochs_run"] == 3 and len(resumed["history"]) == 3
    assert resumed["history"][:2] == first["history"]
    fresh = train(small_mock.allstar, tmp_path / "fresh", TrainConfig(mode="labels", epochs=3, device="cpu"), **QUIET)
    assert resumed["history"][2]["train_loss"] == pytest.approx(fresh["history"][2]["train_loss"], rel=1e-4)


def test_demo_builds_trains_predicts_and_reuses_the_mock(tmp_path):
    messages: list[str] = []
    catalog_path = run_demo(tmp_path, n_stars=1500, epochs=2, device="cpu", log=messages.append)
    assert catalog_path == tmp_path / "catalog.parquet" and catalog_path.exists()
    assert not (tmp_path / "mock" / "spectra.h5").exists()  # labels mode needs no spectra
    assert any(m.startswith("injected offset: -52.3") for m in messages)
    assert any("more precise than Gaia" in m for m in messages)
    messages.clear()
    run_demo(tmp_path, n_stars=1500, epochs=1, device="cpu", log=messages.append)
    assert any("reusing the mock Galaxy" in m for m in messages)
    catalog, metadata = read_catalog(catalog_path)
    assert len(catalog) == 1500 and metadata["model"]["mode"] == "labels"
