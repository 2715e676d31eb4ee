"""Quality cuts, each named, each reporting how many stars it removed (docs/method.md §5 and §7).

A cut whose column is absent from the table is skipped with a warning instead of failing, so
catalogues with fewer columns (e.g. APOKASC-2, which has no SNR or STARFLAG) can still be used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from zpdist.errors import InputError
from zpdist.io.columns import XFE_COLUMNS
from zpdist.photometry import fakemag_to_log_solar_luminosity, mag_parallax_to_fakemag

#: Columns a multivariate offset model needs.
OFFSET_INPUT_COLUMNS: tuple[str, str, str] = ("phot_g_mean_mag", "bp_rp", "teff")


class EmptySelectionError(InputError):
    """No star is left after the cuts. The message is one line (the file, its stars, the cut that removed the most
    and the one that removed the last); :attr:`report` is the table of every cut (:func:`format_report`)."""

    def __init__(self, message: str, report: str = "") -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class TrainingCuts:
    """The paper's training-set cuts (docs/method.md §5); every threshold configurable.

    Attributes
    ----------
    max_parallax_error : float
        Keep σ_ϖ below this (mas).
    min_snr : float
        Keep APOGEE SNR above this; stars below form the paper's test set.
    min_visibility_periods : int
        Keep Gaia visibility_periods_used above this, when the column exists.
    require_starflag_zero : bool
        Keep STARFLAG == 0.
    max_vscatter : float
        Keep VSCATTER below this (km/s).
    require_bright_or_negative : bool
        Keep log10(L_K/L_⊙) > 0 or ϖ < 0.
    """

    max_parallax_error: float = 0.1
    min_snr: float = 200.0
    min_visibility_periods: int = 10
    require_starflag_zero: bool = True
    max_vscatter: float = 1.0
    require_bright_or_negative: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cut:
    """A named cut: ``keep(table)`` is True for the stars that pass; ``columns`` must all exist."""

    name: str
    columns: tuple[str, ...]
    keep: Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class CutResult:
    """How one cut acted: stars removed and remaining, or why it was skipped."""

    name: str
    removed: int
    remaining: int
    skipped: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(table: pd.DataFrame, *columns: str) -> np.ndarray:
    return np.logical_and.reduce([np.isfinite(table[c].to_numpy(dtype=float)) for c in columns])


def _between(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``low < values < high`` (an error of 0 or below is not a measurement)."""
    return (values > low) & (values < high)


def _bright_or_negative(table: pd.DataFrame) -> np.ndarray:
    parallax = table["parallax"].to_numpy(dtype=float)
    fakemag = mag_parallax_to_fakemag(table["k_corr"].to_numpy(dtype=float), parallax)
    return (parallax < 0) | (fakemag_to_log_solar_luminosity(fakemag) > 0)


def training_cuts(
    cuts: TrainingCuts, extra_required: Sequence[str] = (), extra_name: str = "valid inputs"
) -> list[Cut]:
    """The list of cuts for training; ``extra_required`` adds one cut demanding finite values there.

    The table must carry a ``k_corr`` column (extinction-corrected K).
    """
    out = [
        Cut(
            "Gaia parallax present", ("parallax", "parallax_error"), lambda t: _finite(t, "parallax", "parallax_error")
        ),
        Cut(
            f"0 < parallax_error < {cuts.max_parallax_error} mas",
            ("parallax_error",),
            lambda t: _between(t["parallax_error"].to_numpy(float), 0.0, cuts.max_parallax_error),
        ),
        Cut(f"SNR > {cuts.min_snr:g}", ("snr",), lambda t: t["snr"].to_numpy(float) > cuts.min_snr),
        Cut(
            f"visibility_periods_used > {cuts.min_visibility_periods}",
            ("visibility_periods_used",),
            lambda t: t["visibility_periods_used"].to_numpy() > cuts.min_visibility_periods,
        ),
    ]
    if cuts.require_starflag_zero:
        out.append(Cut("STARFLAG == 0", ("starflag",), lambda t: t["starflag"].to_numpy() == 0))
    out.append(
        Cut(
            f"VSCATTER < {cuts.max_vscatter:g} km/s",
            ("vscatter",),
            lambda t: t["vscatter"].to_numpy(float) < cuts.max_vscatter,
        )
    )
    out.append(Cut("valid K_corr", ("k_corr",), lambda t: _finite(t, "k_corr")))
    if cuts.require_bright_or_negative:
        out.append(Cut("log10(L_K/L_sun) > 0 or parallax < 0", ("parallax", "k_corr"), _bright_or_negative))
    if extra_required:
        columns = tuple(extra_required)
        out.append(Cut(f"{extra_name} ({', '.join(columns)})", columns, lambda t: _finite(t, *columns)))
    return out


def apply_cuts(table: pd.DataFrame, cuts: Sequence[Cut]) -> tuple[np.ndarray, list[CutResult]]:
    """Apply cuts in order.

    Returns
    -------
    keep : ndarray of bool
        True for the rows that pass every cut that could be applied.
    report : list of CutResult
        Per cut, how many stars it removed from those still left, and how many remain.
    """
    keep = np.ones(len(table), dtype=bool)
    report = []
    for cut in cuts:
        missing = [c for c in cut.columns if c not in table]
        if missing:
            reason = f"column {', '.join(missing)} absent"
            warnings.warn(f"cut '{cut.name}' skipped: {reason}", stacklevel=2)
            report.append(CutResult(cut.name, 0, int(keep.sum()), reason))
            continue
        with np.errstate(invalid="ignore"):
            passed = np.asarray(cut.keep(table), dtype=bool)
        removed = int((keep & ~passed).sum())
        keep &= passed
        report.append(CutResult(cut.name, removed, int(keep.sum())))
    return keep, report


def format_report(report: Sequence[CutResult], n_start: int) -> str:
    """A plain-text table of the cuts: name, removed, remaining."""
    width = max([len(r.name) for r in report] + [10])
    lines = [f"{'cut':<{width}}  {'removed':>8}  {'remaining':>9}", f"{'(input)':<{width}}  {'':>8}  {n_start:>9}"]
    for r in report:
        note = f"  skipped: {r.skipped}" if r.skipped else ""
        lines.append(f"{r.name:<{width}}  {r.removed:>8}  {r.remaining:>9}{note}")
    return "\n".join(lines)


def require_nonempty(keep: np.ndarray, report: Sequence[CutResult], source: str) -> None:
    """Raise :class:`EmptySelectionError` if nothing passed: one line naming the file ``source``, its stars, the cut
    that removed the most and the one that removed the last, and the table of every cut as the error's ``report``."""
    if keep.any():
        return
    table = format_report(report, len(keep))
    if not len(keep):
        raise EmptySelectionError(f"{source}: no star passes the cuts: the table has no rows", table)
    most = max(report, key=lambda r: r.removed)
    last = next(r for r in report if r.remaining == 0 and r.skipped is None)
    then = "" if last is most else f", and '{last.name}' the last {last.removed:,}"
    raise EmptySelectionError(
        f"{source}: no star passes the cuts: of {len(keep):,} stars, '{most.name}' removed the most "
        f"({most.removed:,}){then}",
        table,
    )


#: Abundances an abundance map shows (docs/method.md §7): [Fe/H] and the 15 [X/Fe].
MAP_ELEMENTS: tuple[str, ...] = ("fe_h", *XFE_COLUMNS)


@dataclass(frozen=True)
class MapCuts:
    """The paper's abundance-map cuts (docs/method.md §7); every threshold configurable.

    The first two need a zpdist catalog (``z_gc``, ``dist``, ``dist_error`` from ``zpdist predict``);
    :func:`apply_cuts` skips them, with the reason, on tables without those columns.

    Attributes
    ----------
    max_abs_z : float
        Keep |z| below this (kpc), z being the Galactocentric height ``z_gc``.
    min_dist_over_error : float
        Keep d/σ_d above this (``dist``/``dist_error``).
    max_logg_err : float
        Keep σ_log g below this (dex).
    max_fe_h_err : float
        Keep σ_[Fe/H] below this (dex).
    max_x_h_err : float
        Keep σ_[X/H] of :attr:`element` below this (dex); see :func:`x_h_error`.
    element : str
        The abundance mapped, one of :data:`MAP_ELEMENTS` (``fe_h``, ``mg_fe``, ...).
    """

    max_abs_z: float = 0.3
    min_dist_over_error: float = 5.0
    max_logg_err: float = 0.2
    max_fe_h_err: float = 0.05
    max_x_h_err: float = 0.1
    element: str = "fe_h"

    def __post_init__(self) -> None:
        if self.element not in MAP_ELEMENTS:
            raise InputError(f"unknown map element {self.element!r}; choose one of {', '.join(MAP_ELEMENTS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def x_h_error(table: pd.DataFrame, element: str) -> np.ndarray:
    """σ_[X/H] (dex) of ``element``: its ``<element>_err`` column (``fe_h_err`` for [Fe/H]).

    APOGEE's ``X_FE_ERR`` is the uncertainty of [X/H]: in DR14 it equals ``X_H_ERR`` element by element
    (checked on the real TwoFace rows), so it is used as it is, without adding σ_[Fe/H].
    """
    return table[f"{element}_err"].to_numpy(float)


def map_cuts(cuts: MapCuts) -> list[Cut]:
    """The list of abundance-map cuts, in the order of docs/method.md §7."""
    return [
        Cut(
            f"|z_gc| < {cuts.max_abs_z:g} kpc",
            ("z_gc",),
            lambda t: np.abs(t["z_gc"].to_numpy(float)) < cuts.max_abs_z,
        ),
        Cut(
            f"dist/dist_error > {cuts.min_dist_over_error:g}",
            ("dist", "dist_error"),
            lambda t: t["dist"].to_numpy(float) / t["dist_error"].to_numpy(float) > cuts.min_dist_over_error,
        ),
        Cut(
            f"logg_err < {cuts.max_logg_err:g} dex",
            ("logg_err",),
            lambda t: t["logg_err"].to_numpy(float) < cuts.max_logg_err,
        ),
        Cut(
            f"fe_h_err < {cuts.max_fe_h_err:g} dex",
            ("fe_h_err",),
            lambda t: t["fe_h_err"].to_numpy(float) < cuts.max_fe_h_err,
        ),
        Cut(
            f"[X/H] error < {cuts.max_x_h_err:g} dex ({cuts.element}_err)",
            (f"{cuts.element}_err",),
            lambda t: x_h_error(t, cuts.element) < cuts.max_x_h_err,
        ),
    ]
