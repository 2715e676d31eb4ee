"""Tests of zpdist.io.crossmatch: Gaia joins by row, by source_id and by position, and the Gaia readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from zpdist.ingest.allstar import read_allstar
from zpdist.io.crossmatch import (
    MATCH_SEPARATION,
    choose_join_mode,
    join_by_position,
    join_by_row,
    join_by_source_id,
    join_gaia_file,
    nearest_within,
    read_gaia_npz,
    read_gaia_table,
)
from zpdist.io.tables import TableError

ARCSEC = 1.0 / 3600.0
NPZ_NAME = "astroNN_gaiadr2_apogeedr14_parallax.npz"
NPZ_ROWS = 277_371


def _frame(source: str, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame.attrs["source"] = source
    return frame


def _write_npz(path, n: int = 4, **changes) -> None:
    arrays = {
        "RA": np.linspace(10.0, 11.0, n),
        "DEC": np.linspace(-5.0, -4.0, n),
        "parallax": np.linspace(0.5, 2.0, n),
        "parallax_error": np.full(n, 0.05),
        "g": np.full(n, 12.0),
    }
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


# --- readers ---------------------------------------------------------------------------------------------------


def test_read_gaia_npz_turns_missing_into_nan(tmp_path):
    _write_npz(tmp_path / "g.npz", parallax=np.array([1.0, -9999.0, 0.5, -0.2]), g=np.array([12.0, 13, -9999, 14]))
    gaia = read_gaia_npz(tmp_path / "g.npz")
    assert list(gaia.columns) == ["ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag"]
    assert_array_equal(np.isnan(gaia["parallax"]), [False, True, False, False])
    assert gaia["parallax"].iloc[3] == -0.2  # negative parallaxes are data, not missing
    assert np.isnan(gaia["phot_g_mean_mag"].iloc[2])
    assert gaia.attrs["source"].endswith("g.npz")


def test_read_gaia_npz_missing_key_lists_names(tmp_path):
    _write_npz(tmp_path / "g.npz", parallax_error=None)
    with pytest.raises(TableError, match=r"g\.npz: no parallax_error array; looked for RA, DEC, parallax") as err:
        read_gaia_npz(tmp_path / "g.npz")
    assert "found RA, DEC, parallax, g" in str(err.value)


def test_read_gaia_npz_bad_shapes_and_garbage(tmp_path):
    _write_npz(tmp_path / "g.npz", parallax_error=np.ones(3))
    with pytest.raises(TableError, match="1-D and of one length"):
        read_gaia_npz(tmp_path / "g.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(TableError, match=r"bad\.npz: not a readable \.npz"):
        read_gaia_npz(tmp_path / "bad.npz")
    with pytest.raises(TableError, match="no such file"):
        read_gaia_npz(tmp_path / "absent.npz")


def test_read_gaia_table_archive_names(tmp_path):
    pd.DataFrame(
        {"source_id": [11, 12], "ra": [1.0, 2.0], "dec": [3.0, 4.0], "parallax": [0.5, -9999.0],
         "parallax_error": [0.1, 0.2], "phot_g_mean_mag": [12.0, 13.0], "bp_rp": [1.1, 1.2], "pmra": [1.0, 2.0]}
    ).to_csv(tmp_path / "gaia.csv", index=False)  # fmt: skip
    gaia = read_gaia_table(tmp_path / "gaia.csv", "position")
    assert set(gaia.columns) == {"source_id", "ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag", "bp_rp"}
    assert np.isnan(gaia["parallax"].iloc[1])
    assert gaia["source_id"].dtype.kind == "i"


def test_read_gaia_table_unknown_names_lists_what_was_looked_for(tmp_path):
    pd.DataFrame({"id": [1], "alpha": [1.0], "delta": [2.0], "plx": [0.3], "e_plx": [0.1]}).to_parquet(
        tmp_path / "gaia.parquet"
    )
    with pytest.raises(TableError) as err:
        read_gaia_table(tmp_path / "gaia.parquet", "position")
    message = str(err.value)
    for name in ("GAIAEDR3_PARALLAX", "GAIA_PARALLAX", "GAIADR2_PARALLAX", "PARALLAX_ERROR", "RA", "DEC"):
        assert name in message
    assert "gaia.parquet" in message and "the file has id, alpha, delta, plx, e_plx" in message


def test_read_gaia_table_source_id_under_the_parallax_prefix(tmp_path):
    pd.DataFrame({"GAIA_PARALLAX": [0.3], "GAIA_PARALLAX_ERROR": [0.1], "SOURCE_ID": [5]}).to_csv(
        tmp_path / "g.csv", index=False
    )
    with pytest.raises(TableError, match="source_id: GAIA_SOURCE_ID "):
        read_gaia_table(tmp_path / "g.csv", "source_id")


def test_choose_join_mode(tmp_path):
    _write_npz(tmp_path / "g.npz")
    pd.DataFrame({"source_id": [1], "ra": [1.0], "dec": [1.0], "parallax": [1.0]}).to_csv(
        tmp_path / "ids.csv", index=False
    )
    pd.DataFrame({"ra": [1.0], "dec": [1.0], "parallax": [1.0]}).to_csv(tmp_path / "pos.csv", index=False)
    with_ids = _frame("a", source_id=[5, -9999])
    no_ids = _frame("a", source_id=[-9999, 0])
    assert choose_join_mode(with_ids, tmp_path / "g.npz") == "row"
    assert choose_join_mode(with_ids, tmp_path / "ids.csv") == "source_id"
    assert choose_join_mode(no_ids, tmp_path / "ids.csv") == "position"
    assert choose_join_mode(with_ids, tmp_path / "pos.csv") == "position"
    assert choose_join_mode(with_ids, tmp_path / "g.npz", "position") == "position"
    with pytest.raises(ValueError, match="unknown Gaia join 'nearest'"):
        choose_join_mode(with_ids, tmp_path / "g.npz", "nearest")


# --- row join --------------------------------------------------------------------------------------------------


def test_join_by_row_replaces_the_allstar_gaia_columns():
    allstar = _frame("allstar.fits", apogee_id=["a", "b"], ra=[1.0, 2.0], dec=[0.0, 0.0], parallax=[9.0, 9.0])
    gaia = _frame("g.npz", ra=[1.0, 2.0], dec=[0.0, 0.0], parallax=[0.4, np.nan], parallax_error=[0.1, np.nan])
    out, summary = join_by_row(allstar, gaia)
    assert_array_equal(out["parallax"], [0.4, np.nan])
    assert list(out.columns) == ["apogee_id", "ra", "dec", "gaia_ra", "gaia_dec", "parallax", "parallax_error"]
    assert (summary.mode, summary.n_rows, summary.n_matched) == ("row", 2, 1)
    assert summary.counts == {"positions checked": 2, "positions apart": 0}
    assert out.attrs["source"] == "allstar.fits"


def test_join_by_row_wrong_count_names_both():
    allstar = _frame("allStar-l31c.2.fits", ra=[1.0, 2.0, 3.0])
    gaia = _frame("g.npz", parallax=[0.1, 0.2], parallax_error=[0.1, 0.1])
    with pytest.raises(ValueError, match=r"g\.npz has 2 rows but allStar-l31c\.2\.fits has 3"):
        join_by_row(allstar, gaia)


def test_join_by_row_detects_reordered_rows():
    ra = np.linspace(0.0, 10.0, 6)
    allstar = _frame("allstar", ra=ra, dec=np.zeros(6))
    gaia = _frame("g.npz", ra=ra[::-1], dec=np.zeros(6), parallax=np.ones(6), parallax_error=np.ones(6))
    with pytest.raises(ValueError, match="do not line up"):
        join_by_row(allstar, gaia)


# --- source_id join --------------------------------------------------------------------------------------------


def test_join_by_source_id():
    allstar = _frame("allstar", apogee_id=list("abcd"), source_id=[5, 3, -9999, 7], parallax=[9.0] * 4)
    gaia = _frame(
        "gaia.csv", source_id=[3, 5, 9], parallax=[0.3, 0.5, 0.9], parallax_error=[0.1] * 3,
        visibility_periods_used=[12, 15, 8],
    )  # fmt: skip
    out, summary = join_by_source_id(allstar, gaia)
    assert_array_equal(out["parallax"], [0.5, 0.3, np.nan, np.nan])
    assert_array_equal(out["source_id"], [5, 3, -9999, -9999])
    assert out["visibility_periods_used"].dtype == np.int64
    assert_array_equal(out["visibility_periods_used"], [15, 12, -9999, -9999])
    assert summary.n_matched == 2
    assert summary.counts == {"no id": 1, "id not found": 1}


def test_join_by_source_id_errors():
    allstar = _frame("allstar.fits", source_id=[5])
    with pytest.raises(ValueError, match=r"gaia\.csv repeats 1 source_id"):
        join_by_source_id(allstar, _frame("gaia.csv", source_id=[5, 5], parallax=[1.0, 1.0]))
    with pytest.raises(ValueError, match=r"allstar\.fits has no source_id column \(looked for GAIAEDR3_SOURCE_ID"):
        join_by_source_id(_frame("allstar.fits", ra=[1.0]), _frame("g", source_id=[5], parallax=[1.0]))


# --- position join ---------------------------------------------------------------------------------------------


def _position_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Star a: two Gaia sources within 1" (0.6" and 0.3"); b: one at 2"; c: one at 0.5"; d: no position;
    e: across RA = 0 from its source (0.4" away)."""
    allstar = _frame(
        "allstar", apogee_id=list("abcde"), ra=[10.0, 20.0, 30.0, np.nan, 359.9999], dec=[0.0, 10.0, -20.0, 0.0, 0.0]
    )
    gaia_ra = [10.0 + 0.6 * ARCSEC, 10.0, 20.0, 30.0, np.nan, (359.9999 + 0.4 * ARCSEC) % 360.0]
    gaia_dec = [0.0, 0.3 * ARCSEC, 10.0 + 2.0 * ARCSEC, -20.0 + 0.5 * ARCSEC, 5.0, 0.0]
    gaia = _frame(
        "gaia.parquet", source_id=[1, 2, 3, 4, 5, 6], ra=gaia_ra, dec=gaia_dec, parallax=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        parallax_error=[0.01] * 6,
    )  # fmt: skip
    return allstar, gaia


def test_join_by_position_counts_and_nearest():
    allstar, gaia = _position_case()
    out, summary = join_by_position(allstar, gaia, 1.0)
    assert_array_equal(out["source_id"], [2, -9999, 4, -9999, 6])
    assert_array_equal(out["parallax"], [0.2, np.nan, 0.4, np.nan, 0.6])
    assert_allclose(out[MATCH_SEPARATION], [0.3, np.nan, 0.5, np.nan, 0.4], atol=1e-6)
    assert_allclose(out["gaia_ra"].iloc[0], 10.0)
    assert summary.counts == {"0": 2, "1": 2, ">1": 1}
    assert summary.n_matched == 3
    assert "2 APOGEE rows with no Gaia counterpart, 2 with one, 1 with more than one" in summary.describe()


def test_join_by_position_radius():
    allstar, gaia = _position_case()
    _, summary = join_by_position(allstar, gaia, 2.5)
    assert summary.counts == {"0": 1, "1": 3, ">1": 1}
    _, summary = join_by_position(allstar, gaia, 0.35)
    assert summary.counts == {"0": 4, "1": 1, ">1": 0}
    with pytest.raises(ValueError, match="radius must be positive"):
        join_by_position(allstar, gaia, 0.0)


def test_nearest_within_empty_inputs():
    rows, sep, counts = nearest_within(np.array([1.0]), np.array([1.0]), np.array([]), np.array([]), 1.0)
    assert_array_equal(rows, [-1]) and np.isnan(sep[0]) and counts[0] == 0


def test_join_gaia_file_dispatches(tmp_path):
    allstar, gaia = _position_case()
    gaia.to_parquet(tmp_path / "gaia.parquet")
    out, summary = join_gaia_file(allstar, tmp_path / "gaia.parquet")
    assert summary.mode == "position" and summary.n_matched == 3
    allstar["source_id"] = [3, 1, 0, 4, 99]
    out, summary = join_gaia_file(allstar, tmp_path / "gaia.parquet")
    assert summary.mode == "source_id"
    assert_array_equal(out["parallax"], [0.3, 0.1, np.nan, 0.4, np.nan])


# --- real data -------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_realdata_npz_row_join(realdata):
    """The DR14 parallax npz joined onto a fake allStar of its length: known rows carry the npz's values."""
    raw = np.load(realdata / NPZ_NAME)
    gaia = read_gaia_npz(realdata / NPZ_NAME)
    assert len(gaia) == NPZ_ROWS
    allstar = _frame("fake-allStar", apogee_id=np.arange(NPZ_ROWS).astype(str), ra=raw["RA"], dec=raw["DEC"])
    out, summary = join_by_row(allstar, gaia)
    assert summary.n_matched == 270_168
    assert summary.counts == {"positions checked": NPZ_ROWS, "positions apart": 0}
    rows = [1, 2, 1013, 102_141, NPZ_ROWS - 1]
    assert_array_equal(out["parallax"].to_numpy()[rows], raw["parallax"][rows])
    assert_array_equal(out["parallax_error"].to_numpy()[rows], raw["parallax_error"][rows])
    assert_allclose(out["parallax"].iloc[1], 0.27083134, rtol=1e-7)
    missing = raw["parallax"] == -9999.0
    assert missing[0] and np.isnan(out["parallax"].iloc[0])
    assert_array_equal(np.isnan(out["parallax"].to_numpy()), missing)
    assert_array_equal(np.isnan(out["phot_g_mean_mag"].to_numpy()), raw["g"] == -9999.0)
    with pytest.raises(ValueError, match=rf"has {NPZ_ROWS} rows but fake-allStar has {NPZ_ROWS - 1}"):
        join_by_row(allstar.iloc[1:], gaia)


@pytest.mark.realdata
def test_realdata_twoface_position_match_recovers_its_gaia_columns(realdata):
    """TwoFace was joined to Gaia DR2 by a 1" match: a positional join to the npz gives the same parallaxes."""
    allstar = read_allstar(realdata / "merged_TwoFace_DR14allStar_x_GaiaDR2_532.fits")
    out, summary = join_by_position(allstar, read_gaia_npz(realdata / NPZ_NAME), 1.0)
    assert summary.n_matched == 532
    assert summary.counts["0"] == 0
    assert_array_equal(out["parallax"].to_numpy(), allstar["parallax"].to_numpy())
    assert_array_equal(out["telescope"], allstar["telescope"])
