"""Pieces shared by the tabs: axis labels, the notice of what a plot lacks, datashaded maps and map selection.

The maps aggregate per pixel with :class:`zpdist_dashboard.raster.MapRaster` (as datashader's ``Canvas.points``
does), the image of each filter state is shared by the sessions whose filters are the same (in
:attr:`Catalog.shared <zpdist_dashboard.state.Catalog>`), and a filter change puts it straight into the page's Bokeh
models.
"""

from __future__ import annotations

import weakref
from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import Plot, PolyAnnotation
from holoviews.plotting.bokeh.element import ElementPlot
from panel.io.document import unlocked
from panel.io.notebook import push
from panel.io.state import state as panel_state

from zpdist.maps import robust_edges
from zpdist_dashboard.raster import MapRaster
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


def _view(x_range: tuple[float, float] | None, y_range: tuple[float, float] | None, full: tuple) -> tuple:
    """The view a zoom asks for, as ``(x0, x1, y0, y1)``; ``full`` when it is the full view (to rounding), or
    unknown (not yet drawn: NaN), or empty."""
    if x_range is None or y_range is None:
        return full
    view = (*map(float, x_range), *map(float, y_range))
    if not (np.isfinite(view).all() and view[0] < view[1] and view[2] < view[3]):
        return full
    width, height = full[1] - full[0], full[3] - full[2]
    return full if np.all(np.abs(np.subtract(view, full)) <= 1e-9 * np.array([width, width, height, height])) else view


#: The hooks that the images of a map made by :func:`datashaded_map` carry: :func:`selectable` keeps them beside its
#: own (a DynamicMap's hooks replace its images').
MAP_HOOKS: weakref.WeakKeyDictionary[hv.DynamicMap, list] = weakref.WeakKeyDictionary()


def _show_on(plot: ElementPlot, data: np.ndarray, view: tuple, clim: tuple | None) -> None:
    """Put the image ``data`` over ``view = (x0, x1, y0, y1)`` into ``plot``'s Bokeh models as HoloViews would draw
    it (its data source, and its colour range when ``clim`` is None: the image's finite range), changing the page
    as HoloViews' refresh does: at once where this thread may change the document, else on its next tick."""

    def update() -> None:
        x0, x1, y0, y1 = view
        plot.handles["source"].data.update(x=[x0], y=[y0], dw=[x1 - x0], dh=[y1 - y0], image=[data])
        if clim is None and np.isfinite(data).any():
            plot.handles["color_mapper"].update(low=float(np.nanmin(data)), high=float(np.nanmax(data)))

    document = plot.document
    if plot.renderer.mode == "server" and not panel_state._unblocked(document) and document.session_context:
        document.add_next_tick_callback(update)
        return
    with unlocked():
        update()
    if plot.renderer.mode != "server" and plot.comm is not None:  # a notebook
        push(document, plot.comm)


def datashaded_map(
    state: DashboardState,
    x: hv.Dimension,
    y: hv.Dimension,
    value: str | None,
    title: str,
    **opts,
) -> hv.DynamicMap:
    """A rasterized map of the filtered stars: their count per pixel, or the mean of ``value``.

    The full view's image of each filter state is made once for all sessions (:class:`MapRaster`); a zoom
    re-aggregates the visible range at the same resolution. HoloViews draws the map and its zooms; a filter change
    puts the new image straight into the Bokeh models of the plots showing it (those its images' hook has seen),
    without HoloViews' update of the plot (6–7 ms a map on a 2-core machine: most of a change's cost below 10⁶
    stars).
    """
    raster = MapRaster.of(state.catalog, x, y, value)
    vdim = hv.Dimension(value, label=LABELS.get(value, value)) if value else hv.Dimension("count", label="stars")
    style = {"cmap": "plasma", "clabel": LABELS.get(value, value)} if value else {"cmap": "viridis", "cnorm": "log"}
    zoom = hv.streams.RangeXY()
    shown: weakref.WeakSet[ElementPlot] = weakref.WeakSet()  # the plots drawing this map
    hooks = [lambda plot, element: shown.add(plot)]

    def image_data() -> tuple[np.ndarray, tuple]:
        """The image of the session's filter state over the zoom's view, and that view."""
        view = _view(zoom.x_range, zoom.y_range, raster.view)
        if view != raster.view:
            return raster.aggregate(state.mask, view), view
        # the image is shared, never the element: HoloViews styles it for its session
        key = ("map", x.name, y.name, value, raster.view, state.filter_key)
        return state.catalog.shared.get(key, lambda: raster.aggregate(state.mask)), view

    def image(x_range=None, y_range=None) -> hv.Image:
        data, view = image_data()
        bounds = (view[0], view[2], view[1], view[3])  # an array Image's rows run from the top
        return hv.Image(np.flipud(data), bounds=bounds, kdims=[x, y], vdims=[vdim], id=styled.id)

    # the options live on this element, and every image shares them through its id: a DynamicMap's .opts would
    # re-apply them to each image
    styled = hv.Image(np.zeros((1, 1), np.float32), kdims=[x, y], vdims=[vdim]).opts(
        **{"title": title, **MAP_SIZE, **SELECT_TOOLS, **style, "colorbar": True, **opts},
        hooks=hooks,
    )
    # not memoized: after a filter change the same zoom asks for another image
    dmap = hv.DynamicMap(hv.Callable(image, memoize=False), streams=[zoom])
    MAP_HOOKS[dmap] = hooks
    drawn = weakref.ref(dmap)

    def follow(event: param.parameterized.Event) -> None:
        plots = [p for p in shown if p.document is not None]  # HoloViews' cleanup of a closed plot drops it
        if not plots and drawn() is None:
            state.param.unwatch(watcher)
        elif plots:
            data, view = image_data()
            for plot in plots:
                _show_on(plot, data, view, opts.get("clim"))

    watcher = state.param.watch(follow, "filter_key")
    return dmap


#: Name of the annotation that outlines the selection on a map.
OUTLINE = "zpdist-selection-outline"


def outline_vertices(selection: Selection | None, x: str, y: str) -> tuple[list[float], list[float]]:
    """The vertices (xs, ys) of ``selection``'s outline on the map over (``x``, ``y``); empty when the selection is
    none, or drawn on another map."""
    if selection is None or (selection.x, selection.y) != (x, y):
        return [], []
    if selection.polygon is not None:
        vertices = np.asarray(selection.polygon, dtype=float)
    else:
        x0, y0, x1, y1 = selection.bounds
        vertices = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return vertices[:, 0].tolist(), vertices[:, 1].tolist()


def _outline_annotation(xs: list[float], ys: list[float]) -> PolyAnnotation:
    """The selection's outline with vertices ``xs``, ``ys`` (data units of the map's axes)."""
    return PolyAnnotation(xs=xs, ys=ys, fill_alpha=0.0, line_color="black", line_width=2, name=OUTLINE)


def _replace_outline(figure: Plot, xs: list[float], ys: list[float]) -> None:
    """Swap ``figure``'s outline for a new one with these vertices, in one change of ``figure.center``.

    Not ``outline.update(xs=..., ys=...)``: a served page receives each property change as its own message, and
    BokehJS refuses to paint a PolyAnnotation whose xs and ys differ in length (an assertion error in the page)
    if it paints between the two, as it did under load in the browser tests.
    """
    figure.center = [a for a in figure.center if getattr(a, "name", None) != OUTLINE] + [_outline_annotation(xs, ys)]


def selectable(plot: hv.DynamicMap, state: DashboardState, x: str, y: str) -> hv.DynamicMap:
    """Make ``plot`` (axes ``x``, ``y``) set the session's selection by box or lasso, and outline it.

    Box and lasso drags reach the server as BoundsXY and Lasso streams (Selection1D never fires
    on a rasterized image). The outline is a Bokeh annotation on the map's figure that follows
    ``state.selection`` (an overlaid HoloViews element would double the plots each session builds).
    """

    session = weakref.ref(state)  # HoloViews keeps a plot's options (this hook among them) after its session

    def outline(element_plot, element) -> None:
        figure, state = element_plot.state, session()
        if state is None or any(getattr(a, "name", None) == OUTLINE for a in figure.center):
            return
        figure.add_layout(_outline_annotation(*outline_vertices(state.selection, x, y)))
        drawn = weakref.ref(figure)  # the map's plot holds its figure while the map is shown

        def follow(event: param.parameterized.Event) -> None:
            if (shown := drawn()) is None:
                state.param.unwatch(watcher)
                return
            redraw = partial(_replace_outline, shown, *outline_vertices(event.new, x, y))
            if shown.document is None or shown.document.session_context is None:
                redraw()
            else:  # a selection arrives from a map outside the document's lock: change the page's models under it
                shown.document.add_next_tick_callback(redraw)

        watcher = state.param.watch(follow, "selection")

    def on_box(bounds: tuple[float, float, float, float] | None) -> None:
        if bounds is not None:
            state.selection = Selection(x, y, bounds=tuple(float(b) for b in bounds))

    def on_lasso(geometry: np.ndarray | None) -> None:
        if geometry is not None and len(geometry) > 2:
            state.selection = Selection(x, y, polygon=tuple((float(a), float(b)) for a, b in geometry))

    plot = plot.opts(hooks=[*MAP_HOOKS.get(plot, []), outline])
    hv.streams.BoundsXY(source=plot).add_subscriber(on_box)
    hv.streams.Lasso(source=plot).add_subscriber(on_lasso)
    return plot
