"""The warm start of the log-linear term (zpdist.nn.warm_start) against a known log-linear truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zpdist.config import TrainConfig
from zpdist.nn.batch import Batch
from zpdist.nn.model import ModelConfig, ZeroPointNet
from zpdist.nn.warm_start import parameter_groups, warm_start_log_linear

TRUE_OFFSET_MAS = -0.0523


def log_linear_sample(n: int = 4000, seed: int = 0, multivariate: bool = False):
    """Labels, K_corr and Gaia-like parallaxes from ln L = 3.5 + w·x exactly, plus a constant offset."""
    rng = np.random.default_rng(seed)
    labels = rng.normal(size=(n, 4))
    fakemag = np.exp(3.5 + labels @ np.array([0.6, -0.4, 0.2, 0.1]))
    k_corr = rng.uniform(8.0, 12.0, n)
    error = np.full(n, 0.02)
    parallax = fakemag * 10 ** (-0.2 * k_corr) + TRUE_OFFSET_MAS + rng.normal(0.0, error)
    tensors = [torch.as_tensor(a, dtype=torch.float32) for a in (labels, k_corr, parallax, error)]
    offset_inputs = None
    if multivariate:
        offset_inputs = torch.as_tensor(np.column_stack([rng.uniform(10, 16, n), rng.uniform(1, 3, n),
                                                         rng.uniform(4000, 5200, n)]), dtype=torch.float32)  # fmt: skip
    return tensors, offset_inputs, fakemag


def model_for(labels: torch.Tensor, fakemag: np.ndarray, offset_model: str = "constant") -> ZeroPointNet:
    config = ModelConfig(mode="labels", n_inputs=4, offset_model=offset_model, luminosity_head="log_linear")
    model = ZeroPointNet(config)
    model.set_statistics(labels.mean(0), labels.std(0), float(np.median(fakemag)),
                         torch.tensor([13.0, 2.0, 4600.0]), torch.tensor([1.7, 0.6, 350.0]))  # fmt: skip
    return model


def test_warm_start_recovers_a_log_linear_truth_and_the_offset():
    (labels, k_corr, parallax, error), _, fakemag = log_linear_sample()
    model = model_for(labels, fakemag)
    result = warm_start_log_linear(model, [Batch(labels, None, k_corr, parallax, error)], log=lambda m: None)
    assert result.loss_after < result.loss_before - 1.0
    # 4,000 stars with σ_ϖ = 20 µas: the offset is known to better than 1 µas
    assert result.offset_mas == pytest.approx(TRUE_OFFSET_MAS, abs=1.5e-3)
    assert model.offset.uniform_value() == pytest.approx(result.offset_mas)
    model.eval()
    with torch.no_grad():
        predicted = model(labels)["fakemag"].double().numpy()
    assert np.median(np.abs(np.log(predicted / fakemag))) < 0.02
    assert model.training is False  # left in the mode it was given


def test_warm_start_moves_the_multivariate_offset_level_only():
    (labels, k_corr, parallax, error), offset_inputs, fakemag = log_linear_sample(multivariate=True)
    model = model_for(labels, fakemag, "multivariate")
    weights_before = model.offset.out.weight.detach().clone()
    model.train()
    stars = [Batch(labels, offset_inputs, k_corr, parallax, error)]
    result = warm_start_log_linear(model, stars, log=lambda m: None)
    assert model.training
    torch.testing.assert_close(model.offset.out.weight, weights_before, rtol=0, atol=0)
    assert result.offset_mas == pytest.approx(TRUE_OFFSET_MAS, abs=2e-3)


def test_warm_start_needs_a_log_linear_head():
    model = ZeroPointNet(ModelConfig(mode="spectra", luminosity_head="softplus"))
    with pytest.raises(ValueError, match="log-linear luminosity head"):
        warm_start_log_linear(model, [Batch(torch.ones(2, 7514), None, *torch.ones(3, 2))], log=lambda m: None)


def test_streamed_chunks_give_the_in_memory_fit():
    """The stars may arrive in several batches (a streaming data module): the fit is the same."""
    (labels, k_corr, parallax, error), offset_inputs, fakemag = log_linear_sample(n=3000, multivariate=True)
    whole = Batch(labels, offset_inputs, k_corr, parallax, error)
    results, states = [], []
    for stars in ([whole], [whole.select(torch.arange(i, min(i + 700, 3000))) for i in range(0, 3000, 700)]):
        torch.manual_seed(0)
        model = model_for(labels, fakemag, "multivariate")
        results.append(warm_start_log_linear(model, stars, chunk=350, log=lambda m: None))
        states.append(model.state_dict())
    assert results[0] == results[1]
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    "offset_model, slow_names",
    [
        ("constant", ["head.linear.weight", "head.linear.bias", "offset.value"]),
        ("multivariate", ["head.linear.weight", "head.linear.bias"]),
    ],
)
def test_after_a_warm_start_the_log_linear_term_and_the_constant_learn_slower(offset_model, slow_names):
    model = ZeroPointNet(ModelConfig(mode="labels", n_inputs=4, offset_model=offset_model))
    names = {id(p): name for name, p in model.named_parameters()}
    config = TrainConfig(learning_rate=2e-3, warm_lr_factor=0.1)
    fast, slow = parameter_groups(model, config)
    assert [names[id(p)] for p in slow["params"]] == slow_names and slow["lr"] == pytest.approx(2e-4)
    assert len(fast["params"]) + len(slow_names) == len(list(model.parameters())) and "lr" not in fast
    # without a warm start (or a head it can fit) everything learns at the same rate
    assert [len(g["params"]) for g in parameter_groups(model, TrainConfig(warm_start=False))] == [len(names)]
    softplus = ZeroPointNet(ModelConfig(mode="labels", n_inputs=4, luminosity_head="softplus"))
    assert len(parameter_groups(softplus, config)) == 1
