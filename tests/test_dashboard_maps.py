"""Binned statistics of core/maps.py against hand-computed values, and the dashboard's datashaded maps against
datashader."""

from __future__ import annotations

import gc
from pathlib import Path

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from tests.synthetic_catalog import synthetic_catalog
from zpdist.maps import bin_index, binned_median_map, color_limits, robust_edges, running_median
from zpdist_dashboard import raster
from zpdist_dashboard.raster import RASTER_BINS, SPARE, MapRaster, pixel_index
from zpdist_dashboard.state import DERIVED, Catalog, DashboardState, Selection
from zpdist_dashboard.views.base import OUTLINE, datashaded_map, dimension, selectable


def load_catalog_from_rows(frame: pd.DataFrame) -> Catalog:
    """``frame`` as :func:`zpdist_dashboard.state.load_catalog` would load it (derived columns added)."""
    columns = tuple(frame.columns)
    derived = {name: fn(frame) for name, (needs, fn) in DERIVED.items() if all(c in columns for c in needs)}
    return Catalog(pd.concat([frame, pd.DataFrame(derived, index=frame.index)], axis=1), {}, Path("c.parquet"), columns)


def test_bin_index_is_half_open_with_the_last_edge_included():
    edges = np.array([0.0, 1.0, 2.0])
    index = bin_index([-0.1, 0.0, 0.999, 1.0, 2.0, 2.01, np.nan], edges)
    assert index.tolist() == [-1, 0, 0, 1, 1, -1, -1]


def test_binned_median_map_by_hand():
    edges = np.array([0.0, 1.0, 2.0])
    # bin (x0, y0): values 1, 2, 9 -> median 2; bin (x1, y0): 4, 6 -> 5; bin (x0, y1): 7; outside and NaN dropped
    x = [0.5, 0.2, 0.7, 1.5, 1.2, 0.5, 3.0, 0.5]
    y = [0.5, 0.1, 0.9, 0.5, 0.2, 1.5, 0.5, 0.5]
    v = [1.0, 2.0, 9.0, 4.0, 6.0, 7.0, 5.0, np.nan]
    m = binned_median_map(x, y, v, edges, edges, min_count=1)
    assert m.count.tolist() == [[3, 2], [1, 0]]  # rows are y bins
    np.testing.assert_array_equal(m.statistic, [[2.0, 5.0], [7.0, np.nan]])
    np.testing.assert_array_equal(m.x_centres, [0.5, 1.5])
    masked = binned_median_map(x, y, v, edges, edges, min_count=2)
    np.testing.assert_array_equal(masked.statistic, [[2.0, 5.0], [np.nan, np.nan]])
    assert masked.count.tolist() == [[3, 2], [1, 0]]


def test_color_limits_are_the_10th_and_90th_percentiles_of_unmasked_bins():
    stat = np.array([[1.0, 2, 3, 4, 5], [6, 7, 8, 9, 10], [np.nan] * 5])
    assert color_limits(stat) == pytest.approx((1.9, 9.1))
    assert np.isnan(color_limits(np.full((2, 2), np.nan))).all()


def test_robust_edges():
    np.testing.assert_allclose(robust_edges(np.arange(101.0), 4, (0, 100)), [0, 25, 50, 75, 100])
    np.testing.assert_allclose(robust_edges([3.0, 3.0, np.nan], 4), [2.5, 3.5])


def test_running_median_by_hand():
    x = [0.1, 0.2, 0.3, 1.5, 1.6]
    y = [1.0, 2.0, 10.0, 5.0, 7.0]
    r = running_median(x, y, np.array([0.0, 1.0, 2.0, 3.0]))
    assert r["n"].tolist() == [3, 2, 0]
    np.testing.assert_allclose(r["median"], [2.0, 6.0, np.nan])
    # MAD of bin 0 = median(|1-2|, |2-2|, |10-2|) = 1
    assert r["median_error"][0] == pytest.approx(np.sqrt(np.pi / 2) * 1.4826 / np.sqrt(3))
    np.testing.assert_allclose(r["x_mid"], [0.5, 1.5, 2.5])
    cut = running_median(x, y, np.array([0.0, 1.0, 2.0]), min_count=3)
    assert np.isnan(cut["median"][1]) and cut["n"][1] == 2


# The dashboard's datashaded maps (zpdist_dashboard.views.base): the same pixels, counts and means as datashader's
# Canvas.points, made once per filter state for every session, and the selection drawn on them.


def _points(n: int = 20_000, seed: int = 4) -> Catalog:
    """Points over (a, b) with a value v: some outside the view (-2, 2)², some exactly on its edges, NaN among the
    coordinates and the values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "v": rng.normal(size=n)})
    frame.loc[::7, "v"] = np.nan
    frame.loc[::11, "a"] = np.nan
    frame.loc[1:4, ["a", "b"]] = [(2.0, 0.0), (-2.0, 0.0), (0.0, 2.0), (2.0, -2.0)]
    return Catalog(frame, {}, Path("points.parquet"), tuple(frame.columns))


def _datashader(frame: pd.DataFrame, value: str | None, view: tuple[float, float, float, float]) -> np.ndarray:
    canvas = ds.Canvas(plot_width=RASTER_BINS[0], plot_height=RASTER_BINS[1], x_range=view[:2], y_range=view[2:])
    agg = canvas.points(frame, "a", "b", agg=ds.mean(value) if value else ds.count()).to_numpy().astype(float)
    return np.where(agg == 0, np.nan, agg) if value is None else agg


def _assert_same_image(image: np.ndarray, expected: np.ndarray, values: pd.Series | None) -> None:
    """Counts (``values`` None) equal; means within the rounding of the values to single precision (2⁻²⁴ of the
    largest |value|, which a mean near zero shows) and of the mean itself."""
    if values is None:
        np.testing.assert_array_equal(image, expected)
    else:
        atol = 2.0**-24 * np.nanmax(np.abs(values))
        np.testing.assert_allclose(image, expected, rtol=2.0**-23, atol=atol, equal_nan=True)


@pytest.mark.parametrize("value", ["v", None])
def test_map_images_are_datashaders_counts_and_means(value):
    catalog = _points()
    x, y = hv.Dimension("a", range=(-2.0, 2.0)), hv.Dimension("b", range=(-2.0, 2.0))
    raster = MapRaster.of(catalog, x, y, value)
    assert MapRaster.of(catalog, x, y, value) is raster  # made once
    mask = np.random.default_rng(5).uniform(size=len(catalog.frame)) < 0.6
    for view in (None, (-0.5, 1.0, -1.0, 0.3)):  # the full view, then a zoom
        image = raster.aggregate(mask, view)
        expected = _datashader(catalog.frame[mask], value, view or raster.view)
        assert image.shape == (RASTER_BINS[1], RASTER_BINS[0]) and image.dtype == np.float32
        _assert_same_image(image, expected, value and catalog.frame[value])
    if value is None:  # every point inside the view, edges included, counted once
        a, b = catalog.frame["a"], catalog.frame["b"]
        assert np.nansum(raster.aggregate(np.ones(len(a), bool))) == (a.between(-2, 2) & b.between(-2, 2)).sum()


def test_pixels_outside_the_view_or_without_a_value_are_spare():
    x = np.array([0.0, 1.0, 0.999, np.nan, -0.1, 0.5])
    values = np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.inf])
    pixels = pixel_index(x, np.zeros(6), values, (0.0, 1.0, 0.0, 1.0), (4, 2))
    assert pixels[:3].tolist() == [0, 3, 3]  # the right edge belongs to the last pixel
    assert (pixels[3:] >= SPARE).all()


def test_a_map_is_aggregated_once_per_filter_state_for_all_sessions(monkeypatch):
    rows = synthetic_catalog(2000)[0]
    rows["zp_offset"] = np.random.default_rng(6).normal(-0.05, 0.01, len(rows))
    catalog = load_catalog_from_rows(rows)
    sessions = [DashboardState(catalog), DashboardState(catalog)]
    x, y = dimension(catalog, "phot_g_mean_mag"), dimension(catalog, "bp_rp")
    plots = [hv.renderer("bokeh").get_plot(datashaded_map(s, x, y, "zp_offset_uas", "Δϖ")) for s in sessions]
    calls = []
    kernel = raster._sum_count
    monkeypatch.setattr(raster, "_sum_count", lambda *args: calls.append(1) or kernel(*args))
    canvas = ds.Canvas(plot_width=RASTER_BINS[0], plot_height=RASTER_BINS[1], x_range=x.range, y_range=y.range)

    def datashader(mask: np.ndarray) -> np.ndarray:
        points = catalog.frame[mask]
        return canvas.points(points, "phot_g_mean_mag", "bp_rp", agg=ds.mean("zp_offset_uas")).to_numpy()

    for state in sessions:  # the second session's filter change finds the first one's mask and image
        state.set_range("teff", (4000.0, 4500.0))
    assert len(calls) == 1 and sessions[0].mask is sessions[1].mask and not sessions[0].mask.flags.writeable
    values = catalog.frame["zp_offset_uas"]
    for plot in plots:
        _assert_same_image(plot.handles["source"].data["image"][0], datashader(sessions[0].mask), values)
    sessions[1].set_range("teff", (4000.0, 4600.0))  # other filters: aggregated anew
    assert len(calls) == 2 and sessions[0].mask is not sessions[1].mask
    _assert_same_image(plots[1].handles["source"].data["image"][0], datashader(sessions[1].mask), values)


def _dense(n: int = 200_000, seed: int = 8) -> Catalog:
    """Points over (a, b) about six to a pixel of the view (-2, 2)², a value v far from zero (1000 + N(0, 1)) and a
    filter column t."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.uniform(-2, 2, n), "b": rng.uniform(-2, 2, n), "v": 1000 + rng.normal(size=n),
                          "t": rng.uniform(0, 1, n)})  # fmt: skip
    return Catalog(frame, {}, Path("dense.parquet"), tuple(frame.columns))


@pytest.mark.parametrize("value", ["v", None])
def test_a_filter_change_shows_datashaders_aggregate_of_the_filtered_stars(value):
    catalog = _dense()
    state = DashboardState(catalog)
    x, y = hv.Dimension("a", range=(-2.0, 2.0)), hv.Dimension("b", range=(-2.0, 2.0))
    plot = hv.renderer("bokeh").get_plot(selectable(datashaded_map(state, x, y, value, "map"), state, "a", "b"))
    for window in ((0.1, 0.7), (0.2, 0.9)):
        state.set_range("t", window)
        filtered = catalog.frame[catalog.frame["t"].between(*window)]
        expected = _datashader(filtered, value, (-2.0, 2.0, -2.0, 2.0))
        assert np.nanmin(expected) >= (1 if value is None else 990) and np.isnan(expected).mean() < 0.05
        _assert_same_image(plot.handles["source"].data["image"][0], expected, value and filtered[value])


def _shown(plot) -> tuple[dict, tuple[float, float]]:
    """What ``plot``'s Bokeh models show: its data source's columns, and its colour range."""
    data = {k: np.asarray(v[0]) for k, v in plot.handles["source"].data.items()}
    return data, (plot.handles["color_mapper"].low, plot.handles["color_mapper"].high)


@pytest.mark.parametrize(
    ("value", "opts"), [("zp_offset_uas", {}), (None, {}), ("zp_offset_uas", {"clim": (-60, -40)})]
)
def test_a_filter_change_shows_what_holoviews_would_draw_without_holoviews(value, opts):
    catalog = load_catalog_from_rows(synthetic_catalog(3000)[0].assign(zp_offset=lambda f: f["teff"] * -1e-5))
    state = DashboardState(catalog)
    x, y = dimension(catalog, "phot_g_mean_mag"), dimension(catalog, "bp_rp")

    def draw(view: tuple | None) -> tuple:
        """A map drawn by HoloViews, then zoomed to ``view`` (x range, y range) by HoloViews."""
        dmap = datashaded_map(state, x, y, value, "map", **opts)
        plot = hv.renderer("bokeh").get_plot(dmap)
        if view is not None:
            (zoom,) = dmap.streams
            zoom.event(x_range=view[0], y_range=view[1])
        return plot

    plot = draw(None)
    for view in (None, ((10.0, 14.0), (1.0, 2.0))):
        if view is not None:
            plot.hmap.streams[0].event(x_range=view[0], y_range=view[1])
        drawn = plot.current_frame
        state.set_range("teff", (4200.0, 4700.0 + 100 * (view is not None)))
        assert plot.current_frame is drawn  # HoloViews did not redraw the plot
        (data, colors), (expected, expected_colors) = _shown(plot), _shown(draw(view))  # drawn anew by HoloViews
        assert data.keys() == expected.keys() and np.isfinite(data["image"]).sum() > 50
        for key in data:
            np.testing.assert_array_equal(data[key], expected[key])
        assert colors == pytest.approx(expected_colors, rel=1e-6)
        assert colors == opts.get("clim", (np.nanmin(data["image"]), np.nanmax(data["image"])))


def test_a_map_gone_stops_following_the_filters():
    state = DashboardState(load_catalog_from_rows(synthetic_catalog(500)[0]))
    x, y = dimension(state.catalog, "phot_g_mean_mag"), dimension(state.catalog, "bp_rp")
    watchers = lambda: len(state.param.watchers.get("filter_key", {}).get("value", []))  # noqa: E731
    before = watchers()
    dmap = datashaded_map(state, x, y, None, "stars")
    plot = hv.renderer("bokeh").get_plot(dmap)
    assert watchers() == before + 1
    plot.cleanup()
    del dmap, plot
    gc.collect()
    state.set_range("teff", (4200.0, 4700.0))
    assert watchers() == before


def test_box_and_lasso_on_a_map_select_stars_and_outline_them():
    catalog = load_catalog_from_rows(synthetic_catalog(2000)[0])
    state = DashboardState(catalog)
    x, y = dimension(catalog, "phot_g_mean_mag"), dimension(catalog, "bp_rp")
    dmap = selectable(datashaded_map(state, x, y, None, "stars"), state, x.name, y.name)
    plot = hv.renderer("bokeh").get_plot(dmap)
    assert plot.state.title.text == "stars" and "colorbar" in plot.handles  # the map's options reach its images

    def outline() -> tuple[list[float], list[float]]:
        (annotation,) = [a for a in plot.state.center if a.name == OUTLINE]  # one outline, replaced as it changes
        return annotation.xs, annotation.ys

    streams = {type(s).__name__: s for s in hv.streams.Stream.registry[dmap]}
    state.set_range("teff", (4200.0, 4700.0))  # the map follows a filter change with the outline's hook kept
    counts = plot.handles["source"].data["image"][0]
    assert np.nansum(counts) == np.sum(state.mask & catalog.frame[x.name].between(*x.range) & catalog.frame[
        y.name].between(*y.range))  # fmt: skip
    state.set_range("teff", None)
    assert outline() == ([], [])
    streams["BoundsXY"].event(bounds=(10.0, 1.0, 14.0, 2.0))
    assert state.selection == Selection(x.name, y.name, bounds=(10.0, 1.0, 14.0, 2.0))
    assert outline() == ([10.0, 14.0, 14.0, 10.0], [1.0, 1.0, 2.0, 2.0])
    g, bp_rp = catalog.frame[x.name], catalog.frame[y.name]
    assert state.selected.sum() == (g.between(10, 14) & bp_rp.between(1, 2)).sum() > 0
    streams["Lasso"].event(geometry=np.array([(10.0, 1.0), (14.0, 1.0), (12.0, 2.0)]))
    assert outline() == ([10.0, 14.0, 12.0], [1.0, 1.0, 2.0])
    state.selection = Selection("x_gc", "y_gc", bounds=(0.0, 0.0, 1.0, 1.0))  # drawn on another map
    assert outline() == ([], [])
