"""The selection-aware likelihood (docs/method.md §12): its limits, and the bias it removes on a magnitude-limited toy.

The toy draws giants from the Galaxy density model (:mod:`zpdist.galaxy_model`), gives them a luminosity scatter
the "network" does not explain (its L is the population's mean at fixed labels, its σ_L the scatter), and keeps
those brighter than a K limit: at fixed labels the distant survivors are the luminous ones, so the paper's
likelihood pulls the zero-point up, and the selection-aware one must not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zpdist.mock.galaxy import draw_galaxy_positions
from zpdist.nn.distance_prior import DistancePrior, sightlines
from zpdist.nn.loss import ParallaxLikelihood, parallax_nll, selection_aware_nll
from zpdist.nn.offset_fit import fit_offset_level, fit_offset_level_newton
from zpdist.nn.selection_distance import selection_aware_distance

TRUE_OFFSET_MAS = -0.050
SUN = (-8.125, 0.0, 0.0208)


class FlatPrior(DistancePrior):
    """ρ d³ constant: the selection-aware ℓ must then be the paper's."""

    def log_weight(self, sightline: torch.Tensor, distance_kpc: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(distance_kpc)


def _stars(n: int = 4) -> dict[str, torch.Tensor]:
    return {
        "parallax": torch.tensor([1.0, 0.4, 2.5, 0.15], dtype=torch.float64)[:n],
        "parallax_error": torch.tensor([0.05, 0.03, 0.02, 0.04], dtype=torch.float64)[:n],
        "fakemag": torch.tensor([100.0, 40.0, 30.0, 60.0], dtype=torch.float64)[:n],
        "log_var": torch.log(torch.tensor([15.0, 4.0, 2.0, 9.0], dtype=torch.float64) ** 2)[:n],
        "k_corr": torch.tensor([10.0, 10.5, 7.0, 12.0], dtype=torch.float64)[:n],
        "offset": torch.full((n,), TRUE_OFFSET_MAS, dtype=torch.float64),
    }


def test_flat_prior_gives_the_papers_likelihood():
    star = _stars()
    line = torch.as_tensor(sightlines(np.array([30.0, 120.0, 200.0, 300.0]), np.array([2.0, -5.0, 40.0, 10.0])))
    aware = selection_aware_nll(*star.values(), line, FlatPrior(SUN))
    assert torch.allclose(aware, parallax_nll(*star.values()), atol=1e-6)


def test_unknown_sightline_falls_back_to_the_papers_likelihood():
    star = _stars()
    line = torch.full((4, 3), float("nan"), dtype=torch.float64)
    assert torch.equal(selection_aware_nll(*star.values(), line, DistancePrior(SUN)), parallax_nll(*star.values()))


def test_outlier_with_negative_parallax_has_finite_loss_and_gradient():
    star = _stars(1)
    star["parallax"] = torch.tensor([-0.8], dtype=torch.float64)  # 30σ below the network's 1.0 mas
    star["offset"] = star["offset"].clone().requires_grad_(True)
    loss = selection_aware_nll(*star.values(), torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), DistancePrior(SUN))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and 100 < float(loss) < 1e3
    assert torch.isfinite(star["offset"].grad).all()


def _magnitude_limited_toy(seed: int, n: int, k_limit: float = 10.0, scatter: float = 0.25) -> dict[str, np.ndarray]:
    """Giants of the Galaxy model within |b| < 20°, K_corr < ``k_limit``: L = L̂ (1 + scatter·ε), ε ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    parts: list[dict[str, np.ndarray]] = []
    while sum(len(p["k_corr"]) for p in parts) < n:
        xyz, _ = draw_galaxy_positions(rng, 400_000)
        rel = xyz - np.array(SUN)
        d_kpc = np.linalg.norm(rel, axis=1)
        glat = np.degrees(np.arcsin(rel[:, 2] / d_kpc))
        glon = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
        l_mean = 10.0 ** (0.2 * rng.uniform(-1.6, 0.8, len(d_kpc)) + 2.0)  # M_K from −1.6 to 0.8 mag
        lum = l_mean * (1.0 + scatter * rng.normal(size=len(d_kpc)))
        keep = (np.abs(glat) < 20.0) & (lum > 0)
        k_corr = np.where(
            keep, 5.0 * np.log10(np.where(keep, lum, 1.0) * d_kpc / 100.0) + 10.0, np.inf
        )  # ϖ = L·10^(−0.2K) = 1/d
        keep &= k_corr < k_limit
        error = rng.uniform(0.02, 0.04, keep.sum())
        parts.append(
            {
                "fakemag": l_mean[keep], "fakemag_pred_var": (scatter * l_mean[keep]) ** 2, "k_corr": k_corr[keep],
                "parallax": 1.0 / d_kpc[keep] + TRUE_OFFSET_MAS + error * rng.normal(size=keep.sum()),
                "parallax_error": error, "sightline": sightlines(glon[keep], glat[keep]),
                "offset": np.zeros(keep.sum()), "true_distance_pc": 1000.0 * d_kpc[keep],
            }
        )  # fmt: skip
    return {key: np.concatenate([p[key] for p in parts])[:n] for key in parts[0]}


@pytest.mark.parametrize("seed", [1, 2])
def test_selection_aware_fit_recovers_the_offset_where_the_papers_is_biased(seed):
    star = _magnitude_limited_toy(seed, 4000)
    to_parallax = 10.0 ** (-0.2 * star["k_corr"])
    paper = fit_offset_level(
        star["offset"], star["fakemag"] * to_parallax, star["parallax"], star["parallax_error"],
        np.sqrt(star["fakemag_pred_var"]) * to_parallax,
    )  # fmt: skip
    aware = fit_offset_level_newton(star, ParallaxLikelihood(DistancePrior(SUN)))
    assert (paper.shift - TRUE_OFFSET_MAS) / paper.shift_error > 3.0  # the paper's likelihood: biased up
    assert abs(aware.shift - TRUE_OFFSET_MAS) < 3.0 * aware.shift_error
    assert aware.shift_error < 2 * paper.shift_error and math.isfinite(aware.luminosity_scale)


def test_narrow_lognormal_scatter_gives_the_gaussians_likelihood():
    star = _stars()
    star["log_var"] = torch.log((0.01 * star["fakemag"]) ** 2)  # 1 % scatter: lognormal ≈ Gaussian
    line = torch.as_tensor(sightlines(np.array([30.0, 120.0, 200.0, 300.0]), np.array([2.0, -5.0, 40.0, 10.0])))
    lognormal = selection_aware_nll(*star.values(), line, FlatPrior(SUN), lognormal=True)
    near = [0, 1, 3]  # the third star is 65σ out, where the two tails legitimately differ
    assert torch.allclose(lognormal[near], parallax_nll(*star.values())[near], atol=5e-3)


def test_lognormal_scatter_pulls_further_than_the_gaussian():
    """The same σ_L: the lognormal's longer luminous tail puts more of the distance prior's weight at small ϖ_t,
    so a parallax below the prediction is likelier under it."""
    star = _stars(1)
    star["parallax"] = torch.tensor([0.85], dtype=torch.float64)  # 3σ below the network's 1.0 mas
    line = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    gaussian = selection_aware_nll(*star.values(), line, DistancePrior(SUN))
    lognormal = selection_aware_nll(*star.values(), line, DistancePrior(SUN), lognormal=True)
    assert float(lognormal) < float(gaussian)


def test_selection_aware_distance_with_a_flat_prior_is_one_over_the_network_parallax():
    fakemag, k_corr = np.array([100.0, 40.0]), np.array([10.0, 11.0])
    line = sightlines(np.array([30.0, 200.0]), np.array([2.0, 40.0]))
    distance, error = selection_aware_distance(fakemag, 0.01 * fakemag, k_corr, line, FlatPrior(SUN))
    expected = 1000.0 / (fakemag * 10.0 ** (-0.2 * k_corr))  # pc
    assert distance == pytest.approx(expected, rel=1e-3)
    assert error == pytest.approx(0.01 * expected, rel=0.02)  # σ_d/d = σ_L/L for a narrow scatter


def test_selection_aware_distances_are_unbiased_where_the_population_l_gives_short_ones():
    star = _magnitude_limited_toy(7, 3000)
    scale = 10.0 ** (-0.2 * star["k_corr"])
    distance, error = selection_aware_distance(
        star["fakemag"], np.sqrt(star["fakemag_pred_var"]), star["k_corr"], star["sightline"], DistancePrior(SUN)
    )
    alone = 1000.0 / (star["fakemag"] * scale)
    truth = star["true_distance_pc"]
    assert np.median((alone - truth) / error) < -0.4  # the population's L: distant survivors are luminous
    assert abs(np.median((distance - truth) / error)) < 0.1


def test_lognormal_star_without_a_positive_luminosity_keeps_the_papers_likelihood():
    star = _stars(2)
    star["fakemag"] = torch.tensor([-5.0, 100.0], dtype=torch.float64, requires_grad=True)
    line = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    values = selection_aware_nll(*star.values(), line, DistancePrior(SUN), lognormal=True)
    values.sum().backward()
    assert float(values[0]) == pytest.approx(float(parallax_nll(*star.values())[0]))
    assert torch.isfinite(values).all() and torch.isfinite(star["fakemag"].grad).all()


@pytest.mark.parametrize("lognormal", [False, True])
def test_a_vanishing_luminosity_cannot_drive_the_loss_to_minus_infinity(lognormal):
    """L̂ → 0 puts the scatter's own nodes where ρ·d³ vanishes; ℓ must stay ≥ ln σϖ (the Gaussian's peak)."""
    star = _stars(1)
    star["fakemag"] = torch.tensor([1e-39], dtype=torch.float64)
    star["log_var"] = torch.tensor([4.6], dtype=torch.float64)
    line = torch.tensor([[0.94, 0.34, 0.07]], dtype=torch.float64)
    value = selection_aware_nll(*star.values(), line, DistancePrior(SUN), lognormal=lognormal)
    assert float(value) >= math.log(float(star["parallax_error"][0])) - 1e-9
