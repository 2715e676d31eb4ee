"""Tests of zpdist.photometry: the parallax / fakemag / distance / magnitude conversions of docs/method.md §2."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from zpdist import photometry as ph

# Real stars (Hipparcos parallaxes, 2MASS-like K magnitudes).
SIRIUS_PARALLAX, SIRIUS_K = 379.21, -1.39
VEGA_PARALLAX, VEGA_K = 130.23, 0.13


# ---------------------------------------------------------------- real stars


def test_solar_absmag_constant():
    assert ph.SOLAR_ABSMAG_K == 3.27


def test_sirius_fakemag_and_absmag():
    fakemag = ph.mag_parallax_to_fakemag(SIRIUS_K, SIRIUS_PARALLAX)
    assert_allclose(fakemag, 199.9, atol=0.1)
    assert_allclose(ph.fakemag_to_absmag(fakemag), 1.50, atol=0.01)
    assert_allclose(ph.mag_parallax_to_absmag(SIRIUS_K, SIRIUS_PARALLAX), 1.504, atol=0.002)
    # 1000/379.21 mas = 2.637 pc
    assert_allclose(ph.parallax_to_distance(SIRIUS_PARALLAX), 2.637, atol=0.001)
    assert_allclose(ph.fakemag_to_distance(fakemag, SIRIUS_K), 1000.0 / SIRIUS_PARALLAX, rtol=1e-12)


def test_vega_absmag():
    # M = m + 5 log10(ϖ / 100 mas) = 0.13 + 5 log10(1.3023) = 0.704 (Vega: M_V ≈ 0.58, V−K ≈ 0).
    absmag = ph.mag_parallax_to_absmag(VEGA_K, VEGA_PARALLAX)
    assert_allclose(absmag, 0.13 + 5 * np.log10(1.3023), rtol=1e-12)
    assert_allclose(absmag, 0.70, atol=0.01)
    fakemag = ph.mag_parallax_to_fakemag(VEGA_K, VEGA_PARALLAX)
    assert_allclose(fakemag, 138.27, atol=0.02)
    # Vega is about 7 times more luminous than the Sun in K.
    assert_allclose(ph.fakemag_to_log_solar_luminosity(fakemag), 0.4 * (3.27 - 0.704), atol=2e-3)


def test_sun_log_luminosity_is_zero():
    assert_allclose(ph.absmag_to_log_solar_luminosity(3.27), 0.0, atol=1e-15)
    assert_allclose(ph.fakemag_to_log_solar_luminosity(ph.absmag_to_fakemag(3.27)), 0.0, atol=1e-12)
    # a star 2.5 mag brighter than the Sun is 10 times more luminous
    assert_allclose(ph.absmag_to_log_solar_luminosity(3.27 - 2.5), 1.0, atol=1e-12)
    assert_allclose(ph.absmag_to_log_solar_luminosity([3.27, 8.27]), [0.0, -2.0], atol=1e-12)


def test_log_solar_luminosity_other_band():
    assert_allclose(ph.absmag_to_log_solar_luminosity(4.83, solar_absmag=4.83), 0.0, atol=1e-15)
    fakemag = ph.absmag_to_fakemag(-0.17)
    assert_allclose(ph.fakemag_to_log_solar_luminosity(fakemag, solar_absmag=4.83), 2.0, atol=1e-12)


# ---------------------------------------------------------------- definitions


def test_fakemag_definition_arrays():
    mag = np.array([5.0, 10.0, 0.0, 12.5])
    parallax = np.array([2.0, 0.1, 100.0, -0.3])
    expected = parallax * 10 ** (0.2 * mag)
    assert_allclose(ph.mag_parallax_to_fakemag(mag, parallax), expected, rtol=1e-14)
    # A star at 10 pc (ϖ = 100 mas) has m = M, so L = 10^(0.2 M + 2).
    assert_allclose(ph.mag_parallax_to_fakemag(4.0, 100.0), ph.absmag_to_fakemag(4.0), rtol=1e-14)
    assert_allclose(ph.absmag_to_fakemag(0.0), 100.0, rtol=1e-14)


def test_fakemag_broadcasts():
    out = ph.mag_parallax_to_fakemag(np.array([[0.0], [5.0]]), np.array([1.0, 2.0, -1.0]))
    assert out.shape == (2, 3)
    assert_allclose(out, [[1.0, 2.0, -1.0], [10.0, 20.0, -10.0]], rtol=1e-14)


def test_fakemag_negative_parallax_is_finite_and_linear():
    parallax = np.array([-0.5, -0.01, 0.0, 0.01, 0.5])
    fakemag = ph.mag_parallax_to_fakemag(11.0, parallax)
    assert np.all(np.isfinite(fakemag))
    assert np.all(fakemag[:2] < 0)
    assert fakemag[2] == 0.0
    assert_allclose(fakemag[::-1], -fakemag, rtol=1e-14)  # linear: odd in ϖ


def test_absmag_formula():
    absmag = np.array([-5.0, -1.6, 0.0, 3.27, 10.0])
    fakemag = ph.absmag_to_fakemag(absmag)
    assert_allclose(fakemag, 10 ** (0.2 * absmag + 2), rtol=1e-14)
    assert_allclose(ph.fakemag_to_absmag(fakemag), 5 * (np.log10(fakemag) - 2), rtol=1e-14)


def test_mag_parallax_to_absmag_matches_distance_modulus():
    mag = np.array([8.0, 12.0, 14.0])
    parallax = np.array([1.0, 0.25, 5.0])
    distance = 1000.0 / parallax
    assert_allclose(ph.mag_parallax_to_absmag(mag, parallax), mag - 5 * np.log10(distance / 10), atol=1e-12)


def test_absmag_nan_for_non_positive():
    out = ph.fakemag_to_absmag(np.array([100.0, 0.0, -3.0, np.nan]))
    assert_allclose(out[0], 0.0, atol=1e-14)
    assert np.all(np.isnan(out[1:]))
    assert np.isnan(ph.mag_parallax_to_absmag(10.0, -0.2))
    assert np.isnan(ph.mag_parallax_to_absmag(10.0, 0.0))
    assert np.all(np.isnan(ph.fakemag_to_log_solar_luminosity([0.0, -1.0, np.nan])))


# ---------------------------------------------------------------- round trips


def test_round_trip_parallax_fakemag_parallax():
    mag = np.array([5.0, 9.3, 12.0, 14.1, 8.0, 10.0])
    parallax = np.array([2.5, 0.7, -0.12, -3.0, 0.0, np.nan])
    fakemag = ph.mag_parallax_to_fakemag(mag, parallax)
    assert np.all(np.isfinite(fakemag[:5]))
    assert np.all(fakemag[2:4] < 0)
    back = ph.fakemag_to_parallax(fakemag, mag)
    assert_allclose(back[:5], parallax[:5], rtol=1e-13, atol=1e-15)
    assert np.isnan(back[5])


def test_round_trip_fakemag_parallax_scalar():
    back = ph.fakemag_to_parallax(ph.mag_parallax_to_fakemag(9.0, -0.04), 9.0)
    assert np.ndim(back) == 0
    assert_allclose(back, -0.04, rtol=1e-13)


def test_round_trip_fakemag_absmag_fakemag():
    fakemag = np.array([1e-3, 0.5, 12.0, 199.9, 5e4])
    assert_allclose(ph.absmag_to_fakemag(ph.fakemag_to_absmag(fakemag)), fakemag, rtol=1e-12)
    absmag = np.array([-6.0, -1.6, 0.0, 1.5, 3.27, 9.0])
    assert_allclose(ph.fakemag_to_absmag(ph.absmag_to_fakemag(absmag)), absmag, atol=1e-12)
    # non-positive or NaN fakemag cannot round-trip: NaN, not a number pretending to be one
    bad = ph.absmag_to_fakemag(ph.fakemag_to_absmag(np.array([0.0, -2.0, np.nan])))
    assert np.all(np.isnan(bad))


def test_round_trip_distance_parallax():
    parallax = np.array([0.05, 1.0, 379.21, 10.0])
    distance = ph.parallax_to_distance(parallax)
    assert_allclose(distance, [20000.0, 1000.0, 1000.0 / 379.21, 100.0], rtol=1e-14)
    assert_allclose(ph.distance_to_parallax(distance), parallax, rtol=1e-14)
    assert_allclose(ph.parallax_to_distance(ph.distance_to_parallax(distance)), distance, rtol=1e-14)
    assert_allclose(ph.distance_to_parallax(8125.0), 1000.0 / 8125.0, rtol=1e-14)


def test_distance_parallax_nan_for_non_positive():
    values = np.array([-1.0, 0.0, np.nan, 2.0])
    d = ph.parallax_to_distance(values)
    p = ph.distance_to_parallax(values)
    assert np.all(np.isnan(d[:3])) and np.all(np.isnan(p[:3]))
    assert_allclose(d[3], 500.0, rtol=1e-14)
    assert_allclose(p[3], 500.0, rtol=1e-14)
    assert np.isnan(ph.parallax_to_distance(0.0))
    assert np.isnan(ph.distance_to_parallax(-5.0))


def test_fakemag_distance_consistent_with_parallax():
    mag = np.array([7.0, 11.0, 13.5])
    parallax = np.array([3.0, 0.4, 0.08])
    fakemag = ph.mag_parallax_to_fakemag(mag, parallax)
    assert_allclose(ph.fakemag_to_distance(fakemag, mag), 1000.0 / parallax, rtol=1e-13)
    # d = 1000 · 10^(0.2 m) / L
    assert_allclose(ph.fakemag_to_distance(50.0, 10.0), 1000.0 * 100.0 / 50.0, rtol=1e-14)


def test_fakemag_distance_nan_for_non_positive():
    out = ph.fakemag_to_distance(np.array([-10.0, 0.0, np.nan, 100.0]), 10.0)
    assert np.all(np.isnan(out[:3]))
    assert_allclose(out[3], 1000.0, rtol=1e-14)
    assert np.isnan(ph.fakemag_to_distance(0.0, 12.0))
    # NaN magnitude also gives NaN
    assert np.isnan(ph.fakemag_to_distance(100.0, np.nan))


# ---------------------------------------------------------------- errors


def test_fakemag_error_formula():
    parallax = np.array([1.0, 0.5, 2.0])
    parallax_error = np.array([0.1, 0.05, 0.5])
    mag = np.array([10.0, 11.0, 8.0])
    fakemag = ph.mag_parallax_to_fakemag(mag, parallax)
    sigma = ph.fakemag_error_from_parallax(fakemag, parallax, parallax_error)
    assert_allclose(sigma, np.abs(parallax_error / parallax) * fakemag, rtol=1e-14)
    assert_allclose(sigma, [10.0, 10.0**2.2 * 0.05, 10.0**1.6 * 0.5], rtol=1e-13)
    assert_allclose(ph.fakemag_error_from_parallax(200.0, 4.0, 0.2), 10.0, rtol=1e-14)


def test_fakemag_error_negative_parallax_is_propagated_parallax_error():
    # L is linear in ϖ, so σ_L = σ_ϖ · 10^(0.2 m) for any sign of ϖ; never negative.
    mag = 12.0
    parallax = np.array([-0.2, -0.01, 0.03])
    parallax_error = np.array([0.05, 0.02, 0.04])
    fakemag = ph.mag_parallax_to_fakemag(mag, parallax)
    sigma = ph.fakemag_error_from_parallax(fakemag, parallax, parallax_error)
    assert np.all(sigma > 0)
    assert_allclose(sigma, parallax_error * 10 ** (0.2 * mag), rtol=1e-13)


def test_fakemag_error_nan_for_zero_or_nan_parallax():
    sigma = ph.fakemag_error_from_parallax(
        np.array([0.0, 5.0, 5.0, np.nan]), np.array([0.0, np.nan, 1.0, 1.0]), np.array([0.1, 0.1, np.nan, 0.1])
    )
    assert np.all(np.isnan(sigma))


def test_distance_error_formula():
    fakemag = np.array([100.0, 40.0, 7.0])
    fakemag_error = np.array([10.0, 2.0, 7.0])
    distance = np.array([1000.0, 2500.0, 300.0])
    sigma_d = ph.fakemag_to_distance_error(fakemag, fakemag_error, distance)
    assert_allclose(sigma_d, fakemag_error / fakemag * distance, rtol=1e-14)
    assert_allclose(sigma_d, [100.0, 125.0, 300.0], rtol=1e-14)
    # σ_d / d equals σ_ϖ / ϖ when L comes from the parallax
    parallax, parallax_error, mag = 0.8, 0.04, 11.0
    fakemag = ph.mag_parallax_to_fakemag(mag, parallax)
    d = ph.fakemag_to_distance(fakemag, mag)
    sd = ph.fakemag_to_distance_error(fakemag, ph.fakemag_error_from_parallax(fakemag, parallax, parallax_error), d)
    assert_allclose(sd / d, 0.05, rtol=1e-12)
    assert_allclose(sd, 62.5, rtol=1e-12)


def test_distance_error_nan_for_non_positive_fakemag():
    out = ph.fakemag_to_distance_error(np.array([0.0, -1.0, np.nan, 2.0]), 0.5, 1000.0)
    assert np.all(np.isnan(out[:3]))
    assert_allclose(out[3], 250.0, rtol=1e-14)


# ---------------------------------------------------------------- extinction


def test_extinction_corrected_mag_arrays():
    mag = np.array([10.0, 10.0, 10.0, 10.0, np.nan, 9.0])
    ak = np.array([0.2, np.nan, -0.05, -9999.0, 0.1, 0.0])
    corrected, flag = ph.extinction_corrected_mag(mag, ak)
    assert_allclose(corrected[:4], [9.8, 10.0, 10.0, 10.0], rtol=1e-14)
    assert np.isnan(corrected[4])
    assert_allclose(corrected[5], 9.0, rtol=1e-14)
    assert flag.dtype == bool
    assert_array_equal(flag, [False, True, True, True, False, False])


def test_extinction_corrected_mag_scalars_and_broadcast():
    corrected, flag = ph.extinction_corrected_mag(12.0, 0.3)
    assert_allclose(corrected, 11.7, rtol=1e-14)
    assert not bool(flag)
    corrected, flag = ph.extinction_corrected_mag(12.0, np.nan)
    assert_allclose(corrected, 12.0, rtol=1e-14)
    assert bool(flag)
    corrected, flag = ph.extinction_corrected_mag(np.array([8.0, 9.0, 10.0]), -1.0)
    assert_allclose(corrected, [8.0, 9.0, 10.0], rtol=1e-14)
    assert flag.shape == (3,)
    assert flag.all()
    # the flag is a writable array of its own (not a read-only broadcast view)
    flag[0] = False
    assert not flag[0]


# ---------------------------------------------------------------- inverse-variance mean


def test_inverse_variance_mean_hand_computation():
    mean, error = ph.inverse_variance_mean(1.0, 1.0, 3.0, 2.0)
    # weights 1 and 1/4: (1 + 3/4) / (5/4) = 1.4; error = 1/sqrt(5/4)
    assert_allclose(mean, 1.4, rtol=1e-14)
    assert_allclose(error, 1.0 / np.sqrt(1.25), rtol=1e-14)


def test_inverse_variance_mean_arrays_and_cases():
    value_a = np.array([1000.0, 5.0, np.nan, 2.0, 7.0, np.nan])
    error_a = np.array([100.0, 1.0, 1.0, np.nan, 0.0, 1.0])
    value_b = np.array([1200.0, np.nan, 8.0, 4.0, 3.0, np.nan])
    error_b = np.array([200.0, 1.0, 0.5, 2.0, 1.0, np.nan])
    mean, error = ph.inverse_variance_mean(value_a, error_a, value_b, error_b)
    w_a, w_b = 1 / 100.0**2, 1 / 200.0**2
    assert_allclose(mean[0], (1000 * w_a + 1200 * w_b) / (w_a + w_b), rtol=1e-14)
    assert_allclose(mean[0], 1040.0, rtol=1e-14)
    assert_allclose(error[0], 1 / np.sqrt(w_a + w_b), rtol=1e-14)
    # only a (b's value is NaN)
    assert_allclose([mean[1], error[1]], [5.0, 1.0], rtol=1e-14)
    # only b (a's value is NaN)
    assert_allclose([mean[2], error[2]], [8.0, 0.5], rtol=1e-14)
    # only b (a's error is NaN)
    assert_allclose([mean[3], error[3]], [4.0, 2.0], rtol=1e-14)
    # a's error is zero: not a usable measurement, b alone
    assert_allclose([mean[4], error[4]], [3.0, 1.0], rtol=1e-14)
    # neither
    assert np.isnan(mean[5]) and np.isnan(error[5])


def test_inverse_variance_mean_error_never_exceeds_inputs():
    rng = np.random.default_rng(1)
    value_a, value_b = rng.normal(size=50), rng.normal(size=50)
    error_a, error_b = rng.uniform(0.1, 2, size=50), rng.uniform(0.1, 2, size=50)
    mean, error = ph.inverse_variance_mean(value_a, error_a, value_b, error_b)
    assert np.all(error <= np.minimum(error_a, error_b))
    assert np.all((mean >= np.minimum(value_a, value_b) - 1e-12) & (mean <= np.maximum(value_a, value_b) + 1e-12))


def test_inverse_variance_mean_scalar_none():
    mean, error = ph.inverse_variance_mean(np.nan, 1.0, 2.0, -1.0)
    assert np.isnan(mean) and np.isnan(error)


@pytest.mark.parametrize(
    "func, args",
    [
        (ph.mag_parallax_to_fakemag, (10.0, 1.0)),
        (ph.fakemag_to_parallax, (100.0, 10.0)),
        (ph.fakemag_to_distance, (100.0, 10.0)),
        (ph.fakemag_to_absmag, (100.0,)),
        (ph.absmag_to_fakemag, (0.0,)),
        (ph.parallax_to_distance, (1.0,)),
        (ph.distance_to_parallax, (1000.0,)),
        (ph.absmag_to_log_solar_luminosity, (3.27,)),
        (ph.fakemag_to_log_solar_luminosity, (100.0,)),
        (ph.mag_parallax_to_absmag, (10.0, 1.0)),
    ],
)
def test_scalar_in_array_out_and_nan_propagates(func, args):
    out = func(*args)
    assert isinstance(out, np.ndarray | np.floating)
    assert np.ndim(out) == 0 and np.isfinite(out)
    # list input gives an array of the same length, element by element
    listed = func(*[[a, a] for a in args])
    assert np.shape(listed) == (2,)
    assert_allclose(listed, [out, out], rtol=1e-15)
    # a NaN in any argument gives NaN
    for i in range(len(args)):
        nan_args = list(args)
        nan_args[i] = np.nan
        assert np.isnan(func(*nan_args))


def test_round_trip_through_every_quantity():
    # ϖ → L → M_K → L → d → ϖ on random stars, and the known star: K = 10 at 1 kpc has L = 100, M_K = 0
    rng = np.random.default_rng(3)
    mag, parallax = rng.uniform(5.0, 14.0, 200), 10 ** rng.uniform(-1.5, 1.0, 200)
    fakemag = ph.mag_parallax_to_fakemag(mag, parallax)
    back = ph.absmag_to_fakemag(ph.fakemag_to_absmag(fakemag))
    assert_allclose(ph.distance_to_parallax(ph.fakemag_to_distance(back, mag)), parallax, rtol=1e-12)
    assert_allclose(ph.fakemag_to_absmag(fakemag), mag - 5 * np.log10(100.0 / parallax), atol=1e-12)
    assert_allclose(ph.mag_parallax_to_fakemag(10.0, 1.0), 100.0, rtol=1e-15)
    assert_allclose(ph.fakemag_to_absmag(100.0), 0.0, atol=1e-15)
    assert_allclose(ph.fakemag_to_log_solar_luminosity(100.0), 0.4 * 3.27, rtol=1e-14)
    # fakemag grows as the star gets fainter: L ∝ 10^(0.2 M_K), i.e. the inverse square root of its luminosity
    assert_allclose(ph.absmag_to_fakemag(5.0) / ph.absmag_to_fakemag(0.0), 10.0, rtol=1e-14)
    ratio = 10 ** ph.absmag_to_log_solar_luminosity(0.0) / 10 ** ph.absmag_to_log_solar_luminosity(5.0)
    assert_allclose(ratio, (ph.absmag_to_fakemag(5.0) / ph.absmag_to_fakemag(0.0)) ** 2, rtol=1e-12)
