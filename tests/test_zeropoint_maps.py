"""The Gaia-scale map engine (zpdist.zeropoint_maps) without Panel: opening a `zpdist zeropoint` output, the one
pass into fine histograms, their cache, and the re-binning of a window."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.zeropoint_output import PARTITION_ROWS, ROWS, joined_rows, offset_mas, write_zeropoint_output
from zpdist.errors import MissingInputError
from zpdist.io.tables import TableError
from zpdist.maps import bin_index, color_limits
from zpdist.zeropoint import ZEROPOINT_FILE
from zpdist.zeropoint_maps.build import CACHE_FILE, build_histograms, grid_index, load_gaia_histograms
from zpdist.zeropoint_maps.histograms import MAP_PLANES
from zpdist.zeropoint_maps.table import FLAG, META, VALUE, open_zeropoint_output

BINS = 64
QUIET = {"progress": False, "log": lambda message: None}


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return write_zeropoint_output(tmp_path_factory.mktemp("zeropoint-maps"))


@pytest.fixture(scope="module")
def histograms(output):
    return build_histograms(open_zeropoint_output(output), bins=BINS, progress=False)


def test_the_engine_imports_no_plotting_library():
    code = (
        "import sys, zpdist.zeropoint_maps.build; "
        "print(sorted(m for m in ('panel', 'holoviews', 'bokeh', 'datashader') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_output_opens_as_float32_dask_frame_joined_row_by_row_with_its_inputs(output):
    table = open_zeropoint_output(output)
    assert table.n_rows == ROWS and len(table.partitions) == ROWS // PARTITION_ROWS
    assert all(Path(p.coordinates).parent.name == "gaia" for p in table.partitions)
    frame = table.to_dask()
    assert dict(frame.dtypes) == dict(META.dtypes)
    rows = joined_rows(output)
    pd.testing.assert_frame_equal(frame.compute().reset_index(drop=True), rows)
    expected = 1000 * offset_mas(*(rows[c].to_numpy(float) for c in ("phot_g_mean_mag", "bp_rp", "teff")))
    np.testing.assert_allclose(rows[VALUE], expected, rtol=1e-6, atol=1e-4)  # µas, from the mas written
    assert open_zeropoint_output(f"{output}/part-0000[01].parquet").n_rows == 2 * PARTITION_ROWS  # a glob


def test_every_row_is_counted_once_per_side_of_the_flag(output, histograms):
    rows = joined_rows(output)
    outside = rows[FLAG].to_numpy()
    assert histograms.rows.tolist() == [int((~outside).sum()), int(outside.sum())]
    assert histograms.n_rows == ROWS and 0 < outside.sum() < ROWS and histograms.fine_bins == BINS
    for x, y in MAP_PLANES:
        placed = np.isfinite(rows[x]) & np.isfinite(rows[y])
        count = histograms.planes[(x, y)][0]
        assert count.sum(axis=(1, 2)).tolist() == [(placed & ~outside).sum(), (placed & outside).sum()]
        _, _, (whole,) = histograms.window((x, y), ("count",), (0, 1))  # the whole grid, in blocks
        assert whole.sum() == placed.sum()


def test_mean_offset_of_each_bin_equals_a_pandas_groupby(output, histograms):
    rows = joined_rows(output)
    for x, y in MAP_PLANES:
        ix, iy = grid_index(rows[x], histograms.edges[x]), grid_index(rows[y], histograms.edges[y])
        valid = (ix >= 0) & (iy >= 0) & np.isfinite(rows[VALUE])
        keys = pd.DataFrame({"side": rows[FLAG].astype(int), "iy": iy, "ix": ix})[valid]
        groups = rows.loc[valid, VALUE].astype(float).groupby([keys.side, keys.iy, keys.ix])
        expected = groups.agg(["mean", "std", "size"])
        side, j, i = (expected.index.get_level_values(k).to_numpy() for k in ("side", "iy", "ix"))
        n, total, squares = histograms.planes[(x, y)][1:, side, j, i]
        np.testing.assert_array_equal(n, expected["size"])
        np.testing.assert_allclose(total / n, expected["mean"], rtol=1e-9, atol=1e-9)
        many = n > 1
        n, total, squares = n[many], total[many], squares[many]
        spread = np.sqrt(np.maximum(squares / n - (total / n) ** 2, 0.0) * n / (n - 1))
        np.testing.assert_allclose(spread, expected["std"][many], rtol=1e-3, atol=1e-3)
        assert histograms.planes[(x, y)][1].sum() == valid.sum()


def test_grid_index_is_maps_bin_index_on_a_regular_grid():
    edges = np.linspace(3.0, 21.0, 65)
    values = np.concatenate([np.random.default_rng(1).uniform(3.0, 21.0, 10_000), [3.0, 21.0, np.nan]])
    np.testing.assert_array_equal(grid_index(values, edges), bin_index(values, edges))
    assert grid_index(np.float32([21.0000001, 2.9999999]), edges).tolist() == [63, 0]  # float32 rounding at the ends


def _fine_position(fine: np.ndarray, coarse: np.ndarray) -> tuple[int, int]:
    """The fine bin where ``coarse`` starts, and the fine bins per coarse bin."""
    width = (fine[-1] - fine[0]) / (len(fine) - 1)
    return round((coarse[0] - fine[0]) / width), round((coarse[1] - coarse[0]) / width)


def test_windows_sum_fine_bins_in_blocks_and_the_profile_marginalises(histograms):
    plane = MAP_PLANES[0]
    x_edges, y_edges, (count,) = histograms.window(plane, ("count",), (0,), (10.0, 15.0), (0.5, 2.0), (8, 8))
    ny, nx = count.shape
    assert ny <= 8 and nx <= 8 and x_edges[0] <= 10.0 < 15.0 <= x_edges[-1] and y_edges[0] <= 0.5 < 2.0 <= y_edges[-1]
    (i0, kx), (j0, ky) = (
        _fine_position(histograms.edges[c], e) for c, e in zip(plane, (x_edges, y_edges), strict=True)
    )
    fine = np.pad(histograms.planes[plane][0, 0], BINS)  # empty bins past the grid, as the window pads
    blocks = fine[BINS + j0 : BINS + j0 + ny * ky, BINS + i0 : BINS + i0 + nx * kx]
    np.testing.assert_array_equal(count, blocks.reshape(ny, ky, nx, kx).sum(axis=(1, 3)))
    profile = histograms.profile("phot_g_mean_mag", (0, 1))
    n, total = histograms.planes[plane][1:3].sum(axis=(1, 2, 3))
    assert profile["n"].sum() == n
    assert np.nansum(profile["mean"] * profile["n"]) / n == pytest.approx(total / n)


def test_maps_are_counts_and_means_of_the_window_with_nan_where_empty(histograms):
    plane, window = MAP_PLANES[0], ((10.0, 15.0), (0.5, 2.0), (8, 8))
    _, _, (count, n, total) = histograms.window(plane, ("count", "n", "sum"), (0, 1), *window)
    _, _, counts = histograms.map(plane, "count", (0, 1), *window)
    _, _, means = histograms.map(plane, "mean", (0, 1), *window)
    np.testing.assert_array_equal(counts, np.where(count > 0, count, np.nan))
    np.testing.assert_allclose(means, np.where(n > 0, total / np.maximum(n, 1), np.nan))
    assert np.isfinite(means).any() and np.isnan(counts).any() == (count == 0).any()
    limits = histograms.color_limits(plane, (0,))
    assert limits == pytest.approx(color_limits(histograms.map(plane, "mean", (0,))[2]))
    assert -60.0 < limits[0] < limits[1] < -40.0  # µas: the injected Δϖ is −50 µas varying by a few µas


def test_the_cache_is_reused_and_rebuilt_when_a_partition_changes(output, tmp_path):
    folder = tmp_path / "zp"
    shutil.copytree(output, folder)
    first = load_gaia_histograms(folder, bins=BINS, **QUIET)
    assert not first.from_cache and (folder / CACHE_FILE).exists()
    again = load_gaia_histograms(folder, bins=BINS, **QUIET)
    assert again.from_cache and again.rows.tolist() == first.rows.tolist()
    for plane in MAP_PLANES:
        np.testing.assert_array_equal(again.planes[plane], first.planes[plane])
    assert not load_gaia_histograms(folder, bins=2 * BINS, **QUIET).from_cache  # another grid
    part = folder / "part-00001.parquet"
    frame = pd.read_parquet(part)
    frame["zp_outside_training_domain"] = ~frame["zp_outside_training_domain"]
    frame.to_parquet(part)
    changed = load_gaia_histograms(folder, bins=BINS, **QUIET)
    assert not changed.from_cache and changed.rows.tolist() != first.rows.tolist() and changed.n_rows == ROWS


def test_an_output_with_the_input_columns_needs_no_join(tmp_path, histograms):
    output = write_zeropoint_output(tmp_path, keep_input_columns=True)
    (output / ZEROPOINT_FILE).unlink()  # the columns are found by their default names
    table = open_zeropoint_output(output)
    assert all(p.coordinates == p.output for p in table.partitions)
    alone = build_histograms(table, bins=BINS, progress=False)
    for plane in MAP_PLANES:
        np.testing.assert_array_equal(alone.planes[plane], histograms.planes[plane])
    footers = table.ranges()
    part = output / "part-00003.parquet"
    pq.write_table(pq.read_table(part), part, write_statistics=False)  # its ranges now need a pass over the rows
    for column, scanned in open_zeropoint_output(output).ranges().items():
        np.testing.assert_allclose(scanned, footers[column], rtol=1e-6)  # float32 values against float64 footers


def test_unusable_tables_are_refused_naming_the_files(output, tmp_path):
    inputs = output.parent / "gaia"
    with pytest.raises(TableError, match="not a `zpdist zeropoint` output"):
        open_zeropoint_output(inputs)
    with pytest.raises(MissingInputError, match="absent"):
        open_zeropoint_output(tmp_path / "absent")
    folder = tmp_path / "zp"
    shutil.copytree(output, folder)
    table = pq.read_table(folder / "part-00002.parquet")
    pq.write_table(table.slice(0, 100), folder / "part-00002.parquet")
    with pytest.raises(TableError, match=r"part-00002\.parquet holds 5,000 rows but .*part-00002\.parquet 100"):
        open_zeropoint_output(folder)
    (folder / ZEROPOINT_FILE).write_text('{"input": "nowhere/*.parquet"}')
    with pytest.raises(MissingInputError, match=r"its input files 'nowhere/\*\.parquet' .* are not found"):
        open_zeropoint_output(folder)
    (folder / ZEROPOINT_FILE).unlink()
    with pytest.raises(
        TableError, match=f"lacks phot_g_mean_mag, bp_rp, teff_val, and its folder has no {ZEROPOINT_FILE}"
    ):
        open_zeropoint_output(folder)
