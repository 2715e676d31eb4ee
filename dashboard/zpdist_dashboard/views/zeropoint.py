"""The Zero-point tabs: the fitted Δϖ across colour–magnitude–Teff space beside the Lindegren et al. (2021)
zero-point (:class:`ZeroPointView`), and its checks against the published offsets and the data
(:class:`OffsetChecksView`). The published offsets shown are those of the catalog's Gaia release."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from zpdist.io.columns import GAIA_RELEASES
from zpdist.maps import robust_edges, running_median
from zpdist.units import mas_to_uas
from zpdist.zeropoint_maps.histograms import MAP_PLANES
from zpdist_dashboard.error_budget import error_budget_markdown, plane_markdown
from zpdist_dashboard.published import PUBLISHED_FOR, PublishedOffset
from zpdist_dashboard.state import Catalog, DashboardState
from zpdist_dashboard.text import escape
from zpdist_dashboard.views.base import LABELS, MAP_SIZE, datashaded_map, dimension, missing_notice, selectable

#: Columns Δϖ is traced against, bins of the running medians, and the fewest stars a bin needs.
TREND_COLUMNS = ("phot_g_mean_mag", "bp_rp", "teff")
TREND_BINS = 15
TREND_MIN_COUNT = 20
#: The catalog's Lindegren et al. (2021) zero-point per star (mas; NaN outside its validity range).
L21_COLUMN = "l21_zp_offset"
#: Colours of the network's and L21's curves in the comparison.
NETWORK_COLOR, L21_COLOR = "#1f77b4", "#d62728"

OFFSET = hv.Dimension("offset_uas", label="Δϖ (µas)")


def catalog_release(catalog: Catalog) -> str | None:
    """The Gaia release the catalog's metadata records (``"DR2"``, ``"EDR3"``, ``"DR3"``), None when it records
    none (or something else)."""
    release = catalog.metadata.get("gaia_release")
    return release if isinstance(release, str) and release in GAIA_RELEASES else None


def offset_after_l21(catalog: Catalog) -> bool:
    """Whether the catalog's Δϖ is the offset left after L21 (``--parallax-correction l21``). The metadata does not
    say; the columns do: ϖ − ϖ_corrected is Δϖ + L21 for such a catalog (:func:`zpdist.catalog.build_catalog`), Δϖ
    for any other (stars with |L21| under 1 µas cannot tell them apart and are not used)."""
    if not {"parallax", "parallax_corrected", "zp_offset", L21_COLUMN} <= set(catalog.columns):
        return False

    def compute() -> bool:
        f = catalog.frame
        removed = f["parallax"].to_numpy(float) - f["parallax_corrected"].to_numpy(float)
        network, l21 = f["zp_offset"].to_numpy(float), f[L21_COLUMN].to_numpy(float)
        usable = np.isfinite(removed) & np.isfinite(network) & (np.abs(l21) > 1e-3)
        return bool(usable.any() and np.allclose(removed[usable], network[usable] + l21[usable], rtol=0, atol=1e-5))

    return catalog.shared.get(("offset_after_l21",), compute)


def l21_medians(frame: pd.DataFrame, x: str, after_l21: bool) -> dict[str, pd.DataFrame]:
    """:func:`zpdist.maps.running_median` tables (µas; bins of too few stars dropped) against ``x`` of the network's
    Δϖ (``"network"``) and of L21 (``"l21"``) from ``frame``'s ``zp_offset`` and ``l21_zp_offset`` (mas), over the
    same bins and stars: those with both finite (a star outside L21's range has NaN and is left out). With
    ``after_l21`` (:func:`offset_after_l21`) the network's total zero-point, L21 + Δϖ, is the one traced."""
    l21 = mas_to_uas(frame[L21_COLUMN].to_numpy(float))
    network = mas_to_uas(frame["zp_offset"].to_numpy(float)) + (l21 if after_l21 else 0.0)
    xs = frame[x].to_numpy(float)
    both = np.isfinite(network) & np.isfinite(l21) & np.isfinite(xs)
    edges = robust_edges(xs[both], TREND_BINS)
    medians = {
        "network": running_median(xs[both], network[both], edges, TREND_MIN_COUNT),
        "l21": running_median(xs[both], l21[both], edges, TREND_MIN_COUNT),
    }
    return {name: m[np.isfinite(m["median"])].reset_index(drop=True) for name, m in medians.items()}


def offset_comparison(
    offset_uas: float, offset_uas_err: float, published: tuple[PublishedOffset, ...], after_l21: bool = False
) -> hv.Overlay:
    """The catalog's constant Δϖ ± error beside ``published``, one row per study (µas)."""
    rows = [("this catalog" + (", after L21" if after_l21 else ""), offset_uas, offset_uas_err)]
    rows += [(p.label, p.value_uas, p.error_uas or 0.0) for p in published]
    study = hv.Dimension("study", label="study")
    points = hv.Scatter([(s, v) for s, v, _ in rows], study, OFFSET).opts(size=9, color="black")
    bars = hv.ErrorBars(rows, study, [OFFSET, "error"])
    size = {"width": 620, "height": 90 + 24 * len(rows)}
    return (bars * points).opts(invert_axes=True, title="Global zero-point offset", show_grid=True, **size)


def published_markdown(catalog: Catalog) -> str:
    """The published offsets for the catalog's release as a Markdown list, headed by the release they are for."""
    release, values = PUBLISHED_FOR[catalog_release(catalog)]
    lines = [
        f"- {p.label}: {p.value_uas:+.1f}" + (f" ± {p.error_uas:.1f}" if p.error_uas else "") + f" µas ({p.reference})"
        for p in values
    ]
    return f"Published values for **{release}** (Δϖ = ϖ Gaia − ϖ true):\n" + "\n".join(lines)


class ZeroPointView(pn.viewable.Viewer):
    """The fitted offset with the published ones for the catalog's Gaia release; Δϖ maps over (G, BP−RP),
    (Teff, G), (BP−RP, Teff); and the network's Δϖ beside L21's against G, BP−RP and Teff."""

    state = param.ClassSelector(class_=DashboardState)
    sections = param.List(default=[], doc="Further sections shown below the catalog's plots (the Gaia-scale one).")

    def _summary(self) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        published = published_markdown(catalog)
        if offset := catalog.constant_offset_uas:
            after = " (left after L21)" if offset_after_l21(catalog) else ""
            budget = error_budget_markdown(catalog.model)
            text = f"### Constant model{after}: Δϖ = {offset[0]:+.1f} ± {offset[1]:.1f} µas\n{budget}\n\n{published}"
            return pn.pane.Markdown(text, width=620)
        if missing := missing_notice(catalog, "The offset summary", ["zp_offset"]):
            return missing

        plane = plane_markdown(catalog.model)

        def describe(_key: object) -> str:
            mask = self.state.mask
            median = np.nanmedian(catalog.frame.loc[mask, "zp_offset_uas"]) if mask.any() else np.nan
            kind = escape(catalog.offset_model or "unrecorded")
            return f"### Offset model: {kind}\nMedian Δϖ of the filtered stars: {median:+.1f} µas\n\n{plane}"

        return pn.Column(pn.pane.Markdown(pn.bind(describe, self.state.param.filter_key), width=600),
                         pn.pane.Markdown(published, width=620))  # fmt: skip

    def _offset_map(self, x: str, y: str) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        title = f"Δϖ over ({LABELS[x].split(' (')[0]}, {LABELS[y].split(' (')[0]})"
        if missing := missing_notice(catalog, title, [x, y, "zp_offset_uas"]):
            return missing
        plot = datashaded_map(self.state, dimension(catalog, x), dimension(catalog, y), "zp_offset_uas", title)
        return pn.pane.HoloViews(selectable(plot, self.state, x, y))

    def _l21_trend(self, key: object, x: str) -> hv.Overlay:
        """Running medians (µas; bands: 16th–84th percentiles) of the network's Δϖ and of L21 against ``x``, over
        the filtered stars inside L21's range; computed once per filter state (``key``) for every session."""
        catalog = self.state.catalog
        after = offset_after_l21(catalog)
        mask = self.state.mask
        medians = catalog.shared.get(("l21", x, key), lambda: l21_medians(catalog.frame.loc[mask], x, after))
        xdim = hv.Dimension(x, label=LABELS[x])
        names = {"network": "network Δϖ" + (" (L21 + residual)" if after else ""), "l21": "L21 (Lindegren+ 2021)"}
        layers = []
        for name, color in (("network", NETWORK_COLOR), ("l21", L21_COLOR)):
            m = medians[name]
            band = (m["x_mid"], m["median"], m["median"] - m["q16"], m["q84"] - m["median"])
            layers.append(hv.Spread(band, xdim, [OFFSET, "below", "above"]).opts(color=color, alpha=0.2))
            layers.append(hv.Curve((m["x_mid"], m["median"]), xdim, OFFSET, label=names[name]).opts(color=color))
        title = f"Network vs L21 against {LABELS[x].split(' (')[0]}"
        return hv.Overlay(layers).opts(title=title, legend_position="bottom", legend_cols=2, show_grid=True, **MAP_SIZE)

    def _l21_section(self) -> pn.viewable.Viewable:
        """The network–L21 comparison, or a line saying why the catalog has no L21 column."""
        catalog = self.state.catalog
        if L21_COLUMN not in catalog.columns:
            release = catalog_release(catalog) or "not recorded"
            return pn.pane.Markdown(
                f"No Lindegren et al. (2021) comparison: {escape(catalog.path.name)} has no `{L21_COLUMN}` column "
                f"(written for Gaia (E)DR3 parallaxes with L21's inputs; this catalog's release: {escape(release)}).",
                css_classes=["zpdist-no-l21"],
            )

        def describe(_key: object) -> str:
            mask = self.state.mask
            inside = int(np.isfinite(catalog.frame.loc[mask, L21_COLUMN].to_numpy(float)).sum())
            return (f"**Network vs Lindegren et al. (2021)**: running medians (bands: 16th–84th percentiles) of the "
                    f"{inside:,} filtered stars inside L21's range; the {int(mask.sum()) - inside:,} outside it, "
                    f"without an L21 value, are left out of both curves.")  # fmt: skip

        plots = [
            missing_notice(catalog, f"Network vs L21 against {x}", [x, "zp_offset", L21_COLUMN])
            or pn.pane.HoloViews(hv.DynamicMap(pn.bind(self._l21_trend, self.state.param.filter_key, x)))
            for x in TREND_COLUMNS
        ]
        return pn.Column(pn.pane.Markdown(pn.bind(describe, self.state.param.filter_key)), pn.FlexBox(*plots))

    def __panel__(self) -> pn.viewable.Viewable:
        maps = pn.FlexBox(*(self._offset_map(x, y) for x, y in MAP_PLANES))
        return pn.Column(self._summary(), maps, self._l21_section(), *self.sections)


class OffsetChecksView(pn.viewable.Viewer):
    """A constant offset beside the published ones for the catalog's Gaia release; running medians of Δϖ against
    G, BP−RP and Teff beside those of ϖ Gaia − ϖ NN; and the parallax residuals against ϖ Gaia."""

    state = param.ClassSelector(class_=DashboardState)

    def _medians(self, key: object, x: str) -> dict[str, pd.DataFrame]:
        """Running medians against ``x`` of the filtered stars' model Δϖ (``"model"``), of its MC error
        (``"model_error"``) and of ϖ Gaia − ϖ NN (``"data"``), those whose columns the catalog has (µas); shared by
        the sessions with the same filters (``key``)."""
        mask = self.state.mask

        def compute() -> dict[str, pd.DataFrame]:
            columns = {"model": "zp_offset_uas", "model_error": "zp_offset_model_error_uas",
                       "data": "parallax_residual_uas"}  # fmt: skip
            columns = {name: c for name, c in columns.items() if c in self.state.catalog.frame}
            frame = self.state.catalog.frame.loc[mask, [x, *columns.values()]]
            edges = robust_edges(frame[x], TREND_BINS)
            return {name: running_median(frame[x], frame[c], edges, TREND_MIN_COUNT) for name, c in columns.items()}

        return self.state.catalog.shared.get(("trend", x, key), compute)

    def _trend(self, key: object, x: str) -> hv.Overlay:
        """Running medians (µas) of the model's Δϖ (band: its median MC error) and of ϖ Gaia − ϖ NN (band: error
        of the median) against ``x``; ``key`` is the filter state's key, passed so the plot follows it."""
        medians = self._medians(key, x)
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
        return pn.pane.HoloViews(hv.DynamicMap(pn.bind(self._trend, self.state.param.filter_key, x)))

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

        def median(key: object) -> hv.Curve:
            profile = catalog.shared.get(("residuals", key), lambda: compute(self.state.mask))
            return hv.Curve((profile["x_mid"], profile["median"]), x, y).opts(color="red", line_width=2)

        median_curve = hv.DynamicMap(pn.bind(median, self.state.param.filter_key))
        return pn.pane.HoloViews(selectable(density, self.state, x, y) * median_curve * hv.HLine(0).opts(color="grey"))

    def __panel__(self) -> pn.viewable.Viewable:
        catalog = self.state.catalog
        offset = catalog.constant_offset_uas
        _, published = PUBLISHED_FOR[catalog_release(catalog)]
        comparison = (
            [pn.pane.HoloViews(offset_comparison(*offset, published, offset_after_l21(catalog)))] if offset else []
        )
        return pn.FlexBox(*comparison, *(self._trend_plot(x) for x in TREND_COLUMNS), self._residuals())
