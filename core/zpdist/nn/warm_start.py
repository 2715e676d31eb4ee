"""Warm start of the log-linear luminosity term before stochastic training.

With the network's correction frozen at its initial value, ln L = w·x + b is a log-linear model
(x: the labels, or the spectrum's leading whitened principal components and their products),
and together with the levels of ln σ_L² and of Δϖ it has a few hundred parameters. They are fitted
to the training stars by full-batch L-BFGS in the parallax likelihood of docs/method.md §4, in float64,
before Adam starts. Adam then trains everything jointly, from a point where L already follows the
spectra's smooth trends and the offset is near its maximum-likelihood value, so the network only
has to learn a correction. Without it, the luminous, distant giants (whose parallaxes hardly
constrain L) are the last stars whose L converges, and early stopping leaves their L, and with it
Δϖ, biased.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from zpdist.nn.batch import Batch
from zpdist.nn.loss import PAPER_LIKELIHOOD, ParallaxLikelihood
from zpdist.nn.model import ZeroPointNet

if TYPE_CHECKING:
    from zpdist.config import TrainConfig

#: Ridge penalty on the log-linear weights, added to the mean negative log-likelihood per star.
RIDGE = 1e-4
#: The head's parameters the warm start fits (with the offset's level), in L-BFGS's order.
FITTED = ("linear.weight", "fakemag.bias", "log_var.bias")


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


@dataclass
class FrozenStars:
    """The training stars as the warm start sees them: network features frozen, float64 (:func:`frozen_stars`)."""

    features: torch.Tensor
    linear_inputs: torch.Tensor
    offset_features: torch.Tensor
    parallax: torch.Tensor
    parallax_error: torch.Tensor
    k_corr: torch.Tensor
    sightline: torch.Tensor | None


@torch.no_grad()
def frozen_stars(model: ZeroPointNet, stars: Iterable[Batch], chunk: int = 2048) -> FrozenStars:
    """Branch features (dropout off), log-linear inputs, offset features and astrometry of the stars, in float64.

    The warm start changes none of what this computes, so one result serves several warm starts of the model
    (or of copies of it).
    """
    was_training = model.training
    model.eval()
    device = model.input_mean.device
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in FrozenStars.__dataclass_fields__}
    for batch in stars:
        batch = batch.to(device)
        for start in range(0, len(batch), chunk):
            rows = slice(start, start + chunk)
            standardised = model.standardise(batch.inputs[rows])
            z = None if batch.offset_inputs is None else batch.offset_inputs[rows]
            columns["features"].append(model.branch.body(model.branch.stem(standardised)))
            columns["linear_inputs"].append(model.head.linear_inputs(standardised))
            columns["offset_features"].append(model.offset.frozen_features(z, len(standardised)))
            for name in ("parallax", "parallax_error", "k_corr", "sightline"):
                if getattr(batch, name) is not None:
                    columns[name].append(getattr(batch, name)[rows])
    model.train(was_training)
    return FrozenStars(**{name: torch.cat(values).double() if values else None for name, values in columns.items()})


def warm_start_log_linear(
    model: ZeroPointNet,
    stars: Iterable[Batch] | FrozenStars,
    max_iterations: int = 2000,
    chunk: int = 2048,
    log: Callable[[str], None] = print,
    likelihood: ParallaxLikelihood = PAPER_LIKELIHOOD,
) -> WarmStart:
    """Fit the log-linear term, the heads' biases and the offset's level; everything else frozen.

    Parameters
    ----------
    model : ZeroPointNet
        With a log-linear luminosity head, standardisation statistics (and projection) already set.
    stars : iterable of Batch, or FrozenStars
        The training stars (a list of one Batch when they are in memory), read once; or their
        :func:`frozen_stars` already computed.
    max_iterations : int
        L-BFGS function evaluations at most.
    chunk : int
        Stars per forward pass when computing the frozen features.
    log : callable
        Where the one-line report goes.
    likelihood : ParallaxLikelihood
        The objective (the training's).

    Returns
    -------
    WarmStart

    Raises
    ------
    ValueError
        If the model's luminosity head has no log-linear term.
    """
    if not model.can_warm_start:
        raise ValueError("the warm start needs a log-linear luminosity head")
    was_training = model.training
    model.eval()
    frozen = stars if isinstance(stars, FrozenStars) else frozen_stars(model, stars, chunk)
    head, offset = model.head, model.offset
    params = {name: p.detach().double() for name, p in head.named_parameters()} | {"scale": head.scale.double()}
    fitted = {name: params[name].clone().requires_grad_(True) for name in FITTED}
    level = offset.level.detach().double().clone().requires_grad_(True)

    def nll() -> torch.Tensor:
        fakemag, log_var = head.evaluate(params | fitted, frozen.features, frozen.linear_inputs)
        delta = offset.from_frozen(frozen.offset_features, level).expand_as(fakemag)
        astrometry = (frozen.parallax, frozen.parallax_error, fakemag, log_var, frozen.k_corr, delta)
        return likelihood.mean_nll(*astrometry, frozen.sightline)

    weight = fitted["linear.weight"]
    optimiser = torch.optim.LBFGS(
        [*fitted.values(), level], max_iter=max_iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )  # fmt: skip

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
        targets = dict(head.named_parameters())
        for name, value in fitted.items():
            targets[name].copy_(value.to(targets[name].dtype))
        offset.level.copy_(level.to(offset.level.dtype))
        mean_level = float(offset.from_frozen(frozen.offset_features, level).mean())
    iterations = int(optimiser.state_dict()["state"][0]["func_evals"])
    model.train(was_training)
    log(
        f"warm start of the log-linear term ({weight.shape[1]} inputs): training loss {before:.4f} -> {after:.4f}, "
        f"offset {1000 * mean_level:.1f} µas, {iterations} L-BFGS evaluations"
    )
    return WarmStart(before, after, mean_level, iterations)


def parameter_groups(model: ZeroPointNet, config: TrainConfig) -> list[dict]:
    """Adam's parameter groups: after a warm start, the components' slow parameters (the log-linear term, the
    constant offset) learn ``warm_lr_factor`` times slower than the network, so that its first noisy steps do
    not undo the warm start."""
    slow = []
    if config.warm_start and model.can_warm_start:
        slow = [*model.head.slow_parameters(), *model.offset.slow_parameters()]
    fast = [p for p in model.parameters() if all(p is not q for q in slow)]
    groups = [{"params": fast}]
    if slow:
        groups.append({"params": slow, "lr": config.learning_rate * config.warm_lr_factor})
    return groups
