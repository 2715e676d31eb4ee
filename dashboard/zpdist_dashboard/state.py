"""The dashboard's data: the catalog (loaded once per process), and one state object per session.

:class:`Catalog` is the file's rows plus a few derived columns, and the results every session may reuse;
:class:`DashboardState` holds a session's filters, chosen element and current selection, and the boolean masks that
follow from them.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
import panel as pn
import param

from zpdist.catalog import UNITS
from zpdist.errors import FileFormatError, MissingInputError
from zpdist.io.catalog import CATALOG_SUFFIXES, read_catalog
from zpdist.io.columns import ELEMENTS, XFE_COLUMNS
from zpdist.precision import gaia_fractional_error
from zpdist.selection import Cut, MapCuts, apply_cuts, map_cuts
from zpdist.units import mas_to_uas, pc_to_kpc

#: A file is a zpdist catalog only if it holds at least one of these columns.
DEFINING_COLUMNS = ("dist", "nn_parallax", "zp_offset", "fakemag")


def _nn_beats_gaia(f: pd.DataFrame) -> np.ndarray:
    nn = f["dist_error"].to_numpy(float) / f["dist"].to_numpy(float)
    gaia = gaia_fractional_error(f)
    return np.where(np.isfinite(nn) & ~np.isnan(gaia), (nn < gaia).astype(float), np.nan)


#: Columns the dashboard adds to a catalog: name -> (catalog columns it needs, how it is computed).
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[pd.DataFrame], np.ndarray]]] = {
    "dist_kpc": (("dist",), lambda f: pc_to_kpc(f["dist"].to_numpy(float))),
    "frac_dist_error": (("dist", "dist_error"), lambda f: f["dist_error"].to_numpy(float) / f["dist"].to_numpy(float)),
    "gaia_frac_error": (("parallax_corrected", "parallax_corrected_error"), gaia_fractional_error),
    "nn_beats_gaia": (("dist", "dist_error", "parallax_corrected", "parallax_corrected_error"), _nn_beats_gaia),
    "zp_offset_uas": (("zp_offset",), lambda f: mas_to_uas(f["zp_offset"].to_numpy(float))),
    "zp_offset_model_error_uas": (
        ("zp_offset_model_error",),
        lambda f: mas_to_uas(f["zp_offset_model_error"].to_numpy(float)),
    ),
    "parallax_residual_uas": (
        ("parallax", "nn_parallax"),
        lambda f: mas_to_uas(f["parallax"].to_numpy(float) - f["nn_parallax"].to_numpy(float)),
    ),
}

#: Range filters of the sidebar: column -> label (with unit).
RANGE_FILTERS: dict[str, str] = {
    "phot_g_mean_mag": "G (mag)",
    "bp_rp": "BP−RP (mag)",
    "teff": "Teff (K)",
    "logg": "log g (dex)",
    "fe_h": "[Fe/H] (dex)",
    "dist_kpc": "distance (kpc)",
    "frac_dist_error": "fractional distance error σd/d",
}

#: Element choices: [Fe/H] and the 15 [X/Fe] of the paper's maps, column -> label.
ELEMENT_LABELS: dict[str, str] = {
    "fe_h": "[Fe/H]",
    **{col: f"[{'Ti II' if el == 'TIII' else el.title()}/Fe]" for el, col in zip(ELEMENTS, XFE_COLUMNS, strict=True)},
}


#: The thresholds of the paper's abundance-map cuts (docs/method.md §7), as ``zpdist select`` applies them.
MAP_CUTS = MapCuts()


def quality_cuts(element: str, thresholds: MapCuts = MAP_CUTS) -> list[Cut]:
    """The abundance-map cuts offered as toggles, the σ[X/H] one on ``element``: :func:`zpdist.selection.map_cuts`.

    A toggle is the position of its cut in this list (the order of docs/method.md §7), the same for every element.
    ``thresholds`` are the ``[maps]`` section of the configuration (``zpdist serve --config``).
    """
    return map_cuts(replace(thresholds, element=element))


#: The toggles: positions in :func:`quality_cuts`.
CUT_TOGGLES = list(range(len(quality_cuts(MAP_CUTS.element))))


class CatalogError(FileFormatError):
    """A file that cannot be read as a zpdist catalog."""


def nbytes(value: object) -> int:
    """Bytes held by the arrays in ``value`` (arrays, pandas objects, and containers or dataclasses of them); other
    objects count 0."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, pd.DataFrame | pd.Series):
        return int(np.sum(value.memory_usage(index=True)))
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(nbytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(nbytes(getattr(value, name)) for name in value.__dataclass_fields__)
    return 0


class SharedResults:
    """Results computed from a catalog that every session may reuse, keyed by what they depend on (a column, a
    filter state's :func:`filter_key`). Beyond ``size`` of them, or ``max_bytes`` of arrays, the least
    recently used are dropped; those stored with ``keep=True`` (one per map, see
    :class:`zpdist_dashboard.raster.MapRaster`) stay while the process runs. Arrays stored are made read-only:
    sessions share them."""

    def __init__(self, size: int = 256, max_bytes: int = 128 * 2**20) -> None:
        self.size, self.max_bytes = size, max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._kept: dict[Hashable, Any] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        """Bytes of arrays held by the results that may be dropped."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items) + len(self._kept)

    def get(self, key: Hashable, compute: Callable[[], Any], keep: bool = False) -> Any:
        """The result stored under ``key``, computed by ``compute()`` the first time (and kept for good with
        ``keep``)."""
        with self._lock:
            if key in self._kept:
                return self._kept[key]
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = compute()
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        with self._lock:
            if keep:
                return self._kept.setdefault(key, value)
            if key in self._items:
                return self._items[key][0]
            size = nbytes(value)
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > self.size or (self._bytes > self.max_bytes and len(self._items) > 1):
                self._bytes -= self._items.popitem(last=False)[1][1]
        return value


def _number(value: object, default: float) -> float:
    """``value`` as a finite float, ``default`` when it is not one (metadata comes from a file)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(frozen=True)
class Catalog:
    """A catalog loaded for the dashboard.

    Attributes
    ----------
    frame : pandas.DataFrame
        The file's columns, then the :data:`DERIVED` columns whose inputs are present.
    metadata : dict
        The catalog's metadata block (model, frame, code version), ``{}`` if absent. It comes from the file: read
        it through the properties below, which check its types.
    path : Path
    columns : tuple of str
        The file's own columns: what a download contains.
    shared : SharedResults
        Results computed from ``frame`` once for all sessions.
    """

    frame: pd.DataFrame
    metadata: dict
    path: Path
    columns: tuple[str, ...]
    shared: SharedResults = field(default_factory=SharedResults, compare=False, repr=False)

    def finite_range(self, column: str) -> tuple[float, float] | None:
        """(min, max) of the finite values of ``column``; None when it has none (or is absent)."""

        def compute() -> tuple[float, float] | None:
            values = self.frame[column].to_numpy(float) if column in self.frame else np.array([])
            values = values[np.isfinite(values)]
            return (float(values.min()), float(values.max())) if values.size else None

        return self.shared.get(("finite_range", column), compute)

    def unusable(self, columns: tuple[str, ...] | list[str]) -> list[str]:
        """Why ``columns`` cannot be plotted: the catalog columns lacking (traced back from derived ones), else the
        columns without a finite value (a derived one traced back to those of its inputs that have none); empty when
        all can be."""
        if missing := self.missing(columns):
            return [f"the catalog lacks column '{c}'" for c in missing]
        empty: list[str] = []
        for name in (c for c in columns if self.finite_range(c) is None):
            inputs = [c for c in DERIVED.get(name, ((),))[0] if self.finite_range(c) is None]
            empty += [c for c in inputs or [name] if c not in empty]
        return [f"column '{c}' has no finite values" for c in empty]

    def missing(self, columns: tuple[str, ...] | list[str]) -> list[str]:
        """The catalog columns lacking for ``columns`` (derived ones are traced back to their inputs)."""
        needed: list[str] = []
        for name in columns:
            for source in DERIVED[name][0] if name in DERIVED else (name,):
                if source not in self.columns and source not in needed:
                    needed.append(source)
        return needed

    @property
    def model(self) -> dict:
        """The metadata's ``model`` block, ``{}`` when absent or not a mapping."""
        model = self.metadata.get("model")
        return model if isinstance(model, dict) else {}

    @property
    def model_mode(self) -> str | None:
        """The network's mode (``"labels"``, ``"spectra"``…) from the metadata, None when unrecorded."""
        mode = self.model.get("mode")
        return mode if isinstance(mode, str) else None

    @property
    def offset_model(self) -> str | None:
        """``"constant"`` or ``"multivariate"`` from the metadata, None when unrecorded."""
        kind = self.model.get("offset_model")
        return kind if isinstance(kind, str) else None

    @property
    def constant_offset_uas(self) -> tuple[float, float] | None:
        """A constant model's fitted Δϖ and its error (µas), None when not recorded as finite numbers."""
        value, error = _number(self.model.get("offset_uas"), np.nan), _number(self.model.get("offset_uas_err"), np.nan)
        return (value, error) if self.offset_model == "constant" and math.isfinite(value) else None

    @property
    def r0_kpc(self) -> float:
        """Sun–Galactic-centre distance of the catalog's frame (kpc), 8.125 when unrecorded."""
        frame = self.metadata.get("frame")
        r0 = _number(frame.get("r0_kpc"), 8.125) if isinstance(frame, dict) else 8.125
        return r0 if r0 > 0 else 8.125


def load_catalog(path: str | os.PathLike) -> Catalog:
    """Read a catalog written by :func:`zpdist.io.catalog.write_catalog` and add the derived columns.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    CatalogError
        If it cannot be read as Parquet/FITS, or holds none of :data:`DEFINING_COLUMNS`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such catalog file")
    if path.suffix.lower() not in CATALOG_SUFFIXES:
        raise CatalogError(f"{path}: not a zpdist catalog (expected a .parquet or .fits file)")
    try:
        frame, metadata = read_catalog(path)
    except Exception as exc:  # pyarrow and astropy raise many types for a foreign or corrupt file
        raise CatalogError(f"{path}: not a readable zpdist catalog ({type(exc).__name__}: {exc})") from exc
    if not any(c in frame.columns for c in DEFINING_COLUMNS):
        raise CatalogError(f"{path}: not a zpdist catalog (none of the columns {', '.join(DEFINING_COLUMNS)})")
    for name in frame.columns:
        if name in UNITS and not pd.api.types.is_numeric_dtype(frame[name]):
            raise CatalogError(f"{path}: column '{name}' holds {frame[name].dtype} values, not numbers")
    for name in frame.columns:
        if frame[name].dtype == object and len(frame) and isinstance(frame[name].iloc[0], bytes):
            frame[name] = frame[name].str.decode("ascii").str.strip()
    columns = tuple(frame.columns)
    derived = {name: fn(frame) for name, (needs, fn) in DERIVED.items() if all(c in columns for c in needs)}
    frame = pd.concat([frame, pd.DataFrame(derived, index=frame.index)], axis=1)
    return Catalog(frame, metadata if isinstance(metadata, dict) else {}, path, columns)


def shared_catalog(path: str | os.PathLike) -> Catalog:
    """The catalog at ``path``, read once per server process and shared by all sessions."""
    return pn.state.as_cached(f"zpdist-catalog:{Path(path).resolve()}", load_catalog, path=Path(path))


@numba.njit(parallel=True, cache=True)
def _keep_within(values: np.ndarray, lo: float, hi: float, mask: np.ndarray) -> None:
    """Clear ``mask`` where ``values`` is outside ``[lo, hi]`` or NaN, in one pass (the filter of 10⁷ stars is
    redone on every slider move)."""
    for i in numba.prange(len(values)):
        mask[i] &= lo <= values[i] <= hi


def filter_mask(
    frame: pd.DataFrame,
    ranges: dict[str, tuple[float, float]],
    cuts: list[int],
    element: str,
    thresholds: MapCuts = MAP_CUTS,
) -> np.ndarray:
    """Stars passing the range filters and the chosen quality cuts.

    Parameters
    ----------
    frame : pandas.DataFrame
        :attr:`Catalog.frame`.
    ranges : dict
        column -> (lo, hi), inclusive; stars with NaN in a filtered column are dropped. Columns
        absent from ``frame`` are ignored.
    cuts : list of int
        Positions in :func:`quality_cuts`; a cut whose columns are absent is ignored.
    element : str
        The chosen element column (used by the σ[X/H] cut).
    thresholds : MapCuts
        The cuts' thresholds.

    Returns
    -------
    ndarray of bool
    """
    mask = np.ones(len(frame), dtype=bool)
    for column, (lo, hi) in ranges.items():
        if column in frame:
            _keep_within(frame[column].to_numpy(float), float(lo), float(hi), mask)
    offered = quality_cuts(element, thresholds)
    chosen = [cut for i, cut in enumerate(offered) if i in cuts and all(c in frame for c in cut.columns)]
    if chosen:
        mask &= apply_cuts(frame, chosen)[0]
    return mask


def filter_key(
    ranges: dict[str, tuple[float, float]], cuts: list[int], element: str, thresholds: MapCuts = MAP_CUTS
) -> tuple:
    """What :func:`filter_mask` depends on, as a hashable key: equal keys, equal masks (the element counts only
    with a quality cut chosen, the σ[X/H] one follows it)."""
    return tuple(sorted(ranges.items())), tuple(sorted(cuts)), element if cuts else None, thresholds


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points (x, y) lie inside the closed polygon of vertices ``polygon`` (shape (n, 2))."""
    inside = np.zeros(len(x), dtype=bool)
    xv, yv = polygon[:, 0], polygon[:, 1]
    for i in range(len(polygon)):
        x1, y1, x2, y2 = xv[i - 1], yv[i - 1], xv[i], yv[i]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


@dataclass(frozen=True)
class Selection:
    """A region drawn on a map: a box ``bounds = (x0, y0, x1, y1)`` or a lasso ``polygon`` in the map's columns."""

    x: str
    y: str
    bounds: tuple[float, float, float, float] | None = None
    polygon: tuple[tuple[float, float], ...] | None = None

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Stars of ``frame`` inside the region."""
        x, y = frame[self.x].to_numpy(float), frame[self.y].to_numpy(float)
        if self.polygon is not None:
            return points_in_polygon(x, y, np.asarray(self.polygon, dtype=float))
        x0, y0, x1, y1 = self.bounds
        return (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))

    def to_dict(self) -> dict:
        """JSON-safe description (for export metadata)."""
        if self.polygon is not None:
            return {"kind": "lasso", "x": self.x, "y": self.y, "polygon": [list(map(float, p)) for p in self.polygon]}
        return {"kind": "box", "x": self.x, "y": self.y, "bounds": [float(b) for b in self.bounds]}


class DashboardState(param.Parameterized):
    """One session's filters, element and selection, and the masks they give.

    ``mask`` (stars passing the filters) changes only with the filters and element; ``selected``
    (those also inside the drawn region) with the mask and the selection.
    """

    catalog = param.ClassSelector(class_=Catalog, constant=True)
    ranges = param.Dict(default={}, doc="Active range filters: column -> (lo, hi).")
    cuts = param.ListSelector(default=[], objects=CUT_TOGGLES, doc="Active quality cuts: positions in quality_cuts.")
    element = param.Selector(default="fe_h", objects=list(ELEMENT_LABELS), doc="Abundance shown on the maps.")
    selection = param.ClassSelector(class_=Selection, allow_None=True, doc="The region drawn on a map.")
    thresholds = param.ClassSelector(class_=MapCuts, default=MAP_CUTS, constant=True, doc="The map cuts' thresholds.")
    mask = param.Array(doc="Stars passing the filters.")
    filter_key = param.Parameter(
        doc="The filter_key of mask: a small hashable value that changes with it (depend on it rather than on the "
        "mask: HoloViews hashes what a plot depends on), and the key of results shared by the sessions whose "
        "filters pass the same stars."
    )
    selected = param.Array(doc="Stars passing the filters and inside the selection (none without one).")

    def __init__(self, catalog: Catalog, **params) -> None:
        super().__init__(catalog=catalog, **params)
        elements = [c for c in ELEMENT_LABELS if c in catalog.columns] or ["fe_h"]
        self.param.element.objects = elements
        if self.element not in elements:
            self.element = elements[0]
        self._update_mask()

    @param.depends("ranges", "cuts", "element", watch=True)
    def _update_mask(self) -> None:
        frame, thresholds = self.catalog.frame, self.thresholds
        key = filter_key(self.ranges, self.cuts, self.element, thresholds)
        mask = self.catalog.shared.get(
            ("mask", key), lambda: filter_mask(frame, self.ranges, self.cuts, self.element, thresholds)
        )
        self.param.update(mask=mask, filter_key=key)
        self._update_selected()

    @param.depends("selection", watch=True)
    def _update_selected(self) -> None:
        if self.selection is None:
            none = self.catalog.shared.get("no star", lambda: np.zeros(len(self.catalog.frame), bool), keep=True)
            self.selected = none
        else:
            self.selected = self.mask & self.selection.mask(self.catalog.frame)

    def set_range(self, column: str, value: tuple[float, float] | None) -> None:
        """Apply the range filter ``column`` (None removes it)."""
        ranges = {k: v for k, v in self.ranges.items() if k != column}
        if value is not None:
            ranges[column] = (float(value[0]), float(value[1]))
        self.ranges = ranges

    def filtered(self, columns: list[str]) -> pd.DataFrame:
        """The filtered stars' ``columns``."""
        return self.catalog.frame.loc[self.mask, columns]

    def describe_filters(self) -> dict:
        """JSON-safe record of the filters (for export metadata)."""
        return {
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "quality_cuts": [
                cut.name for i, cut in enumerate(quality_cuts(self.element, self.thresholds)) if i in self.cuts
            ],
            "element": self.element,
        }
