"""A filter change redraws a datashaded map in a real browser: the server puts the new image straight into the
page's Bokeh models (no HoloViews redraw), and the page then shows the image of the filtered stars.

Every wait is for a condition (a count of plots, a value of a Bokeh model), never for a fixed time.
"""

from __future__ import annotations

import numpy as np
from playwright.sync_api import expect

from zpdist_dashboard.raster import RASTER_BINS, MapRaster
from zpdist_dashboard.state import RANGE_FILTERS, DashboardState, load_catalog
from zpdist_dashboard.views.base import dimension

#: Milliseconds to wait for the page, a plot, or a server round trip.
TIMEOUT_MS = 60_000
#: The map followed: the Zero-point tab's first Δϖ map, over (G, BP−RP).
TITLE, X, Y = "Δϖ over (G, BP−RP)", "phot_g_mean_mag", "bp_rp"
#: The image that map's page shows, flattened (rows up from the bottom), NaN where no star falls.
SHOWN_IMAGE = """(title) => {
    const figure = Bokeh.documents.flatMap(doc => [...doc.all_models])
        .find(m => m.type === "Figure" && m.title && m.title.text === title);
    const image = figure.renderers.find(r => r.glyph && r.glyph.type === "Image");
    return Array.from(image.data_source.data.image[0], v => Number.isFinite(v) ? v : null);
}"""
#: Moves a range slider (found by its title) as a drag that ends does: its value, then its throttled value, which
#: is what the dashboard's filter follows.
MOVE_SLIDER = """([title, value]) => {
    const slider = Bokeh.documents.flatMap(doc => [...doc.all_models])
        .find(m => m.type === "RangeSlider" && m.title === title);
    slider.setv({value: value, value_throttled: value});
}"""


def test_a_filter_change_redraws_the_map_with_the_filtered_stars(local_page, server, ui_catalog):
    page = local_page
    page.goto(server, timeout=TIMEOUT_MS)
    expect(page.locator(".bk-Figure")).to_have_count(3, timeout=TIMEOUT_MS)
    before = page.evaluate(SHOWN_IMAGE, TITLE)

    catalog = load_catalog(ui_catalog)
    teff = catalog.frame["teff"]
    window = (float(teff.quantile(0.4)), float(teff.quantile(0.7)))
    page.evaluate(MOVE_SLIDER, [RANGE_FILTERS["teff"], list(window)])
    page.wait_for_function(f"(before) => JSON.stringify(({SHOWN_IMAGE})({TITLE!r})) !== JSON.stringify(before)",
                           arg=before, timeout=TIMEOUT_MS)  # fmt: skip

    state = DashboardState(catalog)
    state.set_range("teff", window)
    raster = MapRaster.of(catalog, dimension(catalog, X), dimension(catalog, Y), "zp_offset_uas")
    expected = raster.aggregate(state.mask).ravel()
    shown = np.array(page.evaluate(SHOWN_IMAGE, TITLE), dtype=float)
    assert shown.size == RASTER_BINS[0] * RASTER_BINS[1]
    assert 0 < np.isfinite(shown).sum() < np.isfinite(np.array(before, dtype=float)).sum()  # fewer stars drawn
    np.testing.assert_array_equal(np.isfinite(shown), np.isfinite(expected))
    np.testing.assert_allclose(shown[np.isfinite(shown)], expected[np.isfinite(expected)], rtol=1e-6)
