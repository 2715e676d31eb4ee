"""Catalogs that once blanked the page for every viewer (issue 14), in a real browser: a catalog without stars, and
one whose ``teff`` is all NaN, each give a page that says what is missing; the second draws everything else, and a
box drawn on its map selects stars and is outlined.

Every wait is for a condition (a text, a plot), never for a fixed time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.synthetic_catalog import synthetic_catalog
from tests.ui.conftest import serving
from zpdist.catalog import UNITS
from zpdist.io.catalog import write_catalog
from zpdist_dashboard.views.base import OUTLINE

SCREENSHOTS = Path(__file__).parent / "screenshots"
SCREENSHOTS.mkdir(exist_ok=True)
#: Milliseconds to wait for the page or a plot.
TIMEOUT_MS = 60_000
#: What the browser reports for the requests to other hosts that the page's route aborts.
BLOCKED = "Failed to load resource: net::ERR_FAILED"
#: The vertices of the selection's outline, as the page's Bokeh models hold them.
OUTLINE_XS = f"""() => Bokeh.documents.flatMap(doc => [...doc.all_models])
    .filter(model => model.name === "{OUTLINE}").map(model => model.xs.length)"""


def _serve(rows, name: str, folder: Path) -> Iterator[tuple[str, Path]]:
    """``zpdist serve`` over ``rows`` written as the catalog ``name`` in ``folder``; yields its URL and log."""
    _, metadata = synthetic_catalog(1)
    catalog = write_catalog(rows, folder / name, metadata, UNITS)
    log = folder / "serve.log"
    with serving(["--catalog", str(catalog)], log) as url:
        yield url, log


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A server over a catalog with every column and no row (what ``zpdist predict`` writes for an empty table)."""
    yield from _serve(synthetic_catalog(500)[0].iloc[:0], "empty.parquet", tmp_path_factory.mktemp("empty"))


@pytest.fixture(scope="module")
def nan_teff_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A server over a 500-star catalog whose ``teff`` column holds only NaN."""
    rows = synthetic_catalog(500)[0].assign(teff=np.nan)
    yield from _serve(rows, "nan-teff.parquet", tmp_path_factory.mktemp("nan-teff"))


def _open(page, url: str) -> list[str]:
    """Open ``url`` in ``page`` (requests to other hosts aborted); returns the list the page's errors go to."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.set_viewport_size({"width": 1600, "height": 1200})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
    page.goto(url, timeout=TIMEOUT_MS)
    return errors


def test_a_catalog_without_stars_gives_a_page_that_says_so(page, empty_server):
    url, log = empty_server
    errors = _open(page, url)
    page.get_by_text("the catalog empty.parquet has no stars.", exact=False).wait_for(timeout=TIMEOUT_MS)
    expect(page.get_by_text("empty.parquet: 0 stars", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    page.screenshot(path=SCREENSHOTS / "empty-catalog.png", full_page=True)
    assert page.locator(".bk-Figure").count() == 0
    assert not [e for e in errors if e != BLOCKED], errors
    assert "Traceback" not in log.read_text()


def test_an_all_nan_column_is_named_and_the_rest_draws(page, nan_teff_server):
    url, log = nan_teff_server
    errors = _open(page, url)
    page.get_by_text("No filter on Teff (K): column 'teff' has no finite values.").wait_for(timeout=TIMEOUT_MS)
    for title in ("Δϖ over (Teff, G)", "Δϖ over (BP−RP, Teff)"):  # the maps over Teff say why they are missing
        notice = f"{title} cannot be drawn from nan-teff.parquet: column 'teff' has no finite values."
        expect(page.get_by_text(notice)).to_be_visible(timeout=TIMEOUT_MS)
    figure = page.locator(".bk-Figure").first  # the Δϖ map over (G, BP−RP) draws
    expect(figure.locator("canvas").first).to_be_visible(timeout=TIMEOUT_MS)
    box = figure.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    expect(page.get_by_text("G (mag)").first).to_be_visible()  # the other filters are there
    page.screenshot(path=SCREENSHOTS / "nan-teff-catalog.png", full_page=True)
    assert not [e for e in errors if e != BLOCKED], errors
    assert "Traceback" not in log.read_text()


def test_a_box_drawn_on_a_map_selects_stars_and_is_outlined(page, nan_teff_server):
    url, _ = nan_teff_server
    _open(page, url)
    figure = page.locator(".bk-Figure").first
    expect(figure.locator("canvas").first).to_be_visible(timeout=TIMEOUT_MS)
    assert page.evaluate(OUTLINE_XS) == [0]
    box = figure.locator("canvas").first.bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.45 * box["width"], box["y"] + 0.5 * box["height"], steps=5)
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.7 * box["height"], steps=5)
    page.mouse.up()
    selected = page.get_by_text(re.compile(r"\d+ stars selected")).first
    selected.wait_for(timeout=TIMEOUT_MS)
    assert int(re.search(r"(\d+) stars selected", selected.inner_text()).group(1)) > 0
    page.wait_for_function(f"() => ({OUTLINE_XS})()[0] === 4", timeout=TIMEOUT_MS)  # the box's four corners
    page.get_by_role("button", name="Clear selection").click()
    page.wait_for_function(f"() => ({OUTLINE_XS})()[0] === 0", timeout=TIMEOUT_MS)
