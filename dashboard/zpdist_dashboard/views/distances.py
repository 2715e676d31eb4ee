"""The Distances tab: where the network's distances are more precise than Gaia's (offset-corrected) parallaxes."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from zpdist.precision import crossover_distance, fractional_error_profile
from zpdist.units import pc_to_kpc
from zpdist_dashboard.state import DashboardState
from zpdist_dashboard.views.base import SQUARE_FRAME, datashaded_map, dimension, extent, missing_notice, selectable

#: Columns :func:`zpdist.precision.fractional_error_profile` reads.
PROFILE_COLUMNS = ["dist", "dist_error", "parallax_corrected", "parallax_corrected_error"]
#: Range of the fractional-error axes (both panels share it so they compare at a glance).
FRACTION_RANGE = (0.0, 0.6)


class DistancesView(pn.viewable.Viewer):
    """Fractional distance errors of NN and Gaia against distance, ϖ NN against ϖ Gaia, and an x–y map."""

    state = param.ClassSelector(class_=DashboardState)
    profile = param.DataFrame(doc="Median fractional errors in distance bins of the filtered stars.")
    crossover_pc = param.Number(default=np.nan, doc="Distance beyond which the NN is more precise (pc).")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._missing_profile = self.state.catalog.missing(PROFILE_COLUMNS)
        self._update_profile()

    @param.depends("state.filter_key", watch=True)
    def _update_profile(self) -> None:
        if self._missing_profile:
            return
        profile = self.state.catalog.shared.get(
            ("distance_profile", self.state.filter_key),
            lambda: fractional_error_profile(self.state.filtered(PROFILE_COLUMNS)),
        )
        self.profile, self.crossover_pc = profile, crossover_distance(profile)

    def _medians(self, profile: pd.DataFrame, crossover_pc: float, y: str) -> hv.Overlay:
        centre = pc_to_kpc(0.5 * (profile["d_lo"] + profile["d_hi"]))
        nn = hv.Curve((centre, profile["nn_frac_error"]), "dist_kpc", y, label="NN median")
        gaia = hv.Curve((centre, profile["gaia_frac_error"]), "dist_kpc", y, label="Gaia median")
        layers = [nn.opts(color="red", line_width=2), gaia.opts(color="orange", line_width=2, line_dash="dashed")]
        if np.isfinite(crossover_pc):
            crossover_kpc = pc_to_kpc(crossover_pc)
            layers.append(hv.VLine(crossover_kpc).opts(color="black", line_dash="dotted"))
            layers.append(
                hv.Text(crossover_kpc, FRACTION_RANGE[1] * 0.92, f" crossover {crossover_kpc:.2f} kpc")
                .opts(text_align="left", text_font_size="9pt")
            )  # fmt: skip
        return hv.Overlay(layers)

    def _fraction_plot(self, y: str, title: str) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        if missing := missing_notice(catalog, title, PROFILE_COLUMNS):
            return missing
        density = datashaded_map(
            self.state, dimension(catalog, "dist_kpc"), dimension(catalog, y, FRACTION_RANGE), None, title
        )
        medians = hv.DynamicMap(pn.bind(self._medians, self.param.profile, self.param.crossover_pc, y))
        overlay = (selectable(density, self.state, "dist_kpc", y) * medians).opts(legend_position="bottom_right")
        return pn.pane.HoloViews(overlay)

    def _parallaxes(self) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        title = "ϖ NN against ϖ Gaia"
        if missing := missing_notice(catalog, title, ["parallax", "nn_parallax"]):
            return missing
        x, y = dimension(catalog, "parallax"), dimension(catalog, "nn_parallax")
        density = datashaded_map(self.state, x, y, None, title)
        return pn.pane.HoloViews(selectable(density, self.state, "parallax", "nn_parallax") * hv.Slope(1, 0))

    def _where_nn_wins(self) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        title = "Fraction of stars where the NN beats Gaia"
        if missing := missing_notice(catalog, title, ["x_gc", "y_gc", "nn_beats_gaia"]):
            return missing
        half = extent(catalog, ("x_gc", "y_gc"))
        x, y = (dimension(catalog, c, (-half, half)) for c in ("x_gc", "y_gc"))
        plot = datashaded_map(self.state, x, y, "nn_beats_gaia", title, cmap="RdBu", clim=(0.0, 1.0), **SQUARE_FRAME)
        return pn.pane.HoloViews(selectable(plot, self.state, "x_gc", "y_gc"))

    def _headline(self, crossover_pc: float) -> str:
        if self._missing_profile:
            return ""
        if not np.isfinite(crossover_pc):
            return "### The network is nowhere more precise than Gaia for the filtered stars"
        return f"### The network is more precise than Gaia beyond {pc_to_kpc(crossover_pc):.2f} kpc (crossover)"

    def __panel__(self) -> pn.viewable.Viewable:
        plots = pn.FlexBox(
            self._fraction_plot("frac_dist_error", "NN fractional distance error"),
            self._fraction_plot("gaia_frac_error", "Gaia fractional parallax error"),
            self._parallaxes(),
            self._where_nn_wins(),
        )
        return pn.Column(pn.pane.Markdown(pn.bind(self._headline, self.param.crossover_pc)), plots)
