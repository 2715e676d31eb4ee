"""Applying a trained offset model to partitioned Parquet with dask (zpdist.zeropoint and `zpdist zeropoint`): the
exact evaluation against torch, the interpolation table against the exact evaluation."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from zpdist.cli import main
from zpdist.errors import FileFormatError, OutputError
from zpdist.io.tables import TableError
from zpdist.mock.config import InjectedOffset, MockConfig
from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog
from zpdist.mock.generate import write_mock
from zpdist.nn import offset_export
from zpdist.nn.infer import MODEL_FILE, load_model, save_model
from zpdist.nn.model import ZeroPointNet
from zpdist.nn.offset_export import (
    BLOCK_ROWS,
    TABLE_PREFIX,
    NetworkOffsetEvaluator,
    TabulatedOffsetEvaluator,
    offset_evaluator_from_run,
    offset_table_path,
    tabulated_evaluator_from_run,
)
from zpdist.nn.train import TrainConfig, train
from zpdist.zeropoint import (
    ZEROPOINT_FILE,
    ZeroPointColumns,
    ZeroPointConfig,
    apply_offset_model,
)

INPUTS = ["phot_g_mean_mag", "bp_rp", "teff_val"]
CPU = torch.device("cpu")
QUIET = {"progress": False, "log": lambda message: None}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two-epoch labels-mode runs, multivariate and constant, on 2,000 mock stars."""
    folder = tmp_path_factory.mktemp("zp_mock")
    offset = InjectedOffset(model="multivariate")
    write_mock(MockConfig(n_stars=2000, seed=1, write_spectra=False, offset=offset), folder, progress=False)
    out = {}
    for kind in ("multivariate", "constant"):
        config = TrainConfig(mode="labels", offset_model=kind, epochs=2, device="cpu", offset_mc_passes=20,
                             fit_mc_samples=3)  # fmt: skip
        out[kind] = folder / kind
        train(folder / "allstar.fits", out[kind], config, progress=False, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def gaia(tmp_path_factory) -> Path:
    """3 partitions × 2,000 rows of the synthetic Gaia-like catalog."""
    folder = tmp_path_factory.mktemp("zp_gaia")
    write_gaia_catalog(GaiaCatalogConfig(n_rows=6000, partition_rows=2000, seed=11), folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def exact_reference(runs, gaia, tmp_path_factory) -> Path:
    """The multivariate run applied exactly (no table) with the synchronous scheduler, in batches smaller than a
    partition."""
    out = tmp_path_factory.mktemp("zp_exact")
    config = ZeroPointConfig(mc_samples=30, seed=4, batch_rows=700, mc_block=1000, table_cells=0)
    apply_offset_model(runs["multivariate"], f"{gaia}/*.parquet", out, config, scheduler="synchronous", **QUIET)
    return out


@pytest.fixture(scope="module")
def reference(runs, gaia, tmp_path_factory) -> Path:
    """The same through the interpolation table (the default), which it builds and keeps in the run folder."""
    out = tmp_path_factory.mktemp("zp_ref")
    config = ZeroPointConfig(mc_samples=30, seed=4, batch_rows=700, mc_block=1000)
    apply_offset_model(runs["multivariate"], f"{gaia}/*.parquet", out, config, scheduler="synchronous", **QUIET)
    return out


@pytest.fixture(scope="module")
def tabulated(runs, reference) -> TabulatedOffsetEvaluator:
    """The table the reference job kept in the run folder (T = 30, seed 4, the default grid)."""
    evaluator, _ = tabulated_evaluator_from_run(runs["multivariate"], 30, 4, (40, 12), 10.0, log=pytest.fail)
    return evaluator


def read(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pq.read_table(p).to_pandas() for p in sorted(folder.glob("*.parquet"))}


def inputs_of(frame: pd.DataFrame) -> np.ndarray:
    return frame[INPUTS].to_numpy(np.float32)


def deterministic_offset(model: ZeroPointNet, inputs: np.ndarray) -> np.ndarray:
    """The torch offset model's Δϖ (mas, dropout off) of each row; NaN where an input is missing."""
    out = np.full(len(inputs), np.nan)
    valid = np.isfinite(inputs).all(1)
    model.eval()
    with torch.no_grad():
        out[valid] = model.offset(torch.as_tensor(inputs[valid]), int(valid.sum())).double().numpy()
    return out


def test_every_row_once_in_order_with_the_models_values(runs, gaia, exact_reference):
    model, _ = load_model(runs["multivariate"], CPU)
    source, output = read(gaia), read(exact_reference)
    assert list(output) == list(source)
    for name, frame in source.items():
        out = output[name]
        np.testing.assert_array_equal(out["source_id"].to_numpy(), frame["source_id"].to_numpy())
        expected = deterministic_offset(model, inputs_of(frame))
        np.testing.assert_array_equal(np.isnan(out["zp_offset"]), np.isnan(expected))
        np.testing.assert_allclose(out["zp_offset"], expected, rtol=1e-5, atol=1e-7, equal_nan=True)
    record = json.loads((exact_reference / ZEROPOINT_FILE).read_text())
    assert record["status"] == "complete" and record["n_rows"] == 6000 and record["n_files"] == 3
    assert record["evaluation"] == {"method": "exact"}
    assert record["n_missing_inputs"] == sum(int(np.isnan(inputs_of(f)).any(1).sum()) for f in source.values())
    assert record["config"]["columns"]["teff"] == "teff_val"


def test_mc_spread_equals_direct_torch_passes(runs, gaia, exact_reference):
    """The folded-weights evaluation equals torch's MLP with the same dropout masks, pass by pass."""
    model, metadata = load_model(runs["multivariate"], CPU)
    frame = read(gaia)["part-00001.parquet"]
    out = read(exact_reference)["part-00001.parquet"]
    valid = np.isfinite(inputs_of(frame)).all(1)
    mlp, keep = model.offset, 1.0 - model.config.dropout
    rng = np.random.default_rng(4)
    mask1 = torch.as_tensor((rng.random((30, 32)) < keep) / keep, dtype=torch.float32)
    mask2 = torch.as_tensor((rng.random((30, 16)) < keep) / keep, dtype=torch.float32)
    with torch.no_grad():
        z = torch.as_tensor(inputs_of(frame)[valid])
        h1 = mlp.stem(z, len(z))
        passes = torch.stack([mlp.out(torch.tanh(mlp.dense2(h1 * m1)) * m2).squeeze(-1) for m1, m2 in
                              zip(mask1, mask2, strict=True)], 1).double().numpy()  # fmt: skip
    spread = out["zp_offset_model_error"].to_numpy()
    np.testing.assert_allclose(spread[valid], passes.std(1), rtol=1e-4, atol=1e-7)
    assert (spread[valid] > 0).all() and np.isnan(spread[~valid]).all()
    level = np.hypot(metadata["summary"]["offset_uas_err_stat"], metadata["summary"]["offset_uas_err_network"]) / 1000
    np.testing.assert_allclose(out["zp_offset_error"][valid], np.hypot(passes.std(1), level), rtol=1e-4)


# --- the interpolation table against the exact evaluation ----------------------------------------------------------

#: Stated tolerances (µas): inside the training domain the job's own check (table_tolerance_uas) and, measured
#: here, far below it for Δϖ; outside the domain, within the table, what the default grid reaches on these models.
INSIDE_UAS, INSIDE_OFFSET_UAS, TABLE_UAS = 0.5, 0.01, 2.0


def differences_uas(approximate: dict, exact: dict, column: str) -> np.ndarray:
    return np.abs(approximate[column].astype(float) - exact[column]) * 1000.0


def test_table_output_equals_the_exact_output_within_tolerance(gaia, reference, exact_reference):
    record = json.loads((reference / ZEROPOINT_FILE).read_text())
    evaluation = record["evaluation"]
    assert evaluation["method"] == "table" and evaluation["nodes_per_input"] == 65
    inside_errors = evaluation["interpolation_error_uas"]["training_domain"]
    assert inside_errors["zp_offset"]["max_uas"] < INSIDE_OFFSET_UAS
    assert 0 < inside_errors["zp_offset_model_error"]["max_uas"] < INSIDE_UAS
    assert evaluation["table_range"]["teff_val"][0] < 3200 and evaluation["table_range"]["teff_val"][1] > 9500
    table, exact = read(reference), read(exact_reference)
    for name, frame in exact.items():
        out = table[name]
        assert out["source_id"].equals(frame["source_id"])
        assert out["zp_outside_training_domain"].equals(frame["zp_outside_training_domain"])
        np.testing.assert_array_equal(np.isnan(out["zp_offset"]), np.isnan(frame["zp_offset"]))
        inside = ~frame["zp_outside_training_domain"].to_numpy()
        assert 20 < inside.sum() < len(frame)  # both kinds of rows are checked
        for column in ("zp_offset", "zp_offset_model_error", "zp_offset_error"):
            difference = differences_uas(out, frame, column)
            assert np.nanmax(difference[inside]) < (INSIDE_OFFSET_UAS if column == "zp_offset" else INSIDE_UAS)
            assert np.nanmax(difference) < TABLE_UAS
        assert not np.array_equal(out["zp_offset"], frame["zp_offset"], equal_nan=True)  # the table was used


def test_table_on_random_inputs_within_the_stated_error(tabulated):
    exact = tabulated.exact
    rng = np.random.default_rng(123)
    low, high = exact.domain.T
    inside = rng.uniform(low, high, (20_000, 3))
    approximate, expected = tabulated.evaluate(inside), exact.evaluate(inside)
    assert differences_uas(approximate, expected, "zp_offset").max() < INSIDE_OFFSET_UAS
    assert differences_uas(approximate, expected, "zp_offset_model_error").max() < INSIDE_UAS
    assert not approximate["zp_outside_training_domain"].any()
    across = tabulated.inputs_at(rng.uniform(0, tabulated.nodes_per_axis - 1, (20_000, 3)))  # every cell equally
    approximate, expected = tabulated.evaluate(across), exact.evaluate(across)
    for column in ("zp_offset", "zp_offset_model_error", "zp_offset_error"):
        assert differences_uas(approximate, expected, column).max() < TABLE_UAS
    np.testing.assert_array_equal(approximate["zp_outside_training_domain"], expected["zp_outside_training_domain"])
    nodes = tabulated.inputs_at(np.array([[0.0, 0.0, 0.0], [30.0, 31.0, 64.0], [64.0, 64.0, 64.0]]))
    at_nodes, expected = tabulated.evaluate(nodes), exact.evaluate(nodes)
    np.testing.assert_allclose(at_nodes["zp_offset"], expected["zp_offset"], rtol=1e-5)  # the table's own values


def test_rows_beyond_the_table_are_exact_and_missing_inputs_nan(tabulated):
    exact = tabulated.exact
    mid = exact.domain.mean(axis=1)
    reach = tabulated.centre + tabulated.extent * tabulated.half_width
    rows = np.tile(mid, (6, 1))
    rows[1, 2] = 40_000.0  # Teff beyond the table
    rows[2, 0] = reach[0] * 1.01  # G just beyond it
    rows[3, 1] = -reach[1] * 3
    rows[4, 2] = np.nan
    rows[5, 0] = np.inf
    inputs = np.vstack([rows, np.tile(mid, (BLOCK_ROWS, 1))])  # the block with them is interpolated too
    approximate, expected = tabulated.evaluate(inputs), exact.evaluate(inputs)
    for column in ("zp_offset", "zp_offset_model_error", "zp_offset_error"):  # exact, float32 rounding aside
        np.testing.assert_allclose(approximate[column][1:4], expected[column][1:4], rtol=1e-5)
        assert np.isnan(approximate[column][4:6]).all()
    np.testing.assert_array_equal(approximate["zp_outside_training_domain"], expected["zp_outside_training_domain"])
    assert approximate["zp_outside_training_domain"][1:6].all() and not approximate["zp_outside_training_domain"][0]


def test_table_results_independent_of_partitioning_and_batch_size(tabulated):
    rng = np.random.default_rng(5)
    n = 50_000
    inputs = np.column_stack([rng.uniform(3, 21, n), rng.uniform(-0.5, 5, n), rng.uniform(3000, 9000, n)])
    inputs[::37, 2] = np.nan
    whole = tabulated.evaluate(inputs)
    cuts = [0, 1, 999, 16_384, 16_385, 33_000, 50_000]
    pieces = [tabulated.evaluate(np.ascontiguousarray(inputs[a:b])) for a, b in itertools.pairwise(cuts)]
    for column, values in whole.items():
        np.testing.assert_array_equal(np.concatenate([p[column] for p in pieces]), values)


def test_table_above_tolerance_is_not_used(runs, gaia, exact_reference, tmp_path):
    config = ZeroPointConfig(mc_samples=30, seed=4, table_tolerance_uas=1e-9)
    messages = []
    record = apply_offset_model(runs["multivariate"], gaia, tmp_path, config, scheduler="synchronous",
                                progress=False, log=messages.append)  # fmt: skip
    assert record["evaluation"]["method"] == "exact (table above tolerance)"
    assert any("above table_tolerance_uas" in m for m in messages)
    for name, frame in read(tmp_path).items():
        pd.testing.assert_frame_equal(frame, read(exact_reference)[name])


def test_table_kept_in_the_run_folder_and_read_back(runs, tabulated):
    assert offset_export.MODEL_FILE == MODEL_FILE
    kept = offset_table_path(runs["multivariate"], 30, 4, (40, 12), 10.0)
    assert kept.exists() and kept.stat().st_size < 5_000_000
    assert not list(runs["constant"].glob(f"{TABLE_PREFIX}*"))  # nothing to tabulate
    again, metadata = TabulatedOffsetEvaluator.load(kept)
    assert metadata == load_model(runs["multivariate"], CPU)[1]
    assert isinstance(again.exact, NetworkOffsetEvaluator) and again.errors == tabulated.errors
    built = TabulatedOffsetEvaluator.tabulate(offset_evaluator_from_run(runs["multivariate"], 30, 4)[0], 40, 12, 10.0)
    np.testing.assert_array_equal(built.table, again.table)
    assert built.errors == again.errors
    points = built.inputs_at(np.random.default_rng(0).uniform(0, 64, (500, 3)))
    for column, values in built.evaluate(points).items():
        np.testing.assert_array_equal(again.evaluate(points)[column], values)
    assert offset_table_path(runs["multivariate"], 30, 5, (40, 12), 10.0) != kept  # other settings, other table


def test_an_unreadable_kept_table_is_rebuilt(runs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / MODEL_FILE).write_bytes((runs["multivariate"] / MODEL_FILE).read_bytes())
    path = offset_table_path(run, 5, 0, (4, 1), 10.0)
    path.write_bytes(b"not a table")
    messages = []
    rebuilt, _ = tabulated_evaluator_from_run(run, 5, 0, (4, 1), 10.0, log=messages.append)
    assert rebuilt.nodes_per_axis == 7 and rebuilt.table.shape == (2, 7, 7, 7)
    assert any(f"{path}: not a readable offset table" in m for m in messages)
    assert TabulatedOffsetEvaluator.load(path)[0].nodes_per_axis == 7  # written again


def test_a_kept_table_is_read_without_torch(runs, tabulated):
    script = (
        "import sys; from zpdist.nn.offset_export import tabulated_evaluator_from_run as f; "
        f"e, m = f({str(runs['multivariate'])!r}, 30, 4, (40, 12), 10.0, log=sys.exit); "
        "assert type(e).__name__ == 'TabulatedOffsetEvaluator' and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_monte_carlo_reproducible_with_seed(runs, gaia):
    inputs = inputs_of(read(gaia)["part-00000.parquet"])
    first, _ = offset_evaluator_from_run(runs["multivariate"], 20, seed=9)
    again, _ = offset_evaluator_from_run(runs["multivariate"], 20, seed=9)
    other, _ = offset_evaluator_from_run(runs["multivariate"], 20, seed=10)
    a, b, c = (e.evaluate(inputs)["zp_offset_model_error"] for e in (first, again, other))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c, equal_nan=True)
    blocked = first.evaluate(inputs, mc_block=37)["zp_offset_model_error"]
    np.testing.assert_allclose(blocked, a, rtol=1e-5)  # same masks whatever the blocking (float32 rounding aside)


def test_domain_flag(runs, tmp_path):
    _, metadata = load_model(runs["multivariate"], CPU)
    lo, hi = np.asarray(metadata["offset_input_range"]).T
    mid = (lo + hi) / 2
    rows = [mid, lo, hi]
    for i in range(3):
        for edge, step in ((lo, -1.0), (hi, 1.0)):
            row = mid.copy()
            row[i] = edge[i] + step * (0.01 if i < 2 else 10.0)
            rows.append(row)
    with_nan = mid.copy()
    with_nan[2] = np.nan
    rows.append(with_nan)
    table = pd.DataFrame(np.array(rows), columns=INPUTS)
    table.to_parquet(tmp_path / "edge.parquet")
    apply_offset_model(runs["multivariate"], tmp_path / "edge.parquet", tmp_path / "out", scheduler="synchronous",
                       **QUIET)  # fmt: skip
    out = pq.read_table(tmp_path / "out" / "edge.parquet").to_pandas()
    assert out["zp_outside_training_domain"].tolist() == [False] * 3 + [True] * 7
    assert np.isfinite(out["zp_offset"][:9]).all() and np.isnan(out["zp_offset"][9])
    assert "source_id" not in out  # absent from the input: nothing copied


def test_constant_model_writes_its_constant(runs, gaia, tmp_path):
    record = apply_offset_model(runs["constant"], gaia, tmp_path, scheduler="threads", **QUIET)
    model, metadata = load_model(runs["constant"], CPU)
    for name, out in read(tmp_path).items():
        assert len(out) == 2000 and out["source_id"].equals(read(gaia)[name]["source_id"])
        np.testing.assert_allclose(out["zp_offset"], model.offset.uniform_value(), rtol=1e-6)
        np.testing.assert_allclose(out["zp_offset_error"], metadata["summary"]["offset_uas_err"] / 1000, rtol=1e-6)
        assert not out["zp_outside_training_domain"].any()
    assert record["model"]["offset_model"] == "constant"


def test_real_local_cluster_gives_identical_output(runs, gaia, reference, tmp_path):
    from distributed import LocalCluster

    config = ZeroPointConfig(mc_samples=30, seed=4)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        apply_offset_model(runs["multivariate"], f"{gaia}/*.parquet", tmp_path, config,
                           scheduler=cluster.scheduler_address, **QUIET)  # fmt: skip
    for name, frame in read(tmp_path).items():
        pd.testing.assert_frame_equal(frame, read(reference)[name])


def test_default_scheduler_starts_a_local_cluster(runs, gaia, reference, tmp_path):
    record = apply_offset_model(runs["multivariate"], gaia, tmp_path, ZeroPointConfig(mc_samples=30, seed=4), **QUIET)
    assert record["n_rows"] == 6000
    for name, frame in read(tmp_path).items():
        pd.testing.assert_frame_equal(frame, read(reference)[name])


def test_keep_input_columns(runs, gaia, tmp_path):
    config = ZeroPointConfig(mc_samples=5, keep_input_columns=True)
    apply_offset_model(runs["multivariate"], gaia, tmp_path, config, scheduler="synchronous", **QUIET)
    out = pq.read_table(tmp_path / "part-00002.parquet")
    assert out.column_names[:6] == pq.read_schema(gaia / "part-00002.parquet").names
    assert out.column_names[6:] == ["zp_offset", "zp_offset_error", "zp_offset_model_error",
                                    "zp_outside_training_domain"]  # fmt: skip


def test_resume_skips_written_partitions_and_checks_configuration(runs, gaia, tmp_path):
    config = ZeroPointConfig(mc_samples=5)
    apply_offset_model(runs["multivariate"], gaia, tmp_path, config, scheduler="synchronous", **QUIET)
    kept = tmp_path / "part-00000.parquet"
    (tmp_path / "part-00001.parquet").unlink()
    before = kept.stat().st_mtime_ns
    record = apply_offset_model(runs["multivariate"], gaia, tmp_path, config, scheduler="synchronous", resume=True,
                                **QUIET)  # fmt: skip
    assert kept.stat().st_mtime_ns == before and (tmp_path / "part-00001.parquet").exists()
    assert record["n_rows"] == 6000 and [p["rows"] for p in record["partitions"]] == [2000] * 3
    with pytest.raises(ValueError, match="another model or configuration"):
        apply_offset_model(runs["multivariate"], gaia, tmp_path, ZeroPointConfig(mc_samples=6), resume=True,
                           scheduler="synchronous", **QUIET)  # fmt: skip


def test_bad_inputs_have_clear_errors(runs, gaia, tmp_path):
    run = runs["multivariate"]
    with pytest.raises(FileNotFoundError, match="no input files match"):
        apply_offset_model(run, tmp_path / "nothing*.parquet", tmp_path / "o1", scheduler="synchronous", **QUIET)
    renamed = ZeroPointConfig(columns=ZeroPointColumns(teff="teff_gspphot"))
    with pytest.raises(TableError, match=r"part-00000\.parquet: missing column\(s\) teff_gspphot"):
        apply_offset_model(run, gaia, tmp_path / "o2", renamed, scheduler="synchronous", **QUIET)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.parquet").write_text("source_id,bp_rp\n1,2\n")
    with pytest.raises(TableError, match=r"x\.parquet: not a readable Parquet file"):
        apply_offset_model(run, tmp_path / "bad", tmp_path / "o3", scheduler="synchronous", **QUIET)
    with pytest.raises(OutputError, match="overwrite the inputs"):
        apply_offset_model(run, gaia, gaia, scheduler="synchronous", **QUIET)
    with pytest.raises(ValueError, match="mc_samples"):
        ZeroPointConfig(mc_samples=1)


def test_old_run_without_training_domain(runs, tmp_path):
    model, metadata = load_model(runs["multivariate"], CPU)
    del metadata["offset_input_range"]
    save_model(tmp_path / MODEL_FILE, model, metadata)
    with pytest.raises(FileFormatError, match="offset_input_range"):
        offset_evaluator_from_run(tmp_path, 10, 0)


def test_cli_end_to_end(runs, gaia, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["zeropoint", "--run", str(runs["multivariate"]), "--input", f"{gaia}/part-*.parquet", "--out", str(out),
            "--scheduler", "synchronous", "--mc-samples", "10", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "6,000 rows in 3 files" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(p.name for p in gaia.glob("*.parquet"))
    assert json.loads((out / ZEROPOINT_FILE).read_text())["config"]["mc_samples"] == 10
    assert main([*argv[:-1], "--teff-column", "teff_gspphot", "--out", str(tmp_path / "o2")]) == 2
    assert "missing column(s) teff_gspphot" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["zeropoint", "--help"])
    text = capsys.readouterr().out
    assert "zp_outside_training_domain" in text and "--scheduler" in text and "--teff-column" in text


def test_output_is_valid_arrow_schema(reference):
    schema = pq.read_schema(reference / "part-00000.parquet")
    assert schema.field("zp_offset").type == pa.float32()
    assert schema.field("zp_outside_training_domain").type == pa.bool_()
    assert not any(schema.field(name).nullable for name in schema.names[1:])  # NaN, never null: no definition levels


def test_exact_option_switches_the_table_off(monkeypatch):
    """`zpdist zeropoint --exact` asks for row-by-row evaluation (table_cells = 0)."""
    import zpdist.zeropoint as zeropoint
    from zpdist.cli import main

    seen = {}
    monkeypatch.setattr(zeropoint, "apply_offset_model", lambda *a, **k: seen.update(config=a[3]))
    assert main(["zeropoint", "--run", "r", "--input", "x", "--out", "o", "--exact", "--quiet"]) == 0
    assert seen["config"].table_cells == 0
    assert main(["zeropoint", "--run", "r", "--input", "x", "--out", "o", "--quiet"]) == 0
    assert seen["config"].table_cells == zeropoint.ZeroPointConfig().table_cells > 0
