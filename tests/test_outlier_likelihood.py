"""The outlier mixture of the parallax likelihood (docs/method.md §12): its limits, and the bias it removes.

A few per cent of spurious parallaxes many σ from the truth, removed more often on one side (the training cut
log10 L_K > 0 throws out stars whose parallax makes them too faint), pull the Gaussian's offset by several of its
errors; the mixture's must stay within its error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zpdist.nn.loss import OUTLIER_WIDTH, ParallaxLikelihood, parallax_nll, with_outliers
from zpdist.nn.offset_fit import fit_offset_level_newton, paper_level_fit

TRUE_OFFSET_MAS = -0.040


def _astrometry(parallax: list[float]) -> tuple[torch.Tensor, ...]:
    n = len(parallax)
    return (
        torch.tensor(parallax, dtype=torch.float64),
        torch.full((n,), 0.05, dtype=torch.float64),  # σϖ (mas)
        torch.full((n,), 100.0, dtype=torch.float64),  # L: 1 mas at K = 10
        torch.full((n,), math.log(5.0**2), dtype=torch.float64),  # σ_L = 5: 0.05 mas at K = 10
        torch.full((n,), 10.0, dtype=torch.float64),
        torch.zeros(n, dtype=torch.float64),
    )


def test_mixture_at_the_prediction_costs_only_the_good_fraction():
    astrometry = _astrometry([1.0])
    core = parallax_nll(*astrometry)
    mixed = with_outliers(core, *astrometry, fraction=0.01)
    broad_density_ratio = 0.01 / 0.99 / OUTLIER_WIDTH  # the broad Gaussian's peak relative to the core's
    assert float(mixed) == pytest.approx(float(core) - math.log(0.99) - math.log1p(broad_density_ratio), abs=1e-12)


def test_far_outlier_costs_the_broad_component_and_barely_pulls():
    astrometry = _astrometry([1.0 + 30 * math.sqrt(2) * 0.05])  # 30σ of the total uncertainty above
    offset = astrometry[5].clone().requires_grad_(True)
    core = parallax_nll(*astrometry[:5], offset)
    mixed = with_outliers(core, *astrometry[:5], offset, fraction=0.01)
    core_pull = torch.autograd.grad(core.sum(), offset, retain_graph=True)[0]
    mixed_pull = torch.autograd.grad(mixed.sum(), offset)[0]
    assert float(core.detach()) > 400 and float(mixed.detach()) < 20
    assert abs(float(mixed_pull)) < abs(float(core_pull)) / 100


def test_stars_without_a_parallax_contribute_nothing():
    astrometry = _astrometry([float("nan"), 1.0])
    likelihood = ParallaxLikelihood(outlier_fraction=0.02)
    values = likelihood.nll(*astrometry)
    assert float(values[0]) == 0.0 and math.isfinite(float(values[1]))


def _toy_with_one_sided_outliers(seed: int, n: int = 3000, fraction: float = 0.02) -> dict[str, np.ndarray]:
    """Stars whose network L is exact up to σ_L; ``fraction`` of them are shifted by +U(5, 30) σϖ (positive only,
    as after a cut that removes the others)."""
    rng = np.random.default_rng(seed)
    k_corr = rng.uniform(7.0, 12.0, n)
    fakemag = 10.0 ** rng.uniform(1.3, 2.3, n)
    sigma_l = 0.1 * fakemag
    to_parallax = 10.0 ** (-0.2 * k_corr)
    error = rng.uniform(0.02, 0.06, n)
    true = (fakemag + sigma_l * rng.normal(size=n)) * to_parallax
    parallax = true + TRUE_OFFSET_MAS + error * rng.normal(size=n)
    bad = rng.random(n) < fraction
    parallax[bad] += rng.uniform(5.0, 30.0, bad.sum()) * error[bad]
    return {
        "fakemag": fakemag, "fakemag_pred_var": sigma_l**2, "k_corr": k_corr, "parallax": parallax,
        "parallax_error": error, "offset": np.zeros(n),
    }  # fmt: skip


@pytest.mark.parametrize("seed", [3, 4])
def test_mixture_recovers_the_offset_where_the_gaussian_is_pulled(seed):
    star = _toy_with_one_sided_outliers(seed)
    gaussian = paper_level_fit(star)
    robust = fit_offset_level_newton(star, ParallaxLikelihood(outlier_fraction=0.02))
    assert (gaussian.shift - TRUE_OFFSET_MAS) / gaussian.shift_error > 4.0
    assert abs(robust.shift - TRUE_OFFSET_MAS) < 2.5 * robust.shift_error
    assert robust.shift_error < 1.5 * gaussian.shift_error


def test_vanishing_outlier_fraction_gives_the_gaussian_fit():
    star = _toy_with_one_sided_outliers(5, fraction=0.0)
    gaussian = fit_offset_level_newton(star, ParallaxLikelihood())
    mixed = fit_offset_level_newton(star, ParallaxLikelihood(outlier_fraction=1e-9))
    assert mixed.shift == pytest.approx(gaussian.shift, abs=1e-3 * gaussian.shift_error)
    assert mixed.shift_error == pytest.approx(gaussian.shift_error, rel=1e-3)
    # least squares holds σ_L fixed where Newton scales it with L: the same optimum within a fraction of its error
    least_squares = paper_level_fit(star)
    assert least_squares.shift == pytest.approx(gaussian.shift, abs=0.3 * gaussian.shift_error)


def test_newton_fit_survives_a_star_hundreds_of_sigma_out():
    """exp(−ℓ_core) underflows for such a star: the mixture's Hessian must stay finite (logaddexp's is NaN)."""
    star = _toy_with_one_sided_outliers(6, fraction=0.0)
    star["parallax"][0] += 300 * star["parallax_error"][0]
    fit = fit_offset_level_newton(star, ParallaxLikelihood(outlier_fraction=0.01))
    assert np.isfinite(fit.covariance).all()
    assert abs(fit.shift - TRUE_OFFSET_MAS) < 3.0 * fit.shift_error
