"""Bad input at the boundary: each case is exit status 2, one line naming the file, column or value, and nothing
changed on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

from zpdist.cli import main
from zpdist.io.tables import TableError, read_table
from zpdist.selection import TrainingCuts, apply_cuts, training_cuts

ROW = {"APOGEE_ID": "2M0001", "TEFF": 4800.0, "LOGG": 2.5, "FE_H": 0.0, "KS": 9.0, "GAIA_PARALLAX": 0.5,
       "GAIA_PARALLAX_ERROR": 0.03}  # fmt: skip


def _one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_text_in_a_numeric_csv_column_names_file_column_and_row(tmp_path):
    path = tmp_path / "stars.csv"
    pd.DataFrame([ROW, {**ROW, "TEFF": "hot"}]).to_csv(path, index=False)
    with pytest.raises(TableError, match=r"stars\.csv: column 'TEFF' should hold numbers but 1 row\(s\) hold text, "
                                         r"e\.g\. 'hot' in data row 2"):  # fmt: skip
        read_table(path)


def test_empty_cells_and_missing_markers_in_a_text_column_become_nan(tmp_path):
    path = tmp_path / "stars.csv"
    path.write_text("APOGEE_ID,TEFF,KS\n2M1,4800,9.0\n2M2,,9.1\n2M3,-9999,9.2\n2M4, 4700 ,9.3\n")
    # an all-numeric column is parsed by pandas itself; force the text path with a stray blank
    table = read_table(path)
    np.testing.assert_array_equal(table["teff"].to_numpy(), [4800.0, np.nan, np.nan, 4700.0])


def test_header_only_csv_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(",".join(ROW) + "\n")
    with pytest.raises(TableError, match=r"empty\.csv: the table has columns but no rows"):
        read_table(path)


def test_columns_differing_only_in_case_are_refused(tmp_path):
    path = tmp_path / "both.csv"
    pd.DataFrame([{**ROW, "gaia_parallax": 0.7}]).to_csv(path, index=False)
    with pytest.raises(TableError, match=r"both\.csv: columns 'GAIA_PARALLAX' and 'gaia_parallax' differ only in case"):
        read_table(path)


def test_survey_table_behind_an_unrelated_table_hdu_is_found(tmp_path):
    path = tmp_path / "two_tables.fits"
    unrelated = fits.BinTableHDU(Table({"PLATE": [1, 2], "MJD": [55000, 55001]}), name="PLATES")
    survey = fits.BinTableHDU(Table({k: [v] for k, v in ROW.items()}), name="ALLSTAR")
    fits.HDUList([fits.PrimaryHDU(), unrelated, survey]).writeto(path)
    table = read_table(path, required=("teff",))
    assert table["teff"].tolist() == [4800.0]
    with pytest.raises(TableError, match=r"two_tables\.fits \(HDU 2 \(ALLSTAR\)\): required column 'snr' is missing"):
        read_table(path, required=("snr",))


def test_zero_or_negative_parallax_errors_fail_the_parallax_error_cut():
    table = pd.DataFrame({"parallax": [0.5, 0.5, 0.5], "parallax_error": [0.05, -0.05, 0.0]})
    cut = training_cuts(TrainingCuts())[1]
    keep, _ = apply_cuts(table, [cut])
    assert keep.tolist() == [True, False, False]


def test_select_refuses_to_overwrite_its_input(tmp_path, capsys):
    path = tmp_path / "stars.parquet"
    pd.DataFrame([ROW]).to_parquet(path)
    before = path.read_bytes()
    err = _one_line_error(["select", "--table", str(path), "--out", str(path)], capsys)
    assert "is also an input of this command" in err and path.read_bytes() == before


def test_ingest_allstar_refuses_to_overwrite_its_input(tmp_path, capsys):
    path = tmp_path / "allstar.parquet"
    pd.DataFrame([ROW]).to_parquet(path)
    before = path.read_bytes()
    err = _one_line_error(["ingest", "allstar", "--allstar", str(path), "--out", str(path)], capsys)
    assert "is also an input" in err and path.read_bytes() == before


def test_unknown_config_key_is_one_line(tmp_path, capsys):
    config = tmp_path / "cuts.toml"
    config.write_text("[training]\nmin_snrr = 1\n")
    table = tmp_path / "stars.parquet"
    pd.DataFrame([ROW]).to_parquet(table)
    err = _one_line_error(["select", "--table", str(table), "--report", "--config", str(config)], capsys)
    assert "cuts.toml: unknown key 'min_snrr' in [training]" in err
