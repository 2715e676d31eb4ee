"""The Lindegren et al. (2021) zero-point per star (zpdist.lindegren, docs/method.md §11): the values are the
official package's, rows outside its range are NaN and flagged (never extrapolated), the sign is the bias."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from zero_point import zpt

from zpdist import lindegren
from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.lindegren import ecliptic_latitude, l21_valid, l21_zero_point, table_l21

NAN = np.nan

#: Real-looking Gaia (E)DR3 rows: G (mag), nu_eff (µm⁻¹), pseudocolour (µm⁻¹), ecl_lat (deg), params solved.
ROWS = np.array(
    [
        [9.5, 1.52, NAN, 12.0, 31],  # bright 5p, solar-type colour
        [12.3, 1.44, NAN, -47.0, 31],  # an APOGEE-like red giant, 5p
        [16.8, 1.58, NAN, 3.5, 31],  # intermediate 5p
        [20.4, 1.61, NAN, -80.0, 31],  # faint, quasar-like 5p
        [11.0, NAN, 1.47, 65.0, 95],  # bright 6p
        [19.7, NAN, 1.30, -5.0, 95],  # faint, blue-ish 6p
        [14.0, NAN, 1.70, 30.0, 95],  # red 6p near its colour limit
    ]
)


def _columns(rows: np.ndarray) -> list[np.ndarray]:
    return [rows[:, i] for i in range(5)]


def test_values_are_the_packages():
    zp, outside = l21_zero_point(*_columns(ROWS))
    zpt.load_tables()
    direct = zpt.get_zpt(*_columns(ROWS))
    assert not outside.any()
    assert_array_equal(zp, direct)
    # and the numbers themselves, so that a change of the package's coefficients shows (mas)
    assert_allclose(zp, [-0.034343, -0.006978, -0.031722, -0.027829, -0.025532, -0.001657, -0.037163], atol=1e-6)


def test_one_call_mixes_valid_and_invalid_rows_without_shifting_values():
    rows = np.vstack([ROWS[:2], [[5.9, 1.5, NAN, 0.0, 31]], ROWS[2:]])
    zp, outside = l21_zero_point(*_columns(rows))
    assert outside.tolist() == [False, False, True, *[False] * (len(ROWS) - 2)]
    assert_array_equal(np.delete(zp, 2), l21_zero_point(*_columns(ROWS))[0])


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ([5.9, 1.5, NAN, 10.0, 31], "G below 6"),
        ([21.1, 1.5, NAN, 10.0, 31], "G above 21"),
        ([6.0, 1.5, NAN, 10.0, 31], "G = 6 exactly (the package's interval is open)"),
        ([21.0, 1.5, NAN, 10.0, 31], "G = 21 exactly"),
        ([15.0, 1.0, NAN, 10.0, 31], "nu_eff below 1.1"),
        ([15.0, 1.95, NAN, 10.0, 31], "nu_eff above 1.9"),
        ([15.0, NAN, 1.8, 10.0, 95], "pseudocolour above 1.72"),
        ([15.0, NAN, 1.2, 10.0, 95], "pseudocolour below 1.24"),
        ([15.0, 1.5, NAN, 10.0, 3], "a 2-parameter solution"),
        ([15.0, 1.5, NAN, 10.0, -9999], "astrometric_params_solved missing"),
        ([15.0, 1.5, 1.5, 10.0, 7], "an unknown astrometric_params_solved"),
        ([NAN, 1.5, NAN, 10.0, 31], "G missing"),
        ([15.0, NAN, 1.5, 10.0, 31], "a 5p solution without nu_eff (its pseudocolour is not used)"),
        ([15.0, 1.5, NAN, 10.0, 95], "a 6p solution without pseudocolour"),
        ([15.0, 1.5, NAN, NAN, 31], "ecl_lat missing"),
        ([15.0, 1.5, NAN, 95.0, 31], "ecl_lat beyond the pole"),
    ],
)
def test_outside_the_range_is_nan_and_flagged(row, why):
    rows = np.array([row, ROWS[1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing of the package's range warnings leaks out
        zp, outside = l21_zero_point(*_columns(rows))
    assert outside.tolist() == [True, False], why
    assert np.isnan(zp[0]) and np.isfinite(zp[1]), why
    assert not l21_valid(*_columns(rows))[0]


@pytest.mark.parametrize(
    "row",
    [[6.05, 1.5, NAN, 0.0, 31], [20.95, 1.5, NAN, 0.0, 31], [15.0, 1.11, NAN, 0.0, 31], [15.0, 1.89, NAN, 0.0, 31],
     [15.0, NAN, 1.25, 0.0, 95], [15.0, NAN, 1.71, 0.0, 95], [15.0, 1.5, NAN, 90.0, 31], [15.0, 1.5, NAN, -90.0, 31]],
)  # fmt: skip
def test_just_inside_the_range_has_a_value(row):
    zp, outside = l21_zero_point(*_columns(np.array([row])))
    assert not outside[0] and np.isfinite(zp[0])


def test_never_an_extrapolation_where_the_package_would_give_one():
    """With its warnings on, the package returns a number for G = 5.9 (the value at G = 6); zpdist gives NaN."""
    zpt.load_tables()
    row = [np.array([v]) for v in (5.9, 1.5, NAN, 10.0, 31)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(zpt.get_zpt(*row))
    assert np.isnan(l21_zero_point(*row)[0][0])


def test_sign_is_the_bias_and_faint_sources_are_about_minus_twenty_uas():
    """Z = ϖ_Gaia − ϖ_true (corrected = ϖ − Z), negative: quasars' EDR3 parallaxes are biased by about −0.02 mas
    (Gaia EDR3 documentation §7.1.2; Lindegren et al. 2021 abstract: "a few tens of µas")."""
    rng = np.random.default_rng(3)
    n = 2000
    g = rng.uniform(19.0, 20.5, n)
    nu_eff = rng.uniform(1.5, 1.7, n)
    beta = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    zp, outside = l21_zero_point(g, nu_eff, np.full(n, NAN), beta, np.full(n, 31))
    assert not outside.any()
    assert -0.025 < np.median(zp) < -0.010
    # a quasar (true parallax 0) observed with parallax Z is corrected to 0, and a star's parallax goes up
    assert l21_zero_point([19.0], [1.6], [NAN], [0.0], [31])[0][0] == pytest.approx(-0.016247, abs=1e-6)
    parallax = np.array([1.0])
    assert (parallax - l21_zero_point([12.0], [1.45], [NAN], [20.0], [31])[0] > parallax).all()


def test_docstring_examples():
    result = doctest.testmod(lindegren, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0 and result.attempted >= 2


# ---------------------------------------------------------------- ecliptic latitude


def test_ecliptic_latitude_of_known_points():
    eps = lindegren.GAIA_OBLIQUITY_ARCSEC / 3600.0  # deg
    ra = np.array([0.0, 90.0, 180.0, 270.0, 90.0, 90.0, NAN])
    dec = np.array([0.0, eps, 0.0, 90.0 - eps, eps - 90.0, 90.0 - eps, 0.0])
    beta = ecliptic_latitude(ra, dec)
    # the equinoxes and the solstice point lie on the ecliptic, its poles are at (270°, 90° − ε) and (90°, ε − 90°),
    # and (90°, 90° − ε) is 2ε from the north pole
    assert_allclose(beta[:6], [0.0, 0.0, 0.0, 90.0, -90.0, 90.0 - 2 * eps], atol=1e-9)
    assert np.isnan(beta[6])


def test_ecliptic_latitude_is_within_0p05_arcsec_of_astropys_mean_ecliptic():
    import astropy.units as u
    from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

    rng = np.random.default_rng(4)
    ra, dec = rng.uniform(0, 360, 500), np.degrees(np.arcsin(rng.uniform(-1, 1, 500)))
    mean = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).transform_to(BarycentricMeanEcliptic()).lat.deg
    difference = np.abs(ecliptic_latitude(ra, dec) - mean) * 3600.0
    assert difference.max() < 0.05
    assert difference.max() > 0.01  # a different obliquity (84381.448″ against IAU 2006's 84381.406″), not the same


# ---------------------------------------------------------------- a table and the catalog


def _table(release: str | None, with_ecl_lat: bool = True) -> pd.DataFrame:
    ra = np.array([10.0, 120.0, 250.0, 330.0])
    dec = np.array([-20.0, 5.0, 40.0, 70.0])
    table = pd.DataFrame(
        {
            "ra": ra,
            "dec": dec,
            "phot_g_mean_mag": [12.0, 13.0, 22.0, 14.0],
            "nu_eff_used_in_astrometry": [1.45, NAN, 1.5, 1.48],
            "pseudocolour": [NAN, 1.50, NAN, NAN],
            "astrometric_params_solved": np.array([31, 95, 31, 31]),
        }
    )
    if with_ecl_lat:
        table["ecl_lat"] = ecliptic_latitude(ra, dec)
    table.attrs["gaia_release"] = release
    return table


@pytest.mark.parametrize("release", ["EDR3", "DR3"])
def test_table_l21_for_edr3_and_dr3(release):
    zp, outside = table_l21(_table(release))
    assert outside.tolist() == [False, False, True, False]
    t = _table(release)
    expected = l21_zero_point(t["phot_g_mean_mag"], t["nu_eff_used_in_astrometry"], t["pseudocolour"],
                              t["ecl_lat"], t["astrometric_params_solved"])[0]  # fmt: skip
    assert_array_equal(zp, expected)
    # without ecl_lat, β comes from ra and dec: the same values
    assert_array_equal(table_l21(_table(release, with_ecl_lat=False))[0], zp)


@pytest.mark.parametrize("release", ["DR2", None])
def test_table_l21_does_not_apply_to_dr2_or_an_unknown_release(release):
    assert table_l21(_table(release)) is None


def test_table_l21_needs_its_columns():
    assert table_l21(_table("EDR3").drop(columns=["astrometric_params_solved"])) is None
    assert table_l21(_table("EDR3", with_ecl_lat=False).drop(columns=["ra"])) is None


def _prediction(n: int):
    from zpdist.nn.infer import MCPrediction

    return MCPrediction(
        fakemag=np.full(n, 100.0),
        fakemag_model_var=np.full(n, 1.0),
        fakemag_pred_var=np.full(n, 4.0),
        offset=np.full(n, -0.03),
        offset_std=np.zeros(n),
    )


@pytest.mark.parametrize(("release", "has_l21"), [("EDR3", True), ("DR2", False)])
def test_catalog_columns(release, has_l21):
    from zpdist.catalog import UNITS, build_catalog

    table = _table(release)
    table["k_corr"] = 10.0
    table["parallax"] = [0.5, 0.4, 0.3, 0.2]
    table["parallax_error"] = 0.02
    catalog = build_catalog(table, _prediction(len(table)), GalactocentricFrameConfig())
    assert ("l21_zp_offset" in catalog) is has_l21
    assert ("l21_outside_validity" in catalog) is has_l21
    if has_l21:
        assert_array_equal(catalog["l21_zp_offset"].to_numpy(), table_l21(table)[0])
        assert catalog["l21_outside_validity"].tolist() == [False, False, True, False]
        assert catalog["l21_outside_validity"].dtype == bool
    assert UNITS["l21_zp_offset"] == "mas"
