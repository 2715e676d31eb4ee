"""The Gaia-scale section in a real browser: `zpdist serve --gaia` draws its maps, and a zoom and the toggle of the
stars outside the training domain are answered by the server without error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_dashboard_gaia_scale import write_zeropoint_output
from tests.ui.conftest import serving

SCREENSHOTS = Path(__file__).parent / "screenshots"
SCREENSHOTS.mkdir(exist_ok=True)
TIMEOUT_MS = 60_000
#: Plots of the section: the star-count map, three mean-Δϖ maps and the Δϖ-against-G curve.
SECTION_PLOTS = 5


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
    page.wait_for_timeout(1000)
    section = [figures.nth(i) for i in range(figures.count() - SECTION_PLOTS, figures.count())]
    for figure in section:
        box = figure.locator("canvas").first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100

    section[0].scroll_into_view_if_needed()
    box = section[0].bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)  # zoom in: the server re-bins the histograms for the new range
    page.wait_for_timeout(1500)
    before = section[0].screenshot()
    page.get_by_role("button", name="only").click()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while section[0].screenshot() == before:  # the map redrawn with the stars outside the domain alone
        assert time.monotonic() < deadline, "the star-count map did not change after the toggle"
        page.wait_for_timeout(250)
    page.screenshot(path=SCREENSHOTS / "gaia-scale.png", full_page=True)
    server_log = log.read_text()
    assert not [e for e in errors if e != blocked], errors
    assert "Traceback" not in server_log and "raised" not in server_log, server_log
    assert "Gaia-scale histograms" in server_log
