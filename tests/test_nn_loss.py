"""The heteroscedastic parallax-space loss (docs/method.md §4), checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from zpdist.nn.loss import has_parallax_label, mean_parallax_nll, parallax_nll, predicted_parallax

NAN = float("nan")


def t(*values, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)


# Three stars worked out by hand (offset −0.05 mas for all):
#
# star 1: ϖ = 1.0 ± 0.1, L = 100, s = ln 25 (σ_L = 5), K_corr = 10
#   ϖ_pred = 100 · 10^(−2) − 0.05 = 0.95;  σ_pred² = 25 · 10^(−4) = 0.0025;  var = 0.0025 + 0.01 = 0.0125
#   ℓ = ½ · 0.05² / 0.0125 + ½ ln 0.0125 = 0.1 + ½ ln 0.0125
# star 2: ϖ = −0.2 ± 0.3 (negative, kept), L = 50, s = ln 100 (σ_L = 10), K_corr = 12.5
#   10^(−0.2·12.5) = 10^(−2.5);  ϖ_pred = 50 · 10^(−2.5) − 0.05;  σ_pred² = 100 · 10^(−5) = 0.001;  var = 0.091
# star 3: ϖ = 0.5 ± 0.05, L = 250, s = 0 (σ_L = 1), K_corr = 15
#   ϖ_pred = 250 · 10^(−3) − 0.05 = 0.2;  σ_pred² = 10^(−6);  var = 0.0025 + 10^(−6) = 0.002501
#   ℓ = ½ · 0.3² / 0.002501 + ½ ln 0.002501
PARALLAX = (1.0, -0.2, 0.5)
ERROR = (0.1, 0.3, 0.05)
FAKEMAG = (100.0, 50.0, 250.0)
LOG_VAR = (math.log(25.0), math.log(100.0), 0.0)
K_CORR = (10.0, 12.5, 15.0)
OFFSET = (-0.05, -0.05, -0.05)

PRED_1 = 0.95
PRED_2 = 50.0 * 10.0**-2.5 - 0.05
PRED_3 = 0.2
LOSS_1 = 0.5 * 0.05**2 / 0.0125 + 0.5 * math.log(0.0125)
LOSS_2 = 0.5 * (-0.2 - PRED_2) ** 2 / 0.091 + 0.5 * math.log(0.091)
LOSS_3 = 0.5 * 0.3**2 / 0.002501 + 0.5 * math.log(0.002501)


def test_hand_numbers_are_what_we_think():
    assert LOSS_1 == pytest.approx(0.1 - 2.191013, abs=1e-6)
    assert PRED_2 == pytest.approx(0.108114, abs=1e-6)


def test_predicted_parallax_formula():
    pred = predicted_parallax(t(*FAKEMAG), t(*K_CORR), t(*OFFSET))
    torch.testing.assert_close(pred, t(PRED_1, PRED_2, PRED_3), rtol=1e-12, atol=1e-12)
    # L · 10^(−0.2 K) is the parallax of a star of fakemag L: L = 10^(0.2 M + 2), K = M + 5 log10(d/10 pc)
    absmag, distance_pc = -1.6, 2500.0
    fakemag = 10.0 ** (0.2 * absmag + 2.0)
    k = absmag + 5.0 * math.log10(distance_pc / 10.0)
    pred = predicted_parallax(t(fakemag), t(k), t(0.0))
    assert pred.item() == pytest.approx(1000.0 / distance_pc, rel=1e-12)


def test_parallax_nll_matches_hand_computation():
    loss = parallax_nll(t(*PARALLAX), t(*ERROR), t(*FAKEMAG), t(*LOG_VAR), t(*K_CORR), t(*OFFSET))
    assert loss.shape == (3,)
    torch.testing.assert_close(loss, t(LOSS_1, LOSS_2, LOSS_3), rtol=1e-12, atol=1e-12)


def test_parallax_nll_float32():
    loss = parallax_nll(*(torch.tensor(v, dtype=torch.float32) for v in (PARALLAX, ERROR, FAKEMAG, LOG_VAR, K_CORR)),
                        torch.tensor(OFFSET, dtype=torch.float32))  # fmt: skip
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), t(LOSS_1, LOSS_2, LOSS_3), rtol=1e-5, atol=1e-5)


def test_negative_parallax_is_a_valid_label():
    assert has_parallax_label(t(-0.2), t(0.3), t(12.5)).item()
    loss = parallax_nll(t(-0.2), t(0.3), t(50.0), t(math.log(100.0)), t(12.5), t(-0.05))
    assert loss.item() == pytest.approx(LOSS_2, abs=1e-12)
    assert loss.item() != 0.0


def test_loss_is_minimal_at_true_parallax_and_rises_symmetrically():
    # with everything else fixed, ℓ is a parabola in ϖ_G centred on ϖ_pred
    parallax = t(PRED_1 - 0.1, PRED_1, PRED_1 + 0.1)
    ones = torch.ones(3, dtype=torch.float64)
    loss = parallax_nll(parallax, 0.1 * ones, 100.0 * ones, math.log(25.0) * ones, 10.0 * ones, -0.05 * ones)
    assert loss[1] < loss[0]
    assert loss[0].item() == pytest.approx(loss[2].item(), abs=1e-12)
    assert (loss[0] - loss[1]).item() == pytest.approx(0.5 * 0.1**2 / 0.0125, abs=1e-12)


def test_missing_labels_contribute_zero_and_give_finite_gradients():
    # stars 0–2 valid (the hand-worked ones); 3 has NaN parallax, 4 NaN error, 5 NaN K_corr, 6 all NaN
    parallax = t(*PARALLAX, NAN, 0.3, 0.3, NAN)
    error = t(*ERROR, 0.1, NAN, 0.1, NAN)
    k_corr = t(*K_CORR, 11.0, 11.0, NAN, NAN)
    fakemag = t(*FAKEMAG, 80.0, 80.0, 80.0, 80.0, requires_grad=True)
    log_var = t(*LOG_VAR, 1.0, 1.0, 1.0, 1.0, requires_grad=True)
    offset = t(*OFFSET, -0.05, -0.05, -0.05, -0.05, requires_grad=True)
    loss = parallax_nll(parallax, error, fakemag, log_var, k_corr, offset)
    torch.testing.assert_close(loss[:3], t(LOSS_1, LOSS_2, LOSS_3), rtol=1e-12, atol=1e-12)
    assert torch.equal(loss[3:], torch.zeros(4, dtype=torch.float64))
    mean = mean_parallax_nll(parallax, error, fakemag, log_var, k_corr, offset)
    assert mean.item() == pytest.approx((LOSS_1 + LOSS_2 + LOSS_3) / 3.0, abs=1e-12)
    mean.backward()
    for tensor in (fakemag, log_var, offset):
        assert torch.isfinite(tensor.grad).all()
        assert torch.equal(tensor.grad[3:], torch.zeros(4, dtype=torch.float64))
        assert (tensor.grad[:3] != 0).all()


def test_gradients_match_hand_derivatives():
    # dℓ/dϖ_pred = −(ϖ − ϖ_pred)/var; dϖ_pred/dL = 10^(−0.2 K); dϖ_pred/dΔϖ = 1
    fakemag = t(100.0, requires_grad=True)
    offset = t(-0.05, requires_grad=True)
    log_var = t(math.log(25.0), requires_grad=True)
    loss = parallax_nll(t(1.0), t(0.1), fakemag, log_var, t(10.0), offset)
    loss.sum().backward()
    d_pred = -(1.0 - PRED_1) / 0.0125
    assert offset.grad.item() == pytest.approx(d_pred, rel=1e-12)
    assert fakemag.grad.item() == pytest.approx(d_pred * 0.01, rel=1e-12)
    # dℓ/ds = dℓ/dvar · σ_pred² with dℓ/dvar = −½ r²/var² + ½ /var
    d_var = -0.5 * 0.05**2 / 0.0125**2 + 0.5 / 0.0125
    assert log_var.grad.item() == pytest.approx(d_var * 0.0025, rel=1e-12)


def test_mean_divides_by_number_of_valid_stars():
    parallax = t(*PARALLAX, NAN, NAN)
    error = t(*ERROR, 0.1, 0.1)
    fakemag = t(*FAKEMAG, 1.0, 1.0)
    log_var = t(*LOG_VAR, 0.0, 0.0)
    k_corr = t(*K_CORR, 10.0, 10.0)
    offset = t(*OFFSET, 0.0, 0.0)
    mean = mean_parallax_nll(parallax, error, fakemag, log_var, k_corr, offset)
    per_star = parallax_nll(parallax, error, fakemag, log_var, k_corr, offset)
    assert mean.item() == pytest.approx(per_star.sum().item() / 3.0, abs=1e-12)
    assert mean.item() != pytest.approx(per_star.sum().item() / 5.0, abs=1e-6)


def test_mean_with_no_valid_star_is_zero_not_nan():
    mean = mean_parallax_nll(t(NAN, NAN), t(0.1, 0.1), t(1.0, 1.0), t(0.0, 0.0), t(10.0, 10.0), t(0.0, 0.0))
    assert mean.item() == 0.0


def test_has_parallax_label():
    valid = has_parallax_label(t(1.0, NAN, 1.0, 1.0, -0.5), t(0.1, 0.1, NAN, 0.1, 0.1), t(10.0, 10.0, 10.0, NAN, 9.0))
    assert valid.tolist() == [True, False, False, False, True]
