"""The dashboard in a real browser: every tab draws, the element changes, a box selection is counted and downloaded;
the page fetches nothing from another host; a crafted catalog's text is shown as text; the server's download folder
is private and goes with it.

Every wait is for a condition (an element, a count of plots, a value of a Bokeh model), never for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect

from tests.synthetic_catalog import synthetic_catalog
from tests.ui.conftest import serving, wait_until
from zpdist.catalog import UNITS
from zpdist.io.catalog import write_catalog
from zpdist_dashboard.state import Selection, filter_mask, load_catalog

#: Where each tab's screenshot is saved (git-ignored), to be looked at by a person.
SCREENSHOTS = Path(__file__).parent / "screenshots"
SCREENSHOTS.mkdir(exist_ok=True)
#: Milliseconds to wait for the page, a plot, or a server round trip.
TIMEOUT_MS = 60_000
#: Plots of each tab (the other tabs are not drawn: they are dynamic).
TAB_PLOTS = {"Zero-point": 3, "Δϖ checks": 5, "Distances": 4, "Abundances": 3}
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

    _tab(page, "Δϖ checks")
    page.screenshot(path=SCREENSHOTS / "checks.png", full_page=True)

    _tab(page, "Distances")
    page.get_by_text("more precise than Gaia", exact=False).first.wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=SCREENSHOTS / "distances.png", full_page=True)

    _tab(page, "Abundances")
    element = page.locator("select").first
    element.wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate(COLOR_BARS_TITLED, "[Mg/Fe]") == 0
    element.select_option(label="[Mg/Fe]")
    # both maps are redrawn with the new element once the server has it (their colour bars say so)
    page.wait_for_function(f"() => ({COLOR_BARS_TITLED})('[Mg/Fe]') >= 2", timeout=TIMEOUT_MS)
    page.screenshot(path=SCREENSHOTS / "abundances.png", full_page=True)


def test_box_selection_is_counted_and_downloaded(local_page, server, ui_catalog):
    page = local_page
    _open(page, server)
    prepare = page.get_by_role("button", name="Prepare download")
    assert prepare.is_disabled()
    assert page.get_by_text("Select stars on a map to enable the download.").count() == 1

    # the first Δϖ map, over (G, BP−RP): a rasterized image, so the selection travels as a BoundsXY stream
    _drag(page, page.locator(".bk-Figure").first, (0.3, 0.3), (0.6, 0.7))
    page.get_by_text(re.compile(r"\d+ stars selected")).first.wait_for(timeout=TIMEOUT_MS)
    count = _selected_count(page)
    assert count > 0
    page.get_by_text("apogee_id", exact=True).first.wait_for(timeout=TIMEOUT_MS)  # the preview's table
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
    metadata = json.loads(table.schema.metadata[b"zpdist"])
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


def _local(url: str, server: str) -> bool:
    """Whether a request goes to the test server's host (``blob:`` URLs are the page's own, ``data:`` no request)."""
    if url.startswith("data:"):
        return True
    host = urlsplit(url.removeprefix("blob:")).hostname
    return host in ("127.0.0.1", "localhost") and url.removeprefix("blob:").startswith(server)


def test_the_page_fetches_nothing_from_another_host(page, server):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_viewport_size({"width": 1600, "height": 1200})
    _open(page, server)
    for name in list(TAB_PLOTS)[1:]:
        _tab(page, name)
    assert len(requests) > 10 and [url for url in requests if not _local(url, server)] == []


#: Markup planted in a crafted catalog: each would change the page (``window.zpdistInjected``) if it ran.
ATTACKS = {
    "name": '<img src=x onerror="window.zpdistInjected=1">',
    "mode": '<img src=x onerror="window.zpdistInjected=2;alert(2)">',
    "offset": "<script>window.zpdistInjected=3</script>",
    "star": '<img src=x onerror="window.zpdistInjected=4">',
}


@pytest.fixture(scope="module")
def crafted_server(tmp_path_factory) -> Iterator[str]:
    """``zpdist serve`` over a catalog whose file name, metadata and a star's identifier hold markup, and whose
    ``teff`` has no finite value (so that the notices name the file)."""
    rows, metadata = synthetic_catalog(2000)
    rows["teff"] = np.nan
    rows.loc[0, "apogee_id"] = ATTACKS["star"]  # a star in the middle of the (G, BP−RP) map
    rows.loc[0, ["phot_g_mean_mag", "bp_rp"]] = rows[["phot_g_mean_mag", "bp_rp"]].median()
    metadata["model"].update(mode=ATTACKS["mode"], offset_model=ATTACKS["offset"])
    path = tmp_path_factory.mktemp("crafted") / f"{ATTACKS['name']}.parquet"
    write_catalog(rows, path, metadata, UNITS)
    with serving(["--catalog", str(path)], tmp_path_factory.mktemp("crafted-server") / "serve.log") as url:
        yield url


def test_a_crafted_catalogs_text_is_shown_as_text(page, crafted_server):
    page.set_viewport_size({"width": 1600, "height": 1200})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(crafted_server, timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"{ATTACKS['name']}.parquet: 2,000 stars").first).to_be_visible(timeout=TIMEOUT_MS)
    about = page.get_by_text(re.compile(r"stars; model .* offset\.")).first.inner_text()
    assert f"model {ATTACKS['mode']} mode, {ATTACKS['offset']} offset." in about
    notice = f"cannot be drawn from {ATTACKS['name']}.parquet: column 'teff' has no finite values."
    expect(page.get_by_text(notice).first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"Offset model: {ATTACKS['offset']}").first).to_be_visible(timeout=TIMEOUT_MS)
    # select the middle of the (G, BP−RP) map: the preview lists the crafted identifier first
    # the one plot: the other two maps need teff, and no constant offset is recorded to compare with
    expect(page.locator(".bk-Figure")).to_have_count(1, timeout=TIMEOUT_MS)
    _drag(page, page.locator(".bk-Figure").first, (0.25, 0.25), (0.7, 0.75))
    expect(page.get_by_text(ATTACKS["star"], exact=True).first).to_be_visible(timeout=TIMEOUT_MS)
    assert page.locator("img[src='x']").count() == 0 and page.locator("script:text('zpdistInjected')").count() == 0
    assert page.evaluate("() => window.zpdistInjected") is None and dialogs == []


def test_the_download_folder_is_private_and_goes_with_the_server(ui_catalog, tmp_path):
    parent = tmp_path / "downloads"
    parent.mkdir()
    env = {**os.environ, "ZPDIST_DOWNLOADS": str(parent)}
    with serving(["--catalog", str(ui_catalog)], tmp_path / "serve.log", env):
        (folder,) = wait_until(lambda: list(parent.iterdir()), 10, what="the server's download folder")
        info = os.lstat(folder)
        assert folder.name.startswith("zpdist-downloads-") and stat.S_ISDIR(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert list(parent.iterdir()) == []  # removed when the server stopped (SIGTERM)
