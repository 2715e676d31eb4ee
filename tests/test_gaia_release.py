"""Which Gaia release a table's astrometry is (zpdist.io.columns, zpdist.io.tables.read_table), and the Gaia
columns of the Lindegren et al. (2021) correction read under every naming (docs/method.md §9, §11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from numpy.testing import assert_allclose, assert_array_equal

from zpdist.errors import InputError, ZpdistError
from zpdist.io import columns as cols
from zpdist.io.tables import read_table

N = 4
MISSING = -9999.0


def apogee_columns() -> dict[str, np.ndarray]:
    """APOGEE's own names, as in every allStar from DR14 to DR17 (DR14 carries no Gaia columns)."""
    return {
        "APOGEE_ID": np.array([f"2M{i:08d}+0000000" for i in range(N)]),
        "RA": np.array([10.0, 120.0, 250.0, 330.0]),
        "DEC": np.array([-20.0, 5.0, 40.0, 70.0]),
        "TEFF": np.array([4500.0, 4700.0, 4900.0, 5100.0]),
        "LOGG": np.array([2.0, 2.4, 2.8, 3.2]),
        "KS": np.array([8.0, 9.0, 10.0, 11.0]),
    }


def gaia_columns(prefix: str, with_l21: bool = False) -> dict[str, np.ndarray]:
    """Gaia columns under ``prefix``; with the L21 inputs (a 5p, a 6p, a 2p and a missing row) if asked."""
    data = {
        f"{prefix}PARALLAX": np.array([0.5, 1.0, MISSING, 2.0]),
        f"{prefix}PARALLAX_ERROR": np.full(N, 0.03),
        f"{prefix}PHOT_G_MEAN_MAG": np.array([12.0, 13.0, 14.0, 15.0]),
    }
    if with_l21:
        data[f"{prefix}NU_EFF_USED_IN_ASTROMETRY"] = np.array([1.45, np.nan, np.nan, MISSING])
        data[f"{prefix}PSEUDOCOLOUR"] = np.array([np.nan, 1.50, np.nan, MISSING])
        data[f"{prefix}ECL_LAT"] = np.array([-25.0, -15.0, 60.0, MISSING])
        data[f"{prefix}ASTROMETRIC_PARAMS_SOLVED"] = np.array([31, 95, 3, int(MISSING)], dtype=np.int16)
    return data


def write(data: dict[str, np.ndarray], path: Path) -> Path:
    if path.suffix == ".fits":
        Table(data).write(path)
    else:
        pd.DataFrame(data).to_parquet(path)
    return path


FORMATS = ["fits", "parquet"]


# ---------------------------------------------------------------- from the names


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("prefix", "release", "says"),
    [
        ("GAIAEDR3_", "EDR3", "APOGEE DR17 allStar"),
        ("GAIA_", "DR2", "APOGEE DR16 allStar"),
        ("GAIADR2_", "DR2", "Gaia DR2 cross-match"),
    ],
    ids=["dr17", "dr16", "gaiadr2"],
)
def test_release_from_the_allstar_prefix(tmp_path, fmt, prefix, release, says):
    path = write({**apogee_columns(), **gaia_columns(prefix)}, tmp_path / f"allstar.{fmt}")
    table = read_table(path)
    assert table.attrs["gaia_release"] == release
    assert table.attrs["gaia_release_source"].startswith(f"column prefix {prefix} (")
    assert says in table.attrs["gaia_release_source"]
    assert table.attrs["column_map"]["parallax"] == f"{prefix}PARALLAX"


@pytest.mark.parametrize("fmt", FORMATS)
def test_dr14_allstar_without_gaia_has_no_release(tmp_path, fmt):
    table = read_table(write(apogee_columns(), tmp_path / f"allstar_dr14.{fmt}"))
    assert table.attrs["gaia_release"] is None
    assert table.attrs["gaia_release_source"] == "no Gaia parallax column"


@pytest.mark.parametrize("fmt", FORMATS)
def test_bare_gaia_names_are_unknown_unless_stated(tmp_path, fmt):
    data = {**apogee_columns(), **{k.lower(): v for k, v in gaia_columns("").items()}}
    path = write(data, tmp_path / f"dr14_x_gaia.{fmt}")
    table = read_table(path)
    assert table.attrs["gaia_release"] is None
    assert "bare Gaia names" in table.attrs["gaia_release_source"]
    assert "gaia_release=" in table.attrs["gaia_release_source"]
    stated = read_table(path, gaia_release="dr3")
    assert stated.attrs["gaia_release"] == "DR3"
    assert stated.attrs["gaia_release_source"].startswith("stated by the user (gaia_release='dr3'); from the names: ")
    assert_array_equal(stated["parallax"].to_numpy(), table["parallax"].to_numpy())


def test_the_preferred_prefix_decides_when_two_releases_are_present(tmp_path):
    data = {**apogee_columns(), **gaia_columns("GAIA_"), **gaia_columns("GAIAEDR3_")}
    table = read_table(write(data, tmp_path / "both.fits"))
    assert table.attrs["column_map"]["parallax"] == "GAIAEDR3_PARALLAX"
    assert table.attrs["gaia_release"] == "EDR3"


def test_stated_release_overrides_the_names_and_both_are_recorded(tmp_path):
    path = write({**apogee_columns(), **gaia_columns("GAIAEDR3_")}, tmp_path / "dr17.parquet")
    table = read_table(path, gaia_release="DR3")
    assert table.attrs["gaia_release"] == "DR3"
    assert "from the names: EDR3, column prefix GAIAEDR3_" in table.attrs["gaia_release_source"]
    dr16 = write({**apogee_columns(), **gaia_columns("GAIA_")}, tmp_path / "dr16.parquet")
    assert read_table(dr16, gaia_release="EDR3").attrs["gaia_release"] == "EDR3"


@pytest.mark.parametrize("bad", ["DR4", "edr2", "", "latest"])
def test_unknown_stated_release_raises_naming_it(tmp_path, bad):
    path = write({**apogee_columns(), **gaia_columns("")}, tmp_path / "t.parquet")
    with pytest.raises(InputError, match=rf"unknown Gaia release {bad!r}; choose one of DR2, EDR3, DR3") as info:
        read_table(path, gaia_release=bad)
    assert isinstance(info.value, ZpdistError)


@pytest.mark.parametrize(
    ("given", "expected"), [("DR2", "DR2"), ("edr3", "EDR3"), ("Gaia DR3", "DR3"), (" dr3 ", "DR3")]
)
def test_normalise_gaia_release(given, expected):
    assert cols.normalise_gaia_release(given) == expected


def test_gaia_release_from_columns_without_a_file():
    assert cols.gaia_release_from_columns(["TEFF", "gaiaedr3_parallax"])[0] == "EDR3"
    assert cols.gaia_release_from_columns(["GAIA_PARALLAX"])[0] == "DR2"
    assert cols.gaia_release_from_columns(["parallax"])[0] is None
    assert cols.gaia_release_from_columns(["TEFF"]) == (None, "no Gaia parallax column")
    assert set(cols.GAIA_PREFIX_RELEASES) == set(cols.GAIA_PREFIXES)


# ---------------------------------------------------------------- the L21 columns


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("prefix", ["GAIAEDR3_", ""], ids=["dr17", "bare"])
def test_l21_columns_read_with_and_without_the_prefix(tmp_path, fmt, prefix):
    gaia = gaia_columns(prefix, with_l21=True)
    if not prefix:  # Gaia archive names are lower case
        gaia = {k.lower(): v for k, v in gaia.items()}
    table = read_table(write({**apogee_columns(), **gaia}, tmp_path / f"t.{fmt}"))
    assert_allclose(table["nu_eff_used_in_astrometry"], [1.45, np.nan, np.nan, np.nan])
    assert_allclose(table["pseudocolour"], [np.nan, 1.50, np.nan, np.nan])
    assert_allclose(table["ecl_lat"], [-25.0, -15.0, 60.0, np.nan])
    solved = table["astrometric_params_solved"].to_numpy()
    assert solved.dtype.kind == "i"  # a code, kept an integer; −9999 stays the missing marker
    assert solved.tolist() == [31, 95, 3, -9999]
    assert "astrometric_params_solved" in cols.INTEGER_COLUMNS


def test_astrometric_params_solved_with_empty_csv_cells_stays_integer(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("APOGEE_ID,parallax,astrometric_params_solved\na,0.5,31\nb,0.7,\nc,0.9,95\n")
    table = read_table(path)
    assert table["astrometric_params_solved"].tolist() == [31, -9999, 95]
    assert table["astrometric_params_solved"].dtype.kind == "i"


def test_existing_gaia_mappings_are_unchanged():
    mapping = cols.resolve_columns(["GAIA_PARALLAX", "GAIA_PHOT_G_MEAN_MAG", "GAIA_G", "GAIA_BP", "GAIA_RP"])
    assert mapping == {
        "parallax": "GAIA_PARALLAX",
        "phot_g_mean_mag": "GAIA_PHOT_G_MEAN_MAG",
        "phot_bp_mean_mag": "GAIA_BP",
        "phot_rp_mean_mag": "GAIA_RP",
    }


# ---------------------------------------------------------------- real files


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name", ["merged_APOKASC2_x_GaiaDR2_6676.fits", "merged_TwoFace_DR14allStar_x_GaiaDR2_532.fits"]
)
def test_real_dr2_cross_matches_are_dr2(realdata, name):
    table = read_table(realdata / name)
    assert table.attrs["gaia_release"] == "DR2"
    assert table.attrs["gaia_release_source"].startswith("column prefix GAIADR2_")


@pytest.mark.realdata
def test_real_dr14_allstar_rows_have_no_gaia(realdata):
    table = read_table(realdata / "TwoFace_test-allStar_dr14_8stars.fits")
    assert table.attrs["gaia_release"] is None


def test_the_release_follows_a_gaia_join_and_survives_ingest(tmp_path):
    """A DR16 allStar (GAIA_* = DR2) joined to an EDR3 Gaia table by source_id carries EDR3, and the ingested
    table (canonical names, which say nothing) still reads as EDR3 from its zpdist metadata."""
    from zpdist.cli import main
    from zpdist.io.tables import read_table

    ids = [11, 12, 13]
    allstar = tmp_path / "allStar-dr16.parquet"
    pd.DataFrame({"APOGEE_ID": ["2M1", "2M2", "2M3"], "RA": [10.0, 11.0, 12.0], "DEC": [5.0, 6.0, 7.0],
                  "KS": [9.0, 9.1, 9.2], "GAIA_SOURCE_ID": ids, "GAIA_PARALLAX": [0.5, 0.6, 0.7],
                  "GAIA_PARALLAX_ERROR": [0.03] * 3}).to_parquet(allstar)  # fmt: skip
    gaia = tmp_path / "gaia-edr3.parquet"
    pd.DataFrame({"GAIAEDR3_SOURCE_ID": ids, "GAIAEDR3_PARALLAX": [0.52, 0.61, 0.69],
                  "GAIAEDR3_PARALLAX_ERROR": [0.02] * 3}).to_parquet(gaia)  # fmt: skip
    assert read_table(allstar).attrs["gaia_release"] == "DR2"
    out = tmp_path / "ingested.parquet"
    assert main(["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(gaia), "--out", str(out)]) == 0
    table = read_table(out)
    assert table.attrs["gaia_release"] == "EDR3"
    assert "recorded by zpdist ingest" in table.attrs["gaia_release_source"]
    assert table["parallax"].tolist() == [0.52, 0.61, 0.69]


def test_a_bare_named_gaia_archive_table_gets_the_stated_release_through_ingest(tmp_path, capsys):
    """A DR17-like allStar joined to a Gaia archive table (bare names, which do not say the release) reads as DR3
    after `ingest allstar --gaia-release DR3`; a release zpdist does not know is exit 2, one line."""
    from zpdist.cli import main
    from zpdist.io.tables import read_table

    ids = [21, 22, 23]
    allstar = tmp_path / "allStar-dr17.parquet"
    pd.DataFrame({"APOGEE_ID": ["2M1", "2M2", "2M3"], "RA": [10.0, 11.0, 12.0], "DEC": [5.0, 6.0, 7.0],
                  "KS": [9.0, 9.1, 9.2], "GAIAEDR3_SOURCE_ID": ids, "GAIAEDR3_PARALLAX": [0.5, 0.6, 0.7],
                  "GAIAEDR3_PARALLAX_ERROR": [0.03] * 3}).to_parquet(allstar)  # fmt: skip
    gaia = tmp_path / "gaia-archive.parquet"
    pd.DataFrame({"source_id": ids, "parallax": [0.52, 0.61, 0.69], "parallax_error": [0.02] * 3}).to_parquet(gaia)
    out = tmp_path / "ingested.parquet"
    args = ["ingest", "allstar", "--allstar", str(allstar), "--gaia", str(gaia), "--gaia-join", "source_id"]
    assert main([*args, "--gaia-release", "DR3", "--out", str(out)]) == 0
    table = read_table(out)
    assert table.attrs["gaia_release"] == "DR3" and table["parallax"].tolist() == [0.52, 0.61, 0.69]
    assert "--gaia-release" in table.attrs["gaia_release_source"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--gaia-release", "DR4", "--out", str(tmp_path / "other.parquet")])
    assert info.value.code == 2 and "DR4" in capsys.readouterr().err
