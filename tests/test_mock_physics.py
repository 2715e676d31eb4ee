"""Physics of the embedded mock Galaxy (docs/method.md §2, §10): luminosities, magnitudes, astrometry, chemistry,
files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from zpdist.io.columns import ELEMENTS
from zpdist.io.tables import read_table
from zpdist.mock import spectra as mock_spectra
from zpdist.mock.config import InjectedOffset, MockConfig
from zpdist.mock.gaia import injected_offset_mas, parallax_error_dr2
from zpdist.mock.generate import generate_catalogues, write_mock
from zpdist.mock.spectra import FEATURES, spectrum_model
from zpdist.mock.stars import absmag_k, bolometric_correction_k

LOGG_SUN = 4.438
T_SUN = 5772.0


def bc_k(teff):
    """K-band bolometric correction written out independently of the library: 1.47 + 2.6 (5040/T − 5040/T⊙)."""
    return 1.47 + 2.6 * (5040.0 / np.asarray(teff, float) - 5040.0 / T_SUN)


@pytest.fixture(scope="module")
def mock():
    """A small default mock (constant offset): (observed, truth)."""
    return generate_catalogues(MockConfig(n_stars=3000, seed=11), progress=False)


@pytest.fixture(scope="module")
def mock_multivariate():
    """A small mock with the multivariate injected offset."""
    config = MockConfig(n_stars=1500, seed=12, offset=InjectedOffset(model="multivariate"))
    return generate_catalogues(config, progress=False)


# --- (1) and (2): luminosity, absolute magnitude, fakemag -------------------------------------------------


def test_catalogues_have_requested_size_and_all_states(mock):
    observed, truth = mock
    assert len(observed) == len(truth) == 3000
    assert (observed["apogee_id"].to_numpy() == truth["apogee_id"].to_numpy()).all()
    assert set(truth["state"]) == {"rgb", "red_clump", "dwarf"}
    assert set(truth["component"]) == {"thin_disk", "thick_disk", "bulge"}
    # dwarf_fraction = 0.08 of 3000
    assert (truth["state"] == "dwarf").sum() == 240


def test_luminosity_obeys_mass_teff_gravity_relation_for_every_star(mock):
    _, truth = mock
    mass, teff, logg = truth["mass"].to_numpy(), truth["teff"].to_numpy(), truth["logg"].to_numpy()
    # L/L⊙ = M (T/T⊙)^4 / (g/g⊙), in linear space
    lum = mass * (teff / T_SUN) ** 4 / 10.0 ** (logg - LOGG_SUN)
    np.testing.assert_allclose(10.0 ** truth["log_lum"].to_numpy(), lum, rtol=1e-10)
    for state in ("rgb", "red_clump", "dwarf"):
        chosen = (truth["state"] == state).to_numpy()
        assert chosen.sum() > 100
        np.testing.assert_allclose(10.0 ** truth["log_lum"].to_numpy()[chosen], lum[chosen], rtol=1e-10)


def test_absmag_k_from_bolometric_magnitude_and_bc(mock):
    _, truth = mock
    expected = 4.74 - 2.5 * truth["log_lum"].to_numpy() - bc_k(truth["teff"])
    np.testing.assert_allclose(truth["absmag_k"].to_numpy(), expected, rtol=0, atol=1e-10)


def test_sun_has_solar_absolute_k_magnitude():
    # BC_K anchored at the Sun: M_K,⊙ = 4.74 − 1.47 = 3.27 (docs/method.md §2)
    assert absmag_k(np.array([0.0]), np.array([T_SUN]))[0] == pytest.approx(3.27, abs=1e-12)
    # BC_K ≈ 1.96 for a 4,750 K giant, ≈ 2.6 at 3,900 K (larger for cooler stars)
    teff = np.array([3900.0, 4750.0, 5772.0])
    bc = bolometric_correction_k(teff)
    np.testing.assert_allclose(bc, [2.6, 1.96, 1.47], atol=0.05)
    assert bc[2] == pytest.approx(1.47, abs=1e-12)
    np.testing.assert_allclose(4.74 - absmag_k(np.zeros(3), teff), bc, rtol=0, atol=1e-12)


def test_truth_fakemag_from_absolute_magnitude(mock):
    _, truth = mock
    np.testing.assert_allclose(truth["fakemag"], 10.0 ** (0.2 * truth["absmag_k"] + 2.0), rtol=1e-12)
    assert (truth["fakemag"] > 0).all()


# --- (3) red clump --------------------------------------------------------------------------------------


def test_red_clump_is_a_standard_candle(mock):
    _, truth = mock
    mk = truth.loc[truth["state"] == "red_clump", "absmag_k"].to_numpy()
    assert len(mk) > 500
    assert np.median(mk) == pytest.approx(-1.6, abs=0.15)
    # robust scatter (half the 16–84 % range) below 0.2 mag, much tighter than the RGB's
    p16, p84 = np.percentile(mk, [16, 84])
    assert 0.5 * (p84 - p16) < 0.2
    rgb = truth.loc[truth["state"] == "rgb", "absmag_k"].to_numpy()
    r16, r84 = np.percentile(rgb, [16, 84])
    assert (p84 - p16) < 0.3 * (r84 - r16)


# --- (4) fakemag from parallax and K ---------------------------------------------------------------------


def test_fakemag_from_true_parallax_and_dereddened_k(mock):
    _, truth = mock
    np.testing.assert_allclose(truth["parallax_true"], 1000.0 / truth["distance_pc"], rtol=1e-12)
    fakemag = truth["parallax_true"] * 10.0 ** (0.2 * (truth["k"] - truth["a_k"]))
    np.testing.assert_allclose(fakemag, truth["fakemag"], rtol=1e-9)


# --- (5) parallax noise ----------------------------------------------------------------------------------


def test_parallax_pulls_are_standard_normal(mock):
    observed, truth = mock
    pull = (observed["parallax"] - truth["parallax_true"] - truth["offset_mas"]) / observed["parallax_error"]
    pull = pull.dropna().to_numpy()
    assert len(pull) > 2800
    assert 0.9 < pull.std() < 1.1
    assert abs(pull.mean()) < 0.1
    # Gaussian tails: ≈ 4.6 % beyond 2σ
    assert 0.02 < np.mean(np.abs(pull) > 2) < 0.08


def test_parallax_error_rises_with_g(mock):
    observed, truth = mock
    g = truth["g"].to_numpy()
    err = observed["parallax_error"].to_numpy()
    bright = (g < 15) & np.isfinite(err)
    mid = (np.abs(g - 17.0) < 0.5) & np.isfinite(err)
    assert bright.sum() > 200 and mid.sum() > 50
    assert 0.04 <= np.median(err[bright]) <= 0.055
    assert 0.08 <= np.median(err[mid]) <= 0.13
    # quoted errors scatter ~10 % around the DR2-like law
    ratio = err[np.isfinite(err)] / parallax_error_dr2(g[np.isfinite(err)])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    assert 0.07 < np.std(np.log(ratio)) < 0.13


def test_parallax_error_law_dr2():
    g = np.array([10.0, 13.0, 14.0, 15.0, 17.0, 20.0])
    sigma = parallax_error_dr2(g)
    assert np.all(np.diff(sigma) >= 0)
    assert sigma[0] == sigma[1]  # floor below G = 13
    assert np.all((sigma[:4] >= 0.04) & (sigma[:4] <= 0.055))
    assert sigma[4] == pytest.approx(0.1, rel=0.1)
    assert parallax_error_dr2(20.0) == pytest.approx(0.7, rel=0.1)


# --- (6) injected offset ---------------------------------------------------------------------------------


def test_constant_offset_is_minus_52_3_uas(mock):
    _, truth = mock
    np.testing.assert_array_equal(truth["offset_mas"].to_numpy(), np.full(len(truth), -0.0523))


def test_multivariate_offset_follows_formula(mock_multivariate):
    _, truth = mock_multivariate
    o = InjectedOffset(model="multivariate")
    g, bp_rp, teff = truth["g"].to_numpy(), truth["bp_rp"].to_numpy(), truth["teff"].to_numpy()
    expected_uas = (
        o.offset_uas
        + o.slope_g * (g - o.pivot_g)
        + o.slope_bp_rp * (bp_rp - o.pivot_bp_rp)
        + o.slope_teff * (teff - o.pivot_teff) / 1000.0
    )
    np.testing.assert_allclose(truth["offset_mas"].to_numpy(), expected_uas / 1000.0, rtol=0, atol=1e-12)
    # explicit default numbers: −52.3 µas at the pivot, −8 µas/mag in G
    assert injected_offset_mas(o, 13.0, 1.3, 4750.0) == pytest.approx(-0.0523, abs=1e-15)
    assert injected_offset_mas(o, 14.0, 1.3, 4750.0) == pytest.approx(-0.0603, abs=1e-15)
    # it varies with G, and a plane fit recovers the slopes
    offset = truth["offset_mas"].to_numpy()
    assert np.std(offset) > 0.005
    design = np.column_stack([g, bp_rp, teff / 1000.0, np.ones_like(g)])
    coef = np.linalg.lstsq(design, offset * 1000.0, rcond=None)[0]
    np.testing.assert_allclose(coef[:3], [o.slope_g, o.slope_bp_rp, o.slope_teff], atol=1e-6)
    assert np.corrcoef(g, offset)[0, 1] < -0.3  # fainter → more negative


def test_multivariate_mock_parallaxes_carry_that_offset(mock_multivariate):
    observed, truth = mock_multivariate
    pull = (observed["parallax"] - truth["parallax_true"] - truth["offset_mas"]) / observed["parallax_error"]
    pull = pull.dropna()
    assert 0.9 < pull.std() < 1.1
    assert abs(pull.mean()) < 0.1


def test_unknown_offset_model_raises():
    with pytest.raises(ValueError, match="unknown offset model"):
        injected_offset_mas(InjectedOffset(model="quadratic"), 13.0, 1.3, 4750.0)


# --- (7) chemistry ---------------------------------------------------------------------------------------


def test_thin_disk_radial_metallicity_gradient(mock):
    _, truth = mock
    thin = truth[truth["component"] == "thin_disk"]
    assert len(thin) > 1000
    slope = np.polyfit(thin["r_gc"], thin["fe_h"], 1)[0]
    assert slope == pytest.approx(-0.06, abs=0.02)


def test_components_differ_chemically(mock):
    _, truth = mock
    means = truth.groupby("component")[["fe_h", "alpha_fe"]].mean()
    assert means.loc["thick_disk", "alpha_fe"] > means.loc["thin_disk", "alpha_fe"] + 0.1
    assert means.loc["bulge", "fe_h"] > means.loc["thick_disk", "fe_h"] + 0.2
    assert means.loc["thick_disk", "fe_h"] < means.loc["thin_disk", "fe_h"]


# --- (8) determinism --------------------------------------------------------------------------------------


def test_same_seed_same_tables_different_seed_differs():
    config = MockConfig(n_stars=600, seed=5)
    obs_a, truth_a = generate_catalogues(config, progress=False)
    obs_b, truth_b = generate_catalogues(config, progress=False)
    pd.testing.assert_frame_equal(obs_a, obs_b)
    pd.testing.assert_frame_equal(truth_a, truth_b)
    obs_c, _ = generate_catalogues(MockConfig(n_stars=600, seed=6), progress=False)
    assert len(obs_c) == len(obs_a)
    assert not np.allclose(obs_a["parallax"], obs_c["parallax"], equal_nan=True)
    assert not (obs_a["apogee_id"].to_numpy() == obs_c["apogee_id"].to_numpy()).all()


# --- (9) files and −9999 handling ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    config = MockConfig(n_stars=500, seed=21, write_spectra=True)
    folder = tmp_path_factory.mktemp("mock")
    files = write_mock(config, folder, progress=False)
    return config, files


def test_write_mock_creates_all_files(written):
    config, files = written
    for path in (files.allstar, files.spectra, files.truth, files.config):
        assert path.exists(), path
    truth = pd.read_parquet(files.truth)
    assert len(truth) == 500
    _, expected_truth = generate_catalogues(config, progress=False)
    pd.testing.assert_frame_equal(truth, expected_truth)
    summary = json.loads(files.config.read_text())
    assert summary["n_stars"] == 500
    assert MockConfig.from_dict(summary["config"]) == config


def test_mock_config_round_trip_non_default():
    config = MockConfig(
        n_stars=123, seed=9, offset=InjectedOffset(model="multivariate", slope_g=-3.0), h_mag_range=(7.5, 11.0)
    )
    assert MockConfig.from_dict(json.loads(config.to_json())) == config


def test_allstar_uses_dr16_names_and_minus_9999(written):
    config, files = written
    with fits.open(files.allstar) as hdul:
        data = hdul[1].data
        names = set(hdul[1].columns.names)
        raw = {name: np.asarray(data[name]) for name in names}
    for name in (
        "APOGEE_ID", "RA", "DEC", "K", "AK_TARG", "SNR", "STARFLAG", "VSCATTER", "TEFF", "LOGG", "FE_H",
        "GAIA_PARALLAX", "GAIA_PARALLAX_ERROR", "GAIA_PHOT_G_MEAN_MAG", "GAIA_PHOT_BP_MEAN_MAG",
        "GAIA_PHOT_RP_MEAN_MAG", "GAIA_VISIBILITY_PERIODS_USED", "TIII_FE", "TIII_FE_ERR", "TIII_FE_FLAG",
    ):  # fmt: skip
        assert name in names, name
    for el in ELEMENTS:
        assert f"{el}_FE" in names
    observed, _ = generate_catalogues(config, progress=False)
    table = read_table(files.allstar)
    for fits_name, canonical in (
        ("GAIA_PARALLAX", "parallax"),
        ("GAIA_PARALLAX_ERROR", "parallax_error"),
        ("AK_TARG", "ak"),
        ("TIII_FE", "tiii_fe"),
        ("TIII_FE_ERR", "tiii_fe_err"),
    ):
        values = raw[fits_name].astype(float)
        missing = observed[canonical].isna().to_numpy()
        assert missing.sum() > 0, canonical  # the mock has missing values in each of these
        assert np.isfinite(values).all()  # no NaN in the file: −9999 instead
        np.testing.assert_array_equal(values == -9999.0, missing)
        # and read_table turns exactly those into NaN, keeping the rest
        np.testing.assert_array_equal(table[canonical].isna().to_numpy(), missing)
        np.testing.assert_allclose(
            table[canonical].to_numpy()[~missing], observed[canonical].to_numpy()[~missing], rtol=1e-6, atol=1e-6
        )
    # the missing-value flags agree with the missing values
    np.testing.assert_array_equal(raw["TIII_FE_FLAG"] == 1, raw["TIII_FE"] == -9999.0)
    assert (np.char.strip(raw["APOGEE_ID"].astype(str)) == observed["apogee_id"].to_numpy()).all()


def test_integer_gaia_columns_stay_integer(written):
    config, files = written
    observed, _ = generate_catalogues(config, progress=False)
    assert observed["source_id"].dtype.kind == "i"
    assert observed["visibility_periods_used"].dtype.kind == "i"
    with fits.open(files.allstar) as hdul:
        source_id = np.asarray(hdul[1].data["GAIA_SOURCE_ID"])
        periods = np.asarray(hdul[1].data["GAIA_VISIBILITY_PERIODS_USED"])
    assert source_id.dtype.kind == "i" and source_id.dtype.itemsize == 8
    assert periods.dtype.kind == "i"
    missing = observed["parallax"].isna().to_numpy()
    np.testing.assert_array_equal(source_id == -9999, missing)
    np.testing.assert_array_equal(source_id[~missing], observed["source_id"].to_numpy()[~missing])


def test_spectra_file_shape_dtype_and_values(written):
    _, files = written
    with h5py.File(files.spectra, "r") as h5:
        dataset = h5["spectra"]
        assert dataset.shape == (500, 7514)
        assert dataset.dtype == np.float32
        assert dataset.chunks is not None and dataset.chunks[1] == 7514 and dataset.chunks[0] < 500
        flux = dataset[:]
    assert np.isfinite(flux).all()
    inside = np.mean((flux > 0.3) & (flux < 1.2))
    assert inside > 0.75
    assert 0.85 < np.median(flux) < 1.0
    assert flux.max() < 1.5  # normalised: noise about a continuum of 1, never far above it


# --- (10) spectra respond to gravity and abundances ----------------------------------------------------------


def _solar_abundances(n: int) -> dict[str, np.ndarray]:
    return {name: np.zeros(n) for name in FEATURES}


def test_spectra_depend_on_surface_gravity():
    model = spectrum_model()
    flux = model.noiseless(np.array([4750.0, 4750.0]), np.array([1.5, 3.0]), _solar_abundances(2)).astype(float)
    assert flux.shape == (2, 7514)
    diff = flux[0] - flux[1]
    assert np.sqrt(np.mean(diff**2)) > 0.01
    # gravity acts in both directions (ionised lines/molecules deeper at low g, hydrogen/neutral at high g)
    assert np.sum(diff < -0.01) > 100
    assert np.sum(diff > 0.01) > 20
    # lines with a negative gravity response (Fe II, Ti II, molecules) are mostly deeper at log g = 1.5
    gamma = model.design[-1]
    centres = np.asarray(model.profiles.argmax(axis=1)).ravel()
    ionised = centres[gamma < -0.2]
    assert len(ionised) > 30
    assert np.mean(flux[0, ionised] < flux[1, ionised]) > 0.8


@pytest.mark.parametrize("feature", FEATURES)
def test_every_abundance_changes_the_spectrum(feature):
    model = spectrum_model()
    base = _solar_abundances(1)
    enriched = dict(base)
    enriched[feature] = np.array([0.3])
    f0 = model.noiseless(np.array([4500.0]), np.array([2.0]), base).astype(float)
    f1 = model.noiseless(np.array([4500.0]), np.array([2.0]), enriched).astype(float)
    assert np.sqrt(np.mean((f1 - f0) ** 2)) > 1e-3
    assert np.all(f1 <= f0 + 1e-6)  # more of an element only deepens lines


# --- (11) batched, deterministic spectra writing ---------------------------------------------------------------


def test_spectra_writer_batches_and_is_deterministic(tmp_path, monkeypatch):
    batch_sizes = []
    original = mock_spectra.SpectrumModel.noiseless

    def recording(self, teff, logg, abundances_h, shift_pix=None):
        batch_sizes.append(len(teff))
        return original(self, teff, logg, abundances_h, shift_pix)

    monkeypatch.setattr(mock_spectra.SpectrumModel, "noiseless", recording)
    config = MockConfig(n_stars=300, seed=4, spectra_batch=64)
    files_a = write_mock(config, tmp_path / "a", progress=False)
    files_b = write_mock(config, tmp_path / "b", progress=False)
    assert max(batch_sizes) <= 64
    assert sum(batch_sizes) == 2 * 300
    with h5py.File(files_a.spectra, "r") as ha, h5py.File(files_b.spectra, "r") as hb:
        flux_a, flux_b = ha["spectra"][:], hb["spectra"][:]
    assert flux_a.shape == (300, 7514)
    np.testing.assert_array_equal(flux_a, flux_b)
    assert not np.all(flux_a == 1.0)
    with fits.open(files_a.allstar) as fa, fits.open(files_b.allstar) as fb:
        for name in ("GAIA_PARALLAX", "K", "TEFF", "SNR"):
            np.testing.assert_array_equal(fa[1].data[name], fb[1].data[name])
    # a different seed gives different spectra
    files_c = write_mock(MockConfig(n_stars=300, seed=5, spectra_batch=64), tmp_path / "c", progress=False)
    with h5py.File(files_c.spectra, "r") as hc:
        assert not np.array_equal(hc["spectra"][:], flux_a)
