"""Reliability (issue 14, command line and data): every bad input is exit status 2 and one line naming the culprit,
nothing on disk changes when a command fails, NaN spectra are missing rather than filled in, non-finite losses stop
training, ``--resume`` refuses other data, and run folders are replaced whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from tests.test_ingest_spectra import write_apstar
from zpdist.cli import main
from zpdist.errors import InputError
from zpdist.io.catalog import read_catalog
from zpdist.io.spectra import N_PIXELS, SpectraError, SpectraReader, SpectraWriter
from zpdist.nn.callbacks import file_fingerprint
from zpdist.nn.offset_fit import fit_offset_level
from zpdist.nn.train import NAN_SPECTRA_CUT, TrainConfig, train
from zpdist.pipeline import predict_catalog

QUIET = {"progress": False, "log": lambda message: None}
#: A fast spectra-mode configuration (no warm start, no quadratic term, few Monte-Carlo passes).
FAST_SPECTRA = TrainConfig(
    mode="spectra", epochs=1, device="cpu", n_quadratic=0, warm_start=False, fit_mc_samples=2, offset_mc_passes=10
)


def _one_line_error(argv: list[str], capsys) -> str:
    """Run ``zpdist ARGV``; it must exit with 2 and write exactly one line to standard error, returned."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _snapshot(*folders: Path) -> dict[str, tuple[str, int] | None]:
    """Every file (content hash and modification time, ns) and folder (None) below ``folders``."""
    entries: dict[str, tuple[str, int] | None] = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            entries[str(path)] = (
                (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) if path.is_file() else None
            )
    return entries


def _labels_argv(table: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--table", str(table), "--mode", "labels", "--out", str(out), "--quiet", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def labels_run(small_mock, tmp_path_factory) -> Path:
    """A finished one-epoch labels-mode run made by ``zpdist train`` (all five run files)."""
    run = tmp_path_factory.mktemp("reliability") / "run"
    assert main(_labels_argv(small_mock.allstar, run, "--epochs", "1")) == 0
    return run


@pytest.fixture
def run_copy(labels_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(labels_run, run)
    return run


def _table_rows(small_mock, rows: np.ndarray, path: Path) -> Path:
    Table.read(small_mock.allstar)[rows].write(path)
    return path


def _write_spectra(path: Path, spectra: np.ndarray) -> Path:
    with SpectraWriter(path, len(spectra)) as writer:
        writer.write(0, spectra)
    return path


# ---------------------------------------------------------------- NaN spectra


def test_an_all_nan_spectra_file_is_refused(small_mock, tmp_path, capsys):
    table = _table_rows(small_mock, np.arange(300), tmp_path / "stars.fits")
    spectra = _write_spectra(tmp_path / "nan.h5", np.full((300, N_PIXELS), np.nan, np.float32))
    before = _snapshot(tmp_path)
    argv = ["train", "--table", str(table), "--spectra", str(spectra), "--out", str(tmp_path / "run"), "--quiet"]
    err = _one_line_error([*argv, "--device", "cpu"], capsys)
    assert f"{spectra}: no usable spectrum: of 300 rows, 0 are marked without one and 300 have more than 20%" in err
    assert _snapshot(tmp_path) == before  # no run folder, no incomplete one


def test_nan_spectra_rows_are_missing_never_filled_in(small_mock, tmp_path):
    """10 % of the rows NaN: cut and counted, the offset the same as without those rows; ±inf pixels are bad pixels."""
    with SpectraReader(small_mock.spectra) as reader:
        spectra = reader.read_rows(np.arange(reader.n_rows))
    rng = np.random.default_rng(1)
    nan_rows = np.sort(rng.choice(len(spectra), 300, replace=False))
    spectra[nan_rows[:270]] = np.nan
    for row in nan_rows[270:]:  # mostly NaN (half the pixels), with a few valid ones: still missing
        spectra[row, rng.choice(N_PIXELS, N_PIXELS // 2, replace=False)] = np.nan
    kept = np.setdiff1d(np.arange(len(spectra)), nan_rows)
    spectra[kept[::50], 10], spectra[kept[::50], 20], spectra[kept[::50], 30] = np.inf, -np.inf, np.nan  # isolated
    messages: list[str] = []
    full = train(
        small_mock.allstar, tmp_path / "full", FAST_SPECTRA, _write_spectra(tmp_path / "nan.h5", spectra),
        progress=False, log=messages.append,
    )  # fmt: skip
    reduced = train(
        _table_rows(small_mock, kept, tmp_path / "kept.fits"), tmp_path / "reduced", FAST_SPECTRA,
        _write_spectra(tmp_path / "kept.h5", spectra[kept]), **QUIET,
    )  # fmt: skip
    assert f"{tmp_path / 'nan.h5'}: 300 of 3000 spectra are NaN (treated as missing, never filled in)" in messages
    assert full["cuts"][-1]["name"] == reduced["cuts"][-1]["name"] == NAN_SPECTRA_CUT
    removed = full["cuts"][-2]["remaining"] - reduced["cuts"][-2]["remaining"]
    assert full["cuts"][-1]["removed"] == removed > 0 and reduced["cuts"][-1]["removed"] == 0
    assert (full["n_train"], full["n_val"]) == (reduced["n_train"], reduced["n_val"])
    assert full["offset_uas"] == reduced["offset_uas"] and np.isfinite(full["offset_uas"])
    assert full["history"][0]["train_loss"] == reduced["history"][0]["train_loss"]
    catalog, _ = read_catalog(
        predict_catalog(tmp_path / "full", small_mock.allstar, tmp_path / "c.parquet", tmp_path / "nan.h5",
                        mc_samples=2, **QUIET)
    )  # fmt: skip
    fakemag = catalog["fakemag"].to_numpy()
    assert np.isnan(fakemag[nan_rows]).all() and np.isfinite(fakemag[kept]).all()


def test_predict_refuses_an_all_nan_spectra_file(small_mock, tmp_path):
    train(small_mock.allstar, tmp_path / "run", FAST_SPECTRA, small_mock.spectra, **QUIET)
    spectra = _write_spectra(tmp_path / "nan.h5", np.full((3000, N_PIXELS), np.nan, np.float32))
    with pytest.raises(SpectraError, match=r"nan\.h5: no usable spectrum: of 3000 rows, 0 are marked without one"):
        predict_catalog(tmp_path / "run", small_mock.allstar, tmp_path / "c.parquet", spectra, mc_samples=2, **QUIET)
    assert not (tmp_path / "c.parquet").exists()


# ---------------------------------------------------------------- non-finite losses


def test_a_diverging_fresh_run_stops_with_one_line_and_leaves_nothing(small_mock, tmp_path, capsys):
    before = _snapshot(tmp_path)
    argv = _labels_argv(small_mock.allstar, tmp_path / "run", "--epochs", "2", "--learning-rate", "1000")
    err = _one_line_error([*argv, "--no-warm-start"], capsys)
    assert re.search(r"the training loss is (nan|inf) at epoch 1, step \d+ of 10 \(learning rate 1000\); likely", err)
    assert _snapshot(tmp_path) == before


def test_a_diverging_run_into_an_existing_run_leaves_it_intact(small_mock, run_copy, tmp_path, capsys):
    before = _snapshot(tmp_path)
    argv = _labels_argv(small_mock.allstar, run_copy, "--epochs", "2", "--learning-rate", "1000", "--no-warm-start")
    assert re.search("the training loss is (nan|inf)", _one_line_error(argv, capsys))
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------- --resume on other data


def test_resume_refuses_another_table_and_accepts_a_copy(small_mock, run_copy, tmp_path, capsys):
    other = Table.read(small_mock.allstar)
    other["K"][0] += 0.1
    other.write(tmp_path / "other.fits")
    before = _snapshot(run_copy)
    err = _one_line_error(_labels_argv(tmp_path / "other.fits", run_copy, "--epochs", "2", "--resume"), capsys)
    assert f"{run_copy / 'checkpoint.pt'}: was written for the table {small_mock.allstar.absolute()}" in err
    assert f"but this run reads {tmp_path / 'other.fits'}" in err and "cannot resume onto other data" in err
    assert _snapshot(run_copy) == before and not (tmp_path / "run.incomplete").exists()
    copy = shutil.copy(small_mock.allstar, tmp_path / "copy.fits")  # same bytes, another path and time: the same
    assert main(_labels_argv(Path(copy), run_copy, "--epochs", "2", "--resume")) == 0
    assert json.loads((run_copy / "summary.json").read_text())["epochs_run"] == 2


def test_file_fingerprint_is_size_and_content_not_path_or_time(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc" * 1000)
    copy = Path(shutil.copy(small, tmp_path / "copy.bin"))
    os.utime(copy, (0, 0))
    assert {k: v for k, v in file_fingerprint(copy).items() if k != "path"} == {
        "size": 3000, "sha256": hashlib.sha256(b"abc" * 1000).hexdigest()
    }  # fmt: skip
    big = tmp_path / "big.bin"
    content = bytearray(np.random.default_rng(0).bytes(17 << 20))  # over 16 MiB: 16 blocks of 1 MiB are hashed
    big.write_bytes(content)
    first = file_fingerprint(big)
    content[-1] ^= 1
    big.write_bytes(content)
    assert file_fingerprint(big)["sha256"] != first["sha256"] and file_fingerprint(big)["size"] == 17 << 20


# ---------------------------------------------------------------- run folders


def test_an_interrupted_run_leaves_the_finished_one_and_resumes_from_its_own_checkpoint(small_mock, run_copy):
    config = TrainConfig(mode="labels", epochs=3, device="cpu")
    before = _snapshot(run_copy)

    def interrupt_in_epoch_2(message: str) -> None:  # after epoch 2's training, before its checkpoint
        if message.startswith("epoch 2:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(small_mock.allstar, run_copy, config, progress=False, log=interrupt_in_epoch_2)
    incomplete = run_copy.with_name("run.incomplete")
    assert _snapshot(run_copy) == before
    assert sorted(p.name for p in incomplete.iterdir()) == ["checkpoint.pt"]
    assert torch.load(incomplete / "checkpoint.pt", weights_only=True)["epoch"] == 1
    summary = train(small_mock.allstar, run_copy, config, resume=True, **QUIET)
    assert summary["epochs_run"] == 3 and not incomplete.exists()
    on_disk = {name: (run_copy / name).read_text() for name in ("summary.json", "train_config.json", "zpdist.toml")}
    assert json.loads(on_disk["summary.json"])["epochs_run"] == 3
    assert json.loads(on_disk["train_config.json"])["epochs"] == 3 and "epochs = 3" in on_disk["zpdist.toml"]
    assert torch.load(run_copy / "checkpoint.pt", weights_only=True)["epoch"] == 3


def test_a_failed_ingest_leaves_the_previous_spectra_and_sidecars(tmp_path, capsys):
    good = [write_apstar(tmp_path / f"apStar-dr17-2M0000000{i}+0000000.fits") for i in (1, 2)]
    out = tmp_path / "out" / "spectra.h5"
    argv = ["ingest", "spectra", "--out", str(out), "--scheduler", "synchronous", "--quiet", "--apstar"]
    assert main([*argv, *map(str, good)]) == 0
    before = _snapshot(tmp_path)
    bad = write_apstar(tmp_path / "apStar-dr17-2M00000003+0000000.fits", n_pixels=8000)
    before[str(bad)] = _snapshot(tmp_path)[str(bad)]
    err = _one_line_error([*argv, *map(str, good), str(bad)], capsys)
    assert bad.name in err and "(8000,)" in err
    assert _snapshot(tmp_path) == before  # the three outputs as they were, no temporary file left
    sidecar = str(tmp_path / "out" / "spectra_rows.parquet")
    assert "is also an input of this command" in _one_line_error([*argv, *map(str, good), "--table", sidecar], capsys)
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------- corrupt model and checkpoint files


class _RunsCode:
    """Pickles as a call of ``os.system``: a file that would run code when loaded without ``weights_only``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _corrupt(variant: str, path: Path, marker: Path) -> str:
    """Replace the zpdist file ``path`` by a bad one; return what the error must say."""
    good = path.read_bytes()
    if variant == "truncated":
        path.write_bytes(good[: len(good) // 2])
        return "the PyTorch archive is truncated or damaged"
    if variant == "empty":
        path.write_bytes(b"")
        return "file is empty (0 bytes)"
    if variant == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return "not a PyTorch archive"
    if variant == "code":
        torch.save({"format": "zpdist-model-v2", "payload": _RunsCode(marker)}, path)
        return "holds Python objects other than tensors and plain values"
    if variant == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
        return "not a zpdist"
    if variant == "shapes":
        payload = torch.load(path, weights_only=True)
        state = payload["state_dict" if "state_dict" in payload else "model"]
        state[next(iter(state))] = torch.zeros(2, 2)
        torch.save(payload, path)
        return "size mismatch"
    path.write_text(json.dumps({"format": "zpdist-model-v2"}))  # "json": a JSON file renamed
    return "not a PyTorch archive (it begins with b'{"


VARIANTS = ("truncated", "empty", "random", "code", "foreign", "shapes", "json")


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_corrupt_model_is_one_line_naming_it(variant, small_mock, run_copy, tmp_path, capsys):
    model, marker = run_copy / "model.pt", tmp_path / "ran"
    expected = _corrupt(variant, model, marker)
    before = _snapshot(tmp_path)
    argv = ["predict", "--run", str(run_copy), "--table", str(small_mock.allstar), "--out", str(tmp_path / "c.parquet")]
    err = _one_line_error([*argv, "--quiet", "--mc-samples", "2"], capsys)
    assert err.startswith(f"zpdist predict: error: {model}: ") and expected in err, err
    assert "weights_only" not in err and not marker.exists()
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_corrupt_checkpoint_is_one_line_naming_it(variant, small_mock, run_copy, tmp_path, capsys):
    checkpoint, marker = run_copy / "checkpoint.pt", tmp_path / "ran"
    expected = _corrupt(variant, checkpoint, marker)
    instead = {"foreign": "not a zpdist training checkpoint (no record of its configuration)", "shapes": "does not fit"}
    expected = instead.get(variant, expected)
    before = _snapshot(tmp_path)
    err = _one_line_error(_labels_argv(small_mock.allstar, run_copy, "--epochs", "2", "--resume"), capsys)
    assert err.startswith(f"zpdist train: error: {checkpoint}: ") and expected in err, err
    assert "weights_only" not in err and not marker.exists()
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------- the remaining tracebacks and vague errors


def test_a_missing_parallax_error_column_is_named(small_mock, tmp_path, capsys):
    table = Table.read(small_mock.allstar)
    table.remove_column("GAIA_PARALLAX_ERROR")
    table.write(tmp_path / "no_error.fits")
    before = _snapshot(tmp_path)
    err = _one_line_error(_labels_argv(tmp_path / "no_error.fits", tmp_path / "run", "--epochs", "1"), capsys)
    assert f"{tmp_path / 'no_error.fits'}: no parallax error column GAIA_PARALLAX_ERROR beside GAIA_PARALLAX" in err
    assert _snapshot(tmp_path) == before


def test_a_singular_or_diverged_level_fit_is_explained():
    ones, error = np.ones(5), np.full(5, 0.02)
    with pytest.raises(InputError, match=r"network parallaxes of the 5 stars .* cannot separate it"):
        fit_offset_level(np.zeros(5), np.full(5, 0.5), ones, error, error)
    with pytest.raises(InputError, match="0 of 5 stars have a finite network parallax"):
        fit_offset_level(np.zeros(5), np.full(5, np.nan), ones, error, error)
    fit = fit_offset_level(np.zeros(5), np.linspace(0.2, 1.0, 5), np.linspace(0.2, 1.0, 5) + 0.05, error, error)
    assert fit.shift == pytest.approx(0.05) and fit.luminosity_scale == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["mock", "--n-stars", "0", "--out", "x"], "argument --n-stars: 0 must be 1 or more"),
        (["serve", "--port", "70000"], "argument --port: 70000 is not a TCP port"),
        (["train", "--table", "t", "--out", "r", "--batch-size", "0"], "argument --batch-size: 0 must be 1 or more"),
    ],
)
def test_out_of_range_options_name_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and option in capsys.readouterr().err.splitlines()[-1]
