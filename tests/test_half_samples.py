"""The half-sample (delete-half jackknife) error of the offset: the statistic on toys with a known answer, the
halves themselves, the configuration, and a training run that quotes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zpdist.config import TrainConfig
from zpdist.errors import ConfigError
from zpdist.nn.half_samples import half_sample_error, half_sample_rows, half_sample_seed, summarise
from zpdist.nn.infer import load_model
from zpdist.nn.offset_export import level_error_mas
from zpdist.nn.train import train


def _toy_fit(y: np.ndarray, sigma: np.ndarray, rng: np.random.Generator, seed_noise: float) -> float:
    """A weighted mean plus a 'training' jitter that does not shrink with the number of stars."""
    weight = 1.0 / sigma**2
    return float(np.sum(weight * y) / np.sum(weight)) + rng.normal(0.0, seed_noise)


@pytest.mark.parametrize("seed_noise", [0.0, 0.05])
def test_half_sample_spread_is_the_full_fits_error_on_a_toy_with_a_known_answer(seed_noise):
    """Over 400 toy data sets of 2,000 stars with heteroscedastic errors, the mean squared half-sample error
    (10 halves each) equals the variance of the full-sample fit: its data part σ²/n and its training part alike,
    with no rescaling. The pulls of the full fit with that error have width 1 (up to the error's own noise)."""
    rng = np.random.default_rng(1)
    n, halves, datasets = 2000, 10, 400
    sigma = rng.uniform(0.5, 2.0, n)
    data_var = 1.0 / np.sum(1.0 / sigma**2)
    fits, errors, half_fits = [], [], []
    for _ in range(datasets):
        y = rng.normal(0.0, sigma)
        fits.append(_toy_fit(y, sigma, rng, seed_noise))
        halves_rows = (half_sample_rows(np.arange(n), k, seed=len(fits)) for k in range(halves))
        levels = [_toy_fit(y[rows], sigma[rows], rng, seed_noise) for rows in halves_rows]
        errors.append(half_sample_error(levels))
        half_fits += levels
    fits, errors = np.asarray(fits), np.asarray(errors)
    true_var = data_var + seed_noise**2
    assert np.var(fits) == pytest.approx(true_var, rel=0.15)  # the toy is what it says
    assert np.mean(errors**2) == pytest.approx(true_var, rel=0.08)  # 400 × 9 dof: ±5 %
    assert np.std(fits / errors) == pytest.approx(np.sqrt(9 / 7), rel=0.1)  # Student t with K − 1 = 9 dof
    # each half alone scatters about the truth with twice the data variance: the overlap of the halves is what
    # makes their spread about each other the full fit's error
    assert np.mean(np.square(half_fits)) == pytest.approx(2 * data_var + seed_noise**2, rel=0.08)


def test_halves_are_reproducible_distinct_sorted_subsets_of_half_the_rows():
    rows = np.arange(10, 1011, 2)  # 501 selected table rows
    first, again, second = half_sample_rows(rows, 0, 5), half_sample_rows(rows, 0, 5), half_sample_rows(rows, 1, 5)
    assert len(first) == 250 and np.array_equal(first, again)
    assert np.all(np.diff(first) > 0) and np.isin(first, rows).all()
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, half_sample_rows(rows, 0, 6))
    assert len({half_sample_seed(0, k) for k in range(10)} | {0}) == 11  # never the run's own seed


def test_half_sample_error_leaves_out_failed_halves_and_needs_two():
    assert half_sample_error([1.0, 3.0, np.nan]) == pytest.approx(np.sqrt(2.0))
    assert np.isnan(half_sample_error([1.0, np.nan]))
    summary = summarise([1.0, 3.0], [{"pivot": {}, "slope_g_uas_per_mag": [2.0, 9.0]},
                                     {"pivot": {}, "slope_g_uas_per_mag": [4.0, 9.0]}])  # fmt: skip
    assert summary["half_samples"] == 2 and summary["offset_uas_err_half_samples"] == pytest.approx(np.sqrt(2.0))
    assert summary["offset_plane_err_half_samples"] == {"slope_g_uas_per_mag": pytest.approx(np.sqrt(2.0))}


def test_one_half_sample_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="half_samples = 1: one half has no spread"):
        TrainConfig(half_samples=1)
    with pytest.raises(ConfigError, match="half_samples"):
        TrainConfig(half_samples=-2)


def test_a_run_with_half_samples_quotes_their_spread_everywhere(small_mock, tmp_path):
    """Labels mode, 2 epochs, 3 halves: the summary, the model's metadata (what predict and zeropoint read) and
    the log all carry the half-sample spread as the offset's error, the single fit's parts kept beside it."""
    lines = []
    config = TrainConfig(mode="labels", epochs=2, half_samples=3, network_draws=2, offset_mc_passes=10)
    summary = train(small_mock.allstar, tmp_path / "run", config, progress=False, log=lines.append)
    levels = summary["half_sample_offsets_uas"]
    assert len(levels) == 3 and len(set(levels)) == 3  # each half its own fit
    assert summary["offset_uas_err"] == summary["offset_uas_err_level"] == pytest.approx(np.std(levels, ddof=1))
    assert summary["offset_uas_err_method"] == "half_samples"
    assert summary["offset_uas_err_stat"] > 0  # the single fit's parts stay for comparison
    assert sum(line.startswith("half-sample ") for line in lines) == 3
    assert any("spread of 3 half-sample fits" in line for line in lines)
    _, metadata = load_model(tmp_path / "run", torch.device("cpu"))
    assert level_error_mas(metadata["summary"]) == pytest.approx(summary["offset_uas_err"] / 1000.0)


def test_without_half_samples_the_quoted_error_is_the_single_fits(small_mock, tmp_path):
    config = TrainConfig(mode="labels", epochs=1, network_draws=2, offset_mc_passes=10)
    summary = train(small_mock.allstar, tmp_path / "run", config, progress=False, log=lambda _: None)
    assert summary["offset_uas_err_method"] == "statistical+network" and "half_samples" not in summary
    assert summary["offset_uas_err_level"] == pytest.approx(
        np.hypot(summary["offset_uas_err_stat"], summary["offset_uas_err_network"])
    )


def _summary(**changes) -> dict:
    """A run's summary as `_report` reads it: spectra mode, single-fit error, mock data (no sky floor)."""
    summary = {
        "offset_uas": -45.0, "offset_uas_err": 1.2, "offset_uas_err_stat": 1.0, "offset_uas_err_network": 0.6,
        "offset_uas_err_mc": 0.0, "offset_uas_err_method": "statistical+network", "n_train": 8000, "n_val": 900,
        "epochs_run": 30, "mode": "spectra", "label_columns": None, "offset_uas_err_sky_floor": None,
        "selection_bias_uas": None, "likelihood": "selection",
    }  # fmt: skip
    return summary | changes


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, ["single fit's error is not calibrated"]),
        ({"offset_uas_err_method": "half_samples", "half_samples": 10}, []),
        ({"mode": "labels", "label_columns": ["teff", "logg", "fe_h"]}, []),  # mock labels: no label note
        ({"mode": "labels", "label_columns": ["teff", "logg", "fe_h"], "offset_uas_err_sky_floor": 17.0,
          "gaia_release": "DR2", "sky_footprint_deg": 10.0}, ["calibration drifts with apparent magnitude"]),
    ],
    ids=["spectra-single-fit", "spectra-half-samples", "labels-mock", "labels-real"],
)  # fmt: skip
def test_the_report_names_what_the_error_leaves_out(changes, expected):
    from zpdist.nn.train import _report

    lines: list[str] = []
    _report(_summary(**changes), lines.append)
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == len(expected) and all(text in note for text, note in zip(expected, notes, strict=True))
