"""The Gaia-scale section in a real browser: `zpdist serve --gaia` draws its maps, a zoom and the toggle of the stars
outside the training domain are answered by the server without error, and the other tabs still draw.

Every wait is for a condition: the server's answer is seen in the image the star-count map's Bokeh model holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import serving, wait_until
from tests.zeropoint_output import write_zeropoint_output

SCREENSHOTS = Path(__file__).parent / "screenshots"
SCREENSHOTS.mkdir(exist_ok=True)
TIMEOUT_MS = 60_000
#: Plots of the section: the star-count map, three mean-Δϖ maps and the Δϖ-against-G curve.
SECTION_PLOTS = 5
#: The star-count map's title.
COUNT_MAP = "Stars over (G, BP−RP)"
#: The image a map's Bokeh model holds: its left edge and width (mag) and the sum of its finite bins (stars).
MAP_IMAGE = """(title) => {
  for (const doc of Bokeh.documents) for (const model of doc.all_models) {
    if (model.type !== "Figure" || !model.title || model.title.text !== title) continue;
    const renderer = model.renderers.find(r => r.glyph && r.glyph.type === "Image");
    const data = renderer.data_source.data;
    if (!data.image || data.image.length === 0) return null;
    let total = 0;
    for (const value of data.image[0]) if (Number.isFinite(value)) total += value;
    return {x: data.x[0], dw: data.dw[0], total: total};
  }
  return null;
}"""


@pytest.fixture(scope="module")
def gaia_server(ui_catalog: Path, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``zpdist serve --catalog <ui_catalog> --gaia <a 20,000-row zeropoint output>``; yields its URL and log."""
    output = write_zeropoint_output(tmp_path_factory.mktemp("ui-gaia"))
    log = tmp_path_factory.mktemp("gaia-server") / "serve.log"
    with serving(["--catalog", str(ui_catalog), "--gaia", str(output)], log) as url:
        yield url, log


def test_the_gaia_section_draws_and_answers_a_zoom_and_the_toggle(page, gaia_server):
    url, log = gaia_server
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    blocked = "Failed to load resource: net::ERR_FAILED"  # the requests aborted below (fonts, CDN)
    page.set_viewport_size({"width": 1600, "height": 1200})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
    page.goto(url, timeout=TIMEOUT_MS)
    page.get_by_text("Gaia-scale table").first.wait_for(timeout=TIMEOUT_MS)
    figures = page.locator(".bk-Figure")
    figures.nth(SECTION_PLOTS).wait_for(timeout=TIMEOUT_MS)
    section = [figures.nth(i) for i in range(figures.count() - SECTION_PLOTS, figures.count())]
    for figure in section:
        expect(figure.locator("canvas").first).to_be_visible(timeout=TIMEOUT_MS)
        box = figure.locator("canvas").first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100

    shown = wait_until(lambda: page.evaluate(MAP_IMAGE, COUNT_MAP), TIMEOUT_MS / 1000, page, what="the count map")
    section[0].scroll_into_view_if_needed()
    box = section[0].bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)  # zoom in: the server re-bins the histograms for the new, narrower range
    zoomed = wait_until(
        lambda: (image := page.evaluate(MAP_IMAGE, COUNT_MAP))["dw"] < 0.9 * shown["dw"] and image,
        TIMEOUT_MS / 1000, page, what="the re-binned image of the zoomed range",
    )  # fmt: skip
    page.get_by_role("button", name="only").click()  # the stars outside the training domain alone
    toggled = wait_until(
        lambda: (image := page.evaluate(MAP_IMAGE, COUNT_MAP))["total"] != zoomed["total"] and image,
        TIMEOUT_MS / 1000, page, what="the star-count map redrawn after the toggle",
    )  # fmt: skip
    assert toggled["dw"] == pytest.approx(zoomed["dw"]) and toggled["total"] > 0  # the same window, other stars
    page.screenshot(path=SCREENSHOTS / "gaia-scale.png", full_page=True)

    page.get_by_text("Distances", exact=True).first.click()  # the other tabs still draw beside the section
    page.get_by_text("more precise than Gaia", exact=False).first.wait_for(timeout=TIMEOUT_MS)
    expect(figures).to_have_count(4, timeout=TIMEOUT_MS)
    server_log = log.read_text()
    assert not [e for e in errors if e != blocked], errors
    assert "Traceback" not in server_log and "raised" not in server_log, server_log
    assert "Gaia-scale histograms" in server_log
