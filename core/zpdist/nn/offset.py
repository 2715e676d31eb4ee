"""The parallax zero-point models Δϖ(G, BP−RP, Teff) (mas), one class per model, one interface for all.

As galpy's potentials supply only their maths and the base class the rest, each offset model supplies
its deterministic *stem* (evaluated once per star), its stochastic *body* (repeated under Monte-Carlo
dropout), its dropout masks for shared-mask passes, its *level* (the parameter that shifts Δϖ of every
star alike), the frozen features the warm start fits the level on, and a torch-free export
(:mod:`zpdist.nn.offset_export`). :class:`OffsetModel` supplies the standardisation of the inputs, the
forward pass with Monte-Carlo samples and the shared-mask passes. Training, inference, the warm start
and ``zpdist zeropoint`` call these methods and never look inside a model.

A dropout-free low-order term (e.g. a plane in the standardised inputs) is one more subclass, or a
term added to a subclass's body: its passes then carry no model error, like the constant's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zpdist.errors import ConfigError
from zpdist.nn.offset_export import (
    ConstantOffsetEvaluator,
    NetworkOffsetEvaluator,
    OffsetEvaluator,
    dropout_masks,
)

#: Shared-mask passes evaluated at a time (memory: passes × stars × 32 floats).
PASS_BLOCK = 50


class OffsetModel(nn.Module):
    """Δϖ (mas) of each star from its (G, BP−RP, Teff); the base of the offset models.

    Subclasses define :meth:`stem`, :meth:`body`, :meth:`draw_masks`, :meth:`masked_body`,
    :attr:`level`, :meth:`frozen_features`, :meth:`from_frozen` and :meth:`export`.

    Attributes
    ----------
    needs_inputs : bool
        Whether the model reads (G, BP−RP, Teff); if not, ``offset_inputs`` may be None everywhere.
    input_mean, input_std : Tensor, shape (3,)
        Standardisation of (G, BP−RP, Teff), a buffer set from the training stars.
    """

    needs_inputs: bool = True

    def __init__(self):
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(3))
        self.register_buffer("input_std", torch.ones(3))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training stars' mean and standard deviation of G (mag), BP−RP (mag), Teff (K)."""
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    def standardise(self, offset_inputs: torch.Tensor | None) -> torch.Tensor:
        """(G, BP−RP, Teff) standardised with the training statistics.

        Raises
        ------
        ValueError
            If the inputs are None.
        """
        if offset_inputs is None:
            raise ValueError(f"the {type(self).__name__} offset model needs offset_inputs (G, BP-RP, Teff)")
        return (offset_inputs - self.input_mean) / self.input_std

    def forward(self, offset_inputs: torch.Tensor | None, n_stars: int, n_samples: int = 1) -> torch.Tensor:
        """Δϖ (mas) of each star, ``n_samples`` passes through the body per star (sample axis fastest).

        Parameters
        ----------
        offset_inputs : Tensor, shape (n_stars, 3), or None
            G (mag), BP−RP (mag), Teff (K); None only for a model that reads no inputs.
        n_stars : int
        n_samples : int
            Passes through the stochastic body per star. Dropout is active only in training mode or after
            :func:`zpdist.nn.model.enable_mc_dropout`.

        Returns
        -------
        Tensor, shape (n_stars · n_samples,)
        """
        h = self.stem(offset_inputs, n_stars)
        if n_samples > 1:
            h = h.repeat_interleave(n_samples, dim=0)
        return self.body(h)

    def stem(self, offset_inputs: torch.Tensor | None, n_stars: int) -> torch.Tensor:
        """Deterministic part, evaluated once per star: features of shape (n_stars, width)."""
        raise NotImplementedError

    def body(self, h: torch.Tensor) -> torch.Tensor:
        """Stochastic part: stem features (M, width) → Δϖ (M,) in mas."""
        raise NotImplementedError

    def draw_masks(self, n_passes: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """One inverted-dropout mask per pass and dropout layer, each of shape (n_passes, layer width)."""
        raise NotImplementedError

    def masked_body(self, h: torch.Tensor, masks: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Δϖ (mas, shape (n_passes, N)) of N stars' stem features ``h`` through each pass's masked body."""
        raise NotImplementedError

    @torch.no_grad()
    def shared_mask_passes(self, offset_inputs: torch.Tensor | None, n_passes: int, seed: int = 0) -> torch.Tensor:
        """Mean Δϖ over the given stars for each of ``n_passes`` Monte-Carlo passes.

        Each pass draws ONE dropout mask per layer and applies it to every star (one draw of the
        network's weights), so the spread of the returned values is the model uncertainty of the
        global offset. Stars with a missing input are left out.

        Parameters
        ----------
        offset_inputs : Tensor, shape (N, 3), or None
            G (mag), BP−RP (mag), Teff (K) of the stars; None for a model that reads no inputs.
        n_passes : int
        seed : int
            Seed of the masks' generator (on the inputs' device).

        Returns
        -------
        Tensor, shape (n_passes,)
            float64, on the CPU (mas).
        """
        offset_inputs = offset_inputs[torch.isfinite(offset_inputs).all(dim=1)]
        h = self.stem(offset_inputs, len(offset_inputs))
        generator = torch.Generator(device=h.device).manual_seed(seed)
        means = []
        for start in range(0, n_passes, PASS_BLOCK):
            masks = self.draw_masks(min(PASS_BLOCK, n_passes - start), generator)
            means.append(self.masked_body(h, masks).mean(1).double().cpu())
        return torch.cat(means)

    @property
    def level(self) -> nn.Parameter:
        """The parameter that shifts every star's Δϖ alike (mas)."""
        raise NotImplementedError

    @torch.no_grad()
    def shift_level(self, delta_mas: float) -> None:
        """Add ``delta_mas`` to every star's Δϖ (through :attr:`level`)."""
        self.level.add_(delta_mas)

    def slow_parameters(self) -> list[nn.Parameter]:
        """Parameters that, after a warm start, Adam moves at a reduced learning rate (none by default)."""
        return []

    def uniform_value(self) -> float:
        """Δϖ (mas) if it is the same for every star, else NaN."""
        return float("nan")

    def frozen_features(self, offset_inputs: torch.Tensor | None, n_stars: int) -> torch.Tensor:
        """Dropout-free features of the stars that :meth:`from_frozen` turns into Δϖ, shape (n_stars, k)."""
        raise NotImplementedError

    def from_frozen(self, features: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Δϖ (mas) from :meth:`frozen_features` (any dtype) with ``level`` in place of :attr:`level`.

        Returns a tensor of shape (n_stars,), or a scalar when Δϖ is the same for every star.
        """
        raise NotImplementedError

    def export(
        self, mc_samples: int, seed: int, level_error_mas: float, domain: np.ndarray | list | None
    ) -> OffsetEvaluator:
        """The model as a torch-free numpy evaluator with ``mc_samples`` Monte-Carlo passes drawn from ``seed``.

        Parameters
        ----------
        mc_samples : int
        seed : int
        level_error_mas : float
            Statistical error of the fitted level (mas).
        domain : array-like, shape (3, 2), or None
            [min, max] of (G, BP−RP, Teff) over the training stars (needed when :attr:`needs_inputs`).
        """
        raise NotImplementedError


class ConstantOffset(OffsetModel):
    """One global Δϖ (mas), the paper's model. Its level is the constant itself; its passes all return it.

    Parameters
    ----------
    dropout : float
        Unused (the constant has no dropout layer); every offset model takes it.
    """

    needs_inputs = False

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.value = nn.Parameter(torch.zeros(()))

    def stem(self, offset_inputs: torch.Tensor | None, n_stars: int) -> torch.Tensor:
        return self.value.new_empty(n_stars, 0)

    def body(self, h: torch.Tensor) -> torch.Tensor:
        return self.value.expand(h.shape[0])

    def draw_masks(self, n_passes: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """No dropout layer: one empty mask per pass (the generator is not used)."""
        return (self.value.detach().new_ones(n_passes, 0),)

    def masked_body(self, h: torch.Tensor, masks: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.value.expand(len(masks[0]), h.shape[0])

    @torch.no_grad()
    def shared_mask_passes(self, offset_inputs: torch.Tensor | None, n_passes: int, seed: int = 0) -> torch.Tensor:
        """The constant for every pass, exactly (needs no stars: a mean over stars would round)."""
        return torch.full((n_passes,), float(self.value), dtype=torch.float64)

    @property
    def level(self) -> nn.Parameter:
        return self.value

    def slow_parameters(self) -> list[nn.Parameter]:
        """The constant: Adam's step is ≈ the learning rate whatever the gradient, ≈ 1 µas per step at 1e-3."""
        return [self.value]

    def uniform_value(self) -> float:
        return float(self.value.detach())

    def frozen_features(self, offset_inputs: torch.Tensor | None, n_stars: int) -> torch.Tensor:
        return self.value.detach().new_empty(n_stars, 0)

    def from_frozen(self, features: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=features.dtype, device=features.device) + level

    def export(
        self, mc_samples: int, seed: int, level_error_mas: float, domain: np.ndarray | list | None = None
    ) -> ConstantOffsetEvaluator:
        spread = float(self.shared_mask_passes(None, mc_samples, seed).std(unbiased=False))
        return ConstantOffsetEvaluator(float(self.value.detach()), level_error_mas, spread)


class NetworkOffset(OffsetModel):
    """Δϖ (mas) from standardised (G, BP−RP, Teff): Dense(32, tanh) → dropout → Dense(16, tanh) → dropout → Dense(1).

    The stem is the first layer; the level is the output layer's bias.
    """

    def __init__(self, dropout: float):
        super().__init__()
        self.dense1 = nn.Linear(3, 32)
        self.dense2 = nn.Linear(32, 16)
        self.out = nn.Linear(16, 1)
        self.dropout = nn.Dropout(dropout)

    def stem(self, offset_inputs: torch.Tensor | None, n_stars: int) -> torch.Tensor:
        return torch.tanh(self.dense1(self.standardise(offset_inputs)))

    def body(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.tanh(self.dense2(self.dropout(h))))
        return self.out(h).squeeze(-1)

    def draw_masks(self, n_passes: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        keep = 1.0 - self.dropout.p
        device = self.out.weight.device
        widths = (self.dense1.out_features, self.dense2.out_features)
        return tuple((torch.rand(n_passes, w, generator=generator, device=device) < keep) / keep for w in widths)

    def masked_body(self, h: torch.Tensor, masks: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mask1, mask2 = masks
        h2 = torch.tanh(self.dense2(h.unsqueeze(0) * mask1[:, None, :]))  # (passes, N, 16)
        return self.out(h2 * mask2[:, None, :]).squeeze(-1)

    @property
    def level(self) -> nn.Parameter:
        return self.out.bias

    def frozen_features(self, offset_inputs: torch.Tensor | None, n_stars: int) -> torch.Tensor:
        """The second layer's output with dropout off (n_stars, 16): everything before the output layer."""
        return torch.tanh(self.dense2(self.stem(offset_inputs, n_stars)))

    def from_frozen(self, features: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return features @ self.out.weight.detach().to(features.dtype).squeeze(0) + level

    def export(
        self, mc_samples: int, seed: int, level_error_mas: float, domain: np.ndarray | list | None
    ) -> NetworkOffsetEvaluator:
        if domain is None:
            raise ValueError("the network offset model's export needs the training domain of its inputs")
        widths = (self.dense1.out_features, self.dense2.out_features)
        masks = dropout_masks(widths, mc_samples, seed, self.dropout.p)

        def numpy(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().double().numpy()

        weights = {
            "input_mean": numpy(self.input_mean), "input_std": numpy(self.input_std),
            "w1": numpy(self.dense1.weight), "b1": numpy(self.dense1.bias), "w2": numpy(self.dense2.weight),
            "b2": numpy(self.dense2.bias), "w3": numpy(self.out.weight)[0], "b3": numpy(self.out.bias)[0],
        }  # fmt: skip
        return NetworkOffsetEvaluator.fold(weights, masks, level_error_mas, domain)


#: The offset models by their ``ModelConfig.offset_model`` name.
OFFSET_MODELS: dict[str, type[OffsetModel]] = {"constant": ConstantOffset, "multivariate": NetworkOffset}


def offset_model(name: str, dropout: float) -> OffsetModel:
    """The offset model called ``name`` (a key of :data:`OFFSET_MODELS`), freshly constructed.

    Raises
    ------
    ConfigError
        If the name is unknown.
    """
    if name not in OFFSET_MODELS:
        raise ConfigError(f"unknown offset model {name!r}; use {' or '.join(OFFSET_MODELS)}")
    return OFFSET_MODELS[name](dropout)
