"""Tests of zpdist.io.tables and zpdist.io.columns: survey tables onto the canonical schema (docs/method.md §9)."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from numpy.testing import assert_allclose, assert_array_equal

from zpdist.io import columns as cols
from zpdist.io.tables import TableError, list_columns, read_table

N = 6
MISSING = -9999.0

# ---------------------------------------------------------------- helpers


def allstar_columns(prefix: str = "GAIA_", n: int = N) -> dict[str, np.ndarray]:
    """A small allStar-like table: APOGEE columns, plus Gaia columns under ``prefix`` (None: no Gaia)."""
    data: dict[str, np.ndarray] = {
        "APOGEE_ID": np.array([f"2M{i:08d}+0000000" for i in range(n)]),
        "RA": np.linspace(10.0, 60.0, n),
        "DEC": np.linspace(-20.0, 30.0, n),
        "TEFF": np.linspace(4200.0, 5200.0, n),
        "LOGG": np.linspace(1.5, 3.5, n),
        "FE_H": np.linspace(-0.5, 0.3, n),
        "MG_FE": np.linspace(0.0, 0.25, n),
        "KS": np.linspace(8.0, 11.0, n),
        "AK_TARG": np.full(n, 0.05),
        "SNR": np.linspace(100.0, 600.0, n),
        "STARFLAG": np.array([0, 4, 0, 2**20, MISSING, 0], dtype=np.int32)[:n],
        "VSCATTER": np.full(n, 0.2),
    }
    data["TEFF"][1] = MISSING
    data["MG_FE"][4] = MISSING
    if prefix is not None:
        data[f"{prefix}PARALLAX"] = np.linspace(-0.2, 2.3, n)
        data[f"{prefix}PARALLAX_ERROR"] = np.full(n, 0.04)
        data[f"{prefix}PHOT_G_MEAN_MAG"] = np.linspace(11.0, 15.0, n)
        data[f"{prefix}PHOT_BP_MEAN_MAG"] = np.linspace(11.6, 15.9, n)
        data[f"{prefix}PHOT_RP_MEAN_MAG"] = np.linspace(10.4, 14.2, n)
        data[f"{prefix}VISIBILITY_PERIODS_USED"] = np.array([15, 8, 12, 20, 11, 9], dtype=np.int16)[:n]
        data[f"{prefix}PARALLAX"][2] = MISSING
        data[f"{prefix}PHOT_BP_MEAN_MAG"][5] = MISSING
    return data


def write_table(data: dict[str, np.ndarray], path: Path) -> Path:
    """Write ``data`` as FITS, Parquet or CSV according to the suffix of ``path``."""
    if path.suffix == ".fits":
        Table(data).write(path)
    elif path.suffix == ".parquet":
        pd.DataFrame(data).to_parquet(path)
    elif path.suffix == ".csv":
        pd.DataFrame(data).to_csv(path, index=False)
    else:  # pragma: no cover - test misuse
        raise AssertionError(path)
    return path


FORMATS = ["fits", "parquet", "csv"]


# ---------------------------------------------------------------- columns.py


def test_element_lists():
    assert len(cols.ELEMENTS) == 15
    assert len(cols.XFE_COLUMNS) == 15
    assert "tiii_fe" in cols.XFE_COLUMNS and "mg_fe" in cols.XFE_COLUMNS
    assert cols.APOGEE_FIELDS["tiii_fe"] == ("TIII_FE",)
    assert cols.APOGEE_FIELDS["ni_fe_err"] == ("NI_FE_ERR",)
    assert cols.APOGEE_FIELDS["k"][0] == "KS"
    assert cols.MISSING_VALUE == -9999.0
    assert {"starflag", "aspcapflag", "source_id", "visibility_periods_used", "mg_fe_flag"} <= cols.INTEGER_COLUMNS
    assert "teff" not in cols.INTEGER_COLUMNS and "parallax" not in cols.INTEGER_COLUMNS


@pytest.mark.parametrize("prefix", ["GAIA_", "GAIAEDR3_", "GAIADR2_", ""])
def test_resolve_columns_each_release(prefix):
    available = ["APOGEE_ID", "TEFF", "KS", f"{prefix}PARALLAX", f"{prefix}PARALLAX_ERROR", f"{prefix}PHOT_G_MEAN_MAG"]
    mapping = cols.resolve_columns(available)
    assert mapping["parallax"] == f"{prefix}PARALLAX"
    assert mapping["parallax_error"] == f"{prefix}PARALLAX_ERROR"
    assert mapping["phot_g_mean_mag"] == f"{prefix}PHOT_G_MEAN_MAG"
    assert mapping["teff"] == "TEFF"
    assert mapping["k"] == "KS"
    assert "bp_rp" not in mapping


def test_resolve_columns_short_gaia_names_and_case():
    mapping = cols.resolve_columns(["teff", "k", "gaiadr2_parallax", "GaiaDR2_G", "GAIADR2_BP", "GAIADR2_RP"])
    assert mapping == {
        "teff": "teff",
        "k": "k",
        "parallax": "gaiadr2_parallax",
        "phot_g_mean_mag": "GaiaDR2_G",
        "phot_bp_mean_mag": "GAIADR2_BP",
        "phot_rp_mean_mag": "GAIADR2_RP",
    }


def test_resolve_columns_prefers_ks_and_dr17_without_mixing():
    available = ["K", "KS", "AK", "AK_TARG", "GAIA_PARALLAX", "GAIA_PHOT_G_MEAN_MAG", "GAIAEDR3_PARALLAX"]
    mapping = cols.resolve_columns(available)
    assert mapping["k"] == "KS"
    assert mapping["ak"] == "AK_TARG"
    assert mapping["parallax"] == "GAIAEDR3_PARALLAX"
    # the G magnitude only exists under the DR16 prefix: never mixed with DR17 astrometry
    assert "phot_g_mean_mag" not in mapping
    assert cols.resolve_columns(["K"]) == {"k": "K"}


def test_gaia_prefixes_present_and_names_looked_for():
    assert cols.gaia_prefixes_present(["GAIA_PARALLAX", "parallax", "GAIAEDR3_PARALLAX"]) == ["GAIAEDR3_", "GAIA_", ""]
    assert cols.gaia_prefixes_present(["TEFF", "GAIA_G"]) == []
    assert cols.gaia_parallax_names_looked_for() == [
        "GAIAEDR3_PARALLAX",
        "GAIA_PARALLAX",
        "GAIADR2_PARALLAX",
        "PARALLAX",
    ]


# ---------------------------------------------------------------- read_table


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("prefix", ["GAIA_", "GAIAEDR3_", "GAIADR2_"])
def test_read_table_maps_release_names(tmp_path, fmt, prefix):
    data = allstar_columns(prefix)
    path = write_table(data, tmp_path / f"allstar.{fmt}")
    df = read_table(path, required=("teff", "parallax", "bp_rp"), require_gaia=True)
    assert len(df) == N
    expected = {
        "apogee_id",
        "ra",
        "dec",
        "teff",
        "logg",
        "fe_h",
        "mg_fe",
        "k",
        "ak",
        "snr",
        "starflag",
        "vscatter",
        "parallax",
        "parallax_error",
        "phot_g_mean_mag",
        "phot_bp_mean_mag",
        "phot_rp_mean_mag",
        "visibility_periods_used",
        "bp_rp",
    }
    assert set(df.columns) == expected
    assert df.attrs["source"] == str(path)
    assert df.attrs["column_map"]["parallax"] == f"{prefix}PARALLAX"
    assert df.attrs["column_map"]["k"] == "KS"
    assert list(df["apogee_id"]) == list(data["APOGEE_ID"])

    parallax = data[f"{prefix}PARALLAX"].copy()
    parallax[2] = np.nan
    assert_allclose(df["parallax"], parallax, rtol=1e-15)
    assert_allclose(df["parallax_error"], 0.04, rtol=1e-15)
    assert_allclose(df["phot_g_mean_mag"], data[f"{prefix}PHOT_G_MEAN_MAG"], rtol=1e-15)
    assert_allclose(df["k"], data["KS"], rtol=1e-15)

    # bp_rp computed from BP and RP, NaN where BP was -9999
    bp_rp = data[f"{prefix}PHOT_BP_MEAN_MAG"] - data[f"{prefix}PHOT_RP_MEAN_MAG"]
    assert_allclose(df["bp_rp"][:5], bp_rp[:5], rtol=1e-12)
    assert np.isnan(df["bp_rp"][5])
    assert np.isnan(df["phot_bp_mean_mag"][5])

    # -9999 is NaN in float columns
    assert np.isnan(df["teff"][1]) and np.isnan(df["mg_fe"][4])
    assert np.isfinite(df["teff"].drop(index=1)).all()
    assert df["teff"].dtype.kind == "f"
    assert not (df.select_dtypes("float").to_numpy() == MISSING).any()

    # bit masks stay integers, values untouched (including a -9999 there)
    assert df["starflag"].dtype.kind == "i"
    assert_array_equal(df["starflag"], [0, 4, 0, 2**20, -9999, 0])
    assert df["visibility_periods_used"].dtype.kind == "i"
    assert_array_equal(df["visibility_periods_used"], [15, 8, 12, 20, 11, 9])


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_bp_rp_column_is_used(tmp_path, fmt):
    data = allstar_columns("GAIA_")
    data["GAIA_BP_RP"] = np.full(N, 1.23)
    df = read_table(write_table(data, tmp_path / f"t.{fmt}"))
    assert df.attrs["column_map"]["bp_rp"] == "GAIA_BP_RP"
    assert_allclose(df["bp_rp"], 1.23, rtol=1e-15)


@pytest.mark.parametrize("fmt", FORMATS)
def test_ks_preferred_over_k(tmp_path, fmt):
    data = allstar_columns("GAIADR2_")
    data["K"] = np.full(N, 42.0)  # e.g. TwoFace's radial-velocity semi-amplitude
    df = read_table(write_table(data, tmp_path / f"t.{fmt}"))
    assert df.attrs["column_map"]["k"] == "KS"
    assert_allclose(df["k"], data["KS"], rtol=1e-15)
    # and K alone is used when KS is absent
    data.pop("KS")
    df = read_table(write_table(data, tmp_path / f"only_k.{fmt}"))
    assert_allclose(df["k"], 42.0, rtol=1e-15)


def test_prefers_dr17_when_several_releases(tmp_path):
    data = allstar_columns("GAIA_")
    data.update({k: v for k, v in allstar_columns("GAIAEDR3_").items() if k.startswith("GAIAEDR3_")})
    data["GAIAEDR3_PARALLAX"] = np.full(N, 0.5)
    df = read_table(write_table(data, tmp_path / "both.parquet"))
    assert df.attrs["column_map"]["parallax"] == "GAIAEDR3_PARALLAX"
    assert df.attrs["column_map"]["phot_g_mean_mag"] == "GAIAEDR3_PHOT_G_MEAN_MAG"
    assert_allclose(df["parallax"], 0.5, rtol=1e-15)


def test_canonical_names_read_back(tmp_path):
    frame = pd.DataFrame({"teff": [4500.0, -9999.0], "parallax": [1.0, 2.0], "starflag": [0, 1]})
    df = read_table(write_table(frame.to_dict("list"), tmp_path / "canon.csv"), require_gaia=True)
    assert_allclose(df["parallax"], [1.0, 2.0], rtol=1e-15)
    assert df["teff"][0] == 4500.0 and np.isnan(df["teff"][1])
    assert_array_equal(df["starflag"], [0, 1])


def test_float_bitmask_with_nan_becomes_integer(tmp_path):
    # a Parquet file written through pandas may carry an integer flag as float with NaN
    frame = pd.DataFrame({"TEFF": [4500.0, 4600.0, 4700.0], "STARFLAG": [0.0, np.nan, 8.0], "GAIA_PARALLAX": 1.0})
    frame.to_parquet(tmp_path / "f.parquet")
    df = read_table(tmp_path / "f.parquet")
    assert df["starflag"].dtype.kind == "i"
    assert_array_equal(df["starflag"], [0, -9999, 8])


def test_fits_native_byte_order(tmp_path):
    df = read_table(write_table(allstar_columns("GAIA_"), tmp_path / "t.fits"))
    for name in ("starflag", "visibility_periods_used", "teff", "parallax"):
        assert df[name].dtype.isnative, name


def test_list_columns(tmp_path):
    data = allstar_columns("GAIA_")
    for fmt in FORMATS:
        assert list_columns(write_table(data, tmp_path / f"t.{fmt}")) == list(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_required_column(tmp_path, fmt):
    data = allstar_columns("GAIA_")
    data.pop("LOGG")
    path = write_table(data, tmp_path / f"no_logg.{fmt}")
    with pytest.raises(TableError) as info:
        read_table(path, required=("teff", "logg"))
    message = str(info.value)
    assert "logg" in message
    assert str(path) in message


def test_missing_required_bp_rp_names_it(tmp_path):
    data = allstar_columns("GAIA_")
    data.pop("GAIA_PHOT_RP_MEAN_MAG")
    path = write_table(data, tmp_path / "no_rp.parquet")
    with pytest.raises(TableError, match="bp_rp") as info:
        read_table(path, required=("bp_rp",))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_require_gaia_lists_names_looked_for(tmp_path, fmt):
    path = write_table(allstar_columns(None), tmp_path / f"no_gaia.{fmt}")
    with pytest.raises(TableError) as info:
        read_table(path, require_gaia=True)
    message = str(info.value)
    assert str(path) in message
    for name in ("GAIAEDR3_PARALLAX", "GAIA_PARALLAX", "GAIADR2_PARALLAX"):
        assert name in message
    # without require_gaia the same file reads, without Gaia columns
    df = read_table(path)
    assert "parallax" not in df and len(df) == N


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("fraction", [0.5, 0.75])
def test_truncated_fits_raises_table_error(tmp_path, fraction):
    small = allstar_columns("GAIA_")
    path = write_table({name: np.resize(v, 400) for name, v in small.items()}, tmp_path / "whole.fits")
    assert len(read_table(path)) == 400  # the whole file is fine
    raw = path.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(TableError) as info:
        read_table(cut)
    assert str(cut) in str(info.value)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("nbytes", [0, 100])
def test_garbage_fits_raises_table_error(tmp_path, nbytes):
    path = write_table(allstar_columns("GAIA_"), tmp_path / "whole.fits")
    cut = tmp_path / "garbage.fits"
    cut.write_bytes(path.read_bytes()[:nbytes])
    with pytest.raises(TableError, match=r"garbage\.fits"):
        read_table(cut)


def test_fits_table_in_second_extension(tmp_path):
    data = allstar_columns("GAIADR2_")
    path = tmp_path / "hdu2.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), dtype=np.float32)), fits.BinTableHDU(Table(data))]
    ).writeto(path)
    with fits.open(path) as hdul:
        assert isinstance(hdul[2], fits.BinTableHDU) and not isinstance(hdul[1], fits.BinTableHDU)
    df = read_table(path, required=("parallax", "teff"))
    assert len(df) == N
    assert_allclose(df["k"], data["KS"], rtol=1e-15)
    assert np.isnan(df["parallax"][2])


def test_fits_without_table(tmp_path):
    path = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((3, 3)))]).writeto(path)
    with pytest.raises(TableError, match="no table HDU") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_fits_vector_column_rejected(tmp_path):
    data = allstar_columns("GAIA_")
    data["TEFF"] = np.ones((N, 2))
    path = write_table(data, tmp_path / "vec.fits")
    with pytest.raises(TableError, match="TEFF") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_unknown_suffix_and_missing_file(tmp_path):
    odd = tmp_path / "table.txt"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(TableError, match="unknown table format") as info:
        read_table(odd)
    assert str(odd) in str(info.value)
    absent = tmp_path / "absent.fits"
    with pytest.raises(TableError, match="no such file") as info:
        read_table(absent)
    assert str(absent) in str(info.value)


def test_fits_file_handles_are_closed(tmp_path):
    path = write_table(allstar_columns("GAIA_"), tmp_path / "t.fits")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list_columns(path)
        read_table(path)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_corrupt_parquet_or_csv_raises_table_error(tmp_path, fmt):
    path = write_table(allstar_columns("GAIA_"), tmp_path / f"whole.{fmt}")
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] if fmt == "parquet" else b"")
    with pytest.raises(TableError) as info:
        read_table(bad)
    assert str(bad) in str(info.value)


# ---------------------------------------------------------------- real data


def _realdata_dir() -> Path:
    override = os.environ.get("ZPDIST_REALDATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "realdata"


REALDATA = _realdata_dir()
needs_realdata = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"real survey data folder {REALDATA} is absent (set ZPDIST_REALDATA to its path)"
)
TWOFACE = "merged_TwoFace_DR14allStar_x_GaiaDR2_532.fits"
APOKASC = "merged_APOKASC2_x_GaiaDR2_6676.fits"


@pytest.mark.realdata
@needs_realdata
def test_realdata_twoface_allstar():
    path = REALDATA / TWOFACE
    df = read_table(path, required=("teff", "logg", "fe_h", "k", "parallax"), require_gaia=True)
    assert len(df) == 532
    mapping = df.attrs["column_map"]
    assert mapping["k"] == "KS"
    assert mapping["parallax"] == "GAIADR2_PARALLAX"
    assert mapping["parallax_error"] == "GAIADR2_PARALLAX_ERROR"
    assert mapping["phot_g_mean_mag"] == "GAIADR2_G"
    with fits.open(path) as hdul:
        raw = hdul[1].data
        ks = np.asarray(raw["KS"], dtype=float)
        semi_amplitude = np.asarray(raw["K"], dtype=float)
        raw_parallax = np.asarray(raw["GAIADR2_PARALLAX"], dtype=float)
        raw_teff = np.asarray(raw["TEFF"], dtype=float)
        raw_starflag = np.asarray(raw["STARFLAG"])
    # k is the 2MASS Ks magnitude, not the binary's semi-amplitude K
    assert_allclose(df["k"], ks, rtol=1e-6)
    assert not np.allclose(df["k"], semi_amplitude)
    assert df["k"].between(5.0, 15.0).all()
    # parallax from GAIADR2_PARALLAX, -9999 -> NaN
    missing = raw_parallax == MISSING
    assert missing.sum() > 0
    assert np.isnan(df["parallax"][missing]).all()
    assert_allclose(df["parallax"][~missing], raw_parallax[~missing], rtol=1e-12)
    assert np.isnan(df["teff"][raw_teff == MISSING]).all()
    assert not (df.select_dtypes("float").to_numpy() == MISSING).any()
    # STARFLAG stays an integer bit mask with the file's values
    assert df["starflag"].dtype.kind == "i"
    assert_array_equal(df["starflag"], raw_starflag)
    assert len(df.filter(like="_fe").columns) >= 15


@pytest.mark.realdata
@needs_realdata
def test_realdata_apokasc():
    path = REALDATA / APOKASC
    wanted = ("teff", "logg", "fe_h", "mg_fe", "k", "parallax", "phot_g_mean_mag")
    df = read_table(path, required=wanted, require_gaia=True)
    assert len(df) == 6676
    assert set(wanted) <= set(df.columns)
    assert df.attrs["column_map"]["parallax"] == "GAIADR2_PARALLAX"
    assert df.attrs["column_map"]["k"] == "K"
    assert int(df["parallax"].isna().sum()) == 9
    assert df["k"].between(5.0, 15.0).all()
    assert df["teff"].between(3000.0, 6000.0).all()
    assert df["logg"].between(0.5, 4.5).all()  # giants (plus a few subgiants)
    assert 2.3 < df["logg"].median() < 2.8  # mostly red clump and RGB
    assert "bp_rp" not in df  # APOKASC-2 carries no Gaia colour
