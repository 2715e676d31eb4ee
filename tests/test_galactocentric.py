"""Tests of zpdist.galactocentric: astropy's Galactocentric frame with the METHOD §7 parameters."""

from __future__ import annotations

import astropy.coordinates as coord
import astropy.units as u
import numpy as np
import pytest
from numpy.testing import assert_allclose

from zpdist.galactocentric import GalactocentricFrameConfig, galactocentric_to_icrs, radec_distance_to_galactocentric

KEYS = ("x_gc", "y_gc", "z_gc", "r_gc", "phi_gc")
# Galactic centre direction (Sgr A*, astropy's galcen_coord): l ≈ 0, b ≈ 0.
GC_RA, GC_DEC = 266.405, -28.936


def test_default_frame_parameters():
    frame = GalactocentricFrameConfig()
    assert frame.r0_kpc == 8.125
    assert frame.z_sun_pc == 20.8
    assert tuple(frame.v_sun_kms) == (11.1, 245.7, 7.25)
    assert frame.to_dict() == {"r0_kpc": 8.125, "z_sun_pc": 20.8, "v_sun_kms": (11.1, 245.7, 7.25)}
    astro = frame.to_astropy()
    assert isinstance(astro, coord.Galactocentric)
    assert_allclose(astro.galcen_distance.to_value(u.kpc), 8.125, rtol=1e-14)
    assert_allclose(astro.z_sun.to_value(u.pc), 20.8, rtol=1e-14)
    assert_allclose(astro.galcen_v_sun.xyz.to_value(u.km / u.s), [11.1, 245.7, 7.25], rtol=1e-14)


def test_sun_position():
    # a star 1 mpc from the Sun, in any direction, sits at the Sun's Galactocentric position
    out = radec_distance_to_galactocentric([10.0, 200.0, GC_RA], [20.0, -60.0, GC_DEC], 1e-3)
    assert set(out) == set(KEYS)
    assert_allclose(out["x_gc"], -8.125, atol=1e-4)
    assert_allclose(out["y_gc"], 0.0, atol=1e-5)
    assert_allclose(out["z_gc"], 0.0208, atol=1e-5)
    assert_allclose(out["r_gc"], 8.125, atol=1e-4)
    assert_allclose(np.abs(out["phi_gc"]), 180.0, atol=1e-3)


def test_sun_position_scalar_input():
    out = radec_distance_to_galactocentric(10.0, 20.0, 1e-3)
    for key in KEYS:
        assert np.ndim(out[key]) == 0
    assert_allclose(out["x_gc"], -8.125, atol=1e-4)
    assert_allclose(out["z_gc"], 0.0208, atol=1e-5)


def test_galactic_centre_lands_at_origin():
    out = radec_distance_to_galactocentric(GC_RA, GC_DEC, 8125.0)
    assert_allclose([out["x_gc"], out["y_gc"], out["z_gc"]], 0.0, atol=0.05)
    assert out["r_gc"] < 0.05
    # the exact l = 0, b = 0 direction, too (Sgr A* is 0.06 deg away from it)
    lb0 = coord.SkyCoord(l=0 * u.deg, b=0 * u.deg, frame="galactic").icrs
    out = radec_distance_to_galactocentric(lb0.ra.deg, lb0.dec.deg, 8125.0)
    assert_allclose([out["x_gc"], out["y_gc"], out["z_gc"]], 0.0, atol=0.05)


def test_directions_have_right_signs():
    # l = 90 deg (direction of Galactic rotation): +y; north Galactic pole: +z; anticentre: x more negative
    gal = coord.SkyCoord(l=[90.0, 0.0, 180.0] * u.deg, b=[0.0, 90.0, 0.0] * u.deg, frame="galactic").icrs
    out = radec_distance_to_galactocentric(gal.ra.deg, gal.dec.deg, 1000.0)
    assert_allclose(out["y_gc"][0], 1.0, atol=5e-3)
    assert_allclose(out["x_gc"][0], -8.125, atol=5e-3)
    assert_allclose(out["z_gc"][1], 1.0208, atol=5e-3)
    assert_allclose(out["x_gc"][2], -9.125, atol=5e-3)
    assert_allclose(out["phi_gc"][0], np.degrees(np.arctan2(1.0, -8.125)), atol=0.05)


def test_cylindrical_columns():
    rng = np.random.default_rng(7)
    ra, dec = rng.uniform(0, 360, 20), rng.uniform(-80, 80, 20)
    dist = rng.uniform(100, 20000, 20)
    out = radec_distance_to_galactocentric(ra, dec, dist)
    assert_allclose(out["r_gc"], np.hypot(out["x_gc"], out["y_gc"]), rtol=1e-14)
    assert_allclose(out["phi_gc"], np.degrees(np.arctan2(out["y_gc"], out["x_gc"])), rtol=1e-14)
    assert np.all(np.abs(out["phi_gc"]) <= 180.0)
    # distance to the Sun is preserved
    sun = np.array([-8.125 * np.cos(np.arcsin(0.0208 / 8.125)), 0.0, 0.0208])
    xyz = np.stack([out["x_gc"], out["y_gc"], out["z_gc"]], axis=1)
    assert_allclose(np.linalg.norm(xyz - sun, axis=1), dist / 1000.0, rtol=1e-6)


def test_matches_astropy_directly():
    ra, dec, dist = np.array([45.0, 300.0]), np.array([10.0, -45.0]), np.array([2500.0, 600.0])
    out = radec_distance_to_galactocentric(ra, dec, dist)
    ref = (
        coord.SkyCoord(ra=ra * u.deg, dec=dec * u.deg, distance=dist * u.pc)
        .transform_to(coord.Galactocentric(galcen_distance=8.125 * u.kpc, z_sun=20.8 * u.pc))
        .cartesian
    )
    assert_allclose(out["x_gc"], ref.x.to_value(u.kpc), rtol=1e-12)
    assert_allclose(out["y_gc"], ref.y.to_value(u.kpc), rtol=1e-12)
    assert_allclose(out["z_gc"], ref.z.to_value(u.kpc), rtol=1e-12)


def test_invalid_distance_gives_nan_rows_only():
    ra = np.array([GC_RA, 10.0, 20.0, 30.0, 40.0, 50.0])
    dec = np.array([GC_DEC, 20.0, 5.0, np.nan, 5.0, 5.0])
    dist = np.array([8125.0, np.nan, 0.0, 100.0, -50.0, 1e-3])
    out = radec_distance_to_galactocentric(ra, dec, dist)
    for key in KEYS:
        assert out[key].shape == (6,)
        assert np.all(np.isnan(out[key][1:5])), key
        assert np.isfinite(out[key][0]) and np.isfinite(out[key][5]), key
    assert out["r_gc"][0] < 0.05
    assert_allclose(out["x_gc"][5], -8.125, atol=1e-4)


def test_all_invalid():
    out = radec_distance_to_galactocentric([1.0, 2.0], [3.0, 4.0], [np.nan, -1.0])
    for key in KEYS:
        assert out[key].shape == (2,)
        assert np.all(np.isnan(out[key]))


def test_round_trip_galactocentric_icrs():
    x = np.array([-8.0, 0.0, 3.0, -12.5, 4.0])
    y = np.array([0.0, 5.0, -2.0, 1.5, 4.0])
    z = np.array([0.1, 0.0, 1.0, -0.8, 2.5])
    sky = galactocentric_to_icrs(x, y, z)
    assert set(sky) == {"ra", "dec", "glon", "glat", "distance_pc"}
    assert np.all((sky["ra"] >= 0) & (sky["ra"] < 360))
    assert np.all(np.abs(sky["dec"]) <= 90)
    assert np.all(sky["distance_pc"] > 0)
    back = radec_distance_to_galactocentric(sky["ra"], sky["dec"], sky["distance_pc"])
    assert_allclose(back["x_gc"], x, atol=1e-6)
    assert_allclose(back["y_gc"], y, atol=1e-6)
    assert_allclose(back["z_gc"], z, atol=1e-6)


def test_galactocentric_to_icrs_known_points():
    # the Galactic centre is 8.125 kpc away towards l ≈ 0, b ≈ 0
    sky = galactocentric_to_icrs([0.0], [0.0], [0.0])
    assert_allclose(sky["distance_pc"], 8125.0, rtol=1e-9)
    assert_allclose(sky["ra"], GC_RA, atol=1e-3)
    assert_allclose(sky["dec"], GC_DEC, atol=1e-3)
    assert_allclose(np.where(sky["glon"] > 180, sky["glon"] - 360, sky["glon"]), 0.0, atol=0.1)
    assert_allclose(sky["glat"], 0.0, atol=0.1)
    # galactic (l, b) agree with astropy's own conversion of the returned (ra, dec)
    sky = galactocentric_to_icrs([-4.0, 2.0], [3.0, -6.0], [0.5, -1.0])
    gal = coord.SkyCoord(ra=sky["ra"] * u.deg, dec=sky["dec"] * u.deg).galactic
    assert_allclose(sky["glon"], gal.l.deg, atol=1e-8)
    assert_allclose(sky["glat"], gal.b.deg, atol=1e-8)


@pytest.mark.parametrize("r0", [8.3, 7.9])
def test_non_default_r0_moves_sun(r0):
    frame = GalactocentricFrameConfig(r0_kpc=r0)
    out = radec_distance_to_galactocentric([10.0, 150.0], [20.0, -10.0], 1e-3, frame=frame)
    assert_allclose(out["x_gc"], -r0, atol=1e-4)
    assert_allclose(out["z_gc"], 0.0208, atol=1e-5)
    default = radec_distance_to_galactocentric([10.0, 150.0], [20.0, -10.0], 1e-3)
    assert_allclose(out["x_gc"] - default["x_gc"], -(r0 - 8.125), atol=1e-4)
    # round trip through the same non-default frame
    sky = galactocentric_to_icrs([1.0], [2.0], [0.3], frame=frame)
    back = radec_distance_to_galactocentric(sky["ra"], sky["dec"], sky["distance_pc"], frame=frame)
    assert_allclose([back["x_gc"][0], back["y_gc"][0], back["z_gc"][0]], [1.0, 2.0, 0.3], atol=1e-6)


def test_non_default_z_sun():
    frame = GalactocentricFrameConfig(z_sun_pc=0.0)
    out = radec_distance_to_galactocentric(10.0, 20.0, 1e-3, frame=frame)
    assert_allclose(out["z_gc"], 0.0, atol=1e-5)
    assert_allclose(out["x_gc"], -8.125, atol=1e-4)


def test_frame_config_is_frozen():
    frame = GalactocentricFrameConfig()
    with pytest.raises(AttributeError):
        frame.r0_kpc = 9.0  # type: ignore[misc]
