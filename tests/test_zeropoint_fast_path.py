"""The fast path of `zpdist zeropoint`: the compiled interpolation kernel against a straightforward trilinear
interpolation and the exact evaluation, the grid's node index, the streaming of float32 and null columns, the plain
output files, the task groups and repeated scatters on a cluster. No training: a random network offset."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.interpolate import RegularGridInterpolator

from zpdist.nn.offset_export import NetworkOffsetEvaluator, TabulatedOffsetEvaluator, dropout_masks
from zpdist.parallel import map_tasks
from zpdist.zeropoint import OUTPUT_FIELDS, PartitionTask, ZeroPointConfig, process_partition, task_groups

INPUTS = ["phot_g_mean_mag", "bp_rp", "teff_val"]
DOMAIN = np.array([[8.0, 16.0], [0.5, 3.0], [3800.0, 5200.0]])


@pytest.fixture(scope="module")
def tabulated() -> TabulatedOffsetEvaluator:
    """A random network offset (T = 20) on a small grid: 8 cells across the domain, 3 on each side, reach 10."""
    rng = np.random.default_rng(7)
    weights = {
        "input_mean": DOMAIN.mean(axis=1),
        "input_std": np.diff(DOMAIN, axis=1)[:, 0] / 3,
        "w1": rng.normal(0, 0.7, (32, 3)),
        "b1": rng.normal(0, 0.3, 32),
        "w2": rng.normal(0, 0.3, (16, 32)),
        "b2": rng.normal(0, 0.3, 16),
        "w3": rng.normal(0, 0.01, 16),
        "b3": -0.02,
    }
    masks = dropout_masks((32, 16), 20, seed=3, dropout=0.2)
    exact = NetworkOffsetEvaluator.fold(weights, masks, level_error_mas=0.004, domain=DOMAIN)
    return TabulatedOffsetEvaluator.tabulate(exact, 8, 3, 10.0)


def straightforward(tabulated: TabulatedOffsetEvaluator, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Trilinear interpolation of the table by scipy in node-index space (float64), at rows inside the table."""
    index = tabulated.node_index((inputs - tabulated.centre) / tabulated.half_width)
    axis = np.arange(tabulated.nodes_per_axis, dtype=float)
    return {
        name: RegularGridInterpolator((axis, axis, axis), plane.astype(float))(index)
        for name, plane in zip(("zp_offset", "zp_offset_model_error"), tabulated.table, strict=True)
    }


def test_kernel_equals_scipy_trilinear_and_the_exact_flags(tabulated):
    rng = np.random.default_rng(0)
    inputs = tabulated.inputs_at(rng.uniform(0, tabulated.nodes_per_axis - 1, (30_000, 3)))  # every cell, both sides
    fast, exact = tabulated.evaluate(inputs), tabulated.exact.evaluate(inputs)
    reference = straightforward(tabulated, inputs)
    for name, values in reference.items():  # float32 arithmetic: 1e-6 of the table's range
        np.testing.assert_allclose(fast[name], values, rtol=0, atol=1e-6 * np.abs(tabulated.table).max())
    total = np.sqrt(reference["zp_offset_model_error"] ** 2 + tabulated.level_error_mas**2)
    np.testing.assert_allclose(fast["zp_offset_error"], total, rtol=1e-6)
    np.testing.assert_array_equal(fast["zp_outside_training_domain"], exact["zp_outside_training_domain"])
    assert 0 < fast["zp_outside_training_domain"].mean() < 1
    inside = ~exact["zp_outside_training_domain"]  # the interpolation error inside the domain is what was measured
    error_uas = np.abs(fast["zp_offset"][inside] - exact["zp_offset"][inside]).max() * 1000
    assert error_uas <= tabulated.errors["training_domain"]["zp_offset"]["max_uas"] * 2 + 1e-3


def test_nan_rows_beyond_rows_and_float32_columns(tabulated):
    mid = DOMAIN.mean(axis=1)
    rows = np.tile(mid, (1100, 1))  # two blocks of the kernel and a part
    rows[5, 2] = np.nan
    rows[600, 0] = tabulated.centre[0] + 10.5 * tabulated.half_width[0]  # just beyond the table: exact
    rows[700, 1] = -np.inf
    rows[1099] = [11.0, 1.5, 4000.0]
    fast, exact = tabulated.evaluate(rows), tabulated.exact.evaluate(rows)
    for name in ("zp_offset", "zp_offset_model_error", "zp_offset_error"):
        assert np.isnan(fast[name][[5, 700]]).all()
        np.testing.assert_allclose(fast[name][600], exact[name][600], rtol=1e-5)
    np.testing.assert_array_equal(fast["zp_outside_training_domain"], exact["zp_outside_training_domain"])
    assert fast["zp_outside_training_domain"][[5, 600, 700]].all() and not fast["zp_outside_training_domain"][0]
    as_float32 = tabulated.evaluate(rows.astype(np.float32))  # Gaia's own column type, compiled apart
    np.testing.assert_allclose(as_float32["zp_offset"], fast["zp_offset"], rtol=1e-4, atol=1e-7)


def test_node_index_and_its_inverse(tabulated):
    nodes = np.arange(tabulated.nodes_per_axis, dtype=float)
    s = (tabulated.inputs_at(np.column_stack([nodes] * 3)) - tabulated.centre) / tabulated.half_width
    np.testing.assert_allclose(tabulated.node_index(s), np.column_stack([nodes] * 3), atol=1e-9)
    edges = tabulated.node_index(np.array([-10.0, -1.0, 0.0, 1.0, 10.0]))
    np.testing.assert_allclose(edges, [0, 3, 7, 11, 14])  # the domain's edges and the table's ends are nodes
    widths = np.diff(tabulated.inputs_at(np.column_stack([nodes] * 3))[:, 0])
    assert np.allclose(widths[3:11], widths[3]) and (np.diff(widths[11:]) > 0).all()  # equal inside, growing out


def test_pickled_evaluator_sends_the_table_once_and_evaluates_alike(tabulated):
    data = pickle.dumps(tabulated)
    assert len(data) < len(pickle.dumps((tabulated.exact, tabulated.table))) + 2000  # the derived copy is not sent
    again = pickle.loads(data)
    inputs = tabulated.inputs_at(np.random.default_rng(1).uniform(0, 14, (500, 3)))
    for name, values in tabulated.evaluate(inputs).items():
        np.testing.assert_array_equal(again.evaluate(inputs)[name], values)


def test_streamed_float32_and_null_columns_written_plain(tabulated, tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    values = {name: rng.uniform(low - 1, high + 1, n) for name, (low, high) in zip(INPUTS, DOMAIN, strict=True)}
    nulls = rng.random(n) < 0.1
    table = pa.table({
        "source_id": np.arange(n, dtype=np.int64),
        "phot_g_mean_mag": pa.array(values["phot_g_mean_mag"].astype(np.float32)),
        "bp_rp": pa.array(values["bp_rp"]),
        "teff_val": pa.array(values["teff_val"].astype(np.float32), mask=nulls),  # DR3's teff_gspphot has nulls
    })  # fmt: skip
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=1000)
    config = ZeroPointConfig(mc_samples=20, batch_rows=700)
    counts = process_partition(
        tabulated, config, PartitionTask(str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    )
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["source_id", *(f.name for f in OUTPUT_FIELDS)]
    assert out.schema.field("zp_offset").type == pa.float32() and not out.schema.field("zp_offset").nullable
    inputs = np.column_stack([table[name].to_numpy(zero_copy_only=False).astype(float) for name in INPUTS])
    assert np.isnan(inputs[nulls, 2]).all()
    expected = tabulated.evaluate(inputs)
    for field in OUTPUT_FIELDS:
        np.testing.assert_array_equal(out[field.name].to_numpy(), expected[field.name])
    assert (
        np.isnan(out["zp_offset"].to_numpy()[nulls]).all() and out["zp_outside_training_domain"].to_numpy()[nulls].all()
    )
    assert counts == {"file": "in.parquet", "rows": n, "outside": int(expected["zp_outside_training_domain"].sum()),
                      "missing": int(nulls.sum())}  # fmt: skip
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert metadata.num_row_groups == 5  # one per batch
    column = metadata.row_group(0).column(1)
    assert column.compression == "UNCOMPRESSED" and column.statistics is None and "PLAIN" in column.encodings


def test_task_groups_shrink_and_keep_the_order():
    for n, share in ((0, 4), (3, 4), (10, 4), (100, 4), (100, 8)):
        groups = task_groups(list(range(n)), share)
        assert [i for group in groups for i in group] == list(range(n))
        sizes = [len(group) for group in groups]
        assert sizes == sorted(sizes, reverse=True) and (not sizes or sizes[-1] == 1)
    assert [len(g) for g in task_groups(list(range(100)), 4)][:4] == [25, 18, 14, 10]
    assert len(task_groups(list(range(100)), 4)) < 20


def test_repeated_scatters_of_equal_data_on_a_cluster():
    """map_tasks scatters its shared arguments under unique keys: equal data scattered again while the previous
    copies are being released is not lost (with content-hashed keys about one call in ten failed here)."""
    from distributed import Client, LocalCluster

    shared = (np.arange(200_000.0),)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            for _ in range(8):
                results = sorted(value for _, value in map_tasks(client, _first_plus, list(range(6)), shared=shared))
                assert results == list(range(6))


def _first_plus(array: np.ndarray, item: int) -> int:
    return int(array[0]) + item
