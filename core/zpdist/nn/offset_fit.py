"""The offset's level after training: its maximum-likelihood value and the global offset with its errors.

Stochastic gradient steps leave a weakly constrained direction such as the zero-point jittering by a
few µas from batch to batch, and a plateau schedule can freeze it wherever it happens to be. With the
network frozen, the offset's level and a global luminosity scale enter the likelihood linearly, so
their optimum follows exactly from weighted least squares (:func:`fit_offset_level`) under the paper's
Gaussian, and by Newton's method under the other likelihoods (:func:`fit_offset_level_newton`).
:func:`offset_summary` writes them back into the model through its components and reports the
global offset: the fit's error is the statistical error, and the spread over shared-mask Monte-Carlo
passes of the offset model is the model (dropout) error.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from zpdist.errors import InputError
from zpdist.nn.batch import Batch
from zpdist.nn.device import default_mc_rows
from zpdist.nn.infer import mc_predict
from zpdist.nn.loss import PAPER_LIKELIHOOD, ParallaxLikelihood
from zpdist.nn.model import ZeroPointNet
from zpdist.nn.offset_plane import offset_plane
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


#: Shared-mask passes of a multivariate offset model for its plane (:mod:`zpdist.nn.offset_plane`).
_PLANE_PASSES = 200
#: Newton steps of the selection-aware level fit, the step (in units of each parameter's error) at which it has
#: converged, and the stars per chunk of its sums.
_NEWTON_STEPS, _NEWTON_TOLERANCE, _CHUNK = 30, 1e-4, 16384


def _level_derivatives(star: dict[str, np.ndarray], likelihood: ParallaxLikelihood, shift: float, scale: float):
    """Sum over the stars of ``likelihood``'s ℓ, its gradient and Hessian in (δ, a) (float64, chunked)."""
    params = torch.tensor([shift, scale], dtype=torch.float64)
    total, gradient, hessian = 0.0, torch.zeros(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    for start in range(0, len(star["parallax"]), _CHUNK):
        part = {
            k: torch.as_tensor(v[start : start + _CHUNK], dtype=torch.float64) for k, v in star.items() if k != "rows"
        }

        def loss(p: torch.Tensor, part: dict = part) -> torch.Tensor:
            return likelihood.nll(
                part["parallax"], part["parallax_error"], p[1] * part["fakemag"],
                torch.log(part["fakemag_pred_var"]) + 2.0 * torch.log(p[1]), part["k_corr"],
                part["offset"] + p[0], part.get("sightline"),
            ).sum()  # fmt: skip

        total += float(loss(params))
        gradient += torch.autograd.functional.jacobian(loss, params)
        hessian += torch.autograd.functional.hessian(loss, params)
    return total, gradient.numpy(), hessian.numpy()


def paper_level_fit(star: dict[str, np.ndarray], fakemag: np.ndarray | None = None) -> OffsetLevelFit:
    """:func:`fit_offset_level` of the stars in ``star`` (see :func:`fit_offset_level_newton` for its
    keys), with L = ``fakemag`` in place of ``star["fakemag"]`` when given."""
    to_parallax = 10.0 ** (-0.2 * star["k_corr"])
    fakemag = star["fakemag"] if fakemag is None else fakemag
    return fit_offset_level(
        star["offset"], fakemag * to_parallax, star["parallax"], star["parallax_error"],
        np.sqrt(star["fakemag_pred_var"]) * to_parallax,
    )  # fmt: skip


def _finite_rows(star: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stars whose every value is finite (``rows``: their positions in ``star``)."""
    rows = np.flatnonzero(np.all([np.isfinite(v).reshape(len(v), -1).all(axis=1) for v in star.values()], axis=0))
    return {key: value[rows] for key, value in star.items()} | {"rows": rows}


def fit_offset_level_newton(star: dict[str, np.ndarray], likelihood: ParallaxLikelihood) -> OffsetLevelFit:
    """Maximum of ``likelihood`` in the offset's level δ and a global scale a of L, network frozen.

    Newton steps on the summed ℓ of ``likelihood`` (L and σ_L both scaled by a): the selection-aware one, or
    any with an outlier component. They start from the paper likelihood's least-squares solution; the inverse
    Hessian at the optimum is the statistical covariance of (δ, a), the zero-point–luminosity degeneracy included.

    Parameters
    ----------
    star : dict of ndarray
        Per star: ``fakemag`` and ``fakemag_pred_var`` (the network's Monte-Carlo L and its variance),
        ``offset`` (mas), ``k_corr`` (mag), ``parallax`` and ``parallax_error`` (mas), and for the
        selection-aware likelihood ``sightline`` (N, 3).
    likelihood : ParallaxLikelihood

    Raises
    ------
    InputError
        As :func:`fit_offset_level`, or if Newton's steps do not converge.
    """
    start = paper_level_fit(star)
    finite = _finite_rows(star)
    params = np.array([start.shift, start.luminosity_scale])
    value, gradient, hessian = _level_derivatives(finite, likelihood, *params)
    for _ in range(_NEWTON_STEPS):
        step = np.linalg.solve(hessian, gradient)
        for _halving in range(20):  # a Newton step that raises ℓ is halved
            trial = _level_derivatives(finite, likelihood, *(params - step))
            if trial[0] <= value + 1e-9 * abs(value):
                break
            step = step / 2
        params, (value, gradient, hessian) = params - step, trial
        if np.all(np.abs(step) < _NEWTON_TOLERANCE * np.sqrt(np.abs(np.diag(np.linalg.inv(hessian))))):
            break
    else:
        raise InputError(
            f"the fit of the offset's level did not converge in {_NEWTON_STEPS} Newton steps "
            f"(last step {step[0]:.3g} mas, scale {step[1]:.3g}); train with --likelihood paper to compare"
        )
    return OffsetLevelFit(float(params[0]), float(params[1]), np.linalg.inv(hessian))


@contextlib.contextmanager
def shared_dropout_masks(module: torch.nn.Module, masks: dict, generator: torch.Generator) -> Iterator[None]:
    """Within the block, every dropout layer of ``module`` (in eval mode) applies one fixed mask to every row.

    The rows then see one draw of the network (the same dropped units for every star), which is what the
    level's network error needs: per-row masks would average the network's uncertainty away over the stars.
    A layer draws its mask, scaled by 1/(1 − p), from ``generator`` the first time it sees an input of a
    given shape, and keeps it in ``masks``: pass the same dict again to evaluate more rows with the same draw.
    """

    def apply(layer: torch.nn.Dropout, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        key = (id(layer), tuple(x.shape[1:]))
        if key not in masks:
            keep = torch.rand((1, *x.shape[1:]), generator=generator) >= layer.p
            masks[key] = keep.to(x.device, x.dtype) / (1.0 - layer.p)
        return x * masks[key]

    handles = [m.register_forward_hook(apply) for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _luminosity(model: ZeroPointNet, inputs: torch.Tensor) -> np.ndarray:
    """L of each row of ``inputs`` through the luminosity branch and head only (float64 numpy)."""
    standardised = model.standardise(inputs)
    fakemag, _ = model.head(model.branch.body(model.branch.stem(standardised)), model.head.linear_inputs(standardised))
    return fakemag.double().cpu().numpy()


@torch.no_grad()
def _network_draws(
    model: ZeroPointNet, stars: Iterable[Batch], n_draws: int, seed: int, device: torch.device
) -> np.ndarray:
    """L of every star (columns) under ``n_draws`` shared-mask draws of the luminosity network (rows); the
    stars are read once, each batch evaluated under every draw."""
    model.eval()
    generators = [torch.Generator().manual_seed(seed + draw) for draw in range(n_draws)]
    masks: list[dict] = [{} for _ in range(n_draws)]
    columns = []
    for batch in stars:
        for start in range(0, len(batch), _CHUNK):
            inputs, rows = batch.inputs[start : start + _CHUNK].to(device), []
            for draw in range(n_draws):
                with shared_dropout_masks(model.branch, masks[draw], generators[draw]):
                    rows.append(_luminosity(model, inputs))
            columns.append(np.stack(rows))
    return np.concatenate(columns, axis=1)


def network_level_spread(
    model: ZeroPointNet,
    stars: Iterable[Batch],
    star: dict[str, np.ndarray],
    likelihood: ParallaxLikelihood,
    n_draws: int,
    seed: int,
    device: torch.device,
) -> float:
    """Standard deviation (mas) of the offset's level over draws of the luminosity network: its network error.

    For each shared-mask draw (:func:`shared_dropout_masks`) the level and L's scale are re-solved with
    that draw's L for every star, everything else as fitted: exactly for the paper's Gaussian, by one
    Newton step from the fitted optimum (its Hessian) for the other likelihoods. The model must already
    be at the optimum (level shifted, L rescaled), and ``star`` hold its values there.
    """
    draws = _network_draws(model, stars, n_draws, seed, device)
    shifts = np.empty(n_draws)
    if likelihood.is_gaussian:
        for i, fakemag in enumerate(draws):
            shifts[i] = paper_level_fit(star, fakemag).shift
        return float(np.std(shifts))
    finite = _finite_rows(star)
    _, _, hessian = _level_derivatives(finite, likelihood, 0.0, 1.0)
    inverse = np.linalg.inv(hessian)
    for i, fakemag in enumerate(draws):
        _, gradient, _ = _level_derivatives(finite | {"fakemag": fakemag[finite["rows"]]}, likelihood, 0.0, 1.0)
        shifts[i] = -(inverse @ gradient)[0]
    return float(np.std(shifts))


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
        **({} if batch.sightline is None else {"sightline": _numpy(batch.sightline).astype(np.float64)}),
    }


def offset_summary(
    model: ZeroPointNet,
    stars: Callable[[], Iterable[Batch]],
    device: torch.device,
    mc_samples: int,
    n_passes: int,
    seed: int,
    astrometry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    likelihood: ParallaxLikelihood = PAPER_LIKELIHOOD,
    network_draws: int = 0,
) -> dict:
    """Bring the offset's level and L's scale to the likelihood's optimum; report the global offset with its errors.

    The level is fitted under the likelihood the model was trained with: by weighted least squares for the
    paper's Gaussian (:func:`fit_offset_level`), by Newton's method for the others (:func:`fit_offset_level_newton`).

    Parameters
    ----------
    model : ZeroPointNet
        Trained; moved to ``device``, its offset level and luminosity scale updated in place.
    stars : callable
        Returns the stars the level is fitted on as Batches (one when they are in memory); called once for
        the fit and once more for the network draws.
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
    likelihood : ParallaxLikelihood
        The objective the model was trained with.
    network_draws : int
        Shared-mask draws of the luminosity network for the level's network error
        (:func:`network_level_spread`); 0: none (that error is then 0).

    Returns
    -------
    dict
        ``offset_uas`` (mean over the passes), ``offset_uas_err`` (statistical, network and Monte-Carlo errors
        in quadrature), ``offset_uas_err_stat``, ``offset_uas_err_network``, ``offset_uas_err_mc``,
        ``offset_uas_err_level`` (the level's error, statistical and network in quadrature, which every star's
        Δϖ error carries) and ``offset_uas_before_polish`` (mean offset before the fit), all in µas;
        ``offset_uas_err_method`` ("statistical+network"); ``luminosity_scale_polish``
        (the factor applied to L), ``offset_mc_passes``, ``network_draws`` and ``likelihood`` ("paper" or
        "selection"); for a multivariate offset model, ``offset_plane`` (:func:`zpdist.nn.offset_plane.offset_plane`).
    """
    model = model.to(device)
    parts, offset_inputs = [], []
    for batch in stars():
        parts.append(_star_values(model, batch, mc_samples, device))
        if batch.offset_inputs is not None:
            offset_inputs.append(batch.offset_inputs.to(device, torch.float32))
    star = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    if astrometry is not None:
        star.update(zip(("k_corr", "parallax", "parallax_error"), astrometry, strict=True))
    if "sightline" not in star:
        likelihood = dataclasses.replace(likelihood, prior=None)
    fit = paper_level_fit(star) if likelihood.is_gaussian else fit_offset_level_newton(star, likelihood)
    model.offset.shift_level(fit.shift)
    model.head.rescale(fit.luminosity_scale)
    passes = model.offset.shared_mask_passes(torch.cat(offset_inputs) if offset_inputs else None, n_passes, seed)
    stat, mc = fit.shift_error, float(np.std(passes.numpy()))
    before_polish = mas_to_uas(float(np.nanmean(star["offset"])))
    network = 0.0
    if network_draws > 0:
        star["offset"] = star["offset"] + fit.shift
        star["fakemag_pred_var"] = star["fakemag_pred_var"] * fit.luminosity_scale**2
        network = network_level_spread(model, stars(), star, likelihood, network_draws, seed, device)
    level_error = float(np.hypot(stat, network))
    plane = {}
    if model.offset.needs_inputs and offset_inputs:
        plane = {"offset_plane": offset_plane(model.offset, torch.cat(offset_inputs), _PLANE_PASSES, seed, level_error)}
    return plane | {
        "offset_uas": mas_to_uas(float(np.mean(passes.numpy()))),
        "offset_uas_err": mas_to_uas(float(np.sqrt(stat**2 + network**2 + mc**2))),
        "offset_uas_err_stat": mas_to_uas(stat),
        "offset_uas_err_network": mas_to_uas(network),
        "offset_uas_err_mc": mas_to_uas(mc),
        "offset_uas_err_level": mas_to_uas(level_error),
        "offset_uas_err_method": "statistical+network",
        "offset_uas_before_polish": before_polish,
        "luminosity_scale_polish": fit.luminosity_scale,
        "offset_mc_passes": n_passes,
        "network_draws": network_draws,
        "likelihood": likelihood.name,
        "outlier_fraction": likelihood.outlier_fraction,
        "luminosity_scatter": likelihood.scatter,
    }
