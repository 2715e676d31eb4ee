"""The zpdist dashboard page: sidebar filters and selection controls, and the Zero-point / Δϖ checks / Distances /
Abundances tabs.

Serve it with ``zpdist serve [--catalog FILE] [--gaia ZEROPOINT_OUTPUT]``, or with
``panel serve dashboard/zpdist_dashboard/app.py --plugins zpdist_dashboard.routes`` (the catalog from
``$ZPDIST_CATALOG``, else ``data/demo/catalog.parquet``, and the optional Gaia-scale table from ``$ZPDIST_GAIA``;
the plugin adds the download route). Without a catalog the page says how to make one.

Everything the page loads comes from the server (:class:`LocalFast`), and every text from a file goes through
:func:`zpdist_dashboard.text.escape`. A catalog without stars, or with a column without finite values, gives a page
that says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import panel as pn
from panel.io.resources import CDN_DIST, isurl
from tornado.ioloop import IOLoop

from zpdist.errors import ZpdistError
from zpdist.maps import robust_edges
from zpdist.selection import MapCuts
from zpdist.zeropoint_maps.histograms import GaiaHistograms
from zpdist_dashboard.selection import SelectionControls
from zpdist_dashboard.sources import gaia_path_from_env, resolve_catalog_path
from zpdist_dashboard.state import RANGE_FILTERS, Catalog, DashboardState, quality_cuts, shared_catalog
from zpdist_dashboard.text import escape
from zpdist_dashboard.views.abundances import AbundancesView
from zpdist_dashboard.views.distances import DistancesView
from zpdist_dashboard.views.gaia_scale import GaiaScaleView, shared_gaia_histograms
from zpdist_dashboard.views.zeropoint import OffsetChecksView, ZeroPointView

#: Tab titles, in order.
TABS = ("Zero-point", "Δϖ checks", "Distances", "Abundances")


class LocalFast(pn.theme.Fast):
    """Panel's Fast design without its web font, which every page would fetch from fonts.googleapis.com (the page
    uses the browser's sans-serif): everything else it needs is bundled with Panel and served by the server."""

    _resources: ClassVar[dict] = {
        kind: {name: url if isurl(url) else f"{CDN_DIST}bundled/fast/{url}" for name, url in urls.items()}
        if isinstance(urls, dict) else urls
        for kind, urls in {**pn.theme.Fast._resources, "font": {}}.items()
    }  # fmt: skip


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the garbage collector: building a page makes tens of thousands of objects that all stay alive, and its
    passes over them meanwhile find nothing to free (a fifth of the build's time with twenty sessions open)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class LocalTemplate(pn.template.FastListTemplate):
    """Panel's FastListTemplate in the :class:`LocalFast` design, built with the document's model graph frozen
    (recomputed once at the end rather than after every model added: a page builds in half the time) and the
    garbage collector paused (:func:`collector_paused`)."""

    def __init__(self, **params) -> None:
        super().__init__(design=LocalFast, **params)

    def server_doc(self, doc=None, title: str | None = None, location: bool = True):
        doc = doc or pn.state.curdoc
        with doc.models.freeze(), collector_paused():
            return super().server_doc(doc, title, location)


def slider_range(values: np.ndarray, column: str) -> tuple[float, float, float] | None:
    """(start, end, step) of a range slider over the finite ``values``; None when there are none, or their range
    is too wide for a slider."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    if column == "frac_dist_error":
        lo, hi = 0.0, max(float(robust_edges(finite, 1, (0.0, 99.0))[-1]), 0.0)
    else:
        lo, hi = float(finite.min()), float(finite.max())
    with np.errstate(over="ignore", invalid="ignore"):
        step = 10 ** np.floor(np.log10(max(hi - lo, 1e-6) / 100))
        lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step
    if not np.isfinite([step, lo, hi]).all():
        return None
    return float(lo), float(max(hi, lo + step)), float(step)


def range_filter(state: DashboardState, column: str) -> pn.widgets.RangeSlider | None:
    """A slider over ``column``'s finite range; at its full extent the filter is off (stars with NaN stay). None when
    the column has no finite values."""
    bounds = state.catalog.shared.get(
        ("slider", column), lambda: slider_range(state.catalog.frame[column].to_numpy(float), column)
    )
    if bounds is None:
        return None
    lo, hi, step = bounds
    slider = pn.widgets.RangeSlider(
        label=RANGE_FILTERS[column], start=lo, end=hi, value=(lo, hi), step=step, sizing_mode="stretch_width"
    )

    def apply(event) -> None:
        state.set_range(column, None if tuple(event.new) == (lo, hi) else event.new)

    slider.param.watch(apply, "value_throttled")
    return slider


def quality_cut_toggles(state: DashboardState) -> pn.widgets.CheckBoxGroup:
    """Toggles of the paper's abundance-map cuts, named as ``zpdist select`` names them (the σ[X/H] one follows the
    chosen element); those whose columns the catalog lacks are ignored."""

    def options(element: str) -> dict[str, int]:
        return {cut.name: i for i, cut in enumerate(quality_cuts(element, state.thresholds))}

    toggles = pn.widgets.CheckBoxGroup.from_param(state.param.cuts, options=options(state.element), name="Quality cuts")
    state.param.watch(lambda event: setattr(toggles, "options", options(event.new)), "element")
    return toggles


def about(catalog: Catalog) -> pn.pane.Markdown:
    """The catalog's name, size and model, escaped (they come from the file)."""
    return pn.pane.Markdown(
        f"**{escape(catalog.path.name)}**: {len(catalog.frame):,} stars; model {escape(catalog.model_mode or '?')} "
        f"mode, {escape(catalog.offset_model or '?')} offset."
    )


def filters(state: DashboardState) -> list[pn.viewable.Viewable]:
    """The range sliders of the columns the catalog has, and a notice for each without a finite value."""
    sliders, notices = [], []
    for column in (c for c in RANGE_FILTERS if c in state.catalog.frame):
        slider = range_filter(state, column)
        if slider is not None:
            sliders.append(slider)
        else:
            reasons = "; ".join(state.catalog.unusable([column])) or "its values span too wide a range"
            notices.append(f"No filter on {escape(RANGE_FILTERS[column])}: {escape(reasons)}.")
    return [*sliders, *([pn.pane.Alert("\n\n".join(notices), alert_type="warning")] if notices else [])]


def build_app(
    catalog: Catalog, gaia: GaiaHistograms | None = None, thresholds: MapCuts | None = None
) -> pn.template.FastListTemplate:
    """The page of one session over ``catalog``.

    Parameters
    ----------
    catalog : Catalog
        Shared by all sessions (see :func:`zpdist_dashboard.state.shared_catalog`); each session gets
        its own :class:`DashboardState`.
    gaia : GaiaHistograms, optional
        Histograms of a ``zpdist zeropoint`` output (see
        :func:`zpdist_dashboard.views.gaia_scale.shared_gaia_histograms`), shown below the catalog's maps in
        the Zero-point tab.
    thresholds : MapCuts, optional
        The quality toggles' thresholds (the ``[maps]`` section of the configuration); default the paper's.
    """
    pn.extension("tabulator")
    if catalog.frame.empty:
        return notice_page(f"the catalog {catalog.path.name} has no stars.", about(catalog))
    state = DashboardState(catalog, **({} if thresholds is None else {"thresholds": thresholds}))
    selection = SelectionControls(state=state)
    # the Gaia-scale section goes inside the tab's view: with a Column around the view as the first tab, the other
    # (dynamic) tabs were never drawn when chosen (Panel 1.9.4); the other tabs' views are made when first shown
    zero_point = ZeroPointView(state=state, sections=[] if gaia is None else [GaiaScaleView(histograms=gaia)])
    later = (OffsetChecksView, DistancesView, AbundancesView)
    tabs = pn.Tabs(
        (TABS[0], zero_point),
        *((title, pn.param.ParamFunction(lambda view=view: view(state=state), lazy=True))
          for title, view in zip(TABS[1:], later, strict=True)),
        dynamic=True,
        sizing_mode="stretch_width",
    )  # fmt: skip
    return LocalTemplate(
        title="zpdist",
        sidebar=[about(catalog), "### Filters", *filters(state), "### Quality cuts", quality_cut_toggles(state),
                 selection],
        main=[tabs, selection.preview()],
        sidebar_width=330,
    )  # fmt: skip


def notice_page(message: str, *sidebar: pn.viewable.Viewable) -> pn.template.FastListTemplate:
    """The page shown instead of the dashboard when there is nothing to show: ``message`` says why (escaped)."""
    return LocalTemplate(
        title="zpdist",
        sidebar=list(sidebar),
        main=[pn.pane.Alert(f"**No dashboard**: {escape(message)}", alert_type="warning")],
    )


def _malloc_trim() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere nothing)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class MemoryRelease:
    """Gives ended sessions' memory back to the system: collects their objects (Bokeh models and param objects hold
    reference cycles that the collector would keep for a while) and trims the heap, once for all the sessions that
    end within ``delay_s`` of each other (a collection walks every live object: most of a second with twenty
    sessions open, too long to spend for each)."""

    def __init__(self, delay_s: float = 5.0) -> None:
        self.delay_s = delay_s
        self._pending = False

    def session_ended(self, session_context: object) -> None:
        """Schedule the release on the server's event loop unless one is already scheduled."""
        if not self._pending:
            self._pending = True
            IOLoop.current().call_later(self.delay_s, self.release)

    def release(self) -> None:
        """Collect and trim now."""
        self._pending = False
        gc.collect()
        _malloc_trim()


#: The server process's :class:`MemoryRelease`.
MEMORY_RELEASE = MemoryRelease()


def on_session_end() -> None:
    """In a server session, have :data:`MEMORY_RELEASE` give its memory back when it ends."""
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(MEMORY_RELEASE.session_ended)


def served_app() -> pn.template.FastListTemplate:
    """The page over the catalog chosen by :func:`zpdist_dashboard.sources.resolve_catalog_path`, with the
    Gaia-scale table of ``$ZPDIST_GAIA`` when set; without a usable catalog or table, a page saying why."""
    on_session_end()
    gaia = gaia_path_from_env()
    try:
        catalog = shared_catalog(resolve_catalog_path(None))
        histograms = shared_gaia_histograms(gaia) if gaia else None
    except ZpdistError as exc:
        return notice_page(str(exc))
    return build_app(catalog, histograms)


if __name__.startswith("bokeh_app"):  # run by `panel serve dashboard/zpdist_dashboard/app.py`
    served_app().servable()
