"""Tests of zpdist.galactocentric: astropy's Galactocentric frame with the docs/method.md §7 parameters."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import astropy.coordinates as coord
import astropy.units as u
import numpy as np
import pytest
from numpy.testing import assert_allclose

from zpdist.errors import ConfigError
from zpdist.galactocentric import (
    DEFAULT_FRAME_PARAMETER_SET,
    FRAME_PARAMETER_SETS,
    FRAME_PARAMETERS,
    SGR_A_STAR_RADEC_DEG,
    GalactocentricFrameConfig,
    Reference,
    frame_parameter_set,
    galactocentric_to_icrs,
    radec_distance_to_galactocentric,
)

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


# ---------------------------------------------------------------- named parameter sets

FRAME_DOC = Path(__file__).resolve().parents[1] / "docs" / "frame.md"
#: Our sets that copy one of astropy's registry entries.
ASTROPY_SETS = {"astropy-v4.0": "v4.0", "astropy-pre-v4.0": "pre-v4.0"}


def test_default_set_is_the_default_config():
    assert DEFAULT_FRAME_PARAMETER_SET == "leung-bovy-2019"
    assert frame_parameter_set(DEFAULT_FRAME_PARAMETER_SET).to_config() == GalactocentricFrameConfig()
    assert GalactocentricFrameConfig.from_parameter_set("leung-bovy-2019") == GalactocentricFrameConfig()
    assert GalactocentricFrameConfig.from_parameter_set("astropy-v4.0") == GalactocentricFrameConfig(
        8.122, 20.8, (12.9, 245.6, 7.78)
    )


def test_every_value_has_references():
    assert set(FRAME_PARAMETER_SETS) == {"leung-bovy-2019", "astropy-v4.0", "astropy-pre-v4.0"}
    for name, params in FRAME_PARAMETER_SETS.items():
        assert params.name == name
        assert set(params.references) == set(FRAME_PARAMETERS), name
        assert set(params.notes) <= set(FRAME_PARAMETERS), name
        for refs in params.references.values():
            assert refs and all(isinstance(r, Reference) for r in refs)
            for ref in refs:
                assert re.fullmatch(r"\d{4}[A-Za-z&.]{5}[\d.]{4}[A-Z.][\d.]{4}[A-Z]", ref.bibcode), ref.bibcode
                assert ref.arxiv == "" or re.fullmatch(r"\d{4}\.\d{4,5}|astro-ph/\d{7}", ref.arxiv), ref.arxiv
                assert ref.bibcode[:4] in ref.citation  # the year


def test_default_set_references():
    refs = frame_parameter_set("leung-bovy-2019").references
    assert [r.bibcode for r in refs["r0_kpc"]] == ["2018A&A...615L..15G"]  # GRAVITY Collaboration 2018
    assert [r.arxiv for r in refs["z_sun_pc"]] == ["1809.03507"]  # Bennett & Bovy 2019
    assert [r.bibcode for r in refs["v_sun_kms"]][:2] == ["2010MNRAS.403.1829S", "2004ApJ...616..872R"]


def test_default_v_is_sgr_a_star_proper_motion_times_r0():
    # V = 4.74047 km/s per (mas/yr · kpc) × 6.379 mas/yr (Reid & Brunthaler 2004) × R0
    params = frame_parameter_set("leung-bovy-2019")
    mu = 6.379 * u.mas / u.yr
    v = (mu * params.r0_kpc * u.kpc).to_value(u.km / u.s, u.dimensionless_angles())
    assert_allclose(params.v_sun_kms[1], v, atol=0.01)
    # U and W are Schönrich et al. (2010)'s solar motion
    assert (params.v_sun_kms[0], params.v_sun_kms[2]) == (11.1, 7.25)


@pytest.mark.parametrize("ours, theirs", ASTROPY_SETS.items())
def test_astropy_sets_match_astropy_registry(ours, theirs):
    state = coord.galactocentric_frame_defaults.get_from_registry(theirs)
    astro, params = state["parameters"], frame_parameter_set(ours)
    assert_allclose(astro["galcen_distance"].to_value(u.kpc), params.r0_kpc, rtol=1e-12)
    assert_allclose(astro["z_sun"].to_value(u.pc), params.z_sun_pc, rtol=1e-12)
    assert_allclose(astro["galcen_v_sun"].xyz.to_value(u.km / u.s), params.v_sun_kms, rtol=1e-12)
    assert_allclose([astro["galcen_coord"].ra.deg, astro["galcen_coord"].dec.deg], SGR_A_STAR_RADEC_DEG, rtol=1e-12)
    keys = {"r0_kpc": "galcen_distance", "z_sun_pc": "z_sun", "v_sun_kms": "galcen_v_sun"}
    for ours_key, theirs_key in keys.items():
        urls = state["references"][theirs_key]
        urls = [urls] if isinstance(urls, str) else urls
        assert [unquote(url.rsplit("abs/", 1)[1]) for url in urls] == [r.bibcode for r in params.references[ours_key]]
    # and the frames agree: the Sun at the same place
    astropy_frame = coord.Galactocentric(**astro)
    sun = coord.SkyCoord(ra=10 * u.deg, dec=20 * u.deg, distance=1 * u.mpc)
    ref = sun.transform_to(astropy_frame).cartesian.xyz.to_value(u.kpc)
    out = radec_distance_to_galactocentric(10.0, 20.0, 1e-3, frame=params.to_config())
    assert_allclose([out["x_gc"], out["y_gc"], out["z_gc"]], ref, atol=1e-12)


def test_unknown_set_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"'gravity-2030'.*leung-bovy-2019, astropy-v4\.0, astropy-pre-v4\.0"):
        frame_parameter_set("gravity-2030")
    with pytest.raises(ValueError):  # ConfigError is a ValueError for Python callers
        GalactocentricFrameConfig.from_parameter_set("")


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        FRAME_PARAMETER_SETS["mine"] = FRAME_PARAMETER_SETS["leung-bovy-2019"]  # type: ignore[index]
    with pytest.raises(TypeError):
        FRAME_PARAMETER_SETS["leung-bovy-2019"].references["r0_kpc"] = ()  # type: ignore[index]


def test_reference_urls_and_text():
    ref = frame_parameter_set("leung-bovy-2019").references["r0_kpc"][0]
    assert ref.ads_url == "https://ui.adsabs.harvard.edu/abs/2018A%26A...615L..15G"
    assert str(ref) == "GRAVITY Collaboration (2018), A&A 615, L15 [ADS 2018A&A...615L..15G, arXiv:1807.09409]"
    assert str(Reference("X (2001), J 1, 1", "2001J.......1....1X")) == "X (2001), J 1, 1 [ADS 2001J.......1....1X]"


def test_frame_ignores_astropy_global_defaults():
    # another library changing astropy's default Galactocentric frame must not move our stars
    ra, dec, dist = np.array([45.0, 300.0]), np.array([10.0, -45.0]), np.array([2500.0, 600.0])
    before = radec_distance_to_galactocentric(ra, dec, dist)
    state = coord.galactocentric_frame_defaults.get_from_registry("v4.0")["parameters"]
    state["galcen_coord"] = coord.ICRS(ra=260.0 * u.deg, dec=-25.0 * u.deg)
    state["roll"] = 5.0 * u.deg
    with coord.galactocentric_frame_defaults.set(state):
        assert coord.Galactocentric().roll.to_value(u.deg) == 5.0  # the global default did change
        after = radec_distance_to_galactocentric(ra, dec, dist)
    for key in KEYS:
        assert_allclose(after[key], before[key], rtol=1e-14, atol=1e-14)


def test_frame_doc_lists_every_set():
    text = FRAME_DOC.read_text(encoding="utf-8")
    for name, params in FRAME_PARAMETER_SETS.items():
        assert f"`{name}`" in text, name
        assert f"{params.r0_kpc:g}" in text and f"{params.z_sun_pc:g}" in text, name
        assert "(" + ", ".join(f"{v:g}" for v in params.v_sun_kms) + ")" in text, name
        for refs in params.references.values():
            for ref in refs:
                assert ref.bibcode in text, ref.bibcode
                assert ref.arxiv in text, ref.arxiv
