"""Tests of zpdist.continuum and the grid helpers of zpdist.io.spectra: continuum normalisation chip by chip,
cutting and interpolating onto the 7,514-pixel grid (docs/method.md §3), on synthetic spectra and on real APOGEE
files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from zpdist.continuum import (
    BAD_PIXEL_ERROR,
    ContinuumConfig,
    chip_segments,
    clean_normalised,
    fit_continuum,
    normalise,
)
from zpdist.io.apstar import bad_pixel_mask, read_spectrum, read_wavelength
from zpdist.io.spectra import (
    CHIP_SLICES,
    N_APSTAR_PIXELS,
    N_PIXELS,
    SpectraError,
    apstar_to_grid,
    apstar_wavelength,
    interpolate_to_grid,
    wavelength_grid,
)

PAYNE = "spectra/ThePayne_aspcap-grid_2M13012770+5754582.npz"
PAYNE_WAVELENGTH = "spectra/ThePayne_apogee_wavelength_7214.npz"


def synthetic_spectrum(seed: int = 0, snr: float = 200.0, n_lines: int = 600):
    """A known smooth continuum per chip × Gaussian absorption lines × (1 + noise), on the 7,514-pixel grid."""
    rng = np.random.default_rng(seed)
    continuum = np.empty(N_PIXELS)
    shapes = [(900, 80, -40), (700, -50, 30), (500, 30, 20)]  # level, slope, curvature per chip
    for chip, (level, slope, curve) in zip(chip_segments(), shapes, strict=True):
        x = np.linspace(-1, 1, chip.stop - chip.start)
        continuum[chip] = level + slope * x + curve * x**2
    pixels = np.arange(N_PIXELS)
    absorption = np.ones(N_PIXELS)
    for centre, depth, width in zip(
        rng.uniform(0, N_PIXELS, n_lines), rng.uniform(0.05, 0.6, n_lines), rng.uniform(1.0, 3.0, n_lines), strict=True
    ):
        near = slice(max(0, int(centre - 6 * width)), int(centre + 6 * width) + 1)
        absorption[near] *= 1 - depth * np.exp(-0.5 * ((pixels[near] - centre) / width) ** 2)
    error = continuum * absorption / snr
    flux = continuum * absorption + rng.normal(0.0, 1.0, N_PIXELS) * error
    return flux, error, continuum, absorption


# ---------------------------------------------------------------- synthetic


def test_chip_segments_tile_the_grid():
    segments = chip_segments()
    assert [s.stop - s.start for s in segments] == [s.stop - s.start for s in CHIP_SLICES]
    assert segments[0].start == 0 and segments[-1].stop == N_PIXELS
    assert all(a.stop == b.start for a, b in itertools.pairwise(segments))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_continuum_recovered_to_better_than_one_percent(seed):
    flux, error, continuum, absorption = synthetic_spectrum(seed)
    fitted = fit_continuum(flux, error, np.zeros(N_PIXELS, bool))
    assert np.max(np.abs(fitted / continuum - 1)) < 0.01
    normalised, normalised_error, bad = normalise(flux, error, np.zeros(N_PIXELS, bool))
    assert not bad.any()
    assert_allclose(np.median(normalised), np.median(absorption), atol=0.01)
    assert_allclose(normalised_error, error / fitted)


def test_continuum_without_errors_and_at_low_snr():
    flux, error, continuum, _ = synthetic_spectrum(3, snr=60)
    assert np.max(np.abs(fit_continuum(flux, error, np.zeros(N_PIXELS, bool)) / continuum - 1)) < 0.01
    unweighted = fit_continuum(flux, None, np.zeros(N_PIXELS, bool))
    assert np.max(np.abs(unweighted / continuum - 1)) < 0.01
    normalised, normalised_error, bad = normalise(flux, None, np.zeros(N_PIXELS, bool))
    assert not bad.any() and np.all(normalised_error == 0) and abs(np.median(normalised) - 1) < 0.1


def test_bad_pixels_excluded_and_set_to_one():
    flux, error, continuum, _ = synthetic_spectrum(4)
    bad = np.zeros(N_PIXELS, bool)
    bad[100:400] = True
    flux[100:400] = 1e6  # garbage where the mask says bad: must not move the fit
    flux[5000] = np.nan  # unflagged garbage becomes bad too
    error[6000] = np.inf
    fitted = fit_continuum(flux, error, bad)
    assert np.max(np.abs(fitted / continuum - 1)) < 0.01
    normalised, normalised_error, out_bad = normalise(flux, error, bad)
    expected = bad.copy()
    expected[[5000, 6000]] = True
    assert_array_equal(out_bad, expected)
    assert np.all(normalised[out_bad] == 1.0) and np.all(normalised_error[out_bad] == BAD_PIXEL_ERROR)
    assert np.all(np.isfinite(normalised))


def test_large_errors_are_bad_after_normalisation():
    flux, error, _, _ = synthetic_spectrum(5)
    error[200] = 5 * flux[200]  # normalised error ≈ 5 > max_error
    _, _, bad = normalise(flux, error, np.zeros(N_PIXELS, bool), ContinuumConfig(max_error=1.0))
    assert bad[200] and bad.sum() == 1


def test_chip_with_too_few_pixels_is_bad():
    flux, error, _, _ = synthetic_spectrum(6)
    bad = np.zeros(N_PIXELS, bool)
    green = chip_segments()[1]
    bad[green.start : green.stop - 50] = True  # 50 usable pixels < min_pixels
    normalised, _, out_bad = normalise(flux, error, bad, ContinuumConfig(min_pixels=100))
    assert out_bad[green].all() and np.all(normalised[green] == 1.0)
    assert not out_bad[chip_segments()[0]].any()
    assert np.isnan(fit_continuum(flux, error, bad)[green]).all()


def test_degree_is_configurable():
    x = np.linspace(-1, 1, N_PIXELS)
    flux = 100 + 20 * x**3  # a cubic: degree 3 per chip reproduces it exactly
    fitted = fit_continuum(flux, np.ones(N_PIXELS), np.zeros(N_PIXELS, bool), ContinuumConfig(degree=3))
    assert_allclose(fitted, flux, rtol=1e-9)


@pytest.mark.parametrize(
    "kwargs", [{"degree": -1}, {"clip_low": 0}, {"max_iterations": 0}, {"min_pixels": 2}, {"max_error": 0}]
)
def test_config_validation(kwargs):
    if "min_pixels" in kwargs:
        kwargs = {**kwargs, "degree": 4}
    with pytest.raises(ValueError):
        ContinuumConfig(**kwargs)


def test_clean_normalised_flags_zero_and_large_errors():
    flux = np.full(10, 0.95)
    flux[2] = 0.0  # aspcapStar's "no data"
    error = np.full(10, 0.01)
    error[5] = 99.0
    out, out_error, bad = clean_normalised(flux, error, np.zeros(10, bool))
    assert_array_equal(np.flatnonzero(bad), [2, 5])
    assert np.all(out[bad] == 1.0) and np.all(out_error[bad] == BAD_PIXEL_ERROR)
    assert_allclose(out[~bad], 0.95)


# ---------------------------------------------------------------- grids


def test_apstar_to_grid():
    full = apstar_wavelength()
    assert_array_equal(apstar_to_grid(full), wavelength_grid())
    assert apstar_to_grid(np.zeros((3, N_APSTAR_PIXELS))).shape == (3, N_PIXELS)
    with pytest.raises(SpectraError, match=r"\(8000,\).*8575"):
        apstar_to_grid(np.zeros(8000))


def test_interpolation_is_exact_for_linear_in_log_lambda_and_flags_outside():
    grid = wavelength_grid()
    wavelength = np.geomspace(15300.0, 16800.0, 5000)  # a coarser grid covering part of the APOGEE range
    flux = 2.0 + 3.0 * np.log10(wavelength)
    out, out_error, bad = interpolate_to_grid(wavelength, flux, 0.1 * flux, np.zeros(len(flux), bool))
    inside = (grid >= wavelength[0]) & (grid <= wavelength[-1])
    assert_array_equal(bad, ~inside)
    assert_allclose(out[inside], 2.0 + 3.0 * np.log10(grid[inside]), rtol=1e-12)
    assert_allclose(out_error[inside], 0.1 * out[inside], rtol=1e-12)
    assert np.isnan(out[bad]).all()


def test_interpolation_flags_bad_neighbours_and_gaps():
    full = apstar_wavelength()
    keep = np.ones(N_APSTAR_PIXELS, bool)
    keep[2000:2100] = False  # a gap inside the blue chip
    wavelength, flux = full[keep], np.ones(keep.sum())
    bad = np.zeros(len(flux), bool)
    bad[500] = True
    out, _, out_bad = interpolate_to_grid(wavelength, flux, None, bad)
    grid = wavelength_grid()
    in_gap = (grid > full[1999]) & (grid < full[2100])
    assert in_gap.sum() == 100 and out_bad[in_gap].all()
    assert out_bad[np.isclose(grid, wavelength[500], rtol=1e-12, atol=0)].all()
    assert out_bad.sum() == 101  # same pixels as the grid: only the gap and the bad pixel itself
    assert np.all(out[~out_bad] == 1.0)


def test_interpolation_rejects_bad_input():
    with pytest.raises(SpectraError, match="strictly increasing"):
        interpolate_to_grid(np.array([2.0, 1.0, 3.0]), np.ones(3), None, np.zeros(3, bool))
    with pytest.raises(SpectraError, match="one length"):
        interpolate_to_grid(np.arange(1.0, 4.0), np.ones(4), None, np.zeros(3, bool))


# ---------------------------------------------------------------- real spectra

APSTAR_MEDIANS = {"2M17335483-2753043": 0.98, "2M19485057+5005279": 0.994}


@pytest.mark.realdata
@pytest.mark.parametrize("apogee_id", sorted(APSTAR_MEDIANS))
def test_real_apstar_normalises_to_one(realdata, apogee_id):
    spectrum = read_spectrum(realdata / f"spectra/apStar-dr17-{apogee_id}.fits")
    flux, error, mask = (apstar_to_grid(a) for a in (spectrum.flux, spectrum.error, spectrum.mask))
    flagged = bad_pixel_mask(mask)
    assert flagged.any()
    normalised, normalised_error, bad = normalise(flux, error, flagged)
    assert abs(np.median(normalised) - 1) < 0.03
    assert_allclose(np.median(normalised), APSTAR_MEDIANS[apogee_id], atol=0.005)
    assert np.all(bad[flagged]) and np.all(normalised[bad] == 1.0)
    assert np.all(normalised_error[bad] == BAD_PIXEL_ERROR)
    assert np.all(np.isfinite(normalised))
    assert 0.001 < np.median(normalised_error[~bad]) < 0.02  # S/N ≈ 140-150 per pixel
    # each chip's continuum is close to 1 on its own
    for chip in chip_segments():
        assert abs(np.median(normalised[chip][~bad[chip]]) - 1) < 0.05


@pytest.mark.realdata
def test_real_payne_spectrum_interpolated_onto_grid(realdata):
    wavelength = read_wavelength(realdata / PAYNE_WAVELENGTH)
    spectrum = read_spectrum(realdata / PAYNE, wavelength)
    assert spectrum.normalised and spectrum.flux.shape == (7214,)
    flux, error, bad = interpolate_to_grid(spectrum.wavelength, spectrum.flux, spectrum.error, np.zeros(7214, bool))
    cleaned, _, cleaned_bad = clean_normalised(flux, error, bad)
    grid = wavelength_grid()
    outside = (grid < wavelength.min() * (1 - 1e-9)) | (grid > wavelength.max() * (1 + 1e-9))
    assert outside.sum() > 0 and cleaned_bad[outside].all() and np.all(cleaned[outside] == 1.0)
    assert bad.sum() == N_PIXELS - 7214  # ASPCAP's 7,214 pixels are all on the apStar grid
    assert abs(np.median(cleaned) - 1) < 0.02
    # pixels shared by both grids (to 1e-7 of a pixel) keep their values
    assert_allclose(np.sort(flux[~bad]), np.sort(spectrum.flux), atol=1e-6)
