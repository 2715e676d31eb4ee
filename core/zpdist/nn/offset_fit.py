"""The offset's level after training: its maximum-likelihood value and the global offset with its errors.

Stochastic gradient steps leave a weakly constrained direction such as the zero-point jittering by a
few µas from batch to batch, and a plateau schedule can freeze it wherever it happens to be. With the
network frozen, the offset's level and a global luminosity scale enter the likelihood linearly, so
their optimum follows exactly from weighted least squares (:func:`fit_offset_level`).
:func:`offset_summary` writes them back into the model through its components and reports the
global offset: the fit's error is the statistical error, and the spread over shared-mask Monte-Carlo
passes of the offset model is the model (dropout) error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from zpdist.errors import InputError
from zpdist.nn.batch import Batch
from zpdist.nn.device import default_mc_rows
from zpdist.nn.infer import mc_predict
from zpdist.nn.model import ZeroPointNet
from zpdist.units import mas_to_uas

#: Largest condition number of the level fit's normal equations (1/√ε of float64): beyond it they are singular.
_MAX_CONDITION = 1.0 / np.sqrt(np.finfo(float).eps)


@dataclass
class OffsetLevelFit:
    """Weighted least-squares solution of ϖ_G − Δϖ_i = δ + a·ϖ_NN,i with the network frozen.

    Attributes
    ----------
    shift : float
        δ, the change of the offset's level (mas): added to the constant, or to the MLP's final bias.
    luminosity_scale : float
        a, the factor by which every L should be multiplied.
    covariance : ndarray, shape (2, 2)
        Inverse of the Gauss–Newton Fisher matrix of (δ, a).
    """

    shift: float
    luminosity_scale: float
    covariance: np.ndarray

    @property
    def shift_error(self) -> float:
        """Statistical error of the offset's level (mas), marginalised over the luminosity scale."""
        return float(np.sqrt(self.covariance[0, 0]))


def fit_offset_level(
    offset: np.ndarray,
    parallax_nn: np.ndarray,
    parallax: np.ndarray,
    parallax_error: np.ndarray,
    parallax_nn_error: np.ndarray,
) -> OffsetLevelFit:
    """Maximum-likelihood level of the offset and global luminosity scale, everything else frozen.

    The offset's level and a global scale of L enter the parallax likelihood linearly
    (ϖ_pred = a·ϖ_NN + Δϖ + δ), so with variance σ_ϖ² + σ_NN² per star their optimum follows from
    weighted least squares, and (JᵀWJ)⁻¹ is their statistical covariance, including the degeneracy
    between the zero-point and the luminosity scale.

    Parameters
    ----------
    offset : ndarray
        The current offset of each star (mas, dropout off).
    parallax_nn, parallax_nn_error : ndarray
        Network parallax (offset excluded) and the error the likelihood assigns to it (mas).
    parallax, parallax_error : ndarray
        Gaia parallax and error (mas).

    Raises
    ------
    InputError
        If fewer than 2 stars have finite values, or the network parallaxes cannot separate the level from
        the scale (all equal, or so spread that the normal equations are singular): the network has diverged.
    """
    ok = (
        np.isfinite(offset) & np.isfinite(parallax_nn) & np.isfinite(parallax) & np.isfinite(parallax_error)
        & np.isfinite(parallax_nn_error)
    )  # fmt: skip
    n_ok = int(ok.sum())
    if n_ok < 2:
        raise InputError(
            f"the offset's level cannot be fitted: {n_ok} of {len(ok)} stars have a finite network parallax, "
            "offset and error (the network's output is not finite: training diverged)"
        )
    design = np.column_stack([np.ones(n_ok), parallax_nn[ok]])
    weight = 1.0 / (parallax_error[ok] ** 2 + parallax_nn_error[ok] ** 2)
    fisher = design.T @ (design * weight[:, None])
    if not np.isfinite(fisher).all() or np.linalg.cond(fisher) > _MAX_CONDITION:
        raise InputError(
            f"the offset's level cannot be fitted: the network parallaxes of the {n_ok} stars (from "
            f"{np.min(parallax_nn[ok]):.3g} to {np.max(parallax_nn[ok]):.3g} mas) cannot separate it from the "
            "luminosity scale (the network has collapsed or diverged); train longer, with a smaller learning rate, "
            "or check the inputs"
        )
    covariance = np.linalg.inv(fisher)
    shift, scale = covariance @ (design.T @ (weight * (parallax[ok] - offset[ok])))
    return OffsetLevelFit(float(shift), float(scale), covariance)


def _numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().cpu().numpy()


@torch.no_grad()
def _star_values(model: ZeroPointNet, batch: Batch, mc_samples: int, device: torch.device) -> dict[str, np.ndarray]:
    """What the level's fit needs of each star of ``batch``: Monte-Carlo L and σ_L², current offset, astrometry."""
    prediction = mc_predict(
        model, _numpy(batch.inputs), _numpy(batch.offset_inputs), mc_samples, device, default_mc_rows(device)
    )
    model.eval()
    offset = np.full(len(batch), np.nan)
    rows, z = np.ones(len(batch), bool), None
    if model.offset.needs_inputs:
        finite = torch.isfinite(batch.offset_inputs).all(dim=1)
        rows, z = finite.cpu().numpy(), batch.offset_inputs[finite].to(device, torch.float32)
    offset[rows] = model.offset(z, int(rows.sum())).double().cpu().numpy()
    return {
        "fakemag": prediction.fakemag,
        "fakemag_pred_var": prediction.fakemag_pred_var,
        "offset": offset,
        "k_corr": _numpy(batch.k_corr),
        "parallax": _numpy(batch.parallax),
        "parallax_error": _numpy(batch.parallax_error),
    }


def offset_summary(
    model: ZeroPointNet,
    stars: Iterable[Batch],
    device: torch.device,
    mc_samples: int,
    n_passes: int,
    seed: int,
    astrometry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Bring the offset's level and L's scale to the likelihood's optimum; report the global offset with its errors.

    Parameters
    ----------
    model : ZeroPointNet
        Trained; moved to ``device``, its offset level and luminosity scale updated in place.
    stars : iterable of Batch
        The stars the level is fitted on (one Batch when they are in memory), read once.
    device : torch.device
    mc_samples : int
        Monte-Carlo samples per star for the σ_NN entering the statistical error.
    n_passes : int
        Shared-mask Monte-Carlo passes of the offset model for its model error (paper: 1,000).
    seed : int
        Seed of the passes' dropout masks.
    astrometry : tuple of ndarray, optional
        K_corr (mag), parallax and parallax error (mas) of the same stars in the same order, at the table's
        precision (float64), for the least-squares fit; default: the batches' float32 copies.

    Returns
    -------
    dict
        ``offset_uas`` (mean over the passes), ``offset_uas_err`` (statistical and Monte-Carlo errors in
        quadrature), ``offset_uas_err_stat``, ``offset_uas_err_mc`` and ``offset_uas_before_polish`` (mean
        offset before the fit), all in µas; ``luminosity_scale_polish`` (the factor applied to L) and
        ``offset_mc_passes``.
    """
    model = model.to(device)
    parts, offset_inputs = [], []
    for batch in stars:
        parts.append(_star_values(model, batch, mc_samples, device))
        if batch.offset_inputs is not None:
            offset_inputs.append(batch.offset_inputs.to(device, torch.float32))
    star = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    if astrometry is not None:
        star.update(zip(("k_corr", "parallax", "parallax_error"), astrometry, strict=True))
    to_parallax = 10.0 ** (-0.2 * star["k_corr"])
    fit = fit_offset_level(
        star["offset"],
        star["fakemag"] * to_parallax,
        star["parallax"],
        star["parallax_error"],
        np.sqrt(star["fakemag_pred_var"]) * to_parallax,
    )
    model.offset.shift_level(fit.shift)
    model.head.rescale(fit.luminosity_scale)
    passes = model.offset.shared_mask_passes(torch.cat(offset_inputs) if offset_inputs else None, n_passes, seed)
    stat, mc = fit.shift_error, float(np.std(passes.numpy()))
    return {
        "offset_uas": mas_to_uas(float(np.mean(passes.numpy()))),
        "offset_uas_err": mas_to_uas(float(np.hypot(stat, mc))),
        "offset_uas_err_stat": mas_to_uas(stat),
        "offset_uas_err_mc": mas_to_uas(mc),
        "offset_uas_before_polish": mas_to_uas(float(np.nanmean(star["offset"]))),
        "luminosity_scale_polish": fit.luminosity_scale,
        "offset_mc_passes": n_passes,
    }
