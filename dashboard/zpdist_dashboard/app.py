"""The zpdist dashboard page: sidebar filters and selection controls, and the Zero-point / Distances / Abundances tabs.

Serve it with ``zpdist serve [--catalog FILE] [--gaia ZEROPOINT_OUTPUT]``, or with
``panel serve dashboard/zpdist_dashboard/app.py --plugins zpdist_dashboard.routes`` (the catalog from
``$ZPDIST_CATALOG``, else the demo catalog, and the optional Gaia-scale table from ``$ZPDIST_GAIA``; the
plugin adds the download route).
"""

from __future__ import annotations

import os

import numpy as np
import panel as pn

from zpdist.maps import robust_edges
from zpdist_dashboard.selection import SelectionControls
from zpdist_dashboard.serve import GAIA_ENV, resolve_catalog_path
from zpdist_dashboard.state import (
    QUALITY_CUTS,
    RANGE_FILTERS,
    Catalog,
    DashboardState,
    shared_catalog,
)
from zpdist_dashboard.views.abundances import AbundancesView
from zpdist_dashboard.views.distances import DistancesView
from zpdist_dashboard.views.gaia_scale import GaiaHistograms, GaiaScaleView, shared_gaia_histograms
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


def quality_cuts(state: DashboardState) -> pn.widgets.CheckBoxGroup:
    """Toggles of the paper's abundance-map quality cuts (those whose columns the catalog lacks are ignored)."""
    return pn.widgets.CheckBoxGroup.from_param(
        state.param.cuts, options={cut.label: name for name, cut in QUALITY_CUTS.items()}, name="Quality cuts"
    )


def build_app(catalog: Catalog, gaia: GaiaHistograms | None = None) -> pn.template.FastListTemplate:
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
    """
    pn.extension("tabulator", notifications=True)
    state = DashboardState(catalog)
    selection = SelectionControls(state=state)
    filters = [range_filter(state, c) for c in RANGE_FILTERS if c in catalog.frame]
    model = catalog.metadata.get("model", {})
    about = (
        f"**{catalog.path.name}**: {len(catalog.frame):,} stars; model {model.get('mode', '?')} mode, "
        f"{catalog.offset_model or '?'} offset."
    )
    zero_point = ZeroPointView(state=state)
    tabs = pn.Tabs(
        (TABS[0], zero_point if gaia is None else pn.Column(zero_point, GaiaScaleView(histograms=gaia))),
        (TABS[1], DistancesView(state=state)),
        (TABS[2], AbundancesView(state=state)),
        dynamic=True,
        sizing_mode="stretch_width",
    )
    return pn.template.FastListTemplate(
        title="zpdist",
        sidebar=[pn.pane.Markdown(about), "### Filters", *filters, "### Quality cuts", quality_cuts(state), selection],
        main=[tabs, selection.preview()],
        sidebar_width=330,
    )


def served_app() -> pn.template.FastListTemplate:
    """The page over the catalog chosen by :func:`zpdist_dashboard.serve.resolve_catalog_path`, with the
    Gaia-scale table of ``$ZPDIST_GAIA`` when set."""
    gaia = os.environ.get(GAIA_ENV)
    return build_app(shared_catalog(resolve_catalog_path(None)), shared_gaia_histograms(gaia) if gaia else None)


if __name__.startswith("bokeh_app"):  # run by `panel serve dashboard/zpdist_dashboard/app.py`
    served_app().servable()
