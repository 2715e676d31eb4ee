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

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from zpdist.errors import ConfigError
from zpdist.nn.device import Scratch, block_rows, conv_rows, map_blocks, matmul_t

#: Width of the features a branch hands to a head.
N_FEATURES = 64
#: Pooling width after the spectra branch's second convolution, and the positions per block of its
#: blocked convolutions (:func:`blocked_conv`).
POOL = 4
#: Bits per dropout decision (:func:`random_bits`).
MASK_BITS = 16


def random_bits(
    n_rows: int, widths: tuple[int, ...], scratch: Scratch | None, device: torch.device, seed: int | None = None
) -> torch.Tensor:
    """Random 16-bit integers for the dropout decisions of ``n_rows`` passes through layers of ``widths`` units.

    Drawn from ``seed`` (by default one drawn from torch's global generator, so that ``torch.manual_seed``
    makes them reproducible): on a CPU by numpy's SFC64 generator, ≈ 1.5× faster per bit than torch's
    Mersenne twister; elsewhere by a torch generator of the device, in a buffer of ``scratch`` (if given).

    Returns
    -------
    Tensor, shape (n_rows, total), int16
        The layers' columns one after the other (``total``: their sum rounded up to a multiple of 4).
    """
    total = -(-sum(widths) // 4) * 4
    seed = int(torch.randint(2**62, ())) if seed is None else seed
    if device.type == "cpu":
        words = np.random.SFC64(seed).random_raw(n_rows * total // 4)
        return torch.from_numpy(words.view(np.int16)).view(n_rows, total)
    words = (scratch or Scratch()).get("words", (n_rows * total // 4,), torch.int64, device)
    words.random_(-(2**63), None, generator=torch.Generator(device).manual_seed(seed))
    return words.view(torch.int16).view(n_rows, total)


def keep(bits: torch.Tensor, p: float, out: torch.Tensor) -> torch.Tensor:
    """Dropout keep masks (1 kept, 0 dropped, unscaled) from :func:`random_bits`, into ``out`` (any float dtype).

    Each decision compares 16 random bits with round((1 − p) · 2¹⁶), so the rate is p to within 2⁻¹⁷
    (0.3 becomes 0.300003): ≈ 10× cheaper than ``torch.nn.functional.dropout``'s draws.
    """
    threshold = round((1.0 - p) * 2**MASK_BITS) - 2 ** (MASK_BITS - 1)
    return torch.lt(bits, threshold, out=out)


def split_columns(x: torch.Tensor, widths: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """The column blocks of ``widths`` that begin each row of ``x``, as views."""
    ends = itertools.accumulate(widths)
    return tuple(x[:, end - width : end] for end, width in zip(ends, widths, strict=True))


def keep_masks(
    n_rows: int,
    widths: tuple[int, ...],
    p: float,
    scratch: Scratch,
    like: torch.Tensor,
    seed: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Dropout keep masks (1 kept, 0 dropped, unscaled) for ``n_rows`` passes through layers of ``widths`` units:
    :func:`keep` of :func:`random_bits`.

    Returns
    -------
    tuple of Tensor
        One (n_rows, width) mask per layer, of the dtype and on the device of ``like``: views into one
        buffer of ``scratch``.
    """
    bits = random_bits(n_rows, widths, scratch, like.device, seed)
    masks = keep(bits, p, scratch.get("keep", bits.shape, like.dtype, like.device))
    return split_columns(masks, widths)


def blocked_weight(weight: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """A Conv1D kernel (C_out, C_in, k ≤ 9) as the kernel of :func:`blocked_conv`, times ``scale``.

    Output channel r·C_out + o is filter o at the block's position r; input channel i·C_in + c is channel
    c at the block's position i; tap s is the block s after the output's. Shape (4·C_out, 4·C_in, 1, 3).
    """
    n_out, n_in, width = weight.shape
    taps = (weight * scale).transpose(1, 2).reshape(n_out, width * n_in)  # column k·C_in + c
    span = 3 * POOL  # the positions of three blocks
    shifted = torch.cat([functional.pad(taps, (r * n_in, (span - width - r) * n_in)) for r in range(POOL)])
    return shifted.view(POOL * n_out, 3, POOL * n_in).transpose(1, 2).unsqueeze(2).contiguous()


def blocked_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A stride-1 Conv1D of ``x`` computed on blocks of 4 positions, positions first (channels last).

    The positions are cut into blocks of 4; the block j of the output (its 4 positions, channels last)
    depends on the input's blocks j, j + 1 and j + 2, so the convolution is a 3-tap convolution over blocks
    with 4 × the channels (:func:`blocked_weight`), in oneDNN's and cuDNN's channels-last layout: a
    1 → 2 or 2 → 4-channel Conv1D runs far below the matmul rate, this form ≈ 5× faster forward and backward.

    Parameters
    ----------
    x : Tensor, shape (M, 4 · n_blocks, C_in)
        Contiguous.
    weight : Tensor, shape (4 · C_out, 4 · C_in, 1, 3)
        :func:`blocked_weight` of the Conv1D's kernel.
    bias : Tensor, shape (4 · C_out,)
        The Conv1D's bias repeated 4 times.

    Returns
    -------
    Tensor, shape (M, n_blocks − 2, 4 · C_out)
        Output position 4j + r, channel o at [:, j, r · C_out + o], for the positions whose window lies
        in x.
    """
    rows, length, channels = x.shape
    blocks = x.view(rows, length // POOL, POOL * channels).transpose(1, 2).unsqueeze(2)  # channels last
    return functional.conv2d(blocks, weight, bias).squeeze(2).transpose(1, 2)


class ScaledLinear(torch.autograd.Function):
    """``scale`` · x @ weightᵀ + bias whose products all run through :func:`zpdist.nn.device.matmul_t`
    (oneDNN on a CPU: ≈ 2× torch's own matmul on AMD processors), forward and backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.scale = scale
        out = matmul_t(x, weight)
        return (out.mul_(scale) if scale != 1.0 else out).add_(bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        scaled = grad * ctx.scale if ctx.scale != 1.0 else grad
        grad_x = matmul_t(scaled, weight.t()) if ctx.needs_input_grad[0] else None
        grad_weight = matmul_t(scaled.t(), x.t()) if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight, grad.sum(0) if ctx.needs_input_grad[2] else None, None


class PhaseMax(torch.autograd.Function):
    """The maximum over the 4 phases (the slowest index of the last axis) of :func:`blocked_conv`'s output:
    (M, n, 4 · C) → (M, n, C), by pairs; the gradient goes to the first maximal phase, as MaxPool's does."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        half = y.shape[-1] // 2
        pairs = torch.maximum(y[..., :half], y[..., half:])
        out = torch.maximum(pairs[..., : half // 2], pairs[..., half // 2 :])
        if ctx.needs_input_grad[0]:  # which of each pair wins, as 1 or 0 (the first on a tie)
            wins = [y.new_empty((*out.shape[:-1], width)) for width in (half, half // 2)]
            torch.ge(y[..., :half], y[..., half:], out=wins[0])
            torch.ge(pairs[..., : half // 2], pairs[..., half // 2 :], out=wins[1])
            ctx.save_for_backward(*wins)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        wins_first, wins_pairs = ctx.saved_tensors
        quarter = grad.shape[-1]
        to_pairs = grad.new_empty(*grad.shape[:-1], 2 * quarter)
        torch.mul(grad, wins_pairs, out=to_pairs[..., :quarter])
        torch.sub(grad, to_pairs[..., :quarter], out=to_pairs[..., quarter:])
        to_phases = grad.new_empty(*grad.shape[:-1], 4 * quarter)
        torch.mul(to_pairs, wins_first, out=to_phases[..., : 2 * quarter])
        torch.sub(to_pairs, to_phases[..., : 2 * quarter], out=to_phases[..., 2 * quarter :])
        return to_phases


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

    Both convolutions run as convolutions over blocks of 4 positions (:func:`blocked_conv`); the stem's
    output, the first dropout layer's units, is laid out positions first with the positions padded to
    a multiple of 4. Dropout multiplies by keep masks of 16-bit decisions (:func:`keep`), the scale
    1/(1 − p) folded into the next layer, in training as in Monte-Carlo passes; those (:meth:`sample_body`)
    run without gradients in blocks of rows that stay in the cache (:meth:`masked_body`).
    """

    def __init__(self, n_pixels: int, dropout: float):
        super().__init__()
        self.n_pixels = n_pixels
        self.conv1 = nn.Conv1d(1, 2, kernel_size=8)
        self.conv2 = nn.Conv1d(2, 4, kernel_size=8)
        n_flat = 4 * ((n_pixels - 14) // POOL)
        self.dense1 = nn.Linear(n_flat, 164)
        self.dense2 = nn.Linear(164, N_FEATURES)
        self.dropout = nn.Dropout(dropout)

    @property
    def stem_length(self) -> int:
        """Positions of the stem's output: those of Conv1D(2, 8) rounded up to a multiple of 4."""
        return -(-(self.n_pixels - self.conv1.kernel_size[0] + 1) // POOL) * POOL

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic part: ReLU(Conv1D(2, 8)), (N, n_pixels) → (N, :attr:`stem_length`, 2), positions first.

        The positions past Conv1D's n_pixels − 7 are padding, which the body never reads.
        """
        n_blocks = self.stem_length // POOL + 2
        padded = functional.pad(x, (0, POOL * n_blocks - x.shape[1])).unsqueeze(2)
        weight, bias = blocked_weight(self.conv1.weight), self.conv1.bias.repeat(POOL)
        return torch.relu(blocked_conv(padded, weight, bias)).reshape(len(x), -1, self.conv1.out_channels)

    def conv2_weights(self, scale: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`blocked_weight` of Conv1D(4, 8)'s kernel times ``scale`` and its bias repeated, in ``dtype``."""
        return blocked_weight(self.conv2.weight, scale).to(dtype), self.conv2.bias.to(dtype).repeat(POOL)

    def pooled_conv(
        self,
        x: torch.Tensor,
        weights: tuple[torch.Tensor, torch.Tensor] | None = None,
        out: torch.Tensor | None = None,
        scratch: Scratch | None = None,
    ) -> torch.Tensor:
        """MaxPool(4) of Conv1D(4, 8) of x, before the ReLU (which commutes with the pooling).

        The convolution's outputs at the four positions of a pooling window are the four phases of one
        block of :func:`blocked_conv`, so the pooling is a maximum over phases, by pairs.

        Parameters
        ----------
        x : Tensor, shape (M, :attr:`stem_length`, 2)
            The convolution's input, positions first, contiguous.
        weights : tuple of Tensor, optional
            :meth:`conv2_weights` (by default with scale 1 in x's dtype).
        out : Tensor, shape (M, 4, n_pool), optional
            Where the result goes, then without gradients (in buffers of ``scratch``).
        scratch : Scratch, optional

        Returns
        -------
        Tensor, shape (M, n_pool, 4) without ``out`` (positions first), else ``out``
        """
        y = blocked_conv(x, *(weights or self.conv2_weights(1.0, x.dtype)))  # (M, blocks, 4 phases × 4 filters)
        n_pool, half = self.dense1.in_features // self.conv2.out_channels, y.shape[2] // 2
        y = y[:, :n_pool]
        if out is None:
            return PhaseMax.apply(y)
        pairs = (scratch or Scratch()).get("pairs", (len(x), n_pool, half), y.dtype, y.device)
        torch.maximum(y[..., :half], y[..., half:], out=pairs)
        torch.maximum(pairs[..., : half // 2], pairs[..., half // 2 :], out=out.transpose(1, 2))
        return out

    @property
    def mask_widths(self) -> tuple[int, int, int]:
        """Units of the three dropout layers: the stem's output (positions first), the pooled features in
        dense1's order (filter, position), dense1's output."""
        return self.stem_length * self.conv1.out_channels, self.dense1.in_features, self.dense1.out_features

    def body(self, h: torch.Tensor, masks: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """Stochastic part: stem output (N, :attr:`stem_length`, 2) → (N, 64) features, with gradients; the
        convolution in blocks of :func:`zpdist.nn.device.block_rows` stars.

        Parameters
        ----------
        h : Tensor
        masks : tuple of Tensor, optional
            Keep masks of the three dropout layers (:meth:`draw_masks`). Without, they are drawn from torch's
            global generator when dropout is active; when it is not, the inputs of the three layers pass
            through the ``dropout`` module (an identity then, which forward hooks may replace, as
            :func:`zpdist.nn.offset_fit.shared_dropout_masks` does).
        """
        if masks is None and self.dropout.training:
            masks = self.draw_masks(h, 1)
        scale = 1.0 / (1.0 - self.dropout.p) if masks is not None else 1.0
        first, pooled_keep, hidden_keep = masks if masks is not None else (None, None, None)

        def dropped(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
            return self.dropout(x) if keep is None else x * keep.view(x.shape)

        weights, rows = self.conv2_weights(scale, h.dtype), block_rows(h.device)
        blocks = [slice(start, start + rows) for start in range(0, len(h), rows)]  # bounds the convolution's memory
        x = torch.cat([self.pooled_conv(dropped(h[b], None if first is None else first[b]), weights) for b in blocks])
        x = dropped(torch.relu(x).transpose(1, 2).flatten(1), pooled_keep)
        x = dropped(torch.relu(ScaledLinear.apply(x, *self._dense1(x), scale)), hidden_keep)
        return torch.relu(functional.linear(x, self.dense2.weight * scale, self.dense2.bias))

    def _dense1(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first dense layer's weight and bias in the dtype of ``like``."""
        return self.dense1.weight.to(like.dtype), self.dense1.bias.to(like.dtype)

    def draw_masks(
        self, h: torch.Tensor, n_samples: int, scratch: Scratch | None = None, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep masks (0 or 1, in h's dtype) of the three dropout layers for ``n_samples`` passes of each star of h.

        Returns
        -------
        tuple of Tensor
            Shapes (M, :attr:`stem_length` · 2) (positions first), (M, n_flat) (dense1's order) and (M, 164)
            for the M = len(h) · n_samples passes.
        """
        return keep_masks(len(h) * n_samples, self.mask_widths, self.dropout.p, scratch or Scratch(), h, seed)

    @torch.no_grad()
    def masked_body(
        self, h: torch.Tensor, bits: torch.Tensor, n_samples: int, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """:meth:`body` with the keep masks of ``bits`` in place of the dropout layers, in h's dtype, no gradients.

        The masks are made block by block of :func:`zpdist.nn.device.conv_rows` passes, where the
        convolution's input and output stay in the cache.

        Parameters
        ----------
        h : Tensor, shape (N, :attr:`stem_length`, 2)
            Stem output of N stars.
        bits : Tensor, shape (N · n_samples, total), int16
            :func:`random_bits` for :attr:`mask_widths`, the passes of a star consecutive.
        n_samples : int
        scratch : Scratch, optional
            Where the intermediate results go (fresh memory without).

        Returns
        -------
        Tensor, shape (N · n_samples, 64)
        """
        scratch, p = scratch or Scratch(), self.dropout.p
        (n, length, channels), like = h.shape, {"dtype": h.dtype, "device": h.device}
        rows, scale, (width, n_flat, _) = n * n_samples, 1.0 / (1.0 - p), self.mask_widths
        first, pooled_bits, hidden_bits = split_columns(bits, self.mask_widths)
        pooled = scratch.get("features", (rows, n_flat), **like)
        weights = self.conv2_weights(scale, h.dtype)
        for stars, first_pass, passes in _blocks(n, n_samples, conv_rows(h.device)):
            first_row, n_stars = stars.start * n_samples + first_pass, stars.stop - stars.start
            part = slice(first_row, first_row + n_stars * passes)
            x = scratch.get("x", (n_stars, passes, width), **like)
            keep(first[part].view(n_stars, passes, width), p, x).mul_(h[stars].view(n_stars, 1, width))
            out = pooled[part].view(-1, self.conv2.out_channels, n_flat // self.conv2.out_channels)
            self.pooled_conv(x.view(-1, length, channels), weights, out, scratch).relu_()
            pooled[part].mul_(keep(pooled_bits[part], p, scratch.get("keep", (len(out), n_flat), **like)))
        weight, bias = self._dense1(h)
        x = matmul_t(pooled, weight).mul_(scale).add_(bias).relu_()
        x.mul_(keep(hidden_bits, p, scratch.get("hidden", x.shape, **like)))
        return torch.addmm(self.dense2.bias.to(h.dtype), x, self.dense2.weight.T.to(h.dtype), alpha=scale).relu_()

    def sample_body(self, h: torch.Tensor, n_samples: int) -> torch.Tensor:
        """``n_samples`` passes of :meth:`body` per star: (N, :attr:`stem_length`, 2) → (N · n_samples, 64), a
        star's passes in a row.

        With dropout active and gradients off, the passes run through :meth:`masked_body` in blocks of
        :func:`zpdist.nn.device.block_rows` rows, side by side on the CPU's threads, in the autocast dtype
        if autocast is on; otherwise through :meth:`body` (with dropout off every pass is the same).
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
            bits = random_bits(len(stars) * passes, self.mask_widths, scratch, h.device, seed)
            return self.masked_body(stars, bits, passes, scratch)

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
