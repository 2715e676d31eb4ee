"""Tests of zpdist.io.spectra: the 7,514-pixel grid and chunked HDF5 storage (docs/method.md §3, §9)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from zpdist.io import spectra as sp
from zpdist.io.spectra import N_PIXELS, SpectraError, SpectraReader, SpectraWriter, wavelength_grid


def make_spectra(n_rows: int, seed: int = 0) -> np.ndarray:
    """Distinct rows: row i starts with the value i, so a wrong row is easy to spot."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.5, 1.1, size=(n_rows, N_PIXELS)).astype(np.float32)
    data[:, 0] = np.arange(n_rows, dtype=np.float32)
    return data


def write_spectra(path, data: np.ndarray, batch: int, chunk_rows: int = 8) -> None:
    with SpectraWriter(path, n_rows=len(data), chunk_rows=chunk_rows) as writer:
        for start in range(0, len(data), batch):
            writer.write(start, data[start : start + batch])


# ---------------------------------------------------------------- grid


def test_wavelength_grid():
    grid = wavelength_grid()
    assert grid.shape == (7514,)
    assert N_PIXELS == 7514
    assert np.all(np.diff(grid) > 0)
    assert 15100.0 < grid[0] < grid[-1] < 17000.0
    # first and last kept pixels: apStar pixels 246 and 8334 of λ = 10^(4.179 + 6e-6 i)
    assert_allclose(grid[0], 15152.2, atol=0.1)
    assert_allclose(grid[-1], 16943.5, atol=0.1)
    # log-linear steps of 6e-6 dex inside a chip, two larger jumps at the chip gaps
    steps = np.diff(np.log10(grid))
    gaps = np.flatnonzero(steps > 1e-5)
    assert len(gaps) == 2
    assert_allclose(np.delete(steps, gaps), 6e-6, rtol=1e-6)
    # chip gaps fall in the known places (≈ 15800-15860 Å and ≈ 16430-16480 Å)
    assert 15780.0 < grid[gaps[0]] < 15820.0 and 15840.0 < grid[gaps[0] + 1] < 15880.0
    assert 16410.0 < grid[gaps[1]] < 16450.0 and 16460.0 < grid[gaps[1] + 1] < 16500.0


def test_apstar_grid_and_chip_slices():
    full = sp.apstar_wavelength()
    assert full.shape == (8575,)
    assert_allclose(full[0], 10**4.179, rtol=1e-14)
    assert sum(s.stop - s.start for s in sp.CHIP_SLICES) == 7514
    assert_array_equal(wavelength_grid(), np.concatenate([full[s] for s in sp.CHIP_SLICES]))


# ---------------------------------------------------------------- writer / reader


def test_write_in_batches_and_read_back(tmp_path):
    path = tmp_path / "spec.h5"
    data = make_spectra(23)
    write_spectra(path, data, batch=5, chunk_rows=4)
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["spec.h5"]  # no temporary left over
    with h5py.File(path, "r") as f:
        assert f[sp.SPECTRA_DATASET].shape == (23, N_PIXELS)
        assert f[sp.SPECTRA_DATASET].dtype == np.float32
        assert f[sp.SPECTRA_DATASET].chunks == (4, N_PIXELS)
        assert_array_equal(f[sp.SPECTRA_DATASET][...], data)
        assert_allclose(f["wavelength"][...], wavelength_grid(), rtol=0)
    with SpectraReader(path, expected_rows=23) as reader:
        assert reader.n_rows == 23
        assert reader.chunk_rows == 4


@pytest.mark.parametrize("batch_rows", [1, 3, 7, 4096])
def test_read_rows_sorted_subset(tmp_path, batch_rows):
    path = tmp_path / "spec.h5"
    data = make_spectra(30, seed=1)
    write_spectra(path, data, batch=11)
    rows = np.array([0, 2, 3, 6, 7, 13, 14, 20, 28, 29])
    with SpectraReader(path) as reader:
        out = reader.read_rows(rows, batch_rows=batch_rows)
    assert out.shape == (len(rows), N_PIXELS)
    assert out.dtype == np.float32
    assert_array_equal(out, data[rows])
    assert_array_equal(out[:, 0], rows)


def test_read_rows_edge_cases(tmp_path):
    path = tmp_path / "spec.h5"
    data = make_spectra(10, seed=2)
    write_spectra(path, data, batch=10)
    with SpectraReader(path) as reader:
        assert reader.read_rows(np.array([], dtype=int)).shape == (0, N_PIXELS)
        assert_array_equal(reader.read_rows(np.arange(10), batch_rows=3), data)
        assert_array_equal(reader.read_rows([9]), data[[9]])
        assert_array_equal(reader.read_rows([4, 4, 5], batch_rows=2), data[[4, 4, 5]])


@pytest.mark.parametrize("batch_rows", [1, 4, 10, 100])
def test_iter_chunks_covers_all_rows_in_order(tmp_path, batch_rows):
    path = tmp_path / "spec.h5"
    data = make_spectra(10, seed=3)
    write_spectra(path, data, batch=4)
    with SpectraReader(path) as reader:
        chunks = list(reader.iter_chunks(batch_rows=batch_rows))
    starts = [start for start, _ in chunks]
    assert starts == list(range(0, 10, batch_rows))
    assert all(block.dtype == np.float32 for _, block in chunks)
    assert all(len(block) == min(batch_rows, 10 - start) for start, block in chunks)
    assert_array_equal(np.concatenate([block for _, block in chunks]), data)


def test_wrong_pixel_count_raises(tmp_path):
    path = tmp_path / "short.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(sp.SPECTRA_DATASET, data=np.ones((5, 7000), dtype=np.float32))
    with pytest.raises(SpectraError) as info:
        SpectraReader(path)
    message = str(info.value)
    assert "(5, 7000)" in message
    assert "7514" in message
    assert str(path) in message


def test_one_dimensional_dataset_raises(tmp_path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(sp.SPECTRA_DATASET, data=np.ones(N_PIXELS, dtype=np.float32))
    with pytest.raises(SpectraError, match="7514"):
        SpectraReader(path)


def test_expected_rows_mismatch_raises(tmp_path):
    path = tmp_path / "spec.h5"
    write_spectra(path, make_spectra(6), batch=6)
    with pytest.raises(SpectraError) as info:
        SpectraReader(path, expected_rows=7)
    message = str(info.value)
    assert "6 spectra" in message and "7 rows" in message
    assert str(path) in message
    with SpectraReader(path, expected_rows=6) as reader:  # the right count opens fine
        assert reader.n_rows == 6


def test_missing_dataset_raises_spectra_error(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("flux", data=np.ones((2, N_PIXELS)))
    with pytest.raises(SpectraError, match="spectra") as info:
        SpectraReader(path)
    assert "flux" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_raises_spectra_error(tmp_path):
    absent = tmp_path / "absent.h5"
    with pytest.raises(SpectraError) as info:
        SpectraReader(absent)
    assert str(absent) in str(info.value)


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"this is not HDF5" * 10)
    with pytest.raises(SpectraError, match=r"junk\.h5"):
        SpectraReader(path)


def test_failed_block_leaves_no_file(tmp_path):
    path = tmp_path / "spec.h5"
    data = make_spectra(8)
    with pytest.raises(RuntimeError, match="boom"):
        with SpectraWriter(path, n_rows=8, chunk_rows=4) as writer:
            writer.write(0, data[:4])
            raise RuntimeError("boom")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_block_leaves_existing_file_untouched(tmp_path):
    path = tmp_path / "spec.h5"
    old = make_spectra(5, seed=9)
    write_spectra(path, old, batch=5)
    before = path.read_bytes()
    with pytest.raises(SpectraError, match="7000"):
        with SpectraWriter(path, n_rows=5) as writer:
            writer.write(0, np.zeros((2, N_PIXELS)))
            writer.write(2, np.zeros((3, 7000)))  # wrong shape: raises inside the block
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["spec.h5"]
    with SpectraReader(path, expected_rows=5) as reader:
        assert_array_equal(reader.read_rows(np.arange(5)), old)


def test_incomplete_write_raises_and_leaves_no_file(tmp_path):
    path = tmp_path / "spec.h5"
    with pytest.raises(SpectraError, match="wrote 3 of 5 rows"):
        with SpectraWriter(path, n_rows=5) as writer:
            writer.write(0, make_spectra(3))
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_casts_to_float32_and_abort(tmp_path):
    path = tmp_path / "sub" / "spec.h5"  # parent folder created on demand
    data = make_spectra(3).astype(np.float64)
    with SpectraWriter(path, n_rows=3) as writer:
        writer.write(0, data)
    with SpectraReader(path) as reader:
        assert_array_equal(reader.read_rows([0, 1, 2]), data.astype(np.float32))
    writer = SpectraWriter(tmp_path / "aborted.h5", n_rows=2)
    writer.write(0, make_spectra(2))
    writer.abort()
    assert not (tmp_path / "aborted.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_read_rows_out_of_range_raises(tmp_path):
    path = tmp_path / "spec.h5"
    write_spectra(path, make_spectra(10), batch=10)
    with SpectraReader(path) as reader, pytest.raises((IndexError, SpectraError)):
        reader.read_rows(np.array([2, 15]), batch_rows=4)


def test_close_raises_when_rows_were_overwritten_not_completed(tmp_path):
    path = tmp_path / "spec.h5"
    block = make_spectra(4)
    with pytest.raises(SpectraError, match="8"):
        with SpectraWriter(path, n_rows=8) as writer:
            writer.write(0, block)
            writer.write(0, block)
    assert not path.exists()
