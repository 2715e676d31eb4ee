"""The Zero-point tab's Gaia-scale section: opening a `zpdist zeropoint` output, its histograms, cache and maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pyarrow.parquet as pq
import pytest

from tests.synthetic_catalog import write_synthetic_catalog
from zpdist.cli import build_parser, main
from zpdist.io.tables import TableError
from zpdist.maps import bin_index
from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog
from zpdist.zeropoint import ZEROPOINT_FILE, OffsetEvaluator, PartitionTask, ZeroPointConfig, process_partition
from zpdist_dashboard.app import build_app
from zpdist_dashboard.state import load_catalog
from zpdist_dashboard.views.gaia_scale import (
    CACHE_FILE,
    FLAG,
    MAP_PLANES,
    META,
    OUTSIDE_CHOICES,
    VALUE,
    GaiaScaleView,
    build_histograms,
    grid_index,
    load_gaia_histograms,
    open_zeropoint_output,
)

ROWS, PARTITION_ROWS, BINS = 20_000, 5_000, 64


def random_evaluator(mc_samples: int = 2, seed: int = 0) -> OffsetEvaluator:
    """A multivariate offset model with random weights, Δϖ ≈ −50 µas varying by a few µas, trained on 3 < G < 19,
    0.3 < BP−RP < 3, 3,500 < Teff < 7,000 K."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float) -> np.ndarray:
        return (scale * rng.normal(size=shape)).astype(np.float32)

    return OffsetEvaluator(
        constant_mas=None, level_error_mas=0.002, input_mean=np.array([15.0, 1.2, 5000.0]),
        input_std=np.array([3.0, 0.5, 800.0]), domain=np.array([[3.0, 19.0], [0.3, 3.0], [3500.0, 7000.0]]),
        w1=normal(32, 3, scale=0.5), b1=normal(32, scale=0.1), w2=normal(16, 32, scale=0.3), b2=normal(16, scale=0.1),
        w3=normal(16, scale=0.003), b3=-0.05, w2_passes=normal(33, 16 * mc_samples, scale=0.3),
        w3_passes=normal(mc_samples, 16, scale=0.003),
    )  # fmt: skip


def write_zeropoint_output(folder: Path, rows: int = ROWS, keep_input_columns: bool = False) -> Path:
    """A mock Gaia table in ``folder/gaia`` and its zeropoint output in ``folder/zp``, written as `zpdist zeropoint`
    does (one :func:`process_partition` per file, then ``zeropoint.json``); returns the output folder."""
    inputs = folder / "gaia"
    write_gaia_catalog(GaiaCatalogConfig(n_rows=rows, partition_rows=PARTITION_ROWS, seed=5), inputs, progress=False)
    config = ZeroPointConfig(mc_samples=2, keep_input_columns=keep_input_columns)
    evaluator = random_evaluator()
    out = folder / "zp"
    out.mkdir()
    for source in sorted(inputs.glob("*.parquet")):
        process_partition(evaluator, config, PartitionTask(str(source), str(out / source.name)))
    record = {"status": "complete", "input": str(inputs / "*.parquet"), "config": config.to_dict()}
    (out / ZEROPOINT_FILE).write_text(json.dumps(record))
    return out


def joined_rows(output: Path) -> pd.DataFrame:
    """Each output file beside its input file's G, BP−RP, Teff, read directly (the reference of the tests)."""
    record = json.loads((output / ZEROPOINT_FILE).read_text())
    frames = []
    for path in sorted(output.glob("*.parquet")):
        out = pq.read_table(path).to_pandas()
        source = pq.read_table(Path(record["input"]).parent / path.name).to_pandas()
        frames.append(pd.DataFrame({
            "phot_g_mean_mag": source["phot_g_mean_mag"].astype(np.float32),
            "bp_rp": source["bp_rp"].astype(np.float32),
            "teff": source["teff_val"].astype(np.float32),
            VALUE: out["zp_offset_mas"].to_numpy(np.float32) * np.float32(1000),
            FLAG: out["zp_outside_training_domain"],
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return write_zeropoint_output(tmp_path_factory.mktemp("gaia-scale"))


@pytest.fixture(scope="module")
def histograms(output):
    return build_histograms(open_zeropoint_output(output), bins=BINS, progress=False)


def test_the_output_opens_as_float32_dask_frame_joined_row_by_row_with_its_inputs(output):
    table = open_zeropoint_output(output)
    assert table.n_rows == ROWS and len(table.partitions) == ROWS // PARTITION_ROWS
    assert all(Path(p.coordinates).parent.name == "gaia" for p in table.partitions)
    frame = table.to_dask()
    assert dict(frame.dtypes) == dict(META.dtypes)
    pd.testing.assert_frame_equal(frame.compute().reset_index(drop=True), joined_rows(output))
    assert open_zeropoint_output(f"{output}/part-0000[01].parquet").n_rows == 2 * PARTITION_ROWS  # a glob


def test_every_row_is_counted_once_per_side_of_the_flag(output, histograms):
    rows = joined_rows(output)
    outside = rows[FLAG].to_numpy()
    assert histograms.rows.tolist() == [int((~outside).sum()), int(outside.sum())]
    assert histograms.n_rows == ROWS and 0 < outside.sum() < ROWS
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
        spread = np.sqrt((squares / n - (total / n) ** 2) * n / (n - 1))
        np.testing.assert_allclose(spread, expected["std"][many], rtol=1e-4, atol=1e-6)
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


def test_the_cache_is_reused_and_rebuilt_when_a_partition_changes(output, tmp_path):
    folder = tmp_path / "zp"
    shutil.copytree(output, folder)
    first = load_gaia_histograms(folder, bins=BINS, progress=False)
    assert not first.from_cache and (folder / CACHE_FILE).exists()
    again = load_gaia_histograms(folder, bins=BINS, progress=False)
    assert again.from_cache and again.rows.tolist() == first.rows.tolist()
    for plane in MAP_PLANES:
        np.testing.assert_array_equal(again.planes[plane], first.planes[plane])
    assert not load_gaia_histograms(folder, bins=2 * BINS, progress=False).from_cache  # another grid
    part = folder / "part-00001.parquet"
    frame = pd.read_parquet(part)
    frame["zp_outside_training_domain"] = ~frame["zp_outside_training_domain"]
    frame.to_parquet(part)
    changed = load_gaia_histograms(folder, bins=BINS, progress=False)
    assert not changed.from_cache and changed.rows.tolist() != first.rows.tolist() and changed.n_rows == ROWS


def test_view_renders_and_the_toggle_changes_the_counts(histograms):
    view = GaiaScaleView(histograms=histograms)
    plane = MAP_PLANES[0]
    counts = {o: np.nansum(view.image(plane, "count", o, (0.0, 30.0), (-5.0, 10.0)).dimension_values(2)) for o in
              OUTSIDE_CHOICES}  # fmt: skip
    placed = histograms.planes[plane][0].sum(axis=(1, 2))
    assert counts == {"hidden": placed[0], "shown": placed.sum(), "only": placed[1]}
    mean = view.image(plane, "mean", "hidden")
    assert mean.vdims[0].range == histograms.color_limits(plane, (0,))
    for statistic in ("count", "mean"):
        hv.render(view._map(plane, statistic), backend="bokeh")
    overlay = view.profile("shown")
    hv.render(overlay, backend="bokeh")
    assert f"{ROWS:,} rows in 4 files" in view._summary()
    view.outside = "only"
    pn.panel(view).get_root()


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
    folder = tmp_path / "zp"
    shutil.copytree(output, folder)
    table = pq.read_table(folder / "part-00002.parquet")
    pq.write_table(table.slice(0, 100), folder / "part-00002.parquet")
    with pytest.raises(TableError, match=r"part-00002\.parquet holds 5,000 rows but .*part-00002\.parquet 100"):
        open_zeropoint_output(folder)
    (folder / ZEROPOINT_FILE).unlink()
    with pytest.raises(
        TableError, match=f"lacks phot_g_mean_mag, bp_rp, teff_val, and its folder has no {ZEROPOINT_FILE}"
    ):
        open_zeropoint_output(folder)


def test_the_app_shows_the_section_only_when_given(histograms, tmp_path):
    catalog = load_catalog(write_synthetic_catalog(tmp_path / "c.parquet", 300))

    def gaia_sections(app) -> int:
        zero_point_tab = app.main[0][0]
        return sum("Gaia-scale table" in str(m.object) for m in zero_point_tab.select(pn.pane.Markdown))

    assert gaia_sections(build_app(catalog, gaia=histograms)) == 1
    assert gaia_sections(build_app(catalog)) == 0


def test_serve_takes_a_gaia_table_and_refuses_a_bad_one(output, tmp_path, capsys):
    assert build_parser().parse_args(["serve", "--gaia", str(output)]).gaia == str(output)
    assert build_parser().parse_args(["serve"]).gaia is None
    catalog = write_synthetic_catalog(tmp_path / "c.parquet", 300)
    inputs = output.parent / "gaia"
    assert main(["serve", "--catalog", str(catalog), "--gaia", str(inputs), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zpdist serve: error:") and str(inputs) in err
