"""The Zero-point tab's Gaia-scale section: the view over the engine's histograms (the engine itself is tested
without Panel in test_zeropoint_maps.py), the app showing it, and `zpdist serve --gaia`."""

from __future__ import annotations

from pathlib import Path

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from tests.synthetic_catalog import write_synthetic_catalog
from tests.zeropoint_output import ROWS, write_zeropoint_output
from zpdist.cli import build_parser, main
from zpdist.zeropoint_maps.build import build_histograms
from zpdist.zeropoint_maps.histograms import MAP_PLANES
from zpdist.zeropoint_maps.table import open_zeropoint_output
from zpdist_dashboard.app import build_app
from zpdist_dashboard.state import load_catalog
from zpdist_dashboard.views.gaia_scale import OUTSIDE_CHOICES, GaiaScaleView

BINS = 64


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return write_zeropoint_output(tmp_path_factory.mktemp("gaia-scale"))


@pytest.fixture(scope="module")
def histograms(output):
    return build_histograms(open_zeropoint_output(output), bins=BINS, progress=False)


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
    for bad in (inputs, tmp_path / "absent"):
        assert main(["serve", "--catalog", str(catalog), "--gaia", str(bad), "--port", "5999"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zpdist serve: error:") and str(bad) in err and len(err.strip().splitlines()) == 1
