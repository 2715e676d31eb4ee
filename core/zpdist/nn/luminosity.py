"""The luminosity side of the network: input branches (spectra → features, labels → features) and heads
(features → L and ln σ_L²).

A branch is split into a deterministic *stem* (the layers before the first dropout) and a stochastic
*body*, so Monte-Carlo dropout evaluates the stem once per star and only repeats the body. A head's
:meth:`LuminosityHead.forward` is the one implementation of "features → (L, ln σ_L²)": the network's
forward pass calls it with the head's own parameters, and the warm start's likelihood calls it through
:meth:`LuminosityHead.evaluate` with float64 copies of them, some of which it fits.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional

from zpdist.errors import ConfigError
from zpdist.nn.device import Scratch, block_rows, conv_rows, map_blocks, matmul_t

#: Width of the features a branch hands to a head.
N_FEATURES = 64
#: Pooling width after the spectra branch's second convolution.
POOL = 4
#: Bits per Monte-Carlo dropout decision (:func:`keep_masks`).
MASK_BITS = 16


def keep_masks(
    n_rows: int,
    widths: tuple[int, ...],
    p: float,
    scratch: Scratch,
    like: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, ...]:
    """Dropout keep masks (1 kept, 0 dropped, unscaled) for ``n_rows`` passes through layers of ``widths`` units.

    Each decision compares 16 random bits with round((1 − p) · 2¹⁶), so the rate is p to within 2⁻¹⁷
    (0.3 becomes 0.300003), and one 64-bit draw of ``generator`` (the global one by default) makes four
    decisions: ≈ 10× cheaper than ``torch.nn.functional.dropout``'s draws.

    Returns
    -------
    tuple of Tensor
        One (n_rows, width) mask per layer, of the dtype and on the device of ``like``: views into one
        buffer of ``scratch``.
    """
    total = -(-sum(widths) // 4) * 4
    words = scratch.get("words", (n_rows * total // 4,), torch.int64, like.device)
    words.random_(-(2**63), None, generator=generator)
    keep = scratch.get("keep", (n_rows, total), like.dtype, like.device)
    threshold = round((1.0 - p) * 2**MASK_BITS) - 2 ** (MASK_BITS - 1)
    torch.lt(words.view(torch.int16).view(n_rows, total), threshold, out=keep)
    ends = itertools.accumulate(widths)
    return tuple(keep[:, end - width : end] for end, width in zip(ends, widths, strict=True))


def _blocks(n_stars: int, n_samples: int, rows: int) -> list[tuple[slice, int, int]]:
    """Blocks of at most ``rows`` of the n_stars · n_samples passes, a star's passes consecutive: whole stars when
    a star's passes fit, else parts of one star's passes; as (stars, first pass, passes)."""
    if n_samples <= rows:
        step = rows // n_samples
        return [(slice(s, min(s + step, n_stars)), 0, n_samples) for s in range(0, n_stars, step)]
    parts = range(0, n_samples, rows)
    return [(slice(s, s + 1), first, min(rows, n_samples - first)) for s in range(n_stars) for first in parts]


class SpectraBranch(nn.Module):
    """Conv1D(2, 8) → dropout → Conv1D(4, 8) → MaxPool(4) → dropout → Dense(164) → dropout → Dense(64).

    The second convolution and its pooling run as one stride-4 convolution (:meth:`pooled_conv`).
    Monte-Carlo passes without gradients (:meth:`sample_body`) draw their dropout masks 16 bits at a time
    (:func:`keep_masks`) and apply them as multiplications, the scale 1/(1 − p) folded into the weights,
    in blocks of rows that stay in the cache (:meth:`masked_body`).
    """

    def __init__(self, n_pixels: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 2, kernel_size=8)
        self.conv2 = nn.Conv1d(2, 4, kernel_size=8)
        n_flat = 4 * ((n_pixels - 14) // POOL)
        self.dense1 = nn.Linear(n_flat, 164)
        self.dense2 = nn.Linear(164, N_FEATURES)
        self.dropout = nn.Dropout(dropout)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic part: ReLU(Conv1D(2, 8)), (N, 7514) → (N, 2, 7507).

        Computed as one stride-4 convolution with 8 output channels, channel 2r + c being filter c at the
        positions 4j + r (see :meth:`pooled_conv`): the same numbers up to float rounding, ≈ 3× faster;
        in blocks of :func:`zpdist.nn.device.block_rows` stars.
        """
        out = x.shape[1] - self.conv1.kernel_size[0] + 1
        phases = torch.cat([functional.pad(self.conv1.weight, (r, POOL - 1 - r)) for r in range(POOL)])
        bias = self.conv1.bias.repeat(POOL)

        def block(part: torch.Tensor) -> torch.Tensor:
            padded = functional.pad(part, (0, -out % POOL)).unsqueeze(1)
            y = functional.conv1d(padded, phases, bias, stride=POOL)  # (n, 8, ⌈out / 4⌉)
            return y.unflatten(1, (POOL, -1)).permute(0, 2, 3, 1).flatten(2)[..., :out]  # (n, 2, out)

        return torch.relu(torch.cat([block(part) for part in x.split(block_rows(x.device))]))

    def pooled_conv(
        self, x: torch.Tensor, input_scale: float = 1.0, out: torch.Tensor | None = None, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """MaxPool(4) of Conv1D(4, 8) of ``input_scale`` · x, before the ReLU (which commutes with the pooling).

        One stride-4 convolution with 16 output channels, channel 4r + o being filter o at the positions
        4j + r (its kernel shifted by r in an 11-wide window), so the pooling is a maximum over the four
        phases r. It runs channels-last, the layout of oneDNN and cuDNN: the 2 → 4-channel convolution
        runs far below the matmul rate, and this form gives its numbers, up to float rounding, ≈ 4×
        faster forward and backward and ≈ 20× faster in Monte-Carlo passes.

        Parameters
        ----------
        x : Tensor, shape (M, L, 2)
            The convolution's input, positions first (channels last).
        input_scale : float
        out : Tensor, shape (M, 4, (L − 7) // 4), optional
            Where the result goes, then without gradients (maxima by pairs of phases, in buffers of
            ``scratch``). Without, a max-pooling over the phases, whose gradient goes to one phase as
            MaxPool's does.
        scratch : Scratch, optional

        Returns
        -------
        Tensor, shape (M, 4, (L − 7) // 4)
        """
        rows, length, channels = x.shape
        weight = (self.conv2.weight * input_scale).to(x.dtype)
        phases = torch.cat([functional.pad(weight, (r, POOL - 1 - r)) for r in range(POOL)]).unsqueeze(2)
        bias = self.conv2.bias.to(x.dtype).repeat(POOL)
        y = functional.conv2d(x.view(rows, 1, length, channels).permute(0, 3, 1, 2), phases, bias, stride=(1, POOL))
        y = y.permute(0, 2, 3, 1).flatten(1, 2)  # (M, n_pool, 16): a view of the channels-last result
        (n_pool, width), filters = y.shape[1:], self.conv2.out_channels
        if out is None:
            by_phase = y.unflatten(2, (POOL, filters)).permute(0, 3, 1, 2)  # (M, filters, n_pool, phases)
            return functional.max_pool2d(by_phase, (1, POOL)).squeeze(3)
        pairs = (scratch or Scratch()).get("pairs", (rows, n_pool, width // 2), y.dtype, y.device)
        torch.maximum(y[..., : width // 2], y[..., width // 2 :], out=pairs)
        torch.maximum(pairs[..., :filters], pairs[..., filters:], out=out.transpose(1, 2))
        return out

    def body(self, h: torch.Tensor) -> torch.Tensor:
        """Stochastic part: stem output (N, 2, L) → (N, 64) features; the convolution in blocks of
        :func:`zpdist.nn.device.block_rows` stars. Each dropout layer draws its mask for all N stars at once,
        as torch's Dropout after the paper's layers would."""
        blocks = self.dropout(h).split(block_rows(h.device))
        x = torch.cat([torch.relu(self.pooled_conv(part.transpose(1, 2).contiguous())).flatten(1) for part in blocks])
        x = self.dropout(torch.relu(self.dense1(self.dropout(x))))
        return torch.relu(self.dense2(x))

    def draw_masks(
        self, h: torch.Tensor, n_samples: int, scratch: Scratch | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep masks (0 or 1, in h's dtype) of the three dropout layers for ``n_samples`` passes of each star of h.

        Returns
        -------
        tuple of Tensor
            Shapes (M, 2, L), (M, n_flat) and (M, 164) for the M = len(h) · n_samples passes, h being
            the stem's output of shape (len(h), 2, L). The first is laid out positions first, as
            :meth:`masked_body` uses it.
        """
        rows, (channels, length) = len(h) * n_samples, h.shape[1:]
        widths = (length * channels, self.dense1.in_features, self.dense1.out_features)
        first, pooled, hidden = keep_masks(rows, widths, self.dropout.p, scratch or Scratch(), h, generator)
        return first.unflatten(1, (length, channels)).transpose(1, 2), pooled, hidden

    @torch.no_grad()
    def masked_body(
        self, h: torch.Tensor, masks: tuple[torch.Tensor, ...], n_samples: int, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """:meth:`body` with ``masks`` (:meth:`draw_masks`) in place of the dropout layers, in h's dtype, no gradients.

        Parameters
        ----------
        h : Tensor, shape (N, 2, L)
            Stem output of N stars.
        masks : tuple of Tensor
            Keep masks for the N · n_samples passes, the passes of a star consecutive.
        n_samples : int
        scratch : Scratch, optional
            Where the intermediate results go (fresh memory without).

        Returns
        -------
        Tensor, shape (N · n_samples, 64)
        """
        scratch, (first, pooled_keep, hidden_keep) = scratch or Scratch(), masks
        (n, channels, length), like = h.shape, {"dtype": h.dtype, "device": h.device}
        rows, scale = n * n_samples, 1.0 / (1.0 - self.dropout.p)
        pooled = scratch.get("features", (rows, self.dense1.in_features), **like)
        positions_first = h.transpose(1, 2).contiguous()  # (N, L, 2), the layout of the masks and the convolution
        for stars, first_pass, passes in _blocks(n, n_samples, conv_rows(h.device)):
            first_row, n_stars = stars.start * n_samples + first_pass, stars.stop - stars.start
            part = slice(first_row, first_row + n_stars * passes)
            x = scratch.get("x", (n_stars, passes, length, channels), **like)
            masks_part = first[part].transpose(1, 2).unflatten(0, (n_stars, passes))
            torch.mul(masks_part, positions_first[stars].unsqueeze(1), out=x)
            self.pooled_conv(x.flatten(0, 1), scale, pooled[part].unflatten(1, (4, -1)), scratch)
        x = pooled.relu_().mul_(pooled_keep)
        x = matmul_t(x, self.dense1.weight.to(h.dtype)).mul_(scale).add_(self.dense1.bias.to(h.dtype))
        x = x.relu_().mul_(hidden_keep)
        return torch.addmm(self.dense2.bias.to(h.dtype), x, self.dense2.weight.T.to(h.dtype), alpha=scale).relu_()

    def sample_body(self, h: torch.Tensor, n_samples: int) -> torch.Tensor:
        """``n_samples`` passes of :meth:`body` per star: (N, 2, L) → (N · n_samples, 64), a star's passes in a row.

        With dropout active and gradients off, the passes run through :meth:`masked_body` in blocks of
        :func:`zpdist.nn.device.block_rows` rows, in the autocast dtype if autocast is on; otherwise
        through :meth:`body` (with dropout off every pass is the same).
        """
        if n_samples == 1:
            return self.body(h)
        if not self.dropout.training:
            return self.body(h).repeat_interleave(n_samples, dim=0)
        if torch.is_grad_enabled():
            return self.body(h.repeat_interleave(n_samples, dim=0))
        device = h.device.type
        h = h.to(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else h
        jobs = [(h[stars], passes) for stars, _, passes in _blocks(len(h), n_samples, block_rows(h.device))]
        seeds = torch.randint(2**62, (len(jobs),)).tolist()  # from the global generator: reproducible

        def passes_of(job: tuple[tuple[torch.Tensor, int], int], scratch: Scratch) -> torch.Tensor:
            (stars, passes), seed = job
            generator = torch.Generator(h.device).manual_seed(seed)
            return self.masked_body(stars, self.draw_masks(stars, passes, scratch, generator), passes, scratch)

        return torch.cat(map_blocks(passes_of, list(zip(jobs, seeds, strict=True)), h.device))


class LabelsBranch(nn.Module):
    """Dense(128, ReLU) → dropout → Dense(64, ReLU) → dropout → Dense(64, ReLU) on standardised labels."""

    def __init__(self, n_labels: int, dropout: float):
        super().__init__()
        self.dense1 = nn.Linear(n_labels, 128)
        self.dense2 = nn.Linear(128, 64)
        self.dense3 = nn.Linear(64, N_FEATURES)
        self.dropout = nn.Dropout(dropout)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic part: the first layer (N, n_labels) → (N, 128)."""
        return torch.relu(self.dense1(x))

    def body(self, h: torch.Tensor) -> torch.Tensor:
        """Stochastic part: stem output → (N, 64) features."""
        h = self.dropout(torch.relu(self.dense2(self.dropout(h))))
        return torch.relu(self.dense3(h))

    def sample_body(self, h: torch.Tensor, n_samples: int) -> torch.Tensor:
        """``n_samples`` passes of :meth:`body` per star: (N, 128) → (N · n_samples, 64), a star's passes in a row."""
        return self.body(h.repeat_interleave(n_samples, dim=0) if n_samples > 1 else h)


#: The input branches by their ``ModelConfig.mode`` name.
BRANCHES: dict[str, type[nn.Module]] = {"spectra": SpectraBranch, "labels": LabelsBranch}


def input_branch(mode: str, n_inputs: int, dropout: float) -> nn.Module:
    """The input branch for ``mode`` (a key of :data:`BRANCHES`).

    Raises
    ------
    ConfigError
        If the mode is unknown.
    """
    if mode not in BRANCHES:
        raise ConfigError(f"unknown mode {mode!r}; use {' or '.join(BRANCHES)}")
    return BRANCHES[mode](n_inputs, dropout)


class PrincipalComponents(nn.Module):
    """The leading whitened principal components z of a standardised spectrum, then the products z_i·z_j
    (i ≤ j < ``n_quadratic``): the inputs of a spectra-mode log-linear term.

    Parameters
    ----------
    n_pixels : int
    n_components : int
    n_quadratic : int
        0 for a linear term; at most ``n_components``.
    """

    def __init__(self, n_pixels: int, n_components: int, n_quadratic: int):
        super().__init__()
        if not 0 <= n_quadratic <= n_components:
            raise ConfigError(f"n_quadratic {n_quadratic} is not in [0, n_components={n_components}]")
        self.n_quadratic = n_quadratic
        self.register_buffer("projection", torch.zeros(n_components, n_pixels))
        first, second = torch.triu_indices(n_quadratic, n_quadratic)
        self.register_buffer("quadratic_pairs", torch.stack([first, second]), persistent=False)

    @property
    def n_outputs(self) -> int:
        """Components plus products."""
        return len(self.projection) + self.n_quadratic * (self.n_quadratic + 1) // 2

    def fit(self, standardised: torch.Tensor) -> None:
        """Fit the whitened principal components of standardised training spectra (rows; a random subset suffices)."""
        k = len(self.projection)
        _, singular, vectors = torch.pca_lowrank(standardised, q=k, center=True, niter=4)
        score_std = singular / math.sqrt(max(len(standardised) - 1, 1))
        self.projection.copy_((vectors / torch.clamp(score_std, min=1e-12)).T)

    def forward(self, standardised: torch.Tensor) -> torch.Tensor:
        components = standardised @ self.projection.T
        if self.n_quadratic == 0:
            return components
        first, second = self.quadratic_pairs
        return torch.cat([components, components[:, first] * components[:, second]], dim=1)


class LuminosityHead(nn.Module):
    """Features (N, 64) → L and ln σ_L², in units set by the ``scale`` buffer: σ_L² = scale² · exp(raw_s).

    Subclasses define how L follows from the raw output (:meth:`forward`) and, for a log-linear
    term, its inputs (:meth:`linear_inputs`).

    Attributes
    ----------
    can_warm_start : bool
        Whether :mod:`zpdist.nn.warm_start` can fit this head.
    needs_projection : bool
        Whether :meth:`set_projection` must be called (with training spectra) before training.
    """

    can_warm_start = False
    needs_projection = False

    def __init__(self):
        super().__init__()
        self.fakemag = nn.Linear(N_FEATURES, 1)
        self.log_var = nn.Linear(N_FEATURES, 1)
        self.register_buffer("scale", torch.ones(()))

    def initialise(self) -> None:
        """Start near σ_L = 0.3·scale (after the weights' normal initialisation)."""
        nn.init.constant_(self.log_var.bias, 2.0 * math.log(0.3))

    @torch.no_grad()
    def rescale(self, factor: float) -> None:
        """Multiply every L (and σ_L) by ``factor``."""
        self.scale.mul_(factor)

    def linear_inputs(self, standardised: torch.Tensor) -> torch.Tensor | None:
        """The inputs of a log-linear term for standardised network inputs (None: the head has no such term)."""
        return None

    def slow_parameters(self) -> list[nn.Parameter]:
        """Parameters that, after a warm start, Adam moves at a reduced learning rate (none by default)."""
        return []

    def set_projection(self, standardised: torch.Tensor) -> None:
        """Fit the input projection of the log-linear term from standardised training spectra."""
        raise TypeError(f"{type(self).__name__} has no input projection")

    def log_variance(self, features: torch.Tensor) -> torch.Tensor:
        """ln σ_L² of each row of ``features``."""
        return self.log_var(features).squeeze(-1) + 2.0 * torch.log(self.scale)

    def forward(
        self, features: torch.Tensor, linear_inputs: torch.Tensor | None = None, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L and ln σ_L² of each row of ``features``.

        Parameters
        ----------
        features : Tensor, shape (N · repeats, 64)
            Branch features, ``repeats`` consecutive rows per star (Monte-Carlo samples).
        linear_inputs : Tensor, shape (N, n_linear), optional
            :meth:`linear_inputs` of the N stars, for a head with a log-linear term.
        repeats : int
            Rows of ``features`` per star.

        Returns
        -------
        fakemag, log_var : Tensor, shape (N · repeats,)
        """
        raise NotImplementedError

    def evaluate(
        self, params: dict[str, torch.Tensor], features: torch.Tensor, linear_inputs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` with ``params`` (name → tensor, e.g. float64 copies being fitted) in place of the head's own.

        Parameters and buffers not named in ``params`` are the head's own.
        """
        return torch.func.functional_call(self, params, (features, linear_inputs))


class SoftplusHead(LuminosityHead):
    """The paper's head: L = scale · softplus(raw)."""

    def initialise(self) -> None:
        """Start near L = scale and σ_L = 0.3·scale."""
        super().initialise()
        nn.init.constant_(self.fakemag.bias, math.log(math.e - 1.0))

    def forward(
        self, features: torch.Tensor, linear_inputs: torch.Tensor | None = None, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.fakemag(features).squeeze(-1)
        return self.scale * functional.softplus(raw), self.log_variance(features)


class LogLinearHead(LuminosityHead):
    """L = scale · exp(w·x + raw): a dropout-free log-linear term in x times the network's correction.

    x is the standardised labels, or (with ``components``) the spectrum's leading whitened principal
    components and their products. To first order ln L is linear in the labels (ln L = ln M + 4 ln T_eff
    − ln g, and BC_K is smooth in T_eff), so the network extrapolates like the physics to the luminous
    giants, which are all distant and where L is nearly degenerate with the zero-point.

    Parameters
    ----------
    n_inputs : int
        Length of the standardised network input (used when ``components`` is None).
    components : PrincipalComponents, optional
        The spectra's input projection.
    """

    can_warm_start = True

    def __init__(self, n_inputs: int, components: PrincipalComponents | None = None):
        super().__init__()
        self.linear = nn.Linear(n_inputs if components is None else components.n_outputs, 1)
        self.components = components
        self.needs_projection = components is not None

    def initialise(self) -> None:
        """Start at L = scale and σ_L = 0.3·scale, with no log-linear trend."""
        super().initialise()
        nn.init.constant_(self.fakemag.bias, 0.0)
        nn.init.zeros_(self.linear.weight)

    def linear_inputs(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised if self.components is None else self.components(standardised)

    def slow_parameters(self) -> list[nn.Parameter]:
        """The log-linear term, which the warm start fits."""
        return list(self.linear.parameters())

    def set_projection(self, standardised: torch.Tensor) -> None:
        if self.components is None:
            raise TypeError("this log-linear head takes the labels as they are: it has no input projection")
        self.components.fit(standardised)

    def forward(
        self, features: torch.Tensor, linear_inputs: torch.Tensor | None = None, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.fakemag(features).squeeze(-1)
        trend = self.linear(linear_inputs).squeeze(-1)
        if repeats > 1:
            trend = trend.repeat_interleave(repeats, dim=0)
        fakemag = self.scale * torch.exp(torch.clamp(raw + trend, max=30.0))
        return fakemag, self.log_variance(features)
