"""The Zero-point tabs: the fitted Δϖ across colour–magnitude–Teff space (:class:`ZeroPointView`), and its checks
against the published offsets and the data (:class:`OffsetChecksView`)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from zpdist.maps import robust_edges, running_median
from zpdist.zeropoint_maps.histograms import MAP_PLANES
from zpdist_dashboard.state import DashboardState, mask_key
from zpdist_dashboard.text import escape
from zpdist_dashboard.views.base import LABELS, MAP_SIZE, datashaded_map, dimension, missing_notice, selectable

#: Published DR2 zero-points (µas) shown beside a constant model's fit: (study, value, error or None).
PUBLISHED_OFFSETS: tuple[tuple[str, float, float | None], ...] = (
    ("Leung & Bovy 2019 (APOGEE, NN)", -52.3, 2.0),
    ("Lindegren et al. 2018 (quasars)", -29.0, None),
    ("Zinn et al. 2019 (asteroseismology)", -53.0, None),
    ("Schönrich et al. 2019", -54.0, None),
)
#: Columns Δϖ is traced against, bins of the running medians, and the fewest stars a bin needs.
TREND_COLUMNS = ("phot_g_mean_mag", "bp_rp", "teff")
TREND_BINS = 15
TREND_MIN_COUNT = 20

OFFSET = hv.Dimension("offset_uas", label="Δϖ (µas)")


def offset_comparison(offset_uas: float, offset_uas_err: float) -> hv.Overlay:
    """The catalog's constant Δϖ ± error beside :data:`PUBLISHED_OFFSETS`, one row per study (µas)."""
    rows = [("this catalog", offset_uas, offset_uas_err)] + [(s, v, e or 0.0) for s, v, e in PUBLISHED_OFFSETS]
    study = hv.Dimension("study", label="study")
    points = hv.Scatter([(s, v) for s, v, _ in rows], study, OFFSET).opts(size=9, color="black")
    bars = hv.ErrorBars(rows, study, [OFFSET, "error"])
    return (bars * points).opts(
        hv.opts.Overlay(invert_axes=True, width=560, height=230, title="Global zero-point offset", show_grid=True)
    )


class ZeroPointView(pn.viewable.Viewer):
    """The fitted offset (with the published ones for a constant model), and Δϖ maps over (G, BP−RP), (Teff, G),
    (BP−RP, Teff)."""

    state = param.ClassSelector(class_=DashboardState)
    sections = param.List(default=[], doc="Further sections shown below the catalog's plots (the Gaia-scale one).")

    def _summary(self) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        if offset := catalog.constant_offset_uas:
            value, error = offset
            published = "\n".join(
                f"- {s}: {v:+.1f}" + (f" ± {e:.1f}" if e else "") + " µas" for s, v, e in PUBLISHED_OFFSETS
            )
            text = f"### Constant model: Δϖ = {value:+.1f} ± {error:.1f} µas\nPublished values:\n{published}"
            return pn.pane.Markdown(text, width=380)
        if missing := missing_notice(catalog, "The offset summary", ["zp_offset"]):
            return missing

        def describe(mask: np.ndarray) -> str:
            median = np.nanmedian(catalog.frame.loc[mask, "zp_offset_uas"]) if mask.any() else np.nan
            kind = escape(catalog.offset_model or "unrecorded")
            return f"### Offset model: {kind}\nMedian Δϖ of the filtered stars: {median:+.1f} µas"

        return pn.pane.Markdown(pn.bind(describe, self.state.param.mask), width=600)

    def _offset_map(self, x: str, y: str) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        title = f"Δϖ over ({LABELS[x].split(' (')[0]}, {LABELS[y].split(' (')[0]})"
        if missing := missing_notice(catalog, title, [x, y, "zp_offset_uas"]):
            return missing
        plot = datashaded_map(self.state, dimension(catalog, x), dimension(catalog, y), "zp_offset_uas", title)
        return pn.pane.HoloViews(selectable(plot, self.state, x, y))

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._summary(), pn.FlexBox(*(self._offset_map(x, y) for x, y in MAP_PLANES)), *self.sections)


class OffsetChecksView(pn.viewable.Viewer):
    """A constant offset beside the published ones; running medians of Δϖ against G, BP−RP and Teff beside those of
    ϖ Gaia − ϖ NN; and the parallax residuals against ϖ Gaia."""

    state = param.ClassSelector(class_=DashboardState)

    def _medians(self, mask: np.ndarray, x: str) -> dict[str, pd.DataFrame]:
        """Running medians against ``x`` of the filtered stars' model Δϖ (``"model"``), of its MC error
        (``"model_error"``) and of ϖ Gaia − ϖ NN (``"data"``), those whose columns the catalog has (µas); shared by
        the sessions whose filters pass the same stars."""

        def compute() -> dict[str, pd.DataFrame]:
            columns = {"model": "zp_offset_uas", "model_error": "zp_offset_model_error_uas",
                       "data": "parallax_residual_uas"}  # fmt: skip
            columns = {name: c for name, c in columns.items() if c in self.state.catalog.frame}
            frame = self.state.catalog.frame.loc[mask, [x, *columns.values()]]
            edges = robust_edges(frame[x], TREND_BINS)
            return {name: running_median(frame[x], frame[c], edges, TREND_MIN_COUNT) for name, c in columns.items()}

        return self.state.catalog.shared.get(("trend", x, mask_key(mask)), compute)

    def _trend(self, mask: np.ndarray, x: str) -> hv.Overlay:
        """Running medians (µas) of the model's Δϖ (band: its median MC error) and of ϖ Gaia − ϖ NN (band: error
        of the median) against ``x``; ``mask`` is the filter mask, passed so the plot follows it."""
        medians = self._medians(mask, x)
        xdim = hv.Dimension(x, label=LABELS[x])
        model = medians["model"]
        layers = [hv.Curve((model["x_mid"], model["median"]), xdim, OFFSET, label="model Δϖ")]
        if "model_error" in medians:
            spread = medians["model_error"]["median"]
            layers.insert(0, hv.Spread((model["x_mid"], model["median"], spread), xdim, [OFFSET, "error"]))
        if "data" in medians:
            data = medians["data"]
            layers.append(hv.Spread((data["x_mid"], data["median"], data["median_error"]), xdim, [OFFSET, "error"]))
            layers.append(hv.Curve((data["x_mid"], data["median"]), xdim, OFFSET, label="median ϖ Gaia − ϖ NN"))
        return hv.Overlay(layers).opts(
            hv.opts.Spread(alpha=0.3),
            hv.opts.Overlay(title=f"Δϖ against {LABELS[x].split(' (')[0]}", legend_position="bottom_left", **MAP_SIZE),
        )

    def _trend_plot(self, x: str) -> pn.viewable.Viewable:
        if missing := missing_notice(self.state.catalog, f"Δϖ against {x}", [x, "zp_offset_uas"]):
            return missing
        return pn.pane.HoloViews(hv.DynamicMap(pn.bind(self._trend, self.state.param.mask, x)))

    def _residuals(self) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        x, y = "parallax", "parallax_residual_uas"
        title = "ϖ Gaia − ϖ NN against ϖ Gaia"
        if missing := missing_notice(catalog, title, [x, y]):
            return missing
        density = datashaded_map(self.state, dimension(catalog, x), dimension(catalog, y), None, title)

        def compute(mask: np.ndarray) -> pd.DataFrame:
            frame = catalog.frame.loc[mask, [x, y]]
            return running_median(frame[x], frame[y], robust_edges(frame[x], 20), TREND_MIN_COUNT)

        def median(mask: np.ndarray) -> hv.Curve:
            profile = catalog.shared.get(("residuals", mask_key(mask)), lambda: compute(mask))
            return hv.Curve((profile["x_mid"], profile["median"]), x, y).opts(color="red", line_width=2)

        median_curve = hv.DynamicMap(pn.bind(median, self.state.param.mask))
        return pn.pane.HoloViews(selectable(density, self.state, x, y) * median_curve * hv.HLine(0).opts(color="grey"))

    def __panel__(self) -> pn.viewable.Viewable:
        offset = self.state.catalog.constant_offset_uas
        comparison = [pn.pane.HoloViews(offset_comparison(*offset))] if offset else []
        return pn.FlexBox(*comparison, *(self._trend_plot(x) for x in TREND_COLUMNS), self._residuals())
