"""Issue 4's end-to-end real-data path: ingest the TwoFace allStar rows with their Gaia DR2 columns, select,
predict with a model trained on the mock, and open the catalog in the dashboard."""

from __future__ import annotations

import numpy as np
import pytest

from zpdist.cli import main
from zpdist.io.catalog import read_catalog
from zpdist.nn.train import TrainConfig, train

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def mock_labels_run(small_mock, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mock-labels-run")
    train(small_mock.allstar, run_dir, TrainConfig(mode="labels", epochs=2, device="cpu"), progress=False,
          log=lambda message: None)  # fmt: skip
    return run_dir


def test_twoface_ingest_select_predict_and_dashboard(realdata, mock_labels_run, tmp_path, capsys):
    table = tmp_path / "twoface.parquet"
    source = realdata / "merged_TwoFace_DR14allStar_x_GaiaDR2_532.fits"
    assert main(["ingest", "allstar", "--allstar", str(source), "--out", str(table)]) == 0
    catalog_path = tmp_path / "catalog.parquet"
    assert main(["predict", "--run", str(mock_labels_run), "--table", str(table), "--out", str(catalog_path),
                 "--mc-samples", "5", "--quiet"]) == 0  # fmt: skip
    catalog, metadata = read_catalog(catalog_path)
    assert len(catalog) == 426  # one row per star after the duplicates are removed
    has_labels = np.isfinite(catalog[["teff", "logg", "fe_h"]].to_numpy()).all(axis=1)
    assert np.isfinite(catalog.loc[has_labels, "dist"]).mean() > 0.8
    assert np.isfinite(catalog["parallax"]).sum() == 418  # GAIADR2_PARALLAX present
    assert metadata["input_table"] == str(table)

    selected = tmp_path / "maps.parquet"
    config = tmp_path / "cuts.toml"  # a 2-epoch mock model's distances are too rough for the default d/σ_d > 5
    config.write_text("[maps]\nmin_dist_over_error = 1.0\n")
    capsys.readouterr()
    assert main(["select", "--table", str(catalog_path), "--mode", "maps", "--config", str(config), "--report",
                 "--out", str(selected)]) == 0  # fmt: skip
    report = capsys.readouterr().out
    assert "dist/dist_error > 1" in report and "|z_gc| < 0.3 kpc" in report
    n_selected = len(read_catalog(selected)[0])
    assert 0 < n_selected < 426

    from zpdist_dashboard.app import build_app
    from zpdist_dashboard.state import load_catalog

    loaded = load_catalog(catalog_path)
    assert len(loaded.frame) == 426
    build_app(loaded)
