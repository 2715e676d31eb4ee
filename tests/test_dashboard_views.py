"""The tabs' view logic without a browser: what each plot computes, what a plot lacks (columns absent or without a
finite value, a catalog without stars), text from the file shown as text, and the download controls."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import holoviews as hv
import numpy as np
import panel as pn
import pytest
from bokeh.document import Document

from tests.synthetic_catalog import OFFSET_UAS, page_html, shown, synthetic_catalog, write_synthetic_catalog
from zpdist.catalog import UNITS
from zpdist.io.catalog import write_catalog
from zpdist.maps import binned_median_map, color_limits
from zpdist.precision import crossover_distance, fractional_error_profile
from zpdist.selection import MapCuts, apply_cuts, map_cuts
from zpdist_dashboard import export
from zpdist_dashboard.app import build_app, quality_cut_toggles
from zpdist_dashboard.export import DownloadFolder
from zpdist_dashboard.selection import ROUTE_MODULE, SelectionControls
from zpdist_dashboard.state import DashboardState, Selection, load_catalog
from zpdist_dashboard.views.abundances import AbundancesView
from zpdist_dashboard.views.distances import DistancesView
from zpdist_dashboard.views.zeropoint import OffsetChecksView, ZeroPointView


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> DashboardState:
    return DashboardState(load_catalog(write_synthetic_catalog(tmp_path_factory.mktemp("c") / "c.parquet", 1500)))


def _alerts(viewable) -> list[str]:
    """The texts the alerts of ``viewable`` show."""
    return [shown(a) for a in viewable.select(pn.pane.Alert)]


def _views(state: DashboardState) -> dict[str, pn.viewable.Viewable]:
    """Every tab's view over ``state``, laid out."""
    views = (ZeroPointView, OffsetChecksView, DistancesView, AbundancesView)
    return {view.__name__: pn.panel(view(state=state)) for view in views}


def test_abundance_map_is_the_binned_median_with_percentile_colours(state):
    view = AbundancesView(state=state)
    image = view._image(state.filter_key, "mg_fe", 20, 10, "x_gc", "y_gc")
    f = state.catalog.frame
    edges = np.linspace(*view._limits["x_gc"], 21)
    expected = binned_median_map(f["x_gc"], f["y_gc"], f["mg_fe"], edges, edges, 10)
    np.testing.assert_allclose(image.dimension_values(2, flat=False), expected.statistic, equal_nan=True)
    assert image.opts.get().kwargs["clim"] == pytest.approx(color_limits(expected.statistic))
    profiles = view._profiles(state.filter_key, "mg_fe", 10)
    assert len(profiles) == 4 and all(isinstance(c, hv.Curve) for c in profiles)


def test_distances_profile_and_crossover_come_from_core_precision(state):
    view = DistancesView(state=state)
    expected = fractional_error_profile(state.catalog.frame)
    np.testing.assert_allclose(view.profile["nn_frac_error"], expected["nn_frac_error"], equal_nan=True)
    assert view.crossover_pc == pytest.approx(crossover_distance(expected), nan_ok=True)
    state.set_range("dist_kpc", (0.0, 1.0))
    try:
        assert view.profile["n"].sum() == state.mask.sum()
    finally:
        state.set_range("dist_kpc", None)


def test_zero_point_trend_shows_model_and_data(state):
    trends = OffsetChecksView(state=state)
    overlay = trends._trend(state.filter_key, "phot_g_mean_mag")
    curves = [e for e in overlay if isinstance(e, hv.Curve)]
    assert [c.label for c in curves] == ["model Δϖ", "median ϖ Gaia − ϖ NN"]
    np.testing.assert_allclose(curves[0].dimension_values(1), OFFSET_UAS)
    # the medians of the same filter state are computed once for every session
    other = DashboardState(state.catalog)
    assert other.filter_key == state.filter_key
    assert OffsetChecksView(state=other)._medians(other.filter_key, "phot_g_mean_mag") is (
        trends._medians(state.filter_key, "phot_g_mean_mag")
    )
    summary = ZeroPointView(state=state)._summary()
    assert "-51.0 ± 2.5 µas" in summary.object and "-52.3 ± 2.0" in summary.object
    (comparison, *_) = pn.panel(OffsetChecksView(state=state)).select(pn.pane.HoloViews)
    points = comparison.object.Scatter.I
    assert points.dimension_values(0)[0] == "this catalog" and points.dimension_values(1)[0] == OFFSET_UAS
    assert not any(_alerts(view) for view in _views(state).values())


def test_missing_columns_are_named_and_the_rest_still_draws(tmp_path):
    path = write_synthetic_catalog(tmp_path / "c.parquet", 300, drop=("teff", "z_gc", "parallax"))
    alerts = {name: _alerts(view) for name, view in _views(DashboardState(load_catalog(path))).items()}
    assert len(alerts["ZeroPointView"]) == 2  # the two Teff maps; the (G, BP−RP) map draws
    assert all("cannot be drawn from c.parquet: the catalog lacks column 'teff'." in a for a in alerts["ZeroPointView"])
    assert len(alerts["OffsetChecksView"]) == 2  # the Teff trend and the residuals
    assert any("lacks column 'parallax'" in a for a in alerts["OffsetChecksView"])
    assert any("lacks column 'z_gc'" in a and "R–z map" in a for a in alerts["AbundancesView"])
    assert any("lacks column 'parallax'" in a for a in alerts["DistancesView"])
    pn.panel(AbundancesView(state=DashboardState(load_catalog(path)))).get_root()  # the x–y map still renders


def _catalog(path: Path, n_stars: int = 300, metadata: dict | None = None, **columns) -> Path:
    """The synthetic catalog at ``path`` with ``columns`` replaced (column -> values) and its metadata updated."""
    rows, meta = synthetic_catalog(n_stars)
    for name, values in columns.items():
        rows[name] = values
    return write_catalog(rows, path, {**meta, **(metadata or {})}, UNITS)


def test_columns_without_finite_values_are_named_and_the_page_builds(tmp_path):
    bp_rp = synthetic_catalog(300)[0]["bp_rp"].to_numpy().copy()
    bp_rp[:5] = [np.inf, -np.inf, np.nan, np.inf, np.nan]
    path = _catalog(tmp_path / "c.parquet", teff=np.nan, phot_g_mean_mag=np.inf, dist=np.nan, bp_rp=bp_rp)
    catalog = load_catalog(path)
    page = build_app(catalog)
    page.server_doc(Document())  # the whole first page renders
    (notices,) = _alerts(pn.Column(*page.sidebar))
    assert notices.splitlines() == [
        "No filter on G (mag): column 'phot_g_mean_mag' has no finite values.",
        "No filter on Teff (K): column 'teff' has no finite values.",
        "No filter on distance (kpc): column 'dist' has no finite values.",
        "No filter on fractional distance error σd/d: column 'dist' has no finite values.",
    ]
    (slider,) = [w for w in page.sidebar if isinstance(w, pn.widgets.RangeSlider) and w.label.startswith("BP")]
    finite = bp_rp[np.isfinite(bp_rp)]
    assert slider.start <= finite.min() < slider.start + slider.step
    assert slider.end - slider.step < finite.max() <= slider.end
    alerts = {name: _alerts(view) for name, view in _views(DashboardState(catalog)).items()}
    assert any("column 'phot_g_mean_mag' has no finite values" in a for a in alerts["ZeroPointView"])
    assert any("column 'teff' has no finite values" in a for a in alerts["OffsetChecksView"])
    # a derived column is traced back to the catalog's: NN distances from `dist`
    assert any("column 'dist' has no finite values" in a for a in alerts["DistancesView"])


def test_a_catalog_without_stars_says_so(tmp_path):
    path = write_synthetic_catalog(tmp_path / "empty.parquet", 0)
    catalog = load_catalog(path)
    page = build_app(catalog)
    page.server_doc(Document())
    (alert,) = page.main.objects
    assert shown(alert) == "No dashboard: the catalog empty.parquet has no stars."
    assert shown(page.sidebar[0]).startswith("empty.parquet: 0 stars")
    for name, view in _views(DashboardState(catalog)).items():  # each view copes too, naming what it lacks
        view.get_root()
        assert all("has no finite values" in a for a in _alerts(view)), name


def test_text_from_the_file_is_shown_as_text(tmp_path):
    attack = '<img src=x onerror="alert(1)">'
    metadata = {"model": {"mode": attack, "offset_model": "<script>alert(2)</script>"}}
    path = _catalog(tmp_path / f"{attack}.parquet", metadata=metadata, teff=np.nan)
    catalog = load_catalog(path)
    about = build_app(catalog).sidebar[0]
    assert shown(about) == f"{attack}.parquet: 300 stars; model {attack} mode, <script>alert(2)</script> offset."
    state = DashboardState(catalog)
    (describe,) = [p for p in _views(state)["ZeroPointView"].select(pn.pane.Markdown) if "Offset model" in shown(p)]
    notices = [a for view in _views(state).values() for a in view.select(pn.pane.Alert)]
    assert notices and all(f"cannot be drawn from {attack}.parquet: column" in shown(a) for a in notices)
    for pane in (about, describe, *notices):
        assert "<img" not in page_html(pane) and "<script" not in page_html(pane)


def test_download_controls_follow_the_selection(state, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, ROUTE_MODULE, sys.modules[__name__])
    controls = SelectionControls(state=state, downloads=DownloadFolder(tmp_path))
    assert controls._prepare.disabled and "Select stars" in controls.link
    state.selection = Selection("x_gc", "y_gc", bounds=(100, 100, 101, 101))
    assert controls._prepare.disabled and "empty" in controls.link
    state.selection = Selection("x_gc", "y_gc", bounds=(-10, -3, -6, 3))
    n = int(state.selected.sum())
    assert n > 0 and not controls._prepare.disabled and f"**{n}** stars selected" in controls._count.object
    assert f"prepare the download of the {n} selected stars" in controls.link
    controls.fmt = "Parquet"
    controls._write()
    (written,) = controls.downloads.path.glob("zpdist-selection-*.parquet")
    assert f"/zpdist-downloads/{written.name}" in controls.link and f"Download {n} stars" in controls.link
    assert len(load_catalog(written).frame) == n
    controls._reset()
    assert state.selection is None and controls._prepare.disabled


def test_a_download_that_cannot_be_written_says_why_in_the_page(state, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, ROUTE_MODULE, sys.modules[__name__])
    state.selection = Selection("x_gc", "y_gc", bounds=(-10, -3, -6, 3))
    try:
        capped = SelectionControls(state=state, downloads=DownloadFolder(tmp_path, max_bytes=1000))
        capped._write()
        assert shown(pn.pane.Markdown(capped.link)).startswith(
            f"The download failed: the download of {int(state.selected.sum()):,} stars is"
        ) and "over this server's cap of 0.0 MB: select fewer stars" in shown(pn.pane.Markdown(capped.link))

        def full(*args) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(export, "write_selection", full)
        controls = SelectionControls(state=state, downloads=DownloadFolder(tmp_path))
        controls._write()
        assert shown(pn.pane.Markdown(controls.link)).endswith("No space left on device")
        assert list(controls.downloads.path.iterdir()) == [] and 'zpdist-download"' not in controls.link
    finally:
        state.selection = None


def test_downloads_are_disabled_without_the_route(state, monkeypatch):
    monkeypatch.delitem(sys.modules, ROUTE_MODULE, raising=False)
    state.selection = Selection("x_gc", "y_gc", bounds=(-10, -3, -6, 3))
    controls = SelectionControls(state=state)
    assert controls._prepare.disabled and "--plugins zpdist_dashboard.routes" in controls.link
    state.selection = None


def test_the_quality_toggles_apply_zpdist_selections_map_cuts(state):
    toggles = quality_cut_toggles(state)
    cuts = map_cuts(MapCuts())
    assert list(toggles.options) == [cut.name for cut in cuts]
    try:
        toggles.value = [toggles.options[cuts[1].name], toggles.options[cuts[2].name]]
        assert state.cuts == [1, 2]
        np.testing.assert_array_equal(state.mask, apply_cuts(state.catalog.frame, cuts[1:3])[0])
        assert 0 < state.mask.sum() < len(state.mask)
        state.element = "mg_fe"
        assert list(toggles.options)[-1] == map_cuts(MapCuts(element="mg_fe"))[-1].name and toggles.value == [1, 2]
    finally:
        state.cuts, state.element = [], "fe_h"
