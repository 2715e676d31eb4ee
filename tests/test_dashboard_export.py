"""Downloads: the files round-trip through pyarrow/astropy to the same rows, with the filters, selection and model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from tests.synthetic_catalog import synthetic_catalog
from zpdist_dashboard.export import FORMATS, MAX_AGE_S, export_metadata, prepare_download, write_selection


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame, _ = synthetic_catalog(300)
    return frame.iloc[10:130]


@pytest.fixture(scope="module")
def metadata() -> dict:
    _, catalog_metadata = synthetic_catalog(1)
    filters = {"ranges": {"teff": [4000.0, 4500.0]}, "quality_cuts": ["|z| < 0.3 kpc"], "element": "mg_fe"}
    selection = {"kind": "box", "x": "x_gc", "y": "y_gc", "bounds": [-9.0, -1.0, -7.0, 1.0]}
    return export_metadata(Path("catalog.parquet"), catalog_metadata, filters, selection, 120)


def _check(frame: pd.DataFrame, rows: pd.DataFrame) -> None:
    assert list(frame.columns) == list(rows.columns) and len(frame) == len(rows)
    assert (frame["apogee_id"].astype(str).to_numpy() == rows["apogee_id"].to_numpy()).all()
    for column in ("dist", "zp_offset", "mg_fe", "x_gc"):
        np.testing.assert_allclose(frame[column].to_numpy(float), rows[column].to_numpy(float), rtol=1e-12)


def test_parquet_round_trip(tmp_path, rows, metadata):
    table = pq.read_table(write_selection(rows, tmp_path / "s.parquet", metadata))
    _check(table.to_pandas(), rows)
    stored = json.loads(table.schema.metadata[b"zpdist"])
    assert stored["export"]["filters"]["element"] == "mg_fe" and stored["export"]["selection"]["kind"] == "box"
    assert stored["model"]["offset_model"] == "constant" and stored["export"]["n_rows"] == 120
    assert table.schema.field("dist").metadata[b"unit"] == b"pc"


@pytest.mark.filterwarnings("ignore:'dex' did not parse as fits unit")  # astropy reads our TUNIT = 'dex'
def test_fits_round_trip(tmp_path, rows, metadata):
    path = write_selection(rows, tmp_path / "s.fits", metadata)
    _check(Table.read(path, hdu="CATALOG").to_pandas(), rows)
    header = fits.getheader(path, "CATALOG")
    assert json.loads(header["ZPMETA"])["export"]["selection"]["bounds"] == [-9.0, -1.0, -7.0, 1.0]
    assert header["ZPOFFSET"] == pytest.approx(metadata["model"]["offset_uas"])


def test_csv_round_trip(tmp_path, rows, metadata):
    path = write_selection(rows, tmp_path / "s.csv", metadata)
    _check(Table.read(path, format="ascii.csv", comment="#").to_pandas(), rows)
    _check(pd.read_csv(path, comment="#"), rows)
    first = path.read_text().splitlines()[0]
    assert json.loads(first.removeprefix("# zpdist selection: ")) == json.loads(json.dumps(metadata))


def test_prepare_download_writes_unique_files_and_prunes_old_ones(tmp_path, rows, metadata):
    old = tmp_path / "zpdist-selection-old.csv"
    old.write_text("x")
    os.utime(old, (time.time() - MAX_AGE_S - 10,) * 2)
    paths = {prepare_download(rows, fmt, metadata, tmp_path) for fmt in FORMATS for _ in range(2)}
    assert len(paths) == 6 and all(p.parent == tmp_path for p in paths)
    assert {p.suffix for p in paths} == {".csv", ".fits", ".parquet"}
    assert not old.exists()
    assert not list(tmp_path.glob(".*.tmp"))
