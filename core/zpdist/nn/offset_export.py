"""Torch-free exports of the offset models (:mod:`zpdist.nn.offset`), for applying Δϖ to billions of Gaia rows.

Each offset model writes itself out as a small numpy object (a few kB, :meth:`OffsetModel.export
<zpdist.nn.offset.OffsetModel.export>`) that ``zpdist zeropoint`` broadcasts to its dask workers; this module
never imports torch, so neither do the workers. For the network, the T Monte-Carlo passes are T draws of the
thinned network: one dropout mask per pass, drawn once from the seed (:func:`dropout_masks`) and shared by all
stars, folded into the weights, so that a chunk of stars costs one first layer and one (N, 33) × (33, 16 T)
product (biases folded in). Every star's T samples are then independent draws, as with per-star masks, and the
result depends on neither the partitioning nor the scheduler (up to float32 rounding).

That exact evaluation costs about 5 µs per star for T = 100 (1,600 tanh), far slower than reading the star from
Parquet (about 20 ns). Since Δϖ and its spread depend only on (G, BP−RP, Teff), :class:`TabulatedOffsetEvaluator`
evaluates them once on a 3-D grid (the training domain and well beyond it) and interpolates trilinearly in a
compiled kernel (numba, cached on disk), about 10 ns per star, with its interpolation error measured against the
exact evaluator when it is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from zpdist.errors import FileFormatError
from zpdist.io.atomic import atomic_path
from zpdist.units import uas_to_mas

#: The run's model file (:data:`zpdist.nn.infer.MODEL_FILE`, named here too so that reading a kept table never
#: imports torch).
MODEL_FILE = "model.pt"
#: Name of the tables kept in a run folder: ``offset_table-KEY.npz``.
TABLE_PREFIX = "offset_table-"
#: The columns :meth:`OffsetEvaluator.evaluate` returns and their types.
OUTPUT_DTYPES = {
    "zp_offset": np.float32,
    "zp_offset_error": np.float32,
    "zp_offset_model_error": np.float32,
    "zp_outside_training_domain": np.bool_,
}


def dropout_masks(widths: tuple[int, ...], mc_samples: int, seed: int, dropout: float) -> tuple[np.ndarray, ...]:
    """One inverted-dropout mask per pass for each dropout layer, drawn in layer order from ``seed``.

    Parameters
    ----------
    widths : tuple of int
        Width of each dropout layer's input, in the order the layers are applied.
    mc_samples : int
        Passes T.
    seed : int
        Seed of numpy's default generator.
    dropout : float
        Dropout rate; kept units are scaled by 1 / (1 − rate).

    Returns
    -------
    tuple of ndarray
        One float64 array of shape (T, width) per layer, with values 0 or 1 / (1 − rate).
    """
    keep = 1.0 - dropout
    rng = np.random.default_rng(seed)
    return tuple((rng.random((mc_samples, width)) < keep) / keep for width in widths)


def level_error_mas(summary: dict) -> float:
    """Error of the offset's level (mas) from a run's summary: the quoted one (``offset_uas_err_level``: the
    half-samples' spread, or the statistical and network errors in quadrature); runs made before it have the
    statistical and network errors (or the statistical one alone) instead."""
    if "offset_uas_err_level" in summary:
        return uas_to_mas(float(summary["offset_uas_err_level"]))
    return uas_to_mas(float(np.hypot(summary["offset_uas_err_stat"], summary.get("offset_uas_err_network", 0.0))))


def total_error(spread: np.ndarray, level_error_mas: float, out: np.ndarray | None = None) -> np.ndarray:
    """The Monte-Carlo ``spread`` and the level's error in quadrature (mas, float32; np.hypot is 6× slower)."""
    out = np.multiply(spread, spread, out=out)
    out += np.float32(level_error_mas**2)
    return np.sqrt(out, out=out)


def _columns(value: np.ndarray, spread: np.ndarray, level_error_mas: float, inside: np.ndarray) -> dict:
    """The output columns of :meth:`OffsetEvaluator.evaluate` (mas, float32; the flag is boolean)."""
    return {
        "zp_offset": value,
        "zp_offset_error": total_error(spread, level_error_mas),
        "zp_offset_model_error": spread,
        "zp_outside_training_domain": ~inside,
    }


class OffsetEvaluator(ABC):
    """A trained offset model as numpy arrays: Δϖ, its Monte-Carlo spread and its error for each row.

    Attributes
    ----------
    level_error_mas : float
        Statistical error of the offset's fitted level (mas), common to all stars (fully correlated).
    needs_inputs : bool
        Whether :meth:`evaluate` reads the (G, BP−RP, Teff) columns.
    """

    level_error_mas: float
    needs_inputs: bool

    @abstractmethod
    def evaluate(self, inputs: np.ndarray, mc_block: int = 1_048_576) -> dict[str, np.ndarray]:
        """Offset, errors and domain flag for each row of ``inputs``.

        Parameters
        ----------
        inputs : ndarray, shape (N, 3)
            G (mag), BP−RP (mag), Teff (K); NaN where missing. Only its length is read when
            :attr:`needs_inputs` is False.
        mc_block : int
            Star-samples (stars × T) evaluated at a time in the Monte-Carlo passes (memory bound).

        Returns
        -------
        dict of ndarray
            ``zp_offset`` (dropout off), ``zp_offset_error`` (Monte-Carlo spread and the level's error in
            quadrature), ``zp_offset_model_error`` (the spread) and ``zp_outside_training_domain``, each of length N.
        """

    def evaluate_into(
        self, columns: Sequence[np.ndarray], out: dict[str, np.ndarray], mc_block: int = 1_048_576
    ) -> None:
        """:meth:`evaluate` of the rows whose G, BP−RP and Teff are ``columns`` (three arrays of length N, none when
        :attr:`needs_inputs` is False), written into ``out`` (its keys, arrays of length N): for a caller that
        streams a table in batches, reusing its arrays and passing the table's columns as they are."""
        inputs = np.column_stack(columns) if len(columns) else np.empty((len(out["zp_offset"]), 0))
        for name, values in self.evaluate(inputs, mc_block).items():
            out[name][...] = values


@dataclass(frozen=True, eq=False)
class ConstantOffsetEvaluator(OffsetEvaluator):
    """The constant model: the same Δϖ on every row, with the spread of its Monte-Carlo passes.

    Attributes
    ----------
    value_mas : float
        Δϖ (mas).
    level_error_mas : float
        Statistical error of the fitted constant (mas).
    mc_error_mas : float
        Standard deviation of Δϖ over Monte-Carlo passes (mas): 0 for a dropout-free constant.
    """

    value_mas: float
    level_error_mas: float
    mc_error_mas: float = 0.0
    needs_inputs = False

    def evaluate(self, inputs: np.ndarray, mc_block: int = 1_048_576) -> dict[str, np.ndarray]:
        n = len(inputs)
        spread = np.full(n, self.mc_error_mas, np.float32)
        return _columns(np.full(n, self.value_mas, np.float32), spread, self.level_error_mas, np.ones(n, bool))


@dataclass(frozen=True, eq=False)
class NetworkOffsetEvaluator(OffsetEvaluator):
    """The offset MLP Dense(3→32, tanh) → Dense(32→16, tanh) → Dense(16→1), with T dropout masks folded in.

    Attributes
    ----------
    level_error_mas : float
        Statistical error of the offset's fitted level (mas).
    input_mean, input_std : ndarray, shape (3,)
        Standardisation of (G, BP−RP, Teff).
    domain : ndarray, shape (3, 2)
        [min, max] of each input over the training stars.
    w1, b1, w2, b2, w3 : ndarray
        Dense(3→32), Dense(32→16) weights (out × in) and biases, and Dense(16→1)'s weights (16,), float32.
    b3 : float
        Dense(16→1)'s bias (mas): the offset's level.
    w2_passes : ndarray, shape (33, 16 T)
        Second layer's transposed weights for each pass, with that pass's first dropout mask (1/keep scaled),
        and the biases as the last row.
    w3_passes : ndarray, shape (T, 16)
        Output weights for each pass, with that pass's second dropout mask.
    """

    level_error_mas: float
    input_mean: np.ndarray
    input_std: np.ndarray
    domain: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: float
    w2_passes: np.ndarray
    w3_passes: np.ndarray
    needs_inputs = True

    @classmethod
    def fold(
        cls, weights: dict[str, np.ndarray], masks: tuple[np.ndarray, np.ndarray], level_error_mas: float, domain
    ) -> NetworkOffsetEvaluator:
        """Build the evaluator from the network's float64 arrays and the passes' dropout masks.

        Parameters
        ----------
        weights : dict of ndarray
            ``input_mean``, ``input_std`` (3,), ``w1`` (32, 3), ``b1`` (32,), ``w2`` (16, 32), ``b2`` (16,),
            ``w3`` (16,) and ``b3`` (scalar).
        masks : tuple of ndarray
            The (T, 32) and (T, 16) masks of the two dropout layers (:func:`dropout_masks`).
        level_error_mas : float
        domain : array-like, shape (3, 2)
        """
        mask1, mask2 = masks
        w2, b2, w3 = weights["w2"], weights["b2"], weights["w3"]
        w2_passes = (mask1[:, None, :] * w2[None]).transpose(2, 0, 1).reshape(w2.shape[1], -1)  # (32, T·16)
        return cls(
            level_error_mas=level_error_mas,
            input_mean=weights["input_mean"],
            input_std=weights["input_std"],
            domain=np.asarray(domain, float),
            w1=weights["w1"].astype(np.float32),
            b1=weights["b1"].astype(np.float32),
            w2=w2.astype(np.float32),
            b2=b2.astype(np.float32),
            w3=w3.astype(np.float32),
            b3=float(weights["b3"]),
            w2_passes=np.vstack([w2_passes, np.tile(b2, len(mask1))]).astype(np.float32),
            w3_passes=(mask2 * w3).astype(np.float32),
        )

    @property
    def mc_samples(self) -> int:
        """Monte-Carlo passes T."""
        return len(self.w3_passes)

    def first_layer(self, inputs: np.ndarray) -> np.ndarray:
        """tanh of the first layer (float32, shape (N, 32)) for finite rows of ``inputs`` (G, BP−RP, Teff)."""
        z = ((inputs - self.input_mean) / self.input_std).astype(np.float32)
        return np.tanh(z @ self.w1.T + self.b1)

    def mc_passes(self, h1: np.ndarray) -> np.ndarray:
        """Δϖ (mas, float32, shape (N, T)) of each of the T thinned networks, from the first layer ``h1``."""
        n, n_hidden = len(h1), self.w3_passes.shape[1]
        a = np.concatenate([h1, np.ones((n, 1), np.float32)], axis=1) @ self.w2_passes  # (N, T·16), bias included
        np.tanh(a, out=a)
        return np.einsum("ntk,tk->nt", a.reshape(n, self.mc_samples, n_hidden), self.w3_passes) + np.float32(self.b3)

    def in_domain(self, inputs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """True for rows of ``inputs`` (N, 3) whose G, BP−RP and Teff all lie in the training domain (False if NaN),
        in ``out[0]`` if given (boolean, shape (2, N), ``out[1]`` is scratch)."""
        inside, scratch = np.empty((2, len(inputs)), bool) if out is None else out
        inside[:] = True
        for column, (low, high) in zip(inputs.T, self.domain, strict=True):
            inside &= np.greater_equal(column, low, out=scratch)
            inside &= np.less_equal(column, high, out=scratch)
        return inside

    def evaluate(self, inputs: np.ndarray, mc_block: int = 1_048_576) -> dict[str, np.ndarray]:
        n = len(inputs)
        valid = np.isfinite(inputs).all(axis=1)
        inside = self.in_domain(inputs)
        value = np.full(n, np.nan, np.float32)
        spread = np.full(n, np.nan, np.float32)
        rows = np.flatnonzero(valid)
        h1 = self.first_layer(inputs[rows])
        value[rows] = np.tanh(h1 @ self.w2.T + self.b2) @ self.w3 + np.float32(self.b3)
        step = max(1, mc_block // self.mc_samples)
        for start in range(0, len(rows), step):
            block = slice(start, start + step)
            spread[rows[block]] = self.mc_passes(h1[block]).std(axis=1, dtype=np.float64)
        return _columns(value, spread, self.level_error_mas, inside)


#: Version of the arrays :meth:`TabulatedOffsetEvaluator.save` writes.
TABLE_FORMAT = 2
#: Outputs the table holds, in its first axis.
TABLE_COLUMNS = ("zp_offset", "zp_offset_model_error")


#: Rows of a block of :func:`_interpolate_rows`: its per-row arrays stay in the CPU's first-level cache.
BLOCK_ROWS = 512


@numba.njit(cache=True, nogil=True)
def _locate(x, axis: int, grid, cells, stride: int, corner, weight, status) -> None:
    """Place a block of rows along one input: a loop without branches, so that it runs on SIMD lanes.

    Adds ``stride`` × the lower node (0 … n − 2) to ``corner``, writes the upper node's weight (0 … 1) to
    ``weight``, and ORs into ``status`` 1 where ``x`` lies outside the training domain (or is NaN), 2 where it
    lies beyond the table (or is not finite). ``grid[axis]`` holds the input's centre, 1 / half-width, reach from
    the centre and training domain [min, max]; ``cells`` holds inner_cells / 2, outer_cells / (√extent − 1) and
    n − 1 (the grid's f(s) of :class:`TabulatedOffsetEvaluator`). A NaN gets node 0, an infinity the last cell.
    """
    centre, scale, reach, low, high = grid[axis, 0], grid[axis, 1], grid[axis, 2], grid[axis, 3], grid[axis, 4]
    half_inner, outer_scale, last = cells[0], cells[1], cells[2]
    for r in range(x.shape[0]):
        s = (x[r] - centre) * scale
        a = abs(s)
        f = min(a, 1.0) * half_inner + (np.sqrt(max(a, 1.0)) - 1.0) * outer_scale
        f = last / 2 + (f if s >= 0.0 else -f)
        f = min(f if f >= 0.0 else 0.0, last)  # NaN: 0
        lower = min(np.int64(f), np.int64(last) - 1)
        corner[r] += lower * stride
        weight[r] = f - lower
        inside = (low <= x[r]) & (x[r] <= high)
        status[r] |= np.uint8(not inside) | np.uint8(2 * (not abs(x[r] - centre) <= reach))


@numba.njit(cache=True, nogil=True)
def _cell(nodes, a, strides, wi, wj, wk) -> tuple[float, float]:
    """Δϖ and its spread (mas) by trilinear interpolation in the cell whose lowest node starts at ``nodes[a]``.

    ``nodes`` is the flat (n, n, n, 2) float32 table; ``strides`` (uint64: numba then skips the wrap-around of
    negative indices) the distances to the next node along the second and first inputs; ``wi``, ``wj``, ``wk``
    the weights of the upper nodes along the first, second and third inputs (float32, as the arithmetic).
    """
    one, two, three = np.uint64(1), np.uint64(2), np.uint64(3)
    b, c = a + strides[1], a + strides[0]
    d = c + strides[1]
    v00, s00 = nodes[a] + wk * (nodes[a + two] - nodes[a]), nodes[a + one] + wk * (nodes[a + three] - nodes[a + one])
    v01, s01 = nodes[b] + wk * (nodes[b + two] - nodes[b]), nodes[b + one] + wk * (nodes[b + three] - nodes[b + one])
    v10, s10 = nodes[c] + wk * (nodes[c + two] - nodes[c]), nodes[c + one] + wk * (nodes[c + three] - nodes[c + one])
    v11, s11 = nodes[d] + wk * (nodes[d + two] - nodes[d]), nodes[d + one] + wk * (nodes[d + three] - nodes[d + one])
    v0, s0 = v00 + wj * (v01 - v00), s00 + wj * (s01 - s00)
    return v0 + wi * (v10 + wj * (v11 - v10) - v0), s0 + wi * (s10 + wj * (s11 - s10) - s0)


@numba.njit(cache=True, nogil=True)
def _interpolate_rows(g, bp_rp, teff, nodes, grid, cells, level_variance, out, beyond) -> int:
    """Trilinear interpolation of Δϖ and its spread, their total error and the domain flag, block by block.

    Each block of :data:`BLOCK_ROWS` rows is placed on the grid input by input (:func:`_locate`, SIMD), then
    interpolated row by row (:func:`_cell`), then given its errors and flags (SIMD): about 9 ns a row.

    Parameters
    ----------
    g, bp_rp, teff : ndarray, shape (N,)
        G (mag), BP−RP (mag), Teff (K), contiguous.
    nodes : ndarray, shape (2 n³,), float32
        Δϖ and its spread (mas) at the nodes, the last input fastest, side by side (one cache line holds both).
    grid, cells : ndarray
        The grid's constants (:func:`_locate`).
    level_variance : float32
        Square of the level's error (mas²).
    out : tuple of ndarray, shape (N,)
        Δϖ, its spread and the two errors in quadrature (mas, float32; NaN where an input is NaN; left for the
        caller in rows beyond the table), and the training-domain flag (bool; True where an input is outside or NaN).
    beyond : ndarray, shape (N,), int64
        Receives the rows with an input beyond the table (or infinite, none NaN), in order.

    Returns
    -------
    int
        Rows listed in ``beyond``.
    """
    value, spread, error, outside = out
    n = np.int64(cells[2]) + 1
    strides = np.array([2 * n * n, 2 * n], np.uint64)
    corner = np.empty(BLOCK_ROWS, np.int64)
    weight = np.empty((3, BLOCK_ROWS), np.float32)
    status = np.empty(BLOCK_ROWS, np.uint8)
    count = 0
    for start in range(0, len(g), BLOCK_ROWS):
        rows = min(BLOCK_ROWS, len(g) - start)
        corner[:], status[:] = 0, 0
        block = slice(start, start + rows)  # one call per input: the columns may differ in type
        _locate(g[block], 0, grid, cells, 2 * n * n, corner, weight[0], status)
        _locate(bp_rp[block], 1, grid, cells, 2 * n, corner, weight[1], status)
        _locate(teff[block], 2, grid, cells, 2, corner, weight[2], status)
        for q in range(rows):
            r = start + q
            if status[q] & 2 and (np.isnan(g[r]) or np.isnan(bp_rp[r]) or np.isnan(teff[r])):
                value[r] = spread[r] = np.nan
            elif status[q] & 2:
                beyond[count] = r
                count += 1
            else:
                value[r], spread[r] = _cell(
                    nodes, np.uint64(corner[q]), strides, weight[0, q], weight[1, q], weight[2, q]
                )
        block_spread, block_error = spread[start : start + rows], error[start : start + rows]
        for q in range(rows):
            outside[start + q] = status[q] & 1
            block_error[q] = np.sqrt(block_spread[q] * block_spread[q] + level_variance)
    return count


@dataclass(frozen=True, eq=False)
class TabulatedOffsetEvaluator(OffsetEvaluator):
    """The network offset read from a table of its Δϖ and Monte-Carlo spread, by trilinear interpolation.

    Along each input x (G, BP−RP, Teff) the grid runs in s = (x − centre) / half_width, the training domain being
    |s| ≤ 1: ``inner_cells`` equal cells across the domain, then ``outer_cells`` cells on each side whose widths
    grow in proportion to √|s| (equal steps in √|s|) out to |s| = ``extent``. The node index of s is

        f(s) = c + sign(s) · [min(|s|, 1) · inner_cells / 2 + (√max(|s|, 1) − 1) · outer_cells / (√extent − 1)],

    with c = outer_cells + inner_cells / 2, so the domain's edges are nodes and no cell straddles the change of
    spacing. A square root, unlike the logarithm of equal steps in ln |s| (format 1), runs on the CPU's SIMD lanes
    (:func:`_locate`); on the test models it also halves the largest error beyond the domain. Rows with an input
    beyond |s| = ``extent`` are evaluated exactly (``exact``); rows with a missing input get NaN, as from the exact
    evaluator; the training-domain flag is computed from the inputs exactly. The T-pass spread is tabulated as it
    is (a standard deviation over the same T masks as ``exact``), so it is interpolated like Δϖ.

    Attributes
    ----------
    exact : NetworkOffsetEvaluator
        The exact evaluator: the table's values at the nodes, and rows beyond the table.
    table : ndarray, shape (2, n, n, n), float32
        Δϖ and its T-pass spread (mas) at the nodes, n = inner_cells + 2 outer_cells + 1 per input.
    centre, half_width : ndarray, shape (3,)
        Centre and half-width of the training domain (mag, mag, K).
    inner_cells, outer_cells : int
        Cells across the training domain, and on each side of it, per input.
    extent : float
        The table ends at |s| = extent (in half-widths of the training domain from its centre).
    errors : dict
        Interpolation errors measured when the table was built (:meth:`measure_errors`), in µas.
    """

    exact: NetworkOffsetEvaluator
    table: np.ndarray
    centre: np.ndarray
    half_width: np.ndarray
    inner_cells: int
    outer_cells: int
    extent: float
    errors: dict = dataclasses.field(default_factory=dict)
    needs_inputs = True
    _nodes: np.ndarray = dataclasses.field(init=False, repr=False)
    _grid: np.ndarray = dataclasses.field(init=False, repr=False)
    _cells: np.ndarray = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        """What :func:`_interpolate_rows` reads: the nodes' two values side by side and the grid's constants."""
        domain = np.asarray(self.exact.domain, float)
        half_width = np.asarray(self.half_width, float)
        grid = np.column_stack([self.centre, 1 / half_width, self.extent * half_width, domain])
        cells = [self.inner_cells / 2, self.outer_cells / (np.sqrt(self.extent) - 1), self.nodes_per_axis - 1]
        object.__setattr__(self, "_nodes", np.ascontiguousarray(self.table.reshape(len(TABLE_COLUMNS), -1).T).ravel())
        object.__setattr__(self, "_grid", grid)
        object.__setattr__(self, "_cells", np.array(cells, float))

    def __reduce__(self):
        """Pickled as the arguments of its constructor, which rebuilds the rest: half the bytes sent to each worker."""
        return type(self), tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.init)

    @property
    def level_error_mas(self) -> float:
        return self.exact.level_error_mas

    @property
    def nodes_per_axis(self) -> int:
        return self.inner_cells + 2 * self.outer_cells + 1

    @classmethod
    def tabulate(
        cls, exact: NetworkOffsetEvaluator, inner_cells: int, outer_cells: int, extent: float
    ) -> TabulatedOffsetEvaluator:
        """Evaluate ``exact`` at the nodes (n³ stars, about 5 µs each for T = 100), then measure the errors.

        Always in blocks of the default ``mc_block`` (64 MB), so that the table depends on the model and these
        arguments only, never on a job's ``mc_block`` (which moves the float32 rounding of the exact passes).

        Parameters
        ----------
        exact : NetworkOffsetEvaluator
        inner_cells, outer_cells : int
            Cells across the training domain and on each side of it (≥ 1 each).
        extent : float
            Reach of the table, in half-widths of the training domain from its centre (> 1).
        """
        domain = np.asarray(exact.domain, float)
        centre, half_width = domain.mean(axis=1), np.diff(domain, axis=1)[:, 0] / 2
        no_table = np.empty(0, np.float32)  # the grid alone, to place the nodes
        grid = cls(exact, no_table, centre, half_width, inner_cells, outer_cells, float(extent))
        axis = np.arange(grid.nodes_per_axis, dtype=float)
        nodes = grid.inputs_at(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3))
        values = exact.evaluate(nodes)
        table = np.stack([values[c].reshape([grid.nodes_per_axis] * 3) for c in TABLE_COLUMNS]).astype(np.float32)
        tabulated = dataclasses.replace(grid, table=table)
        return dataclasses.replace(tabulated, errors=tabulated.measure_errors())

    def node_index(self, s: np.ndarray) -> np.ndarray:
        """The grid's fractional node index f(s) at s = (x − centre) / half_width (not clipped to the table)."""
        a = np.abs(s)
        outer = (np.sqrt(np.maximum(a, 1.0)) - 1) * self.outer_cells / (np.sqrt(self.extent) - 1)
        return (
            self.outer_cells + self.inner_cells / 2 + np.copysign(np.minimum(a, 1.0) * self.inner_cells / 2 + outer, s)
        )

    def inputs_at(self, index: np.ndarray) -> np.ndarray:
        """Inputs (G, BP−RP, Teff) at fractional node indices ``index`` (..., 3): the inverse of :meth:`node_index`."""
        offset = np.asarray(index, float) - (self.outer_cells + self.inner_cells / 2)
        a = np.abs(offset)
        inner = self.inner_cells / 2
        s = np.where(a <= inner, a / inner, (1 + (a - inner) * (np.sqrt(self.extent) - 1) / self.outer_cells) ** 2)
        return self.centre + self.half_width * np.copysign(s, offset)

    def measure_errors(self, n_points: int = 32_768, seed: int = 0) -> dict:
        """Maximum and RMS differences (µas) from the exact evaluator, for Δϖ and its spread.

        On ``n_points`` random points uniform in the training domain (``training_domain``) and as many uniform in
        node-index space over the whole table (``table``: every cell equally, most of them outside the domain).
        """
        rng = np.random.default_rng(seed)
        domain = np.asarray(self.exact.domain, float)
        samples = {
            "training_domain": rng.uniform(domain[:, 0], domain[:, 1], (n_points, 3)),
            "table": self.inputs_at(rng.uniform(0, self.nodes_per_axis - 1, (n_points, 3))),
        }
        errors: dict = {"points": n_points}
        for region, points in samples.items():
            exact, approximate = self.exact.evaluate(points), self.evaluate(points)
            errors[region] = {}
            for column in TABLE_COLUMNS:
                difference_uas = (approximate[column].astype(float) - exact[column]) * 1000.0
                errors[region][column] = {
                    "max_uas": float(np.abs(difference_uas).max()),
                    "rms_uas": float(np.sqrt(np.mean(difference_uas**2))),
                }
        return errors

    @property
    def max_error_uas(self) -> float:
        """The largest measured error (µas) of Δϖ or its spread inside the training domain."""
        return max(e["max_uas"] for e in self.errors["training_domain"].values())

    def evaluate(self, inputs: np.ndarray, mc_block: int = 1_048_576) -> dict[str, np.ndarray]:
        out = {name: np.empty(len(inputs), dtype) for name, dtype in OUTPUT_DTYPES.items()}
        self.evaluate_into(list(np.asarray(inputs).T), out, mc_block)
        return out

    def evaluate_into(
        self, columns: Sequence[np.ndarray], out: dict[str, np.ndarray], mc_block: int = 1_048_576
    ) -> None:
        """One compiled pass over the rows (:func:`_interpolate_rows`, about 9 ns a row; columns of any float type,
        copied only if not contiguous), then the exact evaluation of the rows beyond the table, if any."""
        names = ("zp_offset", "zp_offset_model_error", "zp_offset_error")
        columns = [np.ascontiguousarray(column) for column in columns]
        beyond = np.empty(len(out["zp_offset"]), np.int64)
        flag = out["zp_outside_training_domain"]
        level_variance = np.float32(self.level_error_mas**2)
        count = _interpolate_rows(*columns, self._nodes, self._grid, self._cells, level_variance,
                                  (*(out[name] for name in names), flag), beyond)  # fmt: skip
        if count:
            rows = beyond[:count]
            exact = self.exact.evaluate(np.column_stack([column[rows] for column in columns]), mc_block)
            for name in names:
                out[name][rows] = exact[name]

    def save(self, path: str | os.PathLike, metadata: dict) -> None:
        """Write the table, the exact evaluator and the model's ``metadata`` to ``path`` (numpy ``.npz``, a few MB)."""
        exact = {f"exact_{f.name}": getattr(self.exact, f.name) for f in dataclasses.fields(self.exact)}
        with open(path, "wb") as file:  # a file object: np.savez would append ".npz" to a path
            np.savez(
                file,
                format=TABLE_FORMAT,
                table=self.table,
                centre=self.centre,
                half_width=self.half_width,
                cells=[self.inner_cells, self.outer_cells],
                extent=self.extent,
                errors_json=json.dumps(self.errors),
                metadata_json=json.dumps(metadata),
                **exact,
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[TabulatedOffsetEvaluator, dict]:
        """Read what :meth:`save` wrote: the evaluator and the model's metadata.

        Raises
        ------
        FileFormatError
            If ``path`` is not such a file, or of another format version.
        """
        try:
            with np.load(path) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise FileFormatError(f"{path}: not a readable offset table ({exc})") from exc
        if int(arrays.get("format", -1)) != TABLE_FORMAT:
            raise FileFormatError(f"{path}: offset table of another format (expected {TABLE_FORMAT})")
        exact = {f.name: arrays[f"exact_{f.name}"] for f in dataclasses.fields(NetworkOffsetEvaluator)}
        exact["level_error_mas"], exact["b3"] = float(exact["level_error_mas"]), float(exact["b3"])
        inner, outer = (int(c) for c in arrays["cells"])
        if arrays["table"].shape != (len(TABLE_COLUMNS), *[inner + 2 * outer + 1] * 3):
            raise FileFormatError(f"{path}: table of shape {arrays['table'].shape} for {inner} + 2 × {outer} cells")
        evaluator = cls(NetworkOffsetEvaluator(**exact), arrays["table"], arrays["centre"], arrays["half_width"],
                        inner, outer, float(arrays["extent"]), json.loads(str(arrays["errors_json"])))  # fmt: skip
        return evaluator, json.loads(str(arrays["metadata_json"]))


def offset_evaluator_from_run(run_dir: str | os.PathLike, mc_samples: int, seed: int) -> tuple[OffsetEvaluator, dict]:
    """Read ``RUN_DIR/model.pt`` and export its offset model; also return the model's metadata.

    Torch is imported here only, by the client: the returned object is numpy.

    Parameters
    ----------
    run_dir : path-like
        Training run folder.
    mc_samples : int
        Monte-Carlo passes T.
    seed : int
        Seed of the T dropout masks.

    Raises
    ------
    FileFormatError
        If a model that reads (G, BP−RP, Teff) has no ``offset_input_range`` in its metadata (written by training
        since zpdist 0.1: older runs must be retrained).
    """
    import torch

    from zpdist.nn.infer import load_model

    model, metadata = load_model(run_dir, torch.device("cpu"))
    domain = metadata.get("offset_input_range")
    if model.offset.needs_inputs and domain is None:
        raise FileFormatError(
            f"{Path(run_dir) / MODEL_FILE}: this run predates the stored training domain (offset_input_range); "
            "retrain it with this version of zpdist to apply its offset model"
        )
    return model.offset.export(mc_samples, seed, level_error_mas(metadata["summary"]), domain), metadata


def offset_table_path(
    run_dir: str | os.PathLike, mc_samples: int, seed: int, cells: tuple[int, int], extent: float
) -> Path:
    """Where :func:`tabulated_evaluator_from_run` keeps the table of these settings: ``RUN_DIR/offset_table-KEY.npz``,
    KEY a hash of the run's ``model.pt`` and of the settings (so a retrained model never reads a stale table)."""
    settings = json.dumps([TABLE_FORMAT, mc_samples, seed, list(cells), float(extent)])
    model_bytes = (Path(run_dir) / MODEL_FILE).read_bytes()
    key = hashlib.sha256(model_bytes + settings.encode()).hexdigest()[:16]
    return Path(run_dir) / f"{TABLE_PREFIX}{key}.npz"


def tabulated_evaluator_from_run(
    run_dir: str | os.PathLike,
    mc_samples: int,
    seed: int,
    cells: tuple[int, int],
    extent: float,
    log: Callable[[str], None] = print,
) -> tuple[OffsetEvaluator, dict]:
    """The run's offset model, tabulated if it reads (G, BP−RP, Teff); also return the model's metadata.

    The table is built once (a few seconds) and kept in the run folder as ``offset_table-KEY.npz``, KEY a hash of
    ``model.pt`` and of the settings, so later jobs read it instead, without torch. A folder that cannot be
    written to only means that every job builds its own table; an unreadable kept table is rebuilt.

    Parameters
    ----------
    run_dir : path-like
        Training run folder.
    mc_samples, seed : int
        Monte-Carlo passes T and the seed of their dropout masks.
    cells : (int, int)
        Cells of the table across the training domain and on each side of it, per input.
    extent : float
        Reach of the table in half-widths of the training domain from its centre.
    log : callable
        Where messages go.

    Returns
    -------
    (OffsetEvaluator, dict)
        A :class:`TabulatedOffsetEvaluator` (or, for a model without inputs, its exact export) and the metadata.
    """
    path = offset_table_path(run_dir, mc_samples, seed, cells, extent)
    if path.exists():
        try:
            return TabulatedOffsetEvaluator.load(path)
        except FileFormatError as exc:
            log(f"rebuilding the offset table: {exc}")
    exact, metadata = offset_evaluator_from_run(run_dir, mc_samples, seed)
    if not isinstance(exact, NetworkOffsetEvaluator) or not (np.diff(exact.domain, axis=1) > 0).all():
        return exact, metadata  # nothing to tabulate, or a training domain of zero width
    log(f"tabulating the offset model on {(sum(cells) + cells[1] + 1) ** 3:,} nodes (once per model and settings)")
    tabulated = TabulatedOffsetEvaluator.tabulate(exact, *cells, extent)
    try:
        with atomic_path(path) as tmp:
            tabulated.save(tmp, metadata)
    except OSError as exc:
        log(f"could not keep the offset table in {path.parent} ({exc}); every job will build its own")
    return tabulated, metadata
