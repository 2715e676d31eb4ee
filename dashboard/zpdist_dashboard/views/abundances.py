"""The Abundances tab: median-abundance maps of the Galaxy (face-on x–y, and R–z) and radial profiles
(docs/method.md §7)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from zpdist.maps import DEFAULT_BINS, DEFAULT_MIN_COUNT, BinnedMap, binned_median_map, color_limits, running_median
from zpdist_dashboard.state import ELEMENT_LABELS, DashboardState
from zpdist_dashboard.views.base import (
    LABELS,
    MAP_SIZE,
    SELECT_TOOLS,
    SQUARE_FRAME,
    extent,
    missing_notice,
    selectable,
)

#: Radii (kpc) of the reference circles: the bar/bulge region, and the Sun's R0 (taken from the catalog's frame).
BULGE_RADIUS_KPC = 5.0
#: |z| slices (kpc) of the radial profiles, and their radial bin width (kpc).
Z_SLICES_KPC = ((0.0, 0.3), (0.3, 0.6), (0.6, 1.0), (1.0, 2.0))
PROFILE_STEP_KPC = 0.5


class AbundancesView(pn.viewable.Viewer):
    """Binned median of the chosen element over x–y and R–z, and its radial profile in |z| slices."""

    state = param.ClassSelector(class_=DashboardState)
    bins = param.Integer(default=DEFAULT_BINS, bounds=(10, 120), doc="Bins per map axis.")
    min_count = param.Integer(default=DEFAULT_MIN_COUNT, bounds=(1, None), doc="Bins with fewer stars are masked.")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        catalog = self.state.catalog
        xy, r, z = extent(catalog, ("x_gc", "y_gc")), extent(catalog, ("r_gc",)), extent(catalog, ("z_gc",), 0.5)
        #: Axis limits (kpc) of the maps, from the whole catalog so they stay put while filtering.
        self._limits = {"x_gc": (-xy, xy), "y_gc": (-xy, xy), "r_gc": (0.0, r), "z_gc": (-z, z)}

    def _image(self, filters: tuple, element: str, bins: int, min_count: int, x: str, y: str) -> hv.Image:
        """The median-``element`` map over (x, y) of the filtered stars (``filters``: the state's filter key, under
        which the map is shared by the sessions with the same filters); colours span the 10–90th percentiles of the
        unmasked bins."""
        x_edges, y_edges = (np.linspace(*self._limits[axis], bins + 1) for axis in (x, y))

        def compute() -> BinnedMap:
            frame = self.state.filtered([x, y, element])
            return binned_median_map(frame[x], frame[y], frame[element], x_edges, y_edges, min_count)

        binned = self.state.catalog.shared.get(("median_map", x, y, element, bins, min_count, filters), compute)
        xdim, ydim = hv.Dimension(x, label=LABELS[x]), hv.Dimension(y, label=LABELS[y])
        value = hv.Dimension(element, label=ELEMENT_LABELS[element])
        image = hv.Image(
            (binned.x_centres, binned.y_centres, binned.statistic), [xdim, ydim], value,
            bounds=(x_edges[0], y_edges[0], x_edges[-1], y_edges[-1]),
        )  # fmt: skip
        lo, hi = color_limits(binned.statistic)
        clim = (lo, hi) if np.isfinite(lo) and hi > lo else (np.nan, np.nan)
        return image.opts(clim=clim)

    def _map(self, x: str, y: str, title: str, references: hv.Element, size: dict) -> pn.viewable.Viewable:
        """The map of the chosen element, rebuilt when the element changes (so that its colour bar is named after
        it: HoloViews keeps a colour bar's first label through updates)."""

        def plot(element: str) -> pn.viewable.Viewable:
            if missing := missing_notice(self.state.catalog, title, [x, y, element]):
                return missing
            image = hv.DynamicMap(
                pn.bind(self._image, self.state.param.filter_key, element, self.param.bins, self.param.min_count, x, y)
            ).opts(cmap="viridis", colorbar=True, clabel=ELEMENT_LABELS[element], title=title, **size, **SELECT_TOOLS)
            return pn.pane.HoloViews(selectable(image, self.state, x, y) * references)

        return pn.panel(pn.bind(plot, self.state.param.element))

    def _references_xy(self) -> hv.Overlay:
        r0 = self.state.catalog.r0_kpc
        circles = [hv.Ellipse(0, 0, 2 * r).opts(color="black", line_dash="dashed") for r in (BULGE_RADIUS_KPC, r0)]
        return hv.Overlay([*circles, hv.Points([(-r0, 0.0)]).opts(color="black", marker="star", size=12)])

    def _references_rz(self) -> hv.Overlay:
        return hv.Overlay(
            [hv.VLine(r).opts(color="black", line_dash="dashed") for r in (BULGE_RADIUS_KPC, self.state.catalog.r0_kpc)]
        )

    def _profiles(self, filters: tuple, element: str, min_count: int) -> hv.Overlay:
        """Running median of ``element`` against R in each |z| slice of :data:`Z_SLICES_KPC`, of the filtered stars
        (``filters``: the state's filter key, under which the medians are shared)."""
        value = hv.Dimension(element, label=ELEMENT_LABELS[element])
        edges = np.arange(0.0, self._limits["r_gc"][1] + PROFILE_STEP_KPC, PROFILE_STEP_KPC)

        def compute() -> list[pd.DataFrame]:
            frame = self.state.filtered(["r_gc", "z_gc", element])
            abs_z = np.abs(frame["z_gc"].to_numpy(float))
            slices = (frame[(abs_z >= lo) & (abs_z < hi)] for lo, hi in Z_SLICES_KPC)
            return [running_median(part["r_gc"], part[element], edges, min_count) for part in slices]

        profiles = self.state.catalog.shared.get(("radial_profiles", element, min_count, filters), compute)
        curves = []
        for (lo, hi), profile in zip(Z_SLICES_KPC, profiles, strict=True):
            curves.append(
                hv.Curve((profile["x_mid"], profile["median"]), hv.Dimension("r_gc", label=LABELS["r_gc"]), value,
                         label=f"{lo:g} ≤ |z| < {hi:g} kpc")
            )  # fmt: skip
        return hv.Overlay(curves).opts(title="Radial profile in |z| slices", legend_position="bottom_left", **MAP_SIZE)

    def _profile_plot(self) -> pn.viewable.Viewable:
        if missing := missing_notice(self.state.catalog, "Radial profile", ["r_gc", "z_gc", self.state.element]):
            return missing
        return pn.pane.HoloViews(
            hv.DynamicMap(
                pn.bind(self._profiles, self.state.param.filter_key, self.state.param.element, self.param.min_count)
            )
        )

    def __panel__(self) -> pn.viewable.Viewable:
        element = pn.widgets.Select.from_param(
            self.state.param.element,
            options={ELEMENT_LABELS[c]: c for c in self.state.param.element.objects},
            name="Element",
            width=160,
        )
        bins = pn.widgets.IntSlider.from_param(self.param.bins, name="Bins per axis", width=220)
        min_count = pn.widgets.IntInput.from_param(self.param.min_count, name="Minimum stars per bin", width=160)
        plots = pn.FlexBox(
            self._map("x_gc", "y_gc", "Face-on x–y map", self._references_xy(), SQUARE_FRAME),
            self._map("r_gc", "z_gc", "R–z map", self._references_rz(), MAP_SIZE),
            self._profile_plot(),
        )
        return pn.Column(pn.Row(element, bins, min_count), plots)
