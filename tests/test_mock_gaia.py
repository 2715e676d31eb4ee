"""The synthetic Gaia-like catalog: reproducibility, partitioning, plausible distributions, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zpdist.cli import main
from zpdist.mock.gaia_catalog import (
    CATALOG_CONFIG_FILE,
    GaiaCatalogConfig,
    draw_partition,
    partition_name,
    write_gaia_catalog,
)


def same(a: pa.Table, b: pa.Table) -> bool:
    """Equal tables, NaN equal to NaN."""
    return a.schema.equals(b.schema) and a.to_pandas().equals(b.to_pandas())


def test_partitions_sizes_names_and_unique_ids(tmp_path):
    config = GaiaCatalogConfig(n_rows=5000, partition_rows=2000, seed=1)
    paths = write_gaia_catalog(config, tmp_path, progress=False)
    assert [p.name for p in paths] == [partition_name(i) for i in range(3)]
    assert [pq.read_metadata(p).num_rows for p in paths] == [2000, 2000, 1000]
    ids = np.concatenate([pq.read_table(p, columns=["source_id"])["source_id"].to_numpy() for p in paths])
    assert len(np.unique(ids)) == 5000
    assert json.loads((tmp_path / CATALOG_CONFIG_FILE).read_text())["n_rows"] == 5000
    assert pq.read_schema(paths[0]).names == ["source_id", "ra", "dec", "phot_g_mean_mag", "bp_rp", "teff_val"]


def test_reproducible_by_seed_and_independent_of_workers(tmp_path):
    config = GaiaCatalogConfig(n_rows=3000, partition_rows=1000, seed=5)
    serial = write_gaia_catalog(config, tmp_path / "a", workers=1, progress=False)
    parallel = write_gaia_catalog(config, tmp_path / "b", workers=2, progress=False)
    for a, b in zip(serial, parallel, strict=True):
        assert same(pq.read_table(a), pq.read_table(b))
    other = draw_partition(GaiaCatalogConfig(n_rows=3000, partition_rows=1000, seed=6), 0)
    assert not same(other, pq.read_table(serial[0]))
    assert not same(pq.read_table(serial[0]), pq.read_table(serial[1]))  # partitions are not copies


def test_distributions_are_plausible():
    table = draw_partition(GaiaCatalogConfig(n_rows=200_000, partition_rows=200_000, seed=2), 0).to_pandas()
    g, bp_rp, teff = table["phot_g_mean_mag"], table["bp_rp"], table["teff_val"]
    assert g.between(3, 21).all()
    counts, _ = np.histogram(g, bins=np.arange(12, 22))
    assert (np.diff(counts) > 0).all()  # number counts rise towards the faint limit
    assert 1.7 < counts[-1] / counts[-2] < 2.3  # ≈ 10^0.3 per mag
    assert 0.01 < teff.isna().mean() < 0.03
    assert 4800 < teff.median() < 6200
    assert 0.1 < (teff < 4800).mean() < 0.5  # giants and cool dwarfs
    assert np.corrcoef(teff[teff.notna()], bp_rp[teff.notna()])[0, 1] < -0.5
    assert 0.3 < bp_rp.median() < 2.0
    assert table["dec"].between(-90, 90).all() and table["ra"].between(0, 360).all()
    assert abs(np.sin(np.radians(table["dec"])).mean()) < 0.01  # uniform on the sphere


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="partition_rows"):
        GaiaCatalogConfig(n_rows=10, partition_rows=0)


def test_cli(tmp_path, capsys):
    out = tmp_path / "gaia"
    assert main(["mock-gaia", "--rows", "2500", "--out", str(out), "--partition-rows", "1000", "--seed", "3",
                 "--quiet"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.glob("*.parquet")) == [partition_name(i) for i in range(3)]
    assert "2,500 rows in 3 files" in capsys.readouterr().out
    expected = draw_partition(GaiaCatalogConfig(n_rows=2500, partition_rows=1000, seed=3), 2)
    assert same(pq.read_table(out / partition_name(2)), expected)
