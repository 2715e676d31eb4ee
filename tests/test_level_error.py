"""The offset level's statistical error against the analytic answer of a linear toy (docs/method.md §6, §12).

With the network frozen and its scatter σ_L → 0, ϖ_G = a·ϖ_NN + δ + noise is a linear model with known weights:
the covariance of (δ, a) is (JᵀWJ)⁻¹, and over many noise draws the fitted δ scatters by exactly that error.
"""

from __future__ import annotations

import numpy as np
import pytest

from zpdist.nn.loss import ParallaxLikelihood
from zpdist.nn.offset_fit import fit_offset_level_newton, paper_level_fit

N_STARS, TRUE_OFFSET_MAS = 1500, -0.045


def _toy(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stars whose network L is exact (σ_L negligible), Gaia noise 20–60 µas."""
    k_corr = np.random.default_rng(0).uniform(7.0, 12.0, N_STARS)  # the same stars in every draw
    fakemag = 10.0 ** np.random.default_rng(1).uniform(1.3, 2.3, N_STARS)
    error = np.random.default_rng(2).uniform(0.02, 0.06, N_STARS)
    parallax = fakemag * 10.0 ** (-0.2 * k_corr) + TRUE_OFFSET_MAS + error * rng.normal(size=N_STARS)
    return {
        "fakemag": fakemag, "fakemag_pred_var": (1e-6 * fakemag) ** 2, "k_corr": k_corr, "parallax": parallax,
        "parallax_error": error, "offset": np.zeros(N_STARS),
    }  # fmt: skip


def _analytic_covariance(star: dict[str, np.ndarray]) -> np.ndarray:
    design = np.column_stack([np.ones(N_STARS), star["fakemag"] * 10.0 ** (-0.2 * star["k_corr"])])
    return np.linalg.inv(design.T @ (design / star["parallax_error"][:, None] ** 2))


def test_least_squares_and_newton_covariances_are_the_analytic_one():
    star = _toy(np.random.default_rng(10))
    analytic = _analytic_covariance(star)
    assert paper_level_fit(star).covariance == pytest.approx(analytic, rel=1e-6)
    assert fit_offset_level_newton(star, ParallaxLikelihood()).covariance == pytest.approx(analytic, rel=1e-4)


def test_fitted_level_scatters_by_its_quoted_error_over_noise_draws():
    rng = np.random.default_rng(11)
    fits = [paper_level_fit(_toy(rng)) for _ in range(400)]
    shifts = np.array([f.shift for f in fits])
    quoted = fits[0].shift_error
    pulls = (shifts - TRUE_OFFSET_MAS) / quoted
    assert abs(pulls.mean()) < 3.0 / np.sqrt(400)  # unbiased
    assert pulls.std() == pytest.approx(1.0, abs=0.1)  # the quoted error is the scatter (±0.1: 2.8σ of 400 draws)
