"""Warm start of the log-linear luminosity term before stochastic training.

With the network's correction frozen at its initial value, ln L = w·x + b is a log-linear model
(x: the labels, or the spectrum's leading whitened principal components and their products),
and together with the levels of ln σ_L² and of Δϖ it has a few hundred parameters. They are fitted
to the training stars by full-batch L-BFGS in the parallax likelihood of METHOD §4, in float64,
before Adam starts. Adam then trains everything jointly, from a point where L already follows the
spectra's smooth trends and the offset is near its maximum-likelihood value, so the network only
has to learn a correction. Without it, the luminous, distant giants (whose parallaxes hardly
constrain L) are the last stars whose L converges, and early stopping leaves their L, and with it
Δϖ, biased.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from zpdist.nn.loss import mean_parallax_nll
from zpdist.nn.model import ZeroPointNet

#: Ridge penalty on the log-linear weights, added to the mean negative log-likelihood per star.
RIDGE = 1e-4


@dataclass(frozen=True)
class WarmStart:
    """What the warm start fitted.

    Attributes
    ----------
    loss_before, loss_after : float
        Mean parallax NLL of the training stars before and after the fit (dropout off).
    offset_mas : float
        The offset's level afterwards (the constant, or the mean over the training stars).
    iterations : int
        L-BFGS function evaluations.
    """

    loss_before: float
    loss_after: float
    offset_mas: float
    iterations: int


@torch.no_grad()
def _frozen_features(
    model: ZeroPointNet, inputs: torch.Tensor, offset_inputs: torch.Tensor | None, chunk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Network features (dropout off), log-linear inputs and offset-MLP features, in float64."""
    features, linear, offset_features = [], [], []
    for start in range(0, len(inputs), chunk):
        x = inputs[start : start + chunk]
        standardised = (x - model.input_mean) / model.input_std
        features.append(model.branch.body(model.branch.stem(standardised)).double())
        linear.append(model.log_linear_inputs(standardised).double())
        if model.offset_mlp is not None:
            mlp = model.offset_mlp
            z = offset_inputs[start : start + chunk]
            h = mlp.stem((z - model.offset_input_mean) / model.offset_input_std)
            offset_features.append(torch.tanh(mlp.dense2(h)).double())
    return torch.cat(features), torch.cat(linear), torch.cat(offset_features) if offset_features else None


def warm_start_log_linear(
    model: ZeroPointNet,
    inputs: torch.Tensor,
    offset_inputs: torch.Tensor | None,
    k_corr: torch.Tensor,
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    max_iterations: int = 2000,
    chunk: int = 2048,
    log: Callable[[str], None] = print,
) -> WarmStart:
    """Fit the log-linear term, the heads' biases and the offset's level; everything else frozen.

    Parameters
    ----------
    model : ZeroPointNet
        With a log-linear luminosity head, standardisation statistics (and projection) already set.
    inputs : Tensor, shape (N, n_inputs)
        Training stars' spectra or labels (not standardised), on the model's device.
    offset_inputs : Tensor, shape (N, 3), optional
        G, BP−RP, Teff (multivariate offset model).
    k_corr, parallax, parallax_error : Tensor, shape (N,)
        K_corr (mag), Gaia parallax and its error (mas).
    max_iterations : int
        L-BFGS function evaluations at most.
    chunk : int
        Stars per forward pass when computing the frozen features.

    Returns
    -------
    WarmStart
    """
    if model.log_linear is None:
        raise ValueError("the warm start needs a log-linear luminosity head")
    was_training = model.training
    model.eval()
    features, linear, offset_features = _frozen_features(model, inputs, offset_inputs, chunk)
    targets = [model.log_linear.weight, model.fakemag_head.bias, model.log_var_head.bias]
    targets.append(model.offset_mas if model.offset_mlp is None else model.offset_mlp.out.bias)
    fitted = [t.detach().double().clone().requires_grad_(True) for t in targets]
    weight, fakemag_bias, log_var_bias, offset_level = fitted
    fakemag_raw = features @ model.fakemag_head.weight.detach().double().squeeze(0) + model.log_linear.bias.double()
    log_var_raw = features @ model.log_var_head.weight.detach().double().squeeze(0)
    if offset_features is None:
        offset_raw = torch.zeros((), dtype=torch.float64, device=features.device)
    else:
        offset_raw = offset_features @ model.offset_mlp.out.weight.detach().double().squeeze(0)
    log_scale = torch.log(model.fakemag_scale.double())
    data = [t.double() for t in (parallax, parallax_error, k_corr)]

    def nll() -> torch.Tensor:
        ln_fakemag = torch.clamp(fakemag_raw + fakemag_bias + linear @ weight.squeeze(0), max=30.0) + log_scale
        log_var = log_var_raw + log_var_bias + 2.0 * log_scale
        offset = (offset_raw + offset_level).expand_as(ln_fakemag)
        return mean_parallax_nll(data[0], data[1], torch.exp(ln_fakemag), log_var, data[2], offset)

    optimiser = torch.optim.LBFGS(
        fitted, max_iter=max_iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = nll() + RIDGE * (weight**2).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        before = float(nll())
    optimiser.step(closure)
    with torch.no_grad():
        after = float(nll())
        for target, value in zip(targets, fitted, strict=True):
            target.copy_(value.to(target.dtype))
        level = float((offset_raw + offset_level).mean())
    iterations = int(optimiser.state_dict()["state"][0]["func_evals"])
    model.train(was_training)
    log(
        f"warm start of the log-linear term ({weight.shape[1]} inputs): training loss {before:.4f} -> {after:.4f}, "
        f"offset {1000 * level:.1f} µas, {iterations} L-BFGS evaluations"
    )
    return WarmStart(before, after, level, iterations)
