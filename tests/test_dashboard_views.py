"""The tabs' view logic without a browser: what each plot computes, missing columns, and the download controls."""

from __future__ import annotations

import sys

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from tests.synthetic_catalog import OFFSET_UAS, write_synthetic_catalog
from zpdist.maps import binned_median_map, color_limits
from zpdist.precision import crossover_distance, fractional_error_profile
from zpdist.selection import MapCuts, apply_cuts, map_cuts
from zpdist_dashboard.app import quality_cut_toggles
from zpdist_dashboard.selection import ROUTE_MODULE, SelectionControls
from zpdist_dashboard.state import DashboardState, Selection, load_catalog
from zpdist_dashboard.views.abundances import AbundancesView
from zpdist_dashboard.views.distances import DistancesView
from zpdist_dashboard.views.zeropoint import ZeroPointView


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> DashboardState:
    return DashboardState(load_catalog(write_synthetic_catalog(tmp_path_factory.mktemp("c") / "c.parquet", 1500)))


def _alerts(viewable) -> list[str]:
    return [a.object for a in viewable.select(pn.pane.Alert)]


def test_abundance_map_is_the_binned_median_with_percentile_colours(state):
    view = AbundancesView(state=state)
    image = view._image(state.mask, "mg_fe", 20, 10, "x_gc", "y_gc")
    f = state.catalog.frame
    edges = np.linspace(*view._limits["x_gc"], 21)
    expected = binned_median_map(f["x_gc"], f["y_gc"], f["mg_fe"], edges, edges, 10)
    np.testing.assert_allclose(image.dimension_values(2, flat=False), expected.statistic, equal_nan=True)
    assert image.opts.get().kwargs["clim"] == pytest.approx(color_limits(expected.statistic))
    profiles = view._profiles(state.mask, "mg_fe", 10)
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
    overlay = ZeroPointView(state=state)._trend(state.mask, "phot_g_mean_mag")
    curves = [e for e in overlay if isinstance(e, hv.Curve)]
    assert [c.label for c in curves] == ["model Δϖ", "median ϖ Gaia − ϖ NN"]
    np.testing.assert_allclose(curves[0].dimension_values(1), OFFSET_UAS)
    summary = ZeroPointView(state=state)._summary()
    assert "-51.0 ± 2.5 µas" in summary[0].object and "-52.3 ± 2.0" in summary[0].object
    assert not _alerts(pn.panel(ZeroPointView(state=state)))


def test_missing_columns_are_named_and_the_rest_still_draws(tmp_path):
    path = write_synthetic_catalog(tmp_path / "c.parquet", 300, drop=("teff", "z_gc", "parallax"))
    state = DashboardState(load_catalog(path))
    zero_point = _alerts(pn.panel(ZeroPointView(state=state)))
    assert any("'teff'" in a for a in zero_point) and any("'parallax'" in a for a in zero_point)
    assert len(zero_point) == 4  # the two Teff maps, the Teff trend and the residuals; the (G, BP−RP) map draws
    assert any("'z_gc'" in a and "R–z map" in a for a in _alerts(pn.panel(AbundancesView(state=state))))
    assert any("'parallax'" in a for a in _alerts(pn.panel(DistancesView(state=state))))
    pn.panel(AbundancesView(state=state)).get_root()  # the x–y map and its controls still render


def test_download_controls_follow_the_selection(state, tmp_path, monkeypatch):
    monkeypatch.setenv("ZPDIST_DOWNLOADS", str(tmp_path))
    monkeypatch.setitem(sys.modules, ROUTE_MODULE, sys.modules[__name__])
    controls = SelectionControls(state=state)
    assert controls._prepare.disabled and "Select stars" in controls.link
    state.selection = Selection("x_gc", "y_gc", bounds=(100, 100, 101, 101))
    assert controls._prepare.disabled and "empty" in controls.link
    state.selection = Selection("x_gc", "y_gc", bounds=(-10, -3, -6, 3))
    n = int(state.selected.sum())
    assert n > 0 and not controls._prepare.disabled and f"**{n}** stars selected" in controls._count.object
    assert f"prepare the download of the {n} selected stars" in controls.link
    controls.fmt = "Parquet"
    controls._write()
    (written,) = tmp_path.glob("zpdist-selection-*.parquet")
    assert f"/zpdist-downloads/{written.name}" in controls.link and f"Download {n} stars" in controls.link
    assert len(load_catalog(written).frame) == n
    controls._reset()
    assert state.selection is None and controls._prepare.disabled


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
