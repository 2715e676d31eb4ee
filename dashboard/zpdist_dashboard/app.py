"""The zpdist dashboard page: sidebar filters and selection controls, and the Zero-point / Distances / Abundances tabs.

Serve it with ``zpdist serve [--catalog FILE] [--gaia ZEROPOINT_OUTPUT]``, or with
``panel serve dashboard/zpdist_dashboard/app.py --plugins zpdist_dashboard.routes`` (the catalog from
``$ZPDIST_CATALOG``, else ``data/demo/catalog.parquet``, and the optional Gaia-scale table from ``$ZPDIST_GAIA``;
the plugin adds the download route). Without a catalog the page says how to make one.
"""

from __future__ import annotations

import numpy as np
import panel as pn

from zpdist.errors import ZpdistError
from zpdist.maps import robust_edges
from zpdist.selection import MapCuts
from zpdist.zeropoint_maps.histograms import GaiaHistograms
from zpdist_dashboard.selection import SelectionControls
from zpdist_dashboard.sources import gaia_path_from_env, resolve_catalog_path
from zpdist_dashboard.state import RANGE_FILTERS, Catalog, DashboardState, quality_cuts, shared_catalog
from zpdist_dashboard.views.abundances import AbundancesView
from zpdist_dashboard.views.distances import DistancesView
from zpdist_dashboard.views.gaia_scale import GaiaScaleView, shared_gaia_histograms
from zpdist_dashboard.views.zeropoint import ZeroPointView

#: Tab titles, in order.
TABS = ("Zero-point", "Distances", "Abundances")


def range_filter(state: DashboardState, column: str) -> pn.widgets.EditableRangeSlider:
    """A slider over ``column``'s finite range; at its full extent the filter is off (stars with NaN stay)."""
    values = state.catalog.frame[column]
    if column == "frac_dist_error":
        lo, hi = 0.0, float(robust_edges(values, 1, (0.0, 99.0))[-1])
    else:
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    step = 10 ** np.floor(np.log10(max(hi - lo, 1e-6) / 100))
    lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step
    slider = pn.widgets.EditableRangeSlider(
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
    pn.extension("tabulator", notifications=True)
    state = DashboardState(catalog, **({} if thresholds is None else {"thresholds": thresholds}))
    selection = SelectionControls(state=state)
    filters = [range_filter(state, c) for c in RANGE_FILTERS if c in catalog.frame]
    model = catalog.metadata.get("model", {})
    about = (
        f"**{catalog.path.name}**: {len(catalog.frame):,} stars; model {model.get('mode', '?')} mode, "
        f"{catalog.offset_model or '?'} offset."
    )
    # the Gaia-scale section goes inside the tab's view: with a Column around the view as the first tab, the other
    # (dynamic) tabs were never drawn when chosen (Panel 1.9.4)
    zero_point = ZeroPointView(state=state, sections=[] if gaia is None else [GaiaScaleView(histograms=gaia)])
    tabs = pn.Tabs(
        (TABS[0], zero_point),
        (TABS[1], DistancesView(state=state)),
        (TABS[2], AbundancesView(state=state)),
        dynamic=True,
        sizing_mode="stretch_width",
    )
    return pn.template.FastListTemplate(
        title="zpdist",
        sidebar=[
            pn.pane.Markdown(about),
            "### Filters",
            *filters,
            "### Quality cuts",
            quality_cut_toggles(state),
            selection,
        ],
        main=[tabs, selection.preview()],
        sidebar_width=330,
    )


def notice_page(message: str) -> pn.template.FastListTemplate:
    """The page shown instead of the dashboard when there is nothing to show: ``message`` says why."""
    return pn.template.FastListTemplate(
        title="zpdist", main=[pn.pane.Alert(f"**No dashboard**: {message}", alert_type="warning")]
    )


def served_app() -> pn.template.FastListTemplate:
    """The page over the catalog chosen by :func:`zpdist_dashboard.sources.resolve_catalog_path`, with the
    Gaia-scale table of ``$ZPDIST_GAIA`` when set; without a usable catalog or table, a page saying why."""
    gaia = gaia_path_from_env()
    try:
        catalog = shared_catalog(resolve_catalog_path(None))
        histograms = shared_gaia_histograms(gaia) if gaia else None
    except ZpdistError as exc:
        return notice_page(str(exc))
    return build_app(catalog, histograms)


if __name__.startswith("bokeh_app"):  # run by `panel serve dashboard/zpdist_dashboard/app.py`
    served_app().servable()
