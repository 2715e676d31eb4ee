"""Helpers of the science benchmarks: the oracle floor of ``benchmarks/calibration.py`` (docs/method.md §13) and the
log g trend and tables of ``benchmarks/apokasc.py`` (§12), on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from tests.benchmark_modules import load_benchmark
from zpdist.mock.config import InjectedOffset
from zpdist.mock.gaia import injected_offset_mas, nonlinear_offset_mas
from zpdist.mock.realism import NonlinearOffset


def _stars(n: int = 4000, outlier_mas: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Giants with the mock's multivariate and non-linear Δϖ, their Gaia parallax = true + Δϖ (no noise), and
    one star in 100 an outlier shifted by ``outlier_mas``."""
    rng = np.random.default_rng(7)
    inputs = np.column_stack([rng.uniform(9, 16, n), rng.uniform(1.0, 3.5, n), rng.uniform(3900, 5100, n)])
    offset = InjectedOffset(offset_uas=-40.0, model="multivariate")
    delta = injected_offset_mas(offset, *inputs.T) + nonlinear_offset_mas(NonlinearOffset(), offset, *inputs.T)
    true = rng.uniform(0.1, 2.0, n)
    outlier = np.arange(n) % 100 == 0
    truth = pd.DataFrame({"parallax_true": true, "parallax": true + delta + outlier * outlier_mas,
                          "parallax_error": rng.uniform(0.02, 0.06, n), "parallax_outlier": outlier})  # fmt: skip
    return truth, 1000.0 * delta, inputs


def test_oracle_recovers_noise_free_offsets_with_the_injected_form_and_leaves_the_plane_its_misfit():
    calibration = load_benchmark("calibration")
    truth, injected, inputs = _stars(outlier_mas=5.0)  # the outliers are dropped: they change nothing
    floor = calibration._oracle_floor(truth, injected, inputs)
    assert floor["oracle_form_rms_uas"] < 1e-6 and abs(floor["oracle_form_variance_explained"] - 1.0) < 1e-9
    basis = calibration._oracle_basis(inputs)[:, :4]
    weight = 1.0 / truth["parallax_error"].to_numpy() ** 2
    clean = ~truth["parallax_outlier"].to_numpy()
    coefficients = np.linalg.lstsq((basis * np.sqrt(weight)[:, None])[clean], (injected * np.sqrt(weight))[clean])[0]
    misfit = basis @ coefficients - injected
    assert floor["oracle_plane_rms_uas"] == pytest.approx(np.sqrt(np.mean(misfit**2)), rel=1e-9)
    assert floor["oracle_plane_rms_uas"] > 1.0  # a plane cannot follow the step
    assert 0.0 < floor["oracle_plane_variance_explained"] < 1.0


def test_logg_trend_recovers_a_known_slope_through_outliers():
    rng = np.random.default_rng(3)
    k_mag = rng.uniform(7.0, 11.0, 5000)
    logg_seis = rng.uniform(1.5, 3.3, 5000)
    logg_spec = logg_seis - 0.02 - 0.007 * (k_mag - 10.0) + rng.normal(0.0, 0.06, 5000)
    logg_spec[:50] += 1.5  # misfits far off: clipped
    logg_spec[50:60] = np.nan
    coefficients, errors = load_benchmark("apokasc").logg_trend(logg_spec, logg_seis, k_mag)
    assert abs(coefficients[0] + 0.02) < 4 * errors[0] and abs(coefficients[1] + 0.007) < 4 * errors[1]
    assert errors[1] < 0.001  # 0.06 dex over 4 mag and 5,000 stars: 0.0004 dex/mag


def test_logg_trend_at_fixed_covariates_removes_a_trend_that_runs_through_them():
    # the difference depends on log g only (a scale compression), and log g on K: a slope against K alone,
    # none at fixed log g
    rng = np.random.default_rng(5)
    k_mag = rng.uniform(7.0, 11.0, 5000)
    logg_seis = 3.0 - 0.3 * (k_mag - 7.0) + rng.normal(0.0, 0.3, 5000)
    logg_spec = logg_seis - 0.09 * (logg_seis - 2.5) + rng.normal(0.0, 0.05, 5000)
    apokasc = load_benchmark("apokasc")
    alone, errors = apokasc.logg_trend(logg_spec, logg_seis, k_mag)
    assert alone[1] > 10 * errors[1]  # 0.09 × 0.3 = +0.027 dex/mag through log g
    covariate = np.column_stack([logg_seis - 2.5])
    covariate[:10] = np.nan  # left out, not propagated
    fixed, errors = apokasc.logg_trend(logg_spec, logg_seis, k_mag, covariate)
    assert abs(fixed[1]) < 4 * errors[1] and abs(fixed[2] + 0.09) < 4 * errors[2] and np.isfinite(fixed).all()


def test_conditional_trends_per_state_with_missing_values():
    # each state has its own drift with K at fixed log g; -9999 (missing) labels and K drop their stars only
    rng = np.random.default_rng(6)
    n = 6000
    state = np.where(np.arange(n) % 3 == 0, "RC", "RGB")
    k_mag = rng.uniform(7.0, 11.0, n)
    logg_seis = rng.uniform(1.8, 3.2, n)
    drift = np.where(state == "RC", -0.002, -0.005)
    logg_aspcap = logg_seis - 0.1 * (logg_seis - 2.5) + drift * (k_mag - 10.0) + rng.normal(0.0, 0.02, n)
    table = Table({"LOGG": logg_aspcap, "TEFF": rng.uniform(4200, 5200, n), "FE_H": rng.normal(0, 0.2, n),
                   "MG_FE": rng.normal(0.1, 0.05, n), "ES": state, "K": k_mag})  # fmt: skip
    table["FE_H"][:30] = -9999.0
    table["K"][30:60] = -9999.0
    apokasc = load_benchmark("apokasc")
    trends = apokasc.conditional_trends(table, logg_seis, apokasc.k_magnitudes(table))
    for name, truth in (("RGB", -0.005), ("RC", -0.002)):
        slope, error, members = trends[name]
        assert abs(slope - truth) < 4 * error and error < 0.0005, name
        assert members == (state == name).sum()
    assert table["FE_H"][0] == -9999.0 and table["K"][30] == -9999.0  # the table itself is left as it was


def test_logg_trend_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib", reason="the trend's PNG needs the bench extra (matplotlib)")
    rng = np.random.default_rng(4)
    k_mag = rng.uniform(7.0, 11.0, 500)
    difference = -0.02 - 0.007 * (k_mag - 10.0) + rng.normal(0.0, 0.06, 500)
    load_benchmark("apokasc")._plot_trend(difference, k_mag, np.array([-0.02, -0.007]), tmp_path / "trend.png")
    assert (tmp_path / "trend.png").stat().st_size > 10_000


def test_apokasc_tables_from_the_real_file(realdata, tmp_path):
    apokasc = load_benchmark("apokasc")
    trend = apokasc.write_tables(realdata / apokasc.MERGED, tmp_path)  # no plot: matplotlib is a bench extra
    names = ("spectroscopic", "seismic", "spectroscopic-detrended", "spectroscopic-drift-removed")
    spectroscopic, seismic, detrended, drift_removed = (Table.read(tmp_path / f"{name}.fits") for name in names)
    assert len(spectroscopic) == len(seismic) == len(detrended) == len(drift_removed) == trend["n_stars"] == 6529
    expected = 4.438 + np.log10(seismic["Mcorr"]) - 2 * np.log10(seismic["Rcorr"])
    np.testing.assert_allclose(seismic["LOGG"], expected, rtol=1e-12)
    np.testing.assert_array_equal(seismic["MASS"], seismic["Mcorr"])
    # detrending leaves no slope against K (relative to the seismic log g) and keeps the mean difference
    k_mag = apokasc.k_magnitudes(spectroscopic)
    again, errors = apokasc.logg_trend(np.asarray(detrended["LOGG"], float), np.asarray(seismic["LOGG"]), k_mag)
    assert abs(again[1]) < 0.1 * errors[1] and abs(trend["slope_dex_per_mag"]) > 5 * trend["slope_err"]
    # at fixed seismic log g, T_eff and abundances, ASPCAP log g still drifts with K in each evolutionary state
    for state, (slope, error, n_stars) in trend["conditional"].items():
        assert slope < -2.5 * error and n_stars > 2000, state  # RGB -3.9σ, RC -3.0σ
    # the drift-removed table has none left (each state's own slope taken off), and unclassified stars keep log g
    logg_seis = np.asarray(seismic["LOGG"], float)
    for state, (slope, error, _) in apokasc.conditional_trends(drift_removed, logg_seis, k_mag).items():
        assert abs(slope) < 0.1 * error, state
    unclassified = apokasc._evolutionary_state(spectroscopic) == "-9999.0"
    assert unclassified.sum() > 400
    np.testing.assert_array_equal(drift_removed["LOGG"][unclassified], spectroscopic["LOGG"][unclassified])


def test_multivariate_table_reports_the_rms_reachable_at_the_quoted_level_error():
    calibration = load_benchmark("calibration")
    from zpdist.nn.offset_plane import COEFFICIENTS

    rows = pd.DataFrame({"likelihood": ["selection"] * 2, "error_uas": [2.0, 3.0], "oracle_form_rms_uas": [2.0, 2.0],
                         "star_rms_uas": [5.0, 6.0], "variance_explained": [0.3, 0.2],
                         "oracle_plane_rms_uas": [3.5, 3.7], "oracle_plane_variance_explained": [0.6, 0.6],
                         "oracle_form_variance_explained": [0.9, 0.9]})  # fmt: skip
    for name in COEFFICIENTS:
        rows[name], rows[f"{name}_err"], rows[f"{name}_true"], rows[f"{name}_pull"] = 1.0, 1.0, 1.0, 0.0
    np.testing.assert_allclose(calibration._reachable_rms(rows), [np.sqrt(8.0), np.sqrt(13.0)])
    assert f"{np.sqrt((8.0 + 13.0) / 2):.2f} µas (RMS over realisations; below 3 µas in 1 of 2)" in (
        calibration._multivariate_table(rows)
    )
