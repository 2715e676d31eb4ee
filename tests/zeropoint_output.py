"""A `zpdist zeropoint`-shaped output over a mock Gaia table, written without a model: Δϖ a known smooth function of
G, BP−RP and Teff, flagged outside a box, so the tests of its maps depend on no trained network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zpdist.mock.gaia_catalog import GaiaCatalogConfig, write_gaia_catalog
from zpdist.zeropoint import OUTPUT_FIELDS, ZEROPOINT_FILE, ZeroPointConfig
from zpdist.zeropoint_maps.table import FLAG, VALUE

ROWS, PARTITION_ROWS = 20_000, 5_000
#: The "training domain": G (mag), BP−RP (mag), Teff (K); rows outside it, or with a missing input, are flagged.
DOMAIN = ((3.0, 19.0), (0.3, 3.0), (3500.0, 7000.0))


def offset_mas(g: np.ndarray, bp_rp: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """Δϖ (mas): −50 µas at G = 15, BP−RP = 1.2, Teff = 5,000 K, varying by a few µas; NaN where an input is."""
    return -0.050 + 0.002 * (g - 15.0) - 0.004 * (bp_rp - 1.2) + 0.003 * (teff - 5000.0) / 1000.0


def write_zeropoint_output(folder: Path, rows: int = ROWS, keep_input_columns: bool = False) -> Path:
    """A mock Gaia table in ``folder/gaia`` and its zeropoint-shaped output in ``folder/zp`` (one file per input file,
    same names and row order, then ``zeropoint.json``); returns the output folder."""
    inputs, out = folder / "gaia", folder / "zp"
    write_gaia_catalog(GaiaCatalogConfig(n_rows=rows, partition_rows=PARTITION_ROWS, seed=5), inputs, progress=False)
    config = ZeroPointConfig(keep_input_columns=keep_input_columns)
    out.mkdir()
    for source in sorted(inputs.glob("*.parquet")):
        table = pq.read_table(source)
        values = [table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in config.columns.inputs]
        inside = np.logical_and.reduce([(v >= lo) & (v <= hi) for v, (lo, hi) in zip(values, DOMAIN, strict=True)])
        offset = offset_mas(*values)
        written = [offset, np.full(len(offset), 0.002), np.full(len(offset), 0.001), ~inside]
        fields = [table.schema.field(c) for c in (table.column_names if keep_input_columns else ["source_id"])]
        arrays = [table.column(f.name) for f in fields] + [
            pa.array(v, f.type) for v, f in zip(written, OUTPUT_FIELDS, strict=True)
        ]
        pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema([*fields, *OUTPUT_FIELDS])), out / source.name)
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
            VALUE: out["zp_offset"].to_numpy(np.float32) * np.float32(1000),
            FLAG: out["zp_outside_training_domain"],
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)
