"""The dashboard in a real browser: every tab draws, the element changes, a box selection is counted and downloaded.

Every wait is for a condition (an element, a count of plots, a value of a Bokeh model), never for a fixed time.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from playwright.sync_api import expect

from zpdist_dashboard.state import Selection, filter_mask, load_catalog

#: Where each tab's screenshot is saved (git-ignored), to be looked at by a person.
SCREENSHOTS = Path(__file__).parent / "screenshots"
SCREENSHOTS.mkdir(exist_ok=True)
#: Milliseconds to wait for the page, a plot, or a server round trip.
TIMEOUT_MS = 60_000
#: Plots of each tab (the other tabs are not drawn: they are dynamic).
TAB_PLOTS = {"Zero-point": 8, "Distances": 4, "Abundances": 3}
#: How many colour bars of the page's Bokeh documents carry a given title.
COLOR_BARS_TITLED = """(title) => Bokeh.documents.flatMap(doc => [...doc.all_models])
    .filter(model => model.type === "ColorBar" && model.title === title).length"""


def _open(page, url: str) -> None:
    page.goto(url, timeout=TIMEOUT_MS)
    page.get_by_text("Zero-point", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    expect(page.locator(".bk-Figure")).to_have_count(TAB_PLOTS["Zero-point"], timeout=TIMEOUT_MS)


def _tab(page, name: str) -> None:
    """Show the tab ``name`` and wait until its plots have replaced the previous tab's."""
    page.get_by_text(name, exact=True).first.click()
    expect(page.locator(".bk-Figure")).to_have_count(TAB_PLOTS[name], timeout=TIMEOUT_MS)
    for figure in page.locator(".bk-Figure").all():
        expect(figure.locator("canvas").first).to_be_visible(timeout=TIMEOUT_MS)


def _drag(page, figure, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag across ``figure`` between two points given as fractions of its width and height."""
    box = figure.bounding_box()
    (x0, y0), (x1, y1) = ((box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in (start, end))
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def _selected_count(page) -> int:
    text = page.get_by_text(re.compile(r"stars selected")).first.inner_text(timeout=TIMEOUT_MS)
    return int(re.search(r"(\d+) stars selected", text).group(1))


def test_each_tab_draws_and_the_element_changes(local_page, server):
    page = local_page
    _open(page, server)
    page.screenshot(path=SCREENSHOTS / "zero-point.png", full_page=True)
    assert page.get_by_text("Constant model").count() >= 1

    _tab(page, "Distances")
    page.get_by_text("more precise than Gaia", exact=False).first.wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=SCREENSHOTS / "distances.png", full_page=True)

    _tab(page, "Abundances")
    element = page.locator("select").first
    element.wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate(COLOR_BARS_TITLED, "[Mg/Fe]") == 0
    element.select_option(label="[Mg/Fe]")
    # the preview table gains the chosen element's column once the server has the new element, and both maps
    # are redrawn with it (their colour bars say so)
    page.get_by_text("mg_fe", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => ({COLOR_BARS_TITLED})('[Mg/Fe]') >= 2", timeout=TIMEOUT_MS)
    page.screenshot(path=SCREENSHOTS / "abundances.png", full_page=True)


def test_box_selection_is_counted_and_downloaded(local_page, server, ui_catalog):
    page = local_page
    _open(page, server)
    prepare = page.get_by_role("button", name="Prepare download")
    assert prepare.is_disabled()
    assert page.get_by_text("Select stars on a map to enable the download.").count() == 1

    # the first Δϖ map, over (G, BP−RP): a rasterized image, so the selection travels as a BoundsXY stream
    _drag(page, page.locator(".bk-Figure").nth(1), (0.3, 0.3), (0.6, 0.7))
    page.get_by_text(re.compile(r"\d+ stars selected")).first.wait_for(timeout=TIMEOUT_MS)
    count = _selected_count(page)
    assert count > 0
    page.screenshot(path=SCREENSHOTS / "selection.png", full_page=True)

    page.get_by_text("Parquet", exact=True).first.click()
    prepare.click()
    link = page.locator("a.zpdist-download")
    link.wait_for(timeout=TIMEOUT_MS)
    assert f"Download {count} stars (Parquet" in link.inner_text()
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        link.click()
    path = info.value.path()

    table = pq.read_table(path)
    assert table.num_rows == count
    metadata = __import__("json").loads(table.schema.metadata[b"zpdist"])
    region = metadata["export"]["selection"]
    assert region["kind"] == "box" and (region["x"], region["y"]) == ("phot_g_mean_mag", "bp_rp")
    assert metadata["model"]["offset_model"] == "constant"
    # the file holds exactly the stars inside the recorded box, with every catalog column
    catalog = load_catalog(ui_catalog)
    inside = filter_mask(catalog.frame, {}, [], "fe_h") & Selection(region["x"], region["y"], bounds=tuple(
        region["bounds"])).mask(catalog.frame)  # fmt: skip
    expected = catalog.frame.loc[inside, "apogee_id"].to_numpy()
    np.testing.assert_array_equal(np.sort(table.column("apogee_id").to_numpy(zero_copy_only=False)), np.sort(expected))
    assert table.column_names == list(catalog.columns)
