"""The offset's error from half-samples: the whole fit repeated on random halves of the training stars.

The error of a fitted Δϖ has parts no single fit can see: how the network itself, fitted to the same noisy
parallaxes, moves the level, and how the level moves with the training's random choices (initial weights,
batch order, dropout, validation split). Repeating the whole fit on fresh data measures both. Random halves
(drawn without replacement, each fit with its own seed) are the delete-d jackknife with d = n/2 (Shao & Wu
1989, Ann. Stat. 17, 1176): two random halves share n/4 stars on average, so for an estimator whose data
variance scales as 1/n the sample variance of the half-sample fits is

    σ_d²/(n/2) − σ_d²/n + σ_s² = σ_d²/n + σ_s²,

the full fit's variance with its data part (σ_d²/n) and its training part (σ_s²) alike, with no rescaling
(docs/method.md §13). The estimate has K − 1 degrees of freedom for K halves: 10 halves give the error to
about ±24 %.
"""

from __future__ import annotations

import numpy as np

#: Fewest halves whose spread is quoted as the error.
MIN_HALVES = 2


def half_sample_rows(rows: np.ndarray, index: int, seed: int) -> np.ndarray:
    """Half of ``rows`` (⌊n/2⌋ of them, without replacement, in increasing order) for half-sample ``index``.

    Parameters
    ----------
    rows : ndarray of int
        The table rows of the stars that pass the cuts (increasing).
    index : int
        Which half-sample (0, 1, …); each draws its own half.
    seed : int
        The run's seed: the same seed and index give the same half.
    """
    rng = np.random.default_rng([seed, index, 0x4A4B])
    return np.sort(rng.choice(np.asarray(rows), size=len(rows) // 2, replace=False))


def half_sample_seed(seed: int, index: int) -> int:
    """The training seed of half-sample ``index`` of a run with ``seed`` (never the run's own)."""
    return seed + 1000 * (index + 1)


def half_sample_error(values: np.ndarray) -> float:
    """Error of the full-sample fit from the fits on random halves: their sample standard deviation.

    Parameters
    ----------
    values : array_like
        One fitted value per half-sample (any unit; NaN where a half's fit failed is left out).

    Returns
    -------
    float
        The standard deviation with K − 1 in the denominator, in the unit of ``values``; NaN with fewer than
        :data:`MIN_HALVES` finite values.
    """
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if len(values) >= MIN_HALVES else float("nan")


def summarise(levels_uas: list[float], planes: list[dict]) -> dict:
    """The summary's half-sample entries from each half's level (µas) and, for a multivariate model, its plane.

    Parameters
    ----------
    levels_uas : list of float
        Δϖ of each half's fit (µas): the constant, or the multivariate model's mean over its stars.
    planes : list of dict
        Each half's ``offset_plane`` (:func:`zpdist.nn.offset_plane.offset_plane`), or empty.

    Returns
    -------
    dict
        ``half_samples`` (K), ``half_sample_offsets_uas`` (each half's Δϖ), ``offset_uas_err_half_samples``
        (their spread, the full fit's error) and, with planes, ``offset_plane_err_half_samples`` (the spread
        of each plane coefficient).
    """
    out = {
        "half_samples": len(levels_uas),
        "half_sample_offsets_uas": [float(v) for v in levels_uas],
        "offset_uas_err_half_samples": half_sample_error(levels_uas),
    }
    if planes:
        out["offset_plane_err_half_samples"] = {
            name: half_sample_error([plane[name][0] for plane in planes]) for name in planes[0] if name != "pivot"
        }
    return out
