"""Torch-free exports of the offset models (:mod:`zpdist.nn.offset`), for applying Δϖ to billions of Gaia rows.

Each offset model writes itself out as a small numpy object (a few kB, :meth:`OffsetModel.export
<zpdist.nn.offset.OffsetModel.export>`) that ``zpdist zeropoint`` broadcasts to its dask workers; this module
never imports torch, so neither do the workers. For the network, the T Monte-Carlo passes are T draws of the
thinned network: one dropout mask per pass, drawn once from the seed (:func:`dropout_masks`) and shared by all
stars, folded into the weights, so that a chunk of stars costs one first layer and one (N, 33) × (33, 16 T)
product (biases folded in). Every star's T samples are then independent draws, as with per-star masks, and the
result depends on neither the partitioning nor the scheduler (up to float32 rounding).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zpdist.errors import FileFormatError
from zpdist.units import uas_to_mas


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


def _columns(value: np.ndarray, spread: np.ndarray, level_error_mas: float, inside: np.ndarray) -> dict:
    """The output columns of :meth:`OffsetEvaluator.evaluate` (mas, float32; the flag is boolean)."""
    return {
        "zp_offset": value,
        "zp_offset_error": np.hypot(spread, np.float32(level_error_mas)),
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

    def evaluate(self, inputs: np.ndarray, mc_block: int = 1_048_576) -> dict[str, np.ndarray]:
        n = len(inputs)
        valid = np.isfinite(inputs).all(axis=1)
        inside = valid & ((inputs >= self.domain[:, 0]) & (inputs <= self.domain[:, 1])).all(axis=1)
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

    from zpdist.nn.infer import MODEL_FILE, load_model

    model, metadata = load_model(run_dir, torch.device("cpu"))
    domain = metadata.get("offset_input_range")
    if model.offset.needs_inputs and domain is None:
        raise FileFormatError(
            f"{Path(run_dir) / MODEL_FILE}: this run predates the stored training domain (offset_input_range); "
            "retrain it with this version of zpdist to apply its offset model"
        )
    level_error = uas_to_mas(float(metadata["summary"]["offset_uas_err_stat"]))
    return model.offset.export(mc_samples, seed, level_error, domain), metadata
