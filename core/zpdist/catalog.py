"""The output catalog (docs/method.md §8): one row per input star, NaN where a quantity is undefined."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from zpdist.errors import InputError
from zpdist.galactocentric import GalactocentricFrameConfig, radec_distance_to_galactocentric
from zpdist.io.columns import XFE_COLUMNS
from zpdist.lindegren import table_l21
from zpdist.photometry import (
    fakemag_to_distance,
    fakemag_to_distance_error,
    fakemag_to_parallax,
    inverse_variance_mean,
    parallax_to_distance,
)

if TYPE_CHECKING:  # the catalog's columns and units are importable without torch
    from zpdist.nn.infer import MCPrediction

#: Input columns copied into the catalog when present (labels, photometry, their errors).
PASSTHROUGH_COLUMNS: tuple[str, ...] = (
    "apogee_id", "ra", "dec", "glon", "glat", "k", "ak", "k_corr", "ak_flag", "snr",
    "phot_g_mean_mag", "bp_rp", "teff", "teff_err", "logg", "logg_err", "fe_h", "fe_h_err", "alpha_m",
    *(c for x in XFE_COLUMNS for c in (x, f"{x}_err")),
)  # fmt: skip

#: Units of the catalog's columns (written into FITS TUNIT and Parquet field metadata).
UNITS: dict[str, str] = {
    "ra": "deg", "dec": "deg", "glon": "deg", "glat": "deg", "k": "mag", "ak": "mag", "k_corr": "mag",
    "phot_g_mean_mag": "mag", "bp_rp": "mag", "teff": "K", "teff_err": "K", "logg": "dex", "logg_err": "dex",
    "parallax": "mas", "parallax_error": "mas", "parallax_corrected": "mas", "parallax_corrected_error": "mas",
    "nn_parallax": "mas", "nn_parallax_error": "mas", "nn_parallax_model_error": "mas",
    "zp_offset": "mas", "zp_offset_error": "mas", "zp_offset_model_error": "mas", "l21_zp_offset": "mas",
    "dist": "pc", "dist_error": "pc", "dist_model_error": "pc", "weighted_dist": "pc", "weighted_dist_error": "pc",
    "x_gc": "kpc", "y_gc": "kpc", "z_gc": "kpc", "r_gc": "kpc", "phi_gc": "deg",
    "fe_h": "dex", "fe_h_err": "dex", "alpha_m": "dex",
    **{c: "dex" for x in XFE_COLUMNS for c in (x, f"{x}_err")},
}  # fmt: skip


def build_catalog(
    table: pd.DataFrame,
    prediction: MCPrediction,
    frame: GalactocentricFrameConfig,
    offset_level_error: float = 0.0,
    offset_after_l21: bool = False,
    distance: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Assemble the catalog from the canonical input table and the Monte-Carlo predictions.

    Parameters
    ----------
    table : pandas.DataFrame
        Canonical input table with ``k_corr`` (see :func:`zpdist.nn.data.add_corrected_k`).
    prediction : MCPrediction
        Per-star predictions, row-aligned with ``table``.
    frame : GalactocentricFrameConfig
        Frame for the Galactocentric coordinates (computed from the NN distance).
    offset_level_error : float
        Statistical error of the offset's fitted level (mas), common to every star; it enters
        ``zp_offset_error`` (with the star's Monte-Carlo spread, ``zp_offset_model_error``) and so the
        corrected parallax's error.
    offset_after_l21 : bool
        The model was trained with ``parallax_correction = "l21"``: its Δϖ is the offset left after the
        Lindegren et al. (2021) correction, so ``parallax_corrected`` subtracts both.
    distance : tuple of ndarray, optional
        Each star's NN distance and its error (pc) when they are not 1/ϖ_NN: for a model trained with the
        selection-aware likelihood, 1/E[ϖ_t] over its prior and the propagated spread
        (:func:`zpdist.nn.selection_distance.selection_aware_distance`); NaN rows keep 1/ϖ_NN.

    Returns
    -------
    pandas.DataFrame
        The docs/method.md §8 columns: fakemag and errors; NN distance (pc) with total and model errors;
        NN parallax (mas); raw and offset-corrected Gaia parallax; the inverse-variance combination
        of NN and corrected Gaia parallaxes as ``weighted_dist``; Galactocentric x, y, z, R (kpc) and
        φ (deg); the offset model's Δϖ per star; and the input labels. For a Gaia EDR3/DR3 table
        (``table.attrs["gaia_release"]``) with the inputs of :func:`zpdist.lindegren.table_l21`, also the
        Lindegren et al. (2021) zero-point ``l21_zp_offset`` (mas, NaN outside its range) and
        ``l21_outside_validity`` (bool).
    """
    out = pd.DataFrame({c: table[c].to_numpy() for c in PASSTHROUGH_COLUMNS if c in table})
    k_corr = table["k_corr"].to_numpy(float)
    fakemag = prediction.fakemag
    fakemag_error = prediction.fakemag_error
    fakemag_model_error = np.sqrt(prediction.fakemag_model_var)
    out["fakemag"] = fakemag
    out["fakemag_error"] = fakemag_error
    out["fakemag_model_error"] = fakemag_model_error
    dist = fakemag_to_distance(fakemag, k_corr)
    dist_error = fakemag_to_distance_error(fakemag, fakemag_error, dist)
    if distance is not None:
        known = np.isfinite(distance[0])
        dist, dist_error = np.where(known, distance[0], dist), np.where(known, distance[1], dist_error)
    out["dist"] = dist
    out["dist_error"] = dist_error
    out["dist_model_error"] = fakemag_to_distance_error(fakemag, fakemag_model_error, dist)
    out["nn_parallax"] = fakemag_to_parallax(fakemag, k_corr)
    out["nn_parallax_error"] = fakemag_to_parallax(fakemag_error, k_corr)
    out["nn_parallax_model_error"] = fakemag_to_parallax(fakemag_model_error, k_corr)
    out["zp_offset"] = prediction.offset
    out["zp_offset_model_error"] = prediction.offset_std
    out["zp_offset_error"] = np.hypot(prediction.offset_std, offset_level_error)
    parallax = table["parallax"].to_numpy(float) if "parallax" in table else np.full(len(table), np.nan)
    parallax_error = (
        table["parallax_error"].to_numpy(float) if "parallax_error" in table else np.full(len(table), np.nan)
    )
    out["parallax"] = parallax
    out["parallax_error"] = parallax_error
    out["parallax_corrected"] = parallax - prediction.offset
    out["parallax_corrected_error"] = np.hypot(parallax_error, out["zp_offset_error"])
    l21 = table_l21(table)
    if l21 is not None:
        out["l21_zp_offset"], out["l21_outside_validity"] = l21
    if offset_after_l21:  # the model's Δϖ is what remains after L21: both come off (NaN outside L21's range)
        if l21 is None:
            raise InputError("the model was trained on L21-corrected parallaxes; this table has no L21 inputs")
        out["parallax_corrected"] = parallax - out["l21_zp_offset"].to_numpy(float) - prediction.offset
    weighted, weighted_error = inverse_variance_mean(
        out["nn_parallax"], out["nn_parallax_error"], out["parallax_corrected"], out["parallax_corrected_error"]
    )
    out["weighted_dist"] = parallax_to_distance(weighted)
    out["weighted_dist_error"] = weighted_error / weighted * out["weighted_dist"]
    if "ra" in table and "dec" in table:
        for name, values in radec_distance_to_galactocentric(table["ra"], table["dec"], dist, frame).items():
            out[name] = values
    return out
