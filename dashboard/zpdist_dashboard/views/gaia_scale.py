"""The Zero-point tab's Gaia-scale section: Δϖ maps of a ``zpdist zeropoint`` output of up to 10⁸ rows and more.

The data engine is :mod:`zpdist.zeropoint_maps`: one dask pass builds fine 2-D histograms of the output (cached
beside it), and every map here re-bins the visible window of them on each pan or zoom, whatever the number of rows.
"""

from __future__ import annotations

import os

import holoviews as hv
import numpy as np
import panel as pn
import param

from zpdist.zeropoint_maps.build import load_gaia_histograms
from zpdist.zeropoint_maps.histograms import MAP_PLANES, GaiaHistograms
from zpdist.zeropoint_maps.table import COORDINATES, VALUE
from zpdist_dashboard.text import escape
from zpdist_dashboard.views.base import LABELS, MAP_SIZE
from zpdist_dashboard.views.zeropoint import OFFSET

#: Which side(s) of the training-domain flag each choice of the toggle shows (0: inside, 1: outside).
OUTSIDE_CHOICES: dict[str, tuple[int, ...]] = {"hidden": (0,), "shown": (0, 1), "only": (1,)}


def _log(message: str) -> None:
    print(message, flush=True)


def shared_gaia_histograms(path: str | os.PathLike) -> GaiaHistograms:
    """The histograms of the zeropoint output at ``path``, built or read once per server process and shared by all
    sessions (see :func:`zpdist.zeropoint_maps.build.load_gaia_histograms`)."""
    return pn.state.as_cached(f"zpdist-gaia:{path}", load_gaia_histograms, path=str(path), log=_log)


def _short(column: str) -> str:
    return LABELS[column].split(" (")[0]


class GaiaScaleView(pn.viewable.Viewer):
    """Star counts and mean Δϖ maps of a Gaia-scale zeropoint output, and mean Δϖ against G.

    Every map re-bins the precomputed fine histograms for its visible range on each pan or zoom; the
    toggle chooses whether the stars outside the training domain are hidden, shown, or shown alone.
    """

    histograms = param.ClassSelector(class_=GaiaHistograms)
    outside = param.Selector(
        default="hidden", objects=list(OUTSIDE_CHOICES), doc="Stars outside the training domain: hidden, shown, only."
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._dimensions = {
            c: hv.Dimension(c, label=LABELS[c], range=self.histograms.robust_range(c)) for c in COORDINATES
        }

    def image(
        self,
        plane: tuple[str, str],
        statistic: str,
        outside: str,
        x_range: tuple[float, float] | None = None,
        y_range: tuple[float, float] | None = None,
    ) -> hv.Image:
        """A map of ``plane`` over the visible window: stars per bin (``"count"``) or mean Δϖ (``"mean"``, µas).

        Bins without stars are NaN. Without a window it covers the robust range of both coordinates.
        """
        x, y = (self._dimensions[c] for c in plane)
        sides = OUTSIDE_CHOICES[outside]
        x_edges, y_edges, values = self.histograms.map(plane, statistic, sides, x_range or x.range, y_range or y.range)
        if statistic == "count":
            vdim = hv.Dimension("count", label="stars per bin")
        else:
            vdim = hv.Dimension(VALUE, label=OFFSET.label, range=self.histograms.color_limits(plane, sides))
        bounds = (x_edges[0], y_edges[0], x_edges[-1], y_edges[-1])
        return hv.Image(np.flipud(values).astype(np.float32), bounds=bounds, kdims=[x, y], vdims=[vdim])

    def _map(self, plane: tuple[str, str], statistic: str) -> hv.DynamicMap:
        def render(x_range=None, y_range=None, outside=self.outside) -> hv.Image:
            return self.image(plane, statistic, outside, x_range, y_range)

        streams = [hv.streams.RangeXY(), hv.streams.Params(self, ["outside"])]
        if statistic == "count":
            title, style = f"Stars over ({_short(plane[0])}, {_short(plane[1])})", {"cmap": "viridis", "cnorm": "log"}
        else:
            title, style = f"mean Δϖ over ({_short(plane[0])}, {_short(plane[1])})", {"cmap": "plasma"}
        return hv.DynamicMap(render, streams=streams).opts(
            title=title, colorbar=True, tools=["hover"], active_tools=["wheel_zoom"], **MAP_SIZE, **style
        )

    def profile(self, outside: str) -> hv.Overlay:
        """Mean Δϖ (µas) in bins of G, with a band of ± one standard deviation of the stars' Δϖ."""
        profile = self.histograms.profile("phot_g_mean_mag", OUTSIDE_CHOICES[outside])
        xdim = hv.Dimension("phot_g_mean_mag", label=LABELS["phot_g_mean_mag"])
        band = hv.Spread((profile["x_mid"], profile["mean"], profile["std"]), xdim, [OFFSET, "std"])
        curve = hv.Curve((profile["x_mid"], profile["mean"]), xdim, OFFSET, label="mean Δϖ")
        return (band * curve).opts(
            hv.opts.Spread(alpha=0.3),
            hv.opts.Overlay(title="mean Δϖ against G (band: ± 1σ of the stars)", legend_position="bottom_left",
                            show_grid=True, **MAP_SIZE),
        )  # fmt: skip

    def _summary(self) -> str:
        h = self.histograms
        outside = int(h.rows[1])
        share = outside / h.n_rows if h.n_rows else 0.0
        origin = "read from the cache" if h.from_cache else "built"
        return (
            f"### Gaia-scale table\n**{escape(h.source)}**: {h.n_rows:,} rows in {h.n_files} files; {outside:,} "
            f"({share:.1%}) outside the training domain. Fine histograms of {h.fine_bins}² bins per plane, {origin} in "
            f"{h.seconds:.1f} s; the maps re-bin them for the visible range."
        )

    def __panel__(self) -> pn.viewable.Viewable:
        toggle = pn.widgets.RadioButtonGroup.from_param(self.param.outside)
        maps = [self._map(MAP_PLANES[0], "count"), *(self._map(plane, "mean") for plane in MAP_PLANES)]
        profile = hv.DynamicMap(self.profile, streams=[hv.streams.Params(self, ["outside"])])
        return pn.Column(
            pn.pane.Markdown(self._summary(), sizing_mode="stretch_width"),
            pn.Row(pn.pane.Markdown("Stars outside the training domain:", margin=(8, 5)), toggle),
            pn.FlexBox(*(pn.pane.HoloViews(m) for m in maps), pn.pane.HoloViews(profile)),
        )
