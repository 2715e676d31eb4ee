"""The zpdist command: help texts, and bad input giving one clear error and no partial output."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from zpdist.cli import main
from zpdist.mock.config import MockConfig
from zpdist.mock.generate import write_mock


def _fail(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def _rewrite(src, dst, **changes) -> None:
    table = Table.read(src)
    for name, value in changes.items():
        if value is None:
            table.remove_column(name)
        else:
            table[name] = value
    table.write(dst)


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "zpdist.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("mock", "train", "predict", "demo"):
        assert command in out.stdout
    train_help = subprocess.run(
        [sys.executable, "-m", "zpdist.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--table", "--spectra", "--mode", "--offset", "--epochs", "--batch-size", "--device", "--resume"):
        assert option in train_help


def test_mock_command_is_deterministic(tmp_path):
    for name in ("a", "b"):
        assert main(["mock", "--out", str(tmp_path / name), "--n-stars", "300", "--no-spectra", "--seed", "5"]) == 0
    first = Table.read(tmp_path / "a" / "allstar.fits")
    second = Table.read(tmp_path / "b" / "allstar.fits")
    assert first.colnames == second.colnames
    for name in ("GAIA_PARALLAX", "TEFF", "K", "APOGEE_ID"):
        assert (first[name] == second[name]).all()
    assert not (tmp_path / "a" / "spectra.h5").exists()


def test_missing_column_names_column_and_file(small_mock, tmp_path, capsys):
    bad = tmp_path / "no_k.fits"
    _rewrite(small_mock.allstar, bad, K=None)
    err = _fail(["train", "--table", str(bad), "--mode", "labels", "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert "'k'" in err and str(bad) in err and "KS" in err
    assert not (tmp_path / "run" / "model.pt").exists()


def _train_with_spectra(small_mock, spectra: np.ndarray, tmp_path, capsys) -> str:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["spectra"] = spectra
    argv = ["train", "--table", str(small_mock.allstar), "--spectra", str(bad), "--out", str(tmp_path / "run")]
    err = _fail([*argv, "--quiet"], capsys)
    assert str(bad) in err
    assert not (tmp_path / "run" / "model.pt").exists()
    return err


def test_wrong_spectra_length_names_both_shapes(small_mock, tmp_path, capsys):
    err = _train_with_spectra(small_mock, np.ones((3000, 7000), dtype=np.float32), tmp_path, capsys)
    assert "(3000, 7000)" in err and "7514" in err


def test_spectra_row_count_must_match_table(small_mock, tmp_path, capsys):
    err = _train_with_spectra(small_mock, np.ones((10, 7514), dtype=np.float32), tmp_path, capsys)
    assert "10 spectra" in err and "3000 rows" in err


def test_all_nan_parallax_is_refused(small_mock, tmp_path, capsys):
    bad = tmp_path / "noplx.fits"
    _rewrite(small_mock.allstar, bad, GAIA_PARALLAX=np.full(3000, -9999.0, dtype=np.float32))
    err = _fail(["train", "--table", str(bad), "--mode", "labels", "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert "GAIA_PARALLAX" in err and "no valid parallax" in err and str(bad) in err


def test_empty_selection_lists_the_cuts(small_mock, tmp_path, capsys):
    bad = tmp_path / "lowsnr.fits"
    _rewrite(small_mock.allstar, bad, SNR=np.full(3000, 50.0, dtype=np.float32))
    err = _fail(["train", "--table", str(bad), "--mode", "labels", "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert "no star passes the cuts" in err and "SNR > 200" in err and str(bad) in err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_unknown_gaia_names_lists_what_was_looked_for(small_mock, tmp_path, capsys):
    bad = tmp_path / "renamed.fits"
    table = Table.read(small_mock.allstar)
    table.rename_column("GAIA_PARALLAX", "PLX_FROM_SOMEWHERE")
    table.write(bad)
    err = _fail(["train", "--table", str(bad), "--mode", "labels", "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert "GAIA_PARALLAX" in err and "GAIAEDR3_PARALLAX" in err and "GAIADR2_PARALLAX" in err


def test_not_a_table_is_a_clear_error(tmp_path, capsys):
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"this is not FITS" * 100)
    err = _fail(["train", "--table", str(junk), "--mode", "labels", "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert str(junk) in err


def test_failed_predict_leaves_existing_catalog_untouched(small_mock, tmp_path, capsys):
    assert main(["train", "--table", str(small_mock.allstar), "--mode", "labels", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0  # fmt: skip
    catalog = tmp_path / "catalog.parquet"
    catalog.write_bytes(b"previous catalog")
    bad = tmp_path / "nolabels.fits"
    _rewrite(small_mock.allstar, bad, LOGG=None)
    assert main(["predict", "--run", str(tmp_path / "run"), "--table", str(bad), "--out", str(catalog), "--quiet"]) != 0
    assert catalog.read_bytes() == b"previous catalog"
    assert not list(tmp_path.glob(".catalog.parquet.*"))


def test_cuda_request_without_cuda_is_refused(small_mock, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = ["train", "--table", str(small_mock.allstar), "--mode", "labels", "--device", "cuda",
            "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    assert "CUDA is not available" in _fail(argv, capsys)


def test_missing_or_negative_ak_is_treated_as_zero_and_flagged(tmp_path):
    from zpdist.io.tables import read_table
    from zpdist.nn.data import add_corrected_k

    files = write_mock(MockConfig(n_stars=400, seed=2, write_spectra=False), tmp_path / "m", progress=False)
    with fits.open(files.allstar) as hdul:
        raw_ak = np.asarray(hdul[1].data["AK_TARG"], dtype=float)
        raw_k = np.asarray(hdul[1].data["K"], dtype=float)
    table = add_corrected_k(read_table(files.allstar))
    expected_flag = raw_ak < 0  # −9999 (missing) or a negative estimate
    assert expected_flag.any() and (raw_ak == -9999).any()
    np.testing.assert_array_equal(table["ak_flag"].to_numpy(), expected_flag)
    np.testing.assert_allclose(table["k_corr"], np.where(expected_flag, raw_k, raw_k - raw_ak), rtol=1e-6)
