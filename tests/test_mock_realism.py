"""The realistic mock family (docs/method.md §10): each part switched on alone changes what it should, and only that."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from zpdist.cli import main
from zpdist.errors import ConfigError, OutputError
from zpdist.mock import fields, generate, nuisances
from zpdist.mock.config import InjectedOffset, MockConfig
from zpdist.mock.gaia import SkyField, injected_offset_mas, nonlinear_offset_mas
from zpdist.mock.generate import REALISM_TRUTH_COLUMNS, generate_catalogues, write_mock
from zpdist.mock.realism import (
    FieldSelection,
    NonlinearOffset,
    Realism,
    SkySystematics,
    load_realism,
)
from zpdist.mock.spectra import FEATURES, spectrum_model


def _only(part: str, **values) -> Realism:
    """A Realism with one part on."""
    cls = type(getattr(Realism(), part))
    return dataclasses.replace(Realism(), **{part: cls(enabled=True, **values)})


@pytest.fixture(scope="module")
def realistic():
    """A small mock with every part on: (config, observed, truth)."""
    config = MockConfig(n_stars=3000, seed=31, realism=Realism.realistic())
    return (config, *generate_catalogues(config, progress=False))


@pytest.fixture(scope="module")
def easy():
    """The easy mock the single-part variants are compared with: (observed, truth)."""
    return generate_catalogues(MockConfig(n_stars=1000, seed=17), progress=False)


# --- configuration ---------------------------------------------------------------------------------------------


def test_default_config_and_its_json_are_the_easy_mocks():
    config = MockConfig()
    assert not config.realism.enabled
    data = json.loads(config.to_json())
    assert "realism" not in data  # the easy mock's mock.json is as before
    assert MockConfig.from_dict(data) == config  # and an old mock.json, without the field, loads
    assert all(getattr(Realism.realistic(), f.name).enabled for f in dataclasses.fields(Realism))


@pytest.mark.parametrize("realism", [Realism.realistic(), _only("outliers", fraction=0.02), _only("selection")])
def test_mock_config_with_realism_round_trips(realism):
    config = MockConfig(n_stars=10, seed=3, realism=realism)
    data = json.loads(config.to_json())
    assert data["realism"]["outliers"]["enabled"] == realism.outliers.enabled
    assert MockConfig.from_dict(data) == config


def test_realism_toml_switches_on_the_parts_it_names(tmp_path):
    path = tmp_path / "realism.toml"
    path.write_text(
        "[selection]\nh_limit = 12.5\ndisk_latitudes_deg = [0.0]\n\n[sky_systematics]\n\n"
        "[outliers]\nenabled = false\nfraction = 0.01\n"
    )
    realism = load_realism(path)
    assert realism.selection == FieldSelection(enabled=True, h_limit=12.5, disk_latitudes_deg=(0.0,))
    assert realism.sky_systematics == SkySystematics(enabled=True)
    assert not realism.outliers.enabled and realism.outliers.fraction == 0.01
    assert not realism.mass_tracers.enabled and not realism.lsf.enabled


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[colour_terms]\n", "colour_terms"),
        ("[selection]\nh_limt = 12.0\n", "h_limt"),
        ("[selection]\nh_limit = 'faint'\n", "h_limit"),
        ("[selection]\nfaint_keep = 0.0\n", "faint_keep"),
        ("[mass_tracers]\nscatter_dex = 0.01\n", "scatter_dex"),
        ("[selection\n", "not valid TOML"),
    ],
)
def test_bad_realism_file_names_file_and_key(tmp_path, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named) as error:
        load_realism(path)
    assert str(path) in str(error.value)


# --- each part alone changes only what it should ----------------------------------------------------------------

# part -> (observed columns that change, truth columns that change besides the part's own new ones)
_CHANGES = {
    "mass_tracers": ({"c_fe", "n_fe"}, {"c_fe", "n_fe"}),
    "parallax_noise": ({"parallax"}, set()),
    "sky_systematics": ({"parallax"}, set()),
    "nonlinear_offset": ({"parallax"}, {"offset_mas"}),
    "outliers": ({"parallax"}, set()),
    "rv_shifts": (set(), set()),
    "lsf": (set(), set()),
}


def _changed(a: pd.DataFrame, b: pd.DataFrame) -> set[str]:
    return {c for c in a.columns if not a[c].equals(b[c])}


@pytest.mark.parametrize("part", sorted(_CHANGES))
def test_each_part_changes_only_its_columns(easy, part):
    observed, truth = generate_catalogues(MockConfig(n_stars=1000, seed=17, realism=_only(part)), progress=False)
    easy_observed, easy_truth = easy
    assert list(observed.columns) == list(easy_observed.columns)
    assert set(truth.columns) - set(easy_truth.columns) == set(REALISM_TRUTH_COLUMNS[part])
    observed_changes, truth_changes = _CHANGES[part]
    assert _changed(observed, easy_observed) == observed_changes
    assert _changed(truth[easy_truth.columns], easy_truth) == truth_changes


# --- (1) magnitude-limited selection in fields --------------------------------------------------------------------


def test_selection_probability_falls_at_faint_h():
    part = FieldSelection(enabled=True)
    h = np.array([6.9, 7.0, 10.0, 11.0, 11.6, 12.2, 12.21])
    np.testing.assert_allclose(fields.selection_probability(h, part), [0, 1, 1, 1, 0.75, 0.5, 0], atol=1e-12)
    # drawn: the kept fraction per H bin follows it, and nothing fainter than the limit is kept
    rng = np.random.default_rng(0)
    n = 200_000
    h = rng.uniform(10.0, 13.0, n)
    kept = fields.magnitude_limited(rng, part, np.full(n, 10.0), np.full(n, 0.0), h)
    assert not kept[h > part.h_limit].any()
    for lo in (10.0, 11.0, 11.5, 12.0):
        chosen = (h >= lo) & (h < lo + 0.2)
        expected = fields.selection_probability(h[chosen], part).mean()
        assert kept[chosen].mean() == pytest.approx(expected, abs=0.01)
    assert kept[(h > 12.0) & (h < 12.2)].mean() < 0.6 < 0.99 < kept[h < 11.0].mean()
    # a direction off every field keeps nothing
    assert not fields.magnitude_limited(rng, part, np.full(10, 5.0), np.full(10, 15.0), np.full(10, 9.0)).any()


def test_field_grid():
    part = FieldSelection(enabled=True)
    glon, glat = fields.field_centres(part)
    assert len(glon) == 36 * 3 + 8 * 4
    np.testing.assert_array_equal(fields.field_index(glon, glat, part), np.arange(len(glon)))
    # 1.4 deg from (l, b) = (30, 0), field 36 + 3 (after the 36 fields at b = −4), is in; 1.6 deg is not
    assert fields.field_index(np.array([31.4, 31.6]), np.array([0.0, 0.0]), part).tolist() == [39, -1]


def test_selected_stars_lie_in_fields_within_the_limits(realistic):
    config, _, truth = realistic
    part = config.realism.selection
    assert len(truth) == 3000
    assert truth["h"].max() <= part.h_limit and truth["h"].min() >= part.h_bright
    centres = np.radians(np.column_stack(fields.field_centres(part)))[truth["field"].to_numpy()]
    lon, lat = np.radians(truth["glon"].to_numpy()), np.radians(truth["glat"].to_numpy())
    cos_sep = np.sin(lat) * np.sin(centres[:, 1]) + np.cos(lat) * np.cos(centres[:, 1]) * np.cos(lon - centres[:, 0])
    assert np.degrees(np.arccos(np.clip(cos_sep, -1, 1))).max() <= part.field_radius_deg
    np.testing.assert_allclose(truth["selection_probability"], fields.selection_probability(truth["h"], part))
    assert truth["field"].nunique() > 100


def _distance_luminosity_slope(truth: pd.DataFrame) -> float:
    """d log10(distance) / d log10(L) among giants at fixed Teff, log g, [Fe/H] and [α/Fe] (a linear fit)."""
    g = truth[truth["state"] != "dwarf"]
    design = np.column_stack([g["log_lum"], g["teff"] / 1000, g["logg"], g["fe_h"], g["alpha_fe"], np.ones(len(g))])
    return float(np.linalg.lstsq(design, np.log10(g["distance_pc"]), rcond=None)[0][0])


def test_malmquist_bias_distant_stars_are_the_luminous_ones():
    limited = MockConfig(n_stars=4000, seed=2, dwarf_fraction=0.0, realism=_only("selection"))
    # the same fields with no magnitude limit worth the name: a volume-complete sample
    deep = dataclasses.replace(Realism(), selection=FieldSelection(True, -30.0, 39.0, 40.0))
    slope_limited = _distance_luminosity_slope(generate_catalogues(limited, progress=False)[1])
    slope_deep = _distance_luminosity_slope(
        generate_catalogues(dataclasses.replace(limited, realism=deep), progress=False)[1]
    )
    assert slope_limited > 0.2  # measured 0.29 ± 0.02
    assert abs(slope_deep) < 0.08  # measured 0.03 ± 0.025


# --- (2) mass tracers -------------------------------------------------------------------------------------------


def _cn_fit(truth: pd.DataFrame) -> tuple[float, float, float]:
    """Mass slope of [C/N] at fixed composition, the scatter about the fit and corr(mass, [C/N]), for giants."""
    g = truth[truth["state"] != "dwarf"]
    cn = (g["c_fe"] - g["n_fe"]).to_numpy()
    bulge = (g["component"] == "bulge").to_numpy(float)
    design = np.column_stack([g["mass"], g["alpha_fe"], g["fe_h"], bulge, np.ones(len(g))])
    coef, *_ = np.linalg.lstsq(design, cn, rcond=None)
    return coef[0], float(np.std(cn - design @ coef)), float(np.corrcoef(g["mass"], cn)[0, 1])


def test_cn_traces_mass_with_the_set_scatter(realistic, easy):
    _, alone = generate_catalogues(MockConfig(n_stars=1000, seed=17, realism=_only("mass_tracers")), False)
    np.testing.assert_allclose(alone["c_fe"] + alone["n_fe"], easy[1]["c_fe"] + easy[1]["n_fe"], atol=1e-12)
    config, _, truth = realistic
    slope, scatter, corr = _cn_fit(truth)
    assert slope == pytest.approx(-0.6, abs=0.03)  # first dredge-up: −0.25 in [C/Fe], +0.35 in [N/Fe] per M⊙
    assert scatter == pytest.approx(config.realism.mass_tracers.scatter_dex, rel=0.05)
    assert corr < -0.6
    assert _cn_fit(easy[1])[1] == pytest.approx(0.042, rel=0.08)
    # dwarfs untouched; [C/Fe] + [N/Fe] kept (against the easy mock of the same seed)
    dwarfs = truth["state"] == "dwarf"
    assert (truth.loc[dwarfs, "cn_scatter_dex"] == 0).all()
    assert truth.loc[~dwarfs, "cn_scatter_dex"].std() == pytest.approx(np.sqrt(0.1**2 - 0.042**2), rel=0.06)


# --- (3) instrument nuisances in the spectra --------------------------------------------------------------------


def _star(n: int = 1, teff: float = 4300.0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    return np.full(n, teff), np.full(n, 1.8), {name: np.full(n, 0.2) for name in FEATURES}


def _isolated_lines(model) -> np.ndarray:
    """Narrow lines with no other line within 20 pixels and no hydrogen line within 5 of its widths."""
    c, w = model.centres, model.widths
    hydrogen = w > 10
    isolated = [
        line
        for line in np.flatnonzero(~hydrogen)
        if np.sum(np.abs(c - c[line]) < 20) == 1
        and not np.any(np.abs(c[hydrogen] - c[line]) < 5 * w[hydrogen])
        and 20 < c[line] < 7490
    ]
    assert len(isolated) >= 3
    return np.array(isolated)


def _moments(flux: np.ndarray, centre: float, half_width: int = 9) -> tuple[float, float, float]:
    """Equivalent width (pixels), centroid and variance (pixels, pixels²) of 1 − F within ±half_width pixels."""
    pixels = np.arange(round(centre) - half_width, round(centre) + half_width + 1)
    depth = 1.0 - flux[pixels].astype(float)
    mean = np.sum(pixels * depth) / depth.sum()
    return depth.sum(), mean, np.sum((pixels - mean) ** 2 * depth) / depth.sum()


def test_rv_shift_moves_lines_by_the_shift():
    model = spectrum_model()
    teff, logg, abundances = _star(3, teff=4700.0)
    flux = model.noiseless(teff, logg, abundances, shift_pix=np.array([0.0, 0.37, -0.21]))
    moved = np.array([[_moments(f, model.centres[line])[1] for f in flux] for line in _isolated_lines(model)])
    np.testing.assert_allclose(np.median(moved[:, 1:] - moved[:, :1], axis=0), [0.37, -0.21], atol=0.002)
    # no shift: the profiles of the unshifted model, up to their ±4σ truncation
    first = {name: values[:1] for name, values in abundances.items()}
    np.testing.assert_allclose(flux[0], model.noiseless(teff[:1], logg[:1], first)[0], atol=5e-3)


def test_lsf_broadening_conserves_equivalent_width_adds_its_variance_and_stays_on_its_chip():
    pixels = np.arange(7514)
    flux = np.ones((3, 7514), dtype=np.float32)
    for centre in (1500.3, 3025.0):  # the second line sits at the blue chip's red edge (pixel 3027)
        flux -= (0.5 * np.exp(-0.5 * ((pixels - centre) / 1.2) ** 2) * (pixels < 3028)).astype(np.float32)
    sigma = np.array([0.0, 0.3, 0.6])
    broadened = nuisances.broaden(flux, sigma)
    np.testing.assert_allclose(broadened[0], flux[0], atol=1e-7)  # σ = 0: nothing
    k = np.arange(-4, 5)
    kernel_variance = (nuisances.lsf_kernels(sigma, 4) * k**2).sum(axis=1)
    ew0, _, var0 = _moments(flux[0], 1500.3, 12)
    for star in (1, 2):
        ew, _, var = _moments(broadened[star], 1500.3, 12)
        assert ew == pytest.approx(ew0, rel=1e-5)
        assert var - var0 == pytest.approx(kernel_variance[star], abs=1e-3)
        np.testing.assert_array_equal(broadened[star, 3028:3040], 1.0)  # nothing crosses the chip gap
    assert kernel_variance[2] == pytest.approx(0.6**2 + 1 / 12, rel=0.05)


def test_saturation_clips_only_the_deep_cores():
    flux = spectrum_model().noiseless(*_star(2, teff=3900.0))
    clipped = nuisances.saturate(flux, 0.2)
    deep = flux < 0.2
    assert deep.sum() > 10
    assert clipped.min() == pytest.approx(0.2)
    np.testing.assert_array_equal(clipped[~deep], flux[~deep])


def test_continuum_wiggles_are_smooth_polynomials_per_chip_with_the_set_rms():
    factors = nuisances.continuum_factors(np.random.default_rng(3), 400, rms=0.01, degree=3)
    mean_square = []
    for lo, hi in zip(nuisances.CHIP_EDGES[:-1], nuisances.CHIP_EDGES[1:], strict=True):
        x = np.linspace(-1, 1, hi - lo)
        chip = factors[:, lo:hi].astype(float)
        coef = np.polynomial.legendre.legfit(x, chip.T, 3)
        np.testing.assert_allclose(np.polynomial.legendre.legval(x, coef), chip, atol=1e-6)
        mean_square.append(np.mean((chip - 1) ** 2))
    assert np.sqrt(np.mean(mean_square)) == pytest.approx(0.01, rel=0.05)
    assert nuisances.CHIP_EDGES == (0, 3028, 5523, 7514)


def test_sky_residuals_sit_on_fixed_pixels_and_grow_for_faint_stars():
    rng = np.random.default_rng(4)
    profiles = nuisances.sky_line_profiles(60)
    footprint = profiles.sum(axis=0) > 0
    bright = nuisances.sky_residuals(rng, np.full(1500, 10.7), 60, 0.01, 12.2)
    faint = nuisances.sky_residuals(rng, np.full(1500, 12.2), 60, 0.01, 12.2)
    assert not bright[:, ~footprint].any() and not faint[:, ~footprint].any()
    amplitudes = np.linalg.lstsq(profiles.T, faint.T.astype(float), rcond=None)[0]
    assert amplitudes.std() == pytest.approx(0.01, rel=0.03)
    assert faint[:, footprint].std() / bright[:, footprint].std() == pytest.approx(10**0.6, rel=0.05)


def test_instrument_applies_only_the_parts_that_are_on():
    flux = spectrum_model().noiseless(*_star(4, teff=3900.0))
    rng = np.random.default_rng(0)
    args = (flux, np.full(4, 11.0), np.full(4, 0.4), rng, rng)
    np.testing.assert_array_equal(nuisances.apply_instrument(Realism(), *args), flux)
    np.testing.assert_array_equal(nuisances.apply_instrument(_only("saturation"), *args), nuisances.saturate(flux, 0.2))
    sky = nuisances.apply_instrument(_only("sky_residuals"), *args)
    footprint = nuisances.sky_line_profiles(60).sum(axis=0) > 0
    np.testing.assert_array_equal(sky[:, ~footprint], flux[:, ~footprint])
    assert not np.array_equal(sky[:, footprint], flux[:, footprint])


@pytest.fixture(scope="module")
def easy_spectra(tmp_path_factory) -> np.ndarray:
    """The written spectra of a small easy mock."""
    files = write_mock(MockConfig(n_stars=120, seed=6, spectra_batch=64), tmp_path_factory.mktemp("easy"), False)
    with h5py.File(files.spectra, "r") as h5:
        return h5["spectra"][:]


@pytest.mark.parametrize("part", ["saturation", "continuum", "rv_shifts", "sky_residuals", "lsf"])
def test_each_nuisance_changes_only_the_written_spectra(tmp_path, easy_spectra, part):
    config = MockConfig(n_stars=120, seed=6, spectra_batch=64, realism=_only(part))
    files = write_mock(config, tmp_path / part, progress=False)
    easy_observed, _ = generate_catalogues(dataclasses.replace(config, realism=Realism()), progress=False)
    observed, _ = generate_catalogues(config, progress=False)
    pd.testing.assert_frame_equal(observed, easy_observed)
    with h5py.File(files.spectra, "r") as h5:
        flux = h5["spectra"][:]
    changed = np.any(flux != easy_spectra, axis=0)
    assert changed.sum() > 100
    if part == "sky_residuals":  # the same noise and bad pixels: only the sky pixels differ
        np.testing.assert_array_equal(changed, nuisances.sky_line_profiles(60).sum(axis=0) > 0)
    if part == "saturation":  # only where the flux is near or below the floor
        assert easy_spectra[flux != easy_spectra].max() < 0.2 + 0.1


def test_snr_is_tied_to_h_with_the_set_scatter():
    part = _only("snr").snr
    observed, truth = generate_catalogues(MockConfig(n_stars=2000, seed=5, realism=_only("snr")), progress=False)
    law = part.snr_at_ref * 10 ** (0.2 * (part.h_ref - truth["h"].to_numpy()))
    snr = observed["snr"].to_numpy()
    assert snr.min() >= part.snr_min and snr.max() <= part.snr_max
    inside = (snr > part.snr_min) & (snr < part.snr_max)
    ratio = np.log(snr[inside] / law[inside])
    assert abs(np.median(ratio)) < 0.02
    assert ratio.std() == pytest.approx(part.scatter, rel=0.1)


# --- (4)–(7) the astrometry ---------------------------------------------------------------------------------


def test_parallax_error_is_under_reported_by_the_set_fraction(easy):
    observed, truth = generate_catalogues(MockConfig(n_stars=1000, seed=17, realism=_only("parallax_noise")), False)
    easy_observed, _ = easy
    noise = (observed["parallax"] - truth["parallax_true"] - truth["offset_mas"]).to_numpy()
    easy_noise = (easy_observed["parallax"] - truth["parallax_true"] - truth["offset_mas"]).to_numpy()
    np.testing.assert_allclose(noise, 1.1 * easy_noise, rtol=1e-9, atol=1e-12)  # the same draws, scaled
    np.testing.assert_array_equal(truth["parallax_noise_scale"], 1.1)


def test_pull_width_over_many_stars_is_one_plus_f(realistic):
    _, observed, truth = realistic
    clean = ~truth["parallax_outlier"].to_numpy()
    shift = truth["offset_mas"] + truth["parallax_systematic_mas"]
    pull = ((observed["parallax"] - truth["parallax_true"] - shift) / observed["parallax_error"])[clean].dropna()
    assert len(pull) > 2800
    assert pull.std() == pytest.approx(1.1, abs=0.04)
    assert abs(pull.mean()) < 0.06


def test_sky_field_has_the_set_rms_and_correlation():
    part = SkySystematics(enabled=True, rms_uas=8.0, correlation_deg=10.0, n_modes=400)
    rng = np.random.default_rng(7)
    n = 8000
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    separations = (5.0, 10.0, 20.0)
    rms, correlation = [], []
    for _ in range(4):
        field = SkyField.draw(rng, part)
        values = field(ra, dec)
        rms.append(values.std())
        row = []
        for sep in separations:  # a second point at `sep` degrees along a random bearing
            bearing = rng.uniform(0, 2 * np.pi, n)
            d, t = np.radians(dec), np.radians(sep)
            dec2 = np.arcsin(np.sin(d) * np.cos(t) + np.cos(d) * np.sin(t) * np.cos(bearing))
            ra2 = np.radians(ra) + np.arctan2(
                np.sin(bearing) * np.sin(t) * np.cos(d), np.cos(t) - np.sin(d) * np.sin(dec2)
            )
            row.append(np.mean(values * field(np.degrees(ra2), np.degrees(dec2))) / np.mean(values**2))
        correlation.append(row)
    assert np.mean(rms) == pytest.approx(8.0, rel=0.08)
    chord, chord0 = 2 * np.sin(np.radians(separations) / 2), 2 * np.sin(np.radians(10.0) / 2)
    expected = np.exp(-(chord**2) / (2 * chord0**2))  # 0.88, 0.61, 0.14
    np.testing.assert_allclose(np.mean(correlation, axis=0), expected, atol=0.08)


def test_sky_systematic_is_recorded_and_in_the_parallaxes(realistic):
    config, _, truth = realistic
    field = SkyField.draw(
        np.random.default_rng([config.seed, generate.STREAMS["sky_systematics"]]), SkySystematics(True)
    )
    np.testing.assert_allclose(truth["parallax_systematic_mas"], field(truth["ra"], truth["dec"]) / 1000, atol=1e-12)
    assert 0.003 < truth["parallax_systematic_mas"].std() < 0.013


def _nonlinear_uas(g, bp_rp, teff):
    """The default non-linear terms written out: a 10 µas step at G = 13, 8 µas/mag² in colour up to BP−RP = 3,
    3 µas/(mag kK)."""
    colour = np.minimum(bp_rp, 3.0)
    return 5.0 * np.tanh((g - 13.0) / 0.1) + 8.0 * (colour - 1.3) ** 2 + 3.0 * (g - 13.0) * (teff - 4750.0) / 1000


def test_nonlinear_offset_follows_its_formula(realistic):
    _, _, truth = realistic
    g, bp_rp, teff = truth["g"].to_numpy(), truth["bp_rp"].to_numpy(), truth["teff"].to_numpy()
    np.testing.assert_allclose(truth["offset_mas"], (-52.3 + _nonlinear_uas(g, bp_rp, teff)) / 1000, atol=1e-12)
    np.testing.assert_allclose(truth["offset_nonlinear_mas"], _nonlinear_uas(g, bp_rp, teff) / 1000, atol=1e-12)
    part, offset = NonlinearOffset(True), InjectedOffset(model="multivariate")
    assert nonlinear_offset_mas(part, offset, 14.0, 1.3, 4750.0) == pytest.approx(0.005, abs=1e-9)
    assert nonlinear_offset_mas(part, offset, 13.0, 1.8, 5750.0) == pytest.approx(0.002, abs=1e-12)
    assert nonlinear_offset_mas(part, offset, 13.0, 4.0, 4750.0) == pytest.approx(0.008 * 1.7**2, abs=1e-12)
    # on top of the multivariate offset
    config = MockConfig(n_stars=500, seed=9, offset=offset, realism=_only("nonlinear_offset"))
    _, truth = generate_catalogues(config, progress=False)
    g, bp_rp, teff = truth["g"].to_numpy(), truth["bp_rp"].to_numpy(), truth["teff"].to_numpy()
    expected = injected_offset_mas(offset, g, bp_rp, teff) + _nonlinear_uas(g, bp_rp, teff) / 1000
    np.testing.assert_allclose(truth["offset_mas"], expected, atol=1e-12)


def test_outliers_count_and_size(realistic):
    _, observed, truth = realistic
    has_parallax = observed["parallax"].notna().to_numpy()
    outlier = truth["parallax_outlier"].to_numpy()
    assert outlier.sum() == round(0.005 * has_parallax.sum()) > 10
    assert not (outlier & ~has_parallax).any()
    size = (truth["parallax_outlier_mas"] / observed["parallax_error"]).to_numpy()[outlier]
    assert np.all((np.abs(size) >= 5.0) & (np.abs(size) <= 30.0))
    assert (size > 0).any() and (size < 0).any()
    assert (truth["parallax_outlier_mas"].to_numpy()[~outlier] == 0).all()
    shift = truth["offset_mas"] + truth["parallax_systematic_mas"]
    pull = ((observed["parallax"] - truth["parallax_true"] - shift) / observed["parallax_error"]).to_numpy()
    assert np.median(np.abs(pull[outlier])) > 5


# --- files, the command line, atomic folders -------------------------------------------------------------------


def test_realistic_mock_is_deterministic(realistic):
    config, observed, truth = realistic
    again_observed, again_truth = generate_catalogues(config, progress=False)
    pd.testing.assert_frame_equal(observed, again_observed)
    pd.testing.assert_frame_equal(truth, again_truth)


def test_write_realistic_mock_with_spectra(tmp_path):
    config = MockConfig(n_stars=200, seed=3, spectra_batch=64, realism=Realism.realistic())
    files = write_mock(config, tmp_path / "mock", progress=False)
    summary = json.loads(files.config.read_text())
    assert MockConfig.from_dict(summary["config"]) == config
    truth = pd.read_parquet(files.truth)
    for columns in REALISM_TRUTH_COLUMNS.values():
        assert set(columns) <= set(truth.columns)
    with h5py.File(files.spectra, "r") as h5:
        flux = h5["spectra"][:]
    assert flux.shape == (200, 7514) and np.isfinite(flux).all()
    assert 0.85 < np.median(flux) < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock"]


def test_cli_realistic_and_realism_file(tmp_path, capsys):
    base = ["mock", "--n-stars", "150", "--no-spectra", "--seed", "2", "--out"]
    assert main([*base, str(tmp_path / "all"), "--realistic"]) == 0
    config = json.loads((tmp_path / "all" / "mock.json").read_text())["config"]
    assert MockConfig.from_dict(config).realism == Realism.realistic()
    toml = tmp_path / "r.toml"
    toml.write_text("[outliers]\nfraction = 0.02\n")
    assert main([*base, str(tmp_path / "some"), "--realism", str(toml)]) == 0
    config = json.loads((tmp_path / "some" / "mock.json").read_text())["config"]
    assert MockConfig.from_dict(config).realism == _only("outliers", fraction=0.02)
    toml.write_text("[outliers]\nfraction = 0.9\n")
    assert main([*base, str(tmp_path / "bad"), "--realism", str(toml)]) == 2
    assert str(toml) in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit):
        main([*base, str(tmp_path / "both"), "--realistic", "--realism", str(toml)])


def test_failed_write_leaves_the_previous_mock_intact(tmp_path, monkeypatch):
    folder = tmp_path / "mock"
    write_mock(MockConfig(n_stars=100, seed=1, write_spectra=False), folder, progress=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(observed):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generate, "_allstar_table", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_mock(MockConfig(n_stars=100, seed=2, write_spectra=False), folder, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock"]  # no staging folder left behind


def test_rewrite_replaces_the_whole_mock_and_refuses_foreign_folders(tmp_path):
    folder = tmp_path / "mock"
    write_mock(MockConfig(n_stars=60, seed=1, spectra_batch=32), folder, progress=False)
    write_mock(MockConfig(n_stars=80, seed=2, write_spectra=False), folder, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["allstar.fits", "mock.json", "truth.parquet"]
    assert len(pd.read_parquet(folder / "truth.parquet")) == 80
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"notes\.txt"):
        write_mock(MockConfig(n_stars=60, seed=1, write_spectra=False), folder, progress=False)
    assert (folder / "notes.txt").read_text() == "mine"
