"""The Zero-point tab of a Gaia EDR3 catalog carrying the Lindegren et al. (2021) zero-point, in a real browser: the
published values are EDR3's, the network-vs-L21 plots hold the running medians of the stars inside L21's range, and
"Send to TOPCAT" delivers the selected stars to an application on a SAMP hub started by the test. Before that, the
view's pieces without a browser: values per release, the medians' exclusion of stars outside L21's range, and how an
offset fitted after L21 is recognised.

Every wait is for a condition (an element, a value the page's Bokeh models hold, a SAMP message), never a fixed time.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.utils.exceptions import AstropyDeprecationWarning
from playwright.sync_api import expect

from tests.synthetic_catalog import synthetic_catalog
from tests.test_samp import Receiver
from tests.ui.conftest import serving, wait_until
from zpdist.catalog import UNITS
from zpdist.io.catalog import write_catalog
from zpdist.lindegren import ecliptic_latitude, l21_zero_point
from zpdist_dashboard.published import PUBLISHED_FOR, PUBLISHED_OFFSETS
from zpdist_dashboard.state import load_catalog
from zpdist_dashboard.views.zeropoint import (
    L21_COLUMN,
    TREND_COLUMNS,
    catalog_release,
    l21_medians,
    offset_after_l21,
    published_markdown,
)

with warnings.catch_warnings():  # astropy 8 moved SAMP to pyvo.samp (same API)
    warnings.filterwarnings("ignore", "astropy.samp was deprecated", AstropyDeprecationWarning)
    from astropy.samp import SAMPHubServer

SCREENSHOTS = Path(__file__).parent / "screenshots"
SCREENSHOTS.mkdir(exist_ok=True)
TIMEOUT_MS = 60_000
#: Plots of the tab: three Δϖ maps and three network-vs-L21 comparisons.
MAPS, COMPARISONS = 3, 3
#: Plots of the Δϖ checks tab: the comparison with the published offsets, three trends and the residuals.
CHECKS_PLOTS = 5
#: The comparison plots' titles, in the order of TREND_COLUMNS.
TITLES = ("Network vs L21 against G", "Network vs L21 against BP−RP", "Network vs L21 against Teff")
#: The Δϖ values (µas) of the lines (Bokeh Line glyphs) of the figure titled ``title``, in the order drawn.
LINES = """(title) => {
  for (const doc of Bokeh.documents) for (const model of doc.all_models) {
    if (model.type !== "Figure" || !model.title || model.title.text !== title) continue;
    const lines = model.renderers.filter(r => r.glyph && r.glyph.type === "Line");
    if (lines.length === 0 || lines.some(r => !r.data_source.data.offset_uas)) return null;
    return lines.map(r => Array.from(r.data_source.data.offset_uas));
  }
  return null;
}"""
#: The study names on the y axis of the Δϖ checks tab's comparison with the published offsets.
STUDIES = """() => {
  for (const doc of Bokeh.documents) for (const model of doc.all_models)
    if (model.type === "Figure" && model.title && model.title.text === "Global zero-point offset")
      return Array.from(model.y_range.factors);
  return null;
}"""


def l21_catalog(path: Path, n_stars: int = 3000, after_l21: bool = False) -> Path:
    """The synthetic catalog as if predicted from Gaia EDR3 parallaxes with L21's inputs: ``l21_zp_offset`` from
    the Gaia team's package for 5-parameter solutions, NaN (and flagged) for the tenth whose ν_eff lies outside
    L21's range; ``gaia_release`` EDR3. With ``after_l21``, the network's Δϖ is the offset left after L21."""
    rows, metadata = synthetic_catalog(n_stars, seed=11)
    rng = np.random.default_rng(11)
    nu_eff = np.where(rng.uniform(size=n_stars) < 0.1, 2.0, rng.uniform(1.40, 1.62, n_stars))
    beta = ecliptic_latitude(rows["ra"].to_numpy(), rows["dec"].to_numpy())
    l21, outside = l21_zero_point(rows["phot_g_mean_mag"], nu_eff, np.full(n_stars, np.nan), beta, np.full(n_stars, 31))
    rows[L21_COLUMN], rows["l21_outside_validity"] = l21, outside
    if after_l21:
        rows["parallax_corrected"] = rows["parallax"] - rows["zp_offset"] - rows[L21_COLUMN]
    metadata |= {"gaia_release": "EDR3", "gaia_release_source": "column prefix GAIAEDR3_ (test)"}
    return write_catalog(rows, path, metadata, UNITS)


# ---------------------------------------------------------------- without a browser


def test_published_values_follow_the_catalogs_release(tmp_path):
    assert PUBLISHED_FOR["DR2"] == ("Gaia DR2", PUBLISHED_OFFSETS["DR2"])
    assert PUBLISHED_FOR["EDR3"] == ("Gaia EDR3", PUBLISHED_OFFSETS["EDR3"])
    assert PUBLISHED_FOR["DR3"] == ("Gaia DR3 (the astrometry of EDR3)", PUBLISHED_OFFSETS["EDR3"])
    assert PUBLISHED_FOR[None] == ("Gaia DR2 (assumed: the catalog records no release)", PUBLISHED_OFFSETS["DR2"])
    catalog = load_catalog(l21_catalog(tmp_path / "edr3.parquet", 300))
    assert catalog_release(catalog) == "EDR3"
    text = published_markdown(catalog)
    assert text.startswith("Published values for **Gaia EDR3** (Δϖ = ϖ Gaia − ϖ true):\n")
    assert "- Lindegren et al. 2021 (quasars, median): -17.0 µas (A&A 649, A4)" in text
    assert "- Zinn 2021 (asteroseismology, G < 10.8), after L21: +15.0 ± 3.0 µas (arXiv:2101.07252)" in text
    assert "Leung & Bovy" not in text  # a DR2 value, not shown for EDR3
    dr2 = {p.study: p.value_uas for p in PUBLISHED_OFFSETS["DR2"]}
    assert dr2["Leung & Bovy 2019 (APOGEE, NN)"] == -52.3 and dr2["Lindegren et al. 2018 (quasars)"] == -29.0


def test_the_medians_leave_out_the_stars_outside_l21s_range():
    n = 4000
    x = np.linspace(10.0, 14.0, n)
    inside = np.arange(n) % 2 == 0
    frame = pd.DataFrame({
        "phot_g_mean_mag": x,
        "zp_offset": np.where(inside, -0.050, 9.0),  # mas: the stars outside would pull the network's median
        L21_COLUMN: np.where(inside, -0.020, np.nan),
    })  # fmt: skip
    medians = l21_medians(frame, "phot_g_mean_mag", after_l21=False)
    for name, expected in (("network", -50.0), ("l21", -20.0)):
        np.testing.assert_allclose(medians[name]["median"], expected)
        assert medians[name]["n"].sum() == pytest.approx(inside.sum(), rel=0.03)  # the 1–99 % range of x
    after = l21_medians(frame, "phot_g_mean_mag", after_l21=True)
    np.testing.assert_allclose(after["network"]["median"], -70.0)  # L21 + the residual


def test_an_offset_fitted_after_l21_is_told_from_the_columns(tmp_path):
    plain = load_catalog(l21_catalog(tmp_path / "plain.parquet", 300))
    after = load_catalog(l21_catalog(tmp_path / "after.parquet", 300, after_l21=True))
    assert not offset_after_l21(plain) and offset_after_l21(after)


# ---------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def samp_env(tmp_path_factory) -> Iterator[tuple[dict, Receiver]]:
    """A SAMP hub on 127.0.0.1 with a table-loading receiver, and the environment that makes a server find that
    hub (its $SAMP_HUB and $HOME in a temporary folder, never the user's ~/.samp)."""
    home = tmp_path_factory.mktemp("samp-home")
    lockfile = home / "samp-hub"
    hub = SAMPHubServer(addr="127.0.0.1", lockfile=str(lockfile), web_profile=False)
    hub.start(wait=False)
    try:
        with pytest.MonkeyPatch.context() as patch:  # the receiver, in this process, finds the same hub
            patch.setenv("HOME", str(home))
            patch.setenv("SAMP_HUB", f"std-lockurl:{lockfile.as_uri()}")
            receiver = Receiver()
            try:
                yield {**os.environ, "ZPDIST_DOWNLOADS": str(tmp_path_factory.mktemp("downloads"))}, receiver
            finally:
                receiver.close()
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def l21_server(tmp_path_factory, samp_env) -> Iterator[tuple[str, Path, Path]]:
    """``zpdist serve`` over a 3,000-star EDR3 catalog with L21; yields its URL, log and catalog."""
    path = l21_catalog(tmp_path_factory.mktemp("ui-l21") / "catalog-edr3.parquet")
    log = tmp_path_factory.mktemp("l21-server") / "serve.log"
    with serving(["--catalog", str(path)], log, samp_env[0]) as url:
        yield url, log, path


def _drag(page, figure, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag across ``figure`` between two points given as fractions of its width and height."""
    box = figure.bounding_box()
    (x0, y0), (x1, y1) = ((box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in (start, end))
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def test_the_zero_point_tab_compares_the_network_with_l21_and_sends_to_topcat(page, l21_server, samp_env):
    url, log, path = l21_server
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.set_viewport_size({"width": 1600, "height": 1400})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
    page.goto(url, timeout=TIMEOUT_MS)
    expect(page.locator(".bk-Figure")).to_have_count(MAPS + COMPARISONS, timeout=TIMEOUT_MS)
    expect(page.get_by_text("Published values for Gaia EDR3").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Lindegren et al. 2021 (quasars, median): -17.0 µas").first).to_be_visible()
    assert page.get_by_text("Leung & Bovy 2019").count() == 0  # DR2's values are not shown for EDR3

    catalog = load_catalog(path)
    inside = int(np.isfinite(catalog.frame[L21_COLUMN]).sum())
    assert 0 < inside < len(catalog.frame)
    expect(page.get_by_text(f"of the {inside:,} filtered stars inside L21's range").first).to_be_visible()
    for x, title in zip(TREND_COLUMNS, TITLES, strict=True):
        lines = wait_until(lambda title=title: page.evaluate(LINES, title), TIMEOUT_MS / 1000, page, what=title)
        expected = l21_medians(catalog.frame, x, after_l21=False)
        assert len(lines) == 2  # the network's and L21's medians, each finite (no star outside L21's range)
        for drawn, name in zip(lines, ("network", "l21"), strict=True):
            np.testing.assert_allclose(drawn, expected[name]["median"], rtol=1e-9)
            assert np.isfinite(drawn).all() and len(drawn) >= 10
    page.screenshot(path=SCREENSHOTS / "zero-point-l21.png")  # the summary with EDR3's published values
    page.locator(".bk-Figure").nth(MAPS).evaluate("e => e.scrollIntoView({block: 'start'})")  # the main area scrolls
    page.screenshot(path=SCREENSHOTS / "zero-point-l21-comparison.png")

    # the Δϖ checks tab sets the constant offset beside the same release's published values
    page.get_by_text("Δϖ checks", exact=True).first.click()
    studies = wait_until(lambda: page.evaluate(STUDIES), TIMEOUT_MS / 1000, page, what="the published offsets")
    assert set(studies) == {"this catalog"} | {p.label for p in PUBLISHED_OFFSETS["EDR3"]}
    expect(page.locator(".bk-Figure")).to_have_count(CHECKS_PLOTS, timeout=TIMEOUT_MS)  # drawn before going back
    page.get_by_text("Zero-point", exact=True).first.click()
    expect(page.locator(".bk-Figure")).to_have_count(MAPS + COMPARISONS, timeout=TIMEOUT_MS)

    # "Send to TOPCAT": a box on the first Δϖ map, then the receiver on the test's hub gets those stars
    send = page.get_by_role("button", name="Send to TOPCAT")
    assert send.is_disabled()
    first_map = page.locator(".bk-Figure").first
    first_map.evaluate("e => e.scrollIntoView({block: 'center'})")
    _drag(page, first_map, (0.3, 0.3), (0.6, 0.7))
    text = page.get_by_text(re.compile(r"\d+ stars selected")).first.inner_text(timeout=TIMEOUT_MS)
    count = int(re.search(r"(\d+) stars selected", text).group(1))
    expect(send).to_be_enabled(timeout=TIMEOUT_MS)
    send.click()
    expect(page.get_by_text(f"Sent {count} stars to receiver over SAMP.")).to_be_visible(timeout=TIMEOUT_MS)
    rows, metadata = samp_env[1].table()
    assert len(rows) == count and list(rows.columns) == list(catalog.columns)
    assert metadata["catalog"]["gaia_release"] == "EDR3" and metadata["export"]["selection"]["kind"] == "box"
    assert not errors, errors
    assert "Traceback" not in log.read_text()
