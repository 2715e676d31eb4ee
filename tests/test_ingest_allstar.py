"""Tests of ``zpdist ingest allstar``: allStar schemas, Gaia joins, duplicates, bad input and atomic output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from numpy.testing import assert_array_equal

from zpdist.cli import main
from zpdist.ingest.allstar import read_allstar, remove_duplicates
from zpdist.io.catalog import METADATA_KEY
from zpdist.io.tables import read_table

TWOFACE = "merged_TwoFace_DR14allStar_x_GaiaDR2_532.fits"
TWOFACE_8 = "TwoFace_test-allStar_dr14_8stars.fits"
NPZ_NAME = "astroNN_gaiadr2_apogeedr14_parallax.npz"
DUP = 1 << 4  # EXTRATARG bit 4: duplicate


def _metadata(path) -> dict:
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY.encode()])


def _fail(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _dr14_like(n: int = 4, **changes) -> dict:
    """Columns of a DR14-like allStar without Gaia (ids, positions, K, SNR)."""
    columns = {
        "APOGEE_ID": [f"2M{i:08d}" for i in range(n)],
        "RA": np.linspace(10.0, 11.0, n),
        "DEC": np.linspace(-5.0, -4.0, n),
        "KS": np.full(n, 9.0),
        "AK_TARG": np.full(n, 0.05),
        "SNR": np.full(n, 250.0),
        "STARFLAG": np.zeros(n, dtype=np.int32),
        "TEFF": np.full(n, 4800.0),
    }
    columns.update(changes)
    return columns


# --- duplicates ------------------------------------------------------------------------------------------------


def test_remove_duplicates_prefers_unflagged_then_snr():
    table = pd.DataFrame(
        {
            "apogee_id": ["a", "a", "b", "b", "b", "c", "c", "", ""],
            "extratarg": [DUP, 0, 0, DUP | 1, 1, DUP, DUP | 4, 0, 0],
            "snr": [300.0, 100.0, 50.0, 500.0, 80.0, 90.0, np.nan, 10.0, 20.0],
            "row": np.arange(9),
        }
    )
    table.attrs["source"] = "x.fits"
    out, summary = remove_duplicates(table)
    # a: the unflagged row despite its lower SNR; b: the higher-SNR unflagged row; c (all flagged): highest SNR;
    # the two rows without an id are kept
    assert_array_equal(out["row"], [1, 4, 5, 7, 8])
    assert (summary.n_removed, summary.n_removed_flagged, summary.n_kept_flagged) == (4, 3, 1)
    assert "EXTRATARG bit 4" in summary.rule
    assert out.attrs["source"] == "x.fits"


def test_remove_duplicates_without_extratarg_keeps_highest_snr():
    table = pd.DataFrame({"apogee_id": ["a", "a", "b", "a"], "snr": [100.0, 300.0, 5.0, 300.0]})
    out, summary = remove_duplicates(table)
    assert_array_equal(out["snr"], [300.0, 5.0])  # tie: the earlier row
    assert summary.n_removed == 2 and "no EXTRATARG" in summary.rule


# --- real files ------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_realdata_twoface_ingest(realdata, tmp_path, capsys):
    out = tmp_path / "twoface.parquet"
    assert main(["ingest", "allstar", "--allstar", str(realdata / TWOFACE), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "532 rows" in printed
    assert "duplicates removed: 106 rows" in printed and "426 rows left" in printed
    assert "Gaia parallax (in-file GAIADR2_* columns) for 418 of 426 rows" in printed

    table = pd.read_parquet(out)
    raw = Table.read(realdata / TWOFACE)
    rows = table["allstar_row"].to_numpy()
    assert len(table) == 426 == table["apogee_id"].nunique()
    assert table["apogee_id"].map(type).eq(str).all()
    assert_array_equal(table["apogee_id"], np.char.strip(np.asarray(raw["APOGEE_ID"][rows]).astype(str)))
    for column in ("starflag", "aspcapflag", "mg_fe_flag", "extratarg", "allstar_row"):
        assert table[column].dtype.kind == "i", column
    assert table["teff"].dtype == np.float64 and table["k"].dtype == np.float64
    # -9999 became NaN, everything else is the file's value
    for column, name in (("fe_h", "FE_H"), ("na_fe", "NA_FE"), ("ak", "AK_TARG"), ("parallax", "GAIADR2_PARALLAX")):
        source = np.asarray(raw[name][rows], dtype=float)
        missing = source <= -9998.5  # DR14 writes AK_TARG as -9999.99
        assert_array_equal(np.isnan(table[column]), missing)
        assert_array_equal(table[column][~missing], source[~missing])
    assert np.isnan(table["parallax"]).sum() == 8
    assert_array_equal(table["parallax_error"], np.where(raw["GAIADR2_PARALLAX_ERROR"][rows] == -9999, np.nan,
                                                         raw["GAIADR2_PARALLAX_ERROR"][rows]))  # fmt: skip
    assert_array_equal(table["phot_g_mean_mag"].notna(), raw["GAIADR2_G"][rows] != -9999)
    assert_array_equal(table["k"], np.asarray(raw["KS"][rows], dtype=np.float32))  # KS, not TwoFace's K (RV)
    assert ((table["extratarg"] & DUP) != 0).sum() == 56  # stars whose unflagged row is not in the file

    meta = _metadata(out)["ingest"]
    assert meta["allstar"].endswith(TWOFACE) and meta["gaia"] is None and meta["gaia_origin"].startswith("in-file")
    assert (meta["rows_in"], meta["rows_out"], meta["duplicates"]["n_removed"]) == (532, 426, 106)
    assert meta["column_map"]["parallax"] == "GAIADR2_PARALLAX"

    again = read_table(out, required=("k",), require_gaia=True)
    assert_array_equal(again["parallax"], table["parallax"])
    assert again["starflag"].dtype.kind == "i"


@pytest.mark.realdata
def test_realdata_twoface_position_join_and_fits_output(realdata, tmp_path, capsys):
    out = tmp_path / "twoface.fits"
    argv = ["ingest", "allstar", "--allstar", str(realdata / TWOFACE), "--gaia", str(realdata / NPZ_NAME),
            "--gaia-join", "position", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0  # no warning: the "dex" unit is written as TUNITn text
    assert "position match within 1 arcsec" in capsys.readouterr().out
    table = read_table(out, require_gaia=True)
    assert len(table) == 426 and np.isfinite(table["parallax"]).sum() == 418
    with fits.open(out) as hdul:
        assert json.loads(hdul[1].header["ZPMETA"])["ingest"]["gaia_join"]["mode"] == "position"


@pytest.mark.realdata
def test_realdata_npz_row_join_through_the_cli(realdata, tmp_path, capsys):
    """A fake DR14 allStar of the npz's length (a few columns) gets the npz's values on the same rows."""
    raw = np.load(realdata / NPZ_NAME)
    n = len(raw["parallax"])
    allstar = tmp_path / "allStar-fake.parquet"
    pd.DataFrame(_dr14_like(n, RA=raw["RA"].astype(float), DEC=raw["DEC"].astype(float))).to_parquet(allstar)
    out = tmp_path / "dr14.parquet"
    assert main(["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(realdata / NPZ_NAME),
                 "--out", str(out)]) == 0  # fmt: skip
    assert f"row-aligned join: 270168 of {n} rows have a Gaia parallax" in capsys.readouterr().out
    table = read_table(out, require_gaia=True)
    rows = [0, 1, 1013, 102_141, n - 1]
    expected = raw["parallax"][rows]
    assert_array_equal(table["parallax"].to_numpy()[rows], np.where(expected == -9999.0, np.nan, expected))
    assert np.isnan(table["parallax"].iloc[0]) and table["parallax"].iloc[1] == raw["parallax"][1]
    assert _metadata(out)["ingest"]["gaia_join"]["mode"] == "row"
    _fail(["ingest", "allstar", "--allstar", str(realdata / TWOFACE), "--gaia", str(realdata / NPZ_NAME),
           "--out", str(tmp_path / "bad.parquet")], capsys)  # fmt: skip
    assert not (tmp_path / "bad.parquet").exists()


@pytest.mark.realdata
def test_realdata_dr13_era_eight_stars(realdata, tmp_path, capsys):
    out = tmp_path / "eight.parquet"
    assert main(["ingest", "allstar", "--allstar", str(realdata / TWOFACE_8), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "duplicates removed: 1 rows" in printed and "no Gaia parallax" in printed
    table = read_table(out)
    raw = Table.read(realdata / TWOFACE_8)
    assert len(table) == 7 and "parallax" not in table
    assert table.attrs["column_map"]["k"] == "k"
    k = np.asarray(raw["K"][pd.read_parquet(out)["allstar_row"]], dtype=float)
    assert k[0] < -9998.5  # -9999.99
    assert_array_equal(table["k"], np.where(k < -9998.5, np.nan, k))


# --- Gaia joins through the command ----------------------------------------------------------------------------


def test_source_id_join_replaces_the_files_gaia(tmp_path, capsys):
    allstar = tmp_path / "allStar-dr16.fits"
    Table(_dr14_like(3, GAIA_SOURCE_ID=np.array([30, 10, -9999]), GAIA_PARALLAX=[9.0, 9.0, 9.0],
                     GAIA_PARALLAX_ERROR=[1.0, 1.0, 1.0])).write(allstar)  # fmt: skip
    gaia = tmp_path / "gaia-dr3.parquet"
    pd.DataFrame({"source_id": [10, 20, 30], "parallax": [0.1, 0.2, 0.3], "parallax_error": [0.01] * 3,
                  "phot_bp_mean_mag": [13.0] * 3, "phot_rp_mean_mag": [12.0] * 3}).to_parquet(gaia)  # fmt: skip
    out = tmp_path / "out.parquet"
    assert main(["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(gaia), "--out", str(out)]) == 0
    assert "source_id join: 2 of 3 rows found, 1 without a source_id" in capsys.readouterr().out
    table = read_table(out, require_gaia=True)
    assert_array_equal(table["parallax"], [0.3, 0.1, np.nan])
    assert_array_equal(table["bp_rp"], [1.0, 1.0, np.nan])


def test_position_join_is_the_default_without_ids(tmp_path, capsys):
    allstar = tmp_path / "allStar.csv"
    pd.DataFrame(_dr14_like(3)).to_csv(allstar, index=False)
    gaia = tmp_path / "gaia.csv"
    pd.DataFrame({"ra": [10.0, 10.5 + 0.2 / 3600, 10.0 + 0.5 / 3600], "dec": [-5.0, -4.5, -5.0],
                  "parallax": [1.0, 2.0, 3.0], "parallax_error": [0.1] * 3}).to_csv(gaia, index=False)  # fmt: skip
    out = tmp_path / "out.parquet"
    argv = ["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(gaia), "--out", str(out)]
    assert main([*argv, "--match-radius-arcsec", "2"]) == 0
    assert "0 counterpart, 1 with one, 1 with more than one" in capsys.readouterr().out.replace("no Gaia ", "0 ")
    table = pd.read_parquet(out)
    assert_array_equal(table["parallax"], [1.0, 2.0, np.nan])
    assert _metadata(out)["ingest"]["gaia_join"]["radius_arcsec"] == 2.0


def test_fits_table_in_a_later_hdu_is_found(tmp_path):
    path = tmp_path / "allStar-later-hdu.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2))), fits.table_to_hdu(Table(_dr14_like(3)))]).writeto(
        path
    )
    out = tmp_path / "out.parquet"
    assert main(["ingest", "allstar", "--allstar", str(path), "--out", str(out)]) == 0
    assert_array_equal(pd.read_parquet(out)["snr"], [250.0] * 3)


# --- bad input: one clear line, nothing written ----------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("nbytes", [4_000, 1_500_000])
def test_truncated_fits(realdata, tmp_path, capsys, nbytes):
    path = tmp_path / "allStar-truncated.fits"
    path.write_bytes((realdata / TWOFACE).read_bytes()[:nbytes])
    out = tmp_path / "out.parquet"
    with pytest.warns(AstropyUserWarning):  # astropy's own note on the damaged file
        err = _fail(["ingest", "allstar", "--allstar", str(path), "--out", str(out)], capsys)
    assert "allStar-truncated.fits" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["allStar-truncated.fits"]


def test_gaia_table_with_unknown_names(tmp_path, capsys):
    allstar = tmp_path / "allStar.parquet"
    pd.DataFrame(_dr14_like()).to_parquet(allstar)
    gaia = tmp_path / "gaia.csv"
    pd.DataFrame({"RA_ICRS": [1.0], "DE_ICRS": [2.0], "Plx": [0.3], "e_Plx": [0.1]}).to_csv(gaia, index=False)
    out = tmp_path / "out.parquet"
    err = _fail(["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(gaia), "--out", str(out)], capsys)
    assert "gaia.csv" in err and "GAIA_PARALLAX" in err and "PARALLAX_ERROR" in err and "RA_ICRS" in err
    assert not out.exists()


def test_npz_with_wrong_row_count(tmp_path, capsys):
    allstar = tmp_path / "allStar.parquet"
    pd.DataFrame(_dr14_like(4)).to_parquet(allstar)
    npz = tmp_path / "gaia.npz"
    np.savez(npz, RA=np.zeros(5), DEC=np.zeros(5), parallax=np.ones(5), parallax_error=np.ones(5))
    out = tmp_path / "out.parquet"
    err = _fail(["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(npz), "--out", str(out)], capsys)
    assert "gaia.npz has 5 rows but" in err and "allStar.parquet has 4" in err
    assert not out.exists()


def test_other_bad_input(tmp_path, capsys):
    allstar = tmp_path / "allStar.parquet"
    pd.DataFrame(_dr14_like()).to_parquet(allstar)
    err = _fail(["ingest", "allstar", "--allstar", str(allstar), "--out", str(tmp_path / "out.csv")], capsys)
    assert "must end in .parquet or .fits" in err
    no_id = tmp_path / "no-id.parquet"
    pd.DataFrame(_dr14_like()).drop(columns="APOGEE_ID").to_parquet(no_id)
    err = _fail(["ingest", "allstar", "--allstar", str(no_id), "--out", str(tmp_path / "out.parquet")], capsys)
    assert "no-id.parquet: required column 'apogee_id' is missing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["allStar.parquet", "no-id.parquet"]


def test_read_allstar_adds_bookkeeping(tmp_path):
    path = tmp_path / "allStar.fits"
    Table(_dr14_like(2, TELESCOPE=["apo25m ", "lco25m"], FIELD=["M67", "N188"],
                     EXTRATARG=np.array([0, 16], dtype=np.int16))).write(path)  # fmt: skip
    table = read_allstar(path)
    assert list(table["telescope"]) == ["apo25m", "lco25m"]
    assert table["extratarg"].dtype == np.int64
    assert_array_equal(table["allstar_row"], [0, 1])
