"""Pieces shared by the tabs: axis labels, the notice of what a plot lacks, datashaded maps and map selection."""

from __future__ import annotations

import datashader as ds
import holoviews as hv
import numpy as np
import panel as pn
from holoviews.operation.datashader import rasterize

from zpdist.maps import robust_edges
from zpdist_dashboard.state import ELEMENT_LABELS, RANGE_FILTERS, Catalog, DashboardState, Selection
from zpdist_dashboard.text import escape

hv.extension("bokeh", logo=False)

#: Axis labels (with units) of the columns the tabs plot.
LABELS: dict[str, str] = {
    **RANGE_FILTERS,
    **ELEMENT_LABELS,
    "frac_dist_error": "NN σd/d",
    "gaia_frac_error": "Gaia σϖ/ϖ (offset-corrected)",
    "parallax": "ϖ Gaia (mas)",
    "nn_parallax": "ϖ NN (mas)",
    "parallax_residual_uas": "ϖ Gaia − ϖ NN (µas)",
    "zp_offset_uas": "Δϖ (µas)",
    "nn_beats_gaia": "fraction with NN more precise",
    "x_gc": "x (kpc)",
    "y_gc": "y (kpc)",
    "z_gc": "z (kpc)",
    "r_gc": "R (kpc)",
}
#: Plot size (pixels) of every map, and the frame of the face-on maps (equal axes, so circles stay round).
MAP_SIZE = {"width": 420, "height": 340}
SQUARE_FRAME = {"width": None, "height": None, "frame_width": 280, "frame_height": 280}
#: Aggregation grid of the datashaded maps (bins across, bins up): coarser than the screen, so that a sparse
#: catalog stays visible; zooming re-aggregates at this resolution.
RASTER_BINS = (200, 160)
#: Tools of every selectable map; box selection is the default drag.
SELECT_TOOLS = {"tools": ["box_select", "lasso_select", "hover"], "active_tools": ["box_select", "wheel_zoom"]}


def robust_range(catalog: Catalog, column: str) -> tuple[float, float]:
    """The 0.5–99.5 percentiles of ``column``'s finite values over the whole catalog (computed once per process)."""

    def compute() -> tuple[float, float]:
        edges = robust_edges(catalog.frame[column], 1, (0.5, 99.5))
        return float(edges[0]), float(edges[-1])

    return catalog.shared.get(("robust_range", column), compute)


def extent(catalog: Catalog, columns: tuple[str, ...], step: float = 1.0) -> float:
    """The 99.5th percentile of the finite ``|values|`` of ``columns`` (those present) rounded up to ``step`` (at
    least ``step``), over the whole catalog: the half-width of a map centred on zero, in the columns' unit."""

    def compute() -> float:
        present = [c for c in columns if c in catalog.frame]
        values = np.abs(catalog.frame[present].to_numpy(float).ravel())
        values = values[np.isfinite(values)]
        top = np.percentile(values, 99.5) if values.size else step
        return float(max(step, np.ceil(top / step) * step))

    return catalog.shared.get(("extent", columns, step), compute)


def dimension(catalog: Catalog, column: str, value_range: tuple[float, float] | None = None) -> hv.Dimension:
    """A labelled HoloViews dimension; its range defaults to :func:`robust_range`."""
    return hv.Dimension(column, label=LABELS.get(column, column), range=value_range or robust_range(catalog, column))


def missing_notice(catalog: Catalog, title: str, columns: list[str]) -> pn.pane.Alert | None:
    """A notice saying why ``title`` cannot be drawn (columns the catalog lacks, or without a finite value); None
    when it can."""
    reasons = catalog.unusable(columns)
    if not reasons:
        return None
    return pn.pane.Alert(
        f"**{escape(title)}** cannot be drawn from {escape(catalog.path.name)}: {escape('; '.join(reasons))}.",
        alert_type="warning",
        width=MAP_SIZE["width"],
    )


def datashaded_map(
    state: DashboardState,
    x: hv.Dimension,
    y: hv.Dimension,
    value: str | None,
    title: str,
    **opts,
) -> hv.DynamicMap:
    """A rasterized map of the filtered stars: their count per pixel, or the mean of ``value``.

    The points are rebuilt only when the filters change; zooming re-aggregates through datashader.
    """
    columns = [x.name, y.name] + ([value] if value else [])
    vdims = [hv.Dimension(value, label=LABELS.get(value, value))] if value else []

    def points(mask: np.ndarray) -> hv.Points:
        return hv.Points(state.catalog.frame.loc[mask, columns], kdims=[x, y], vdims=vdims)

    aggregator = ds.mean(value) if value else ds.count()
    raster = rasterize(
        hv.DynamicMap(pn.bind(points, state.param.mask)), aggregator=aggregator, width=RASTER_BINS[0],
        height=RASTER_BINS[1],
    )  # fmt: skip
    style = {"cmap": "plasma", "clabel": LABELS.get(value, value)} if value else {"cmap": "viridis", "cnorm": "log"}
    style["colorbar"] = True
    return raster.opts(**{"title": title, **MAP_SIZE, **SELECT_TOOLS, **style, **opts})


def _outline(selection: Selection | None, x: str, y: str) -> hv.Path:
    if selection is None or (selection.x, selection.y) != (x, y):
        return hv.Path([], kdims=[x, y])
    if selection.polygon is not None:
        vertices = np.asarray(selection.polygon + selection.polygon[:1])
    else:
        x0, y0, x1, y1 = selection.bounds
        vertices = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
    return hv.Path([vertices], kdims=[x, y])


def selectable(plot: hv.DynamicMap, state: DashboardState, x: str, y: str) -> hv.DynamicMap:
    """Make ``plot`` (axes ``x``, ``y``) set the session's selection by box or lasso, and outline it.

    Box and lasso drags reach the server as BoundsXY and Lasso streams (Selection1D never fires
    on a rasterized image).
    """

    def on_box(bounds: tuple[float, float, float, float] | None) -> None:
        if bounds is not None:
            state.selection = Selection(x, y, bounds=tuple(float(b) for b in bounds))

    def on_lasso(geometry: np.ndarray | None) -> None:
        if geometry is not None and len(geometry) > 2:
            state.selection = Selection(x, y, polygon=tuple((float(a), float(b)) for a, b in geometry))

    hv.streams.BoundsXY(source=plot).add_subscriber(on_box)
    hv.streams.Lasso(source=plot).add_subscriber(on_lasso)
    outline = hv.DynamicMap(pn.bind(_outline, state.param.selection, x, y)).opts(color="black", line_width=2)
    return plot * outline
