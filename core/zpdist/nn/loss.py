"""The heteroscedastic loss of Leung & Bovy (2019) in parallax space (docs/method.md §4)."""

from __future__ import annotations

import torch


def predicted_parallax(fakemag: torch.Tensor, k_corr: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """ϖ_pred (mas) = L · 10^(−0.2 K_corr) + Δϖ."""
    return fakemag * torch.pow(10.0, -0.2 * k_corr) + offset


def has_parallax_label(parallax: torch.Tensor, parallax_error: torch.Tensor, k_corr: torch.Tensor) -> torch.Tensor:
    """True for stars whose parallax, parallax error and K_corr are all finite."""
    return torch.isfinite(parallax) & torch.isfinite(parallax_error) & torch.isfinite(k_corr)


def parallax_nll(
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    fakemag: torch.Tensor,
    log_var: torch.Tensor,
    k_corr: torch.Tensor,
    offset: torch.Tensor,
) -> torch.Tensor:
    """Per-star negative log-likelihood of the Gaia parallax; NaN-labelled stars contribute 0.

    ℓ = ½ (ϖ_G − ϖ_pred)² / (σ_pred² + σ_ϖ²) + ½ ln(σ_pred² + σ_ϖ²),  σ_pred = σ_L · 10^(−0.2 K_corr).

    Parameters
    ----------
    parallax, parallax_error : Tensor
        Gaia parallax and error (mas); NaN where missing (masked, never filled).
    fakemag, log_var : Tensor
        Predicted L and ln σ_L².
    k_corr : Tensor
        Extinction-corrected K magnitude (mag).
    offset : Tensor
        Predicted zero-point offset Δϖ (mas).

    Returns
    -------
    Tensor
        ℓ per star, 0 where the star has no valid parallax.
    """
    valid = has_parallax_label(parallax, parallax_error, k_corr)
    zero = torch.zeros_like(parallax)
    plx = torch.where(valid, parallax, zero)
    err = torch.where(valid, parallax_error, zero)
    k = torch.where(valid, k_corr, zero)
    pred = predicted_parallax(fakemag, k, offset)
    variance = torch.exp(log_var) * torch.pow(10.0, -0.4 * k) + err**2
    loss = 0.5 * (plx - pred) ** 2 / variance + 0.5 * torch.log(variance)
    return torch.where(valid, loss, zero)


def mean_parallax_nll(
    parallax: torch.Tensor,
    parallax_error: torch.Tensor,
    fakemag: torch.Tensor,
    log_var: torch.Tensor,
    k_corr: torch.Tensor,
    offset: torch.Tensor,
) -> torch.Tensor:
    """Mean of :func:`parallax_nll` over the stars that have a parallax label."""
    per_star = parallax_nll(parallax, parallax_error, fakemag, log_var, k_corr, offset)
    n_valid = has_parallax_label(parallax, parallax_error, k_corr).sum().clamp(min=1)
    return per_star.sum() / n_valid
