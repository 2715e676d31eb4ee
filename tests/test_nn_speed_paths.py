"""The spectra branch's fast paths (zpdist.nn.luminosity, zpdist.nn.device) give the paper's layers' numbers, on CPU.

The straightforward network is written out here with torch's own layers (Conv1d, MaxPool1d, Dropout): the stem
and the pooled convolution equal it to float rounding; the training path draws the same dropout masks and gives
the same loss and gradients; Monte-Carlo passes with the same masks give the same features, and with their own
16-bit masks the same means and spreads within Monte-Carlo noise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional

from zpdist.nn.device import Scratch, map_blocks, matmul_t
from zpdist.nn.infer import mc_predict
from zpdist.nn.luminosity import SpectraBranch, keep_masks
from zpdist.nn.model import ModelConfig, ZeroPointNet, enable_mc_dropout

N_PIXELS = 7514
P = 0.3


@pytest.fixture(scope="module")
def branch() -> SpectraBranch:
    """The spectra branch with weights and biases large enough that ReLUs and poolings switch."""
    torch.manual_seed(0)
    module = SpectraBranch(N_PIXELS, P)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.normal_(0.0, 0.3 if name.startswith("conv") else 0.05)
    return module


def spectra(n: int, seed: int = 1) -> torch.Tensor:
    """Standardised spectra of ``n`` stars, differing star to star."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, N_PIXELS, generator=generator) + torch.linspace(-1, 1, n)[:, None]


def paper_body(branch: SpectraBranch, h: torch.Tensor, masks: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """The body with torch's layers; dropout by ``masks`` (keep masks, rows as h's) or by ``functional.dropout``."""

    def dropout(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return functional.dropout(x, P, branch.training)
        return x * mask.reshape(x.shape) / (1 - P)

    first, pooled, hidden = masks or (None, None, None)
    x = dropout(h, first)
    x = functional.max_pool1d(torch.relu(branch.conv2(x)), 4).flatten(1)
    x = torch.relu(branch.dense1(dropout(x, pooled)))
    return torch.relu(branch.dense2(dropout(x, hidden)))


def paper_stem(branch: SpectraBranch, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(branch.conv1(x.unsqueeze(1)))


# --- the deterministic layers ------------------------------------------------------------------------------


def test_stem_and_pooled_convolution_equal_the_paper_layers(branch):
    x = spectra(3)
    with torch.no_grad():
        h = branch.stem(x)
        torch.testing.assert_close(h, paper_stem(branch, x), rtol=1e-5, atol=1e-6)
        assert h.shape == (3, 2, N_PIXELS - 7) and h.is_contiguous()
        assert (h == 0).float().mean() > 0.2  # the ReLU switches
        pooled = branch.pooled_conv(h.transpose(1, 2).contiguous())
        expected = functional.max_pool1d(branch.conv2(h), 4)
        torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)
        # the no-gradient form (maxima by pairs, into given memory) gives the same numbers
        scratch, out = Scratch(), torch.empty_like(pooled)
        for _ in range(2):
            found = branch.pooled_conv(h.transpose(1, 2).contiguous(), 1.0, out, scratch)
            assert found is out
            torch.testing.assert_close(found, pooled)


def test_deterministic_forward_equals_the_paper_layers():
    torch.manual_seed(3)
    model = ZeroPointNet(ModelConfig("spectra", "constant", luminosity_head="softplus", init_std=0.2)).eval()
    x = 1.0 - 0.1 * torch.rand(5, N_PIXELS)
    with torch.no_grad():
        out = model(x)
        features = paper_body(model.branch, paper_stem(model.branch, model.standardise(x)))
        fakemag, log_var = model.head(features)
    torch.testing.assert_close(out["fakemag"], fakemag, rtol=1e-5, atol=0)
    torch.testing.assert_close(out["log_var"], log_var, rtol=1e-5, atol=1e-6)


def test_training_path_draws_the_same_masks_and_gives_the_same_gradients(branch):
    branch.train()
    x = spectra(6)

    def loss_and_grads(body) -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(11)
        branch.zero_grad()
        loss = (body(x) ** 2).sum()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in branch.parameters()]

    fast = loss_and_grads(lambda x: branch.body(branch.stem(x)))
    paper = loss_and_grads(lambda x: paper_body(branch, paper_stem(branch, x)))
    branch.eval()
    torch.testing.assert_close(fast[0], paper[0], rtol=1e-5, atol=0)
    for got, expected in zip(fast[1], paper[1], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))


# --- Monte-Carlo passes ------------------------------------------------------------------------------------


def test_masked_passes_equal_the_paper_layers_with_the_same_masks(branch):
    h, n_samples = branch.stem(spectra(3)).detach(), 7
    masks = branch.draw_masks(h, n_samples)
    assert [m.shape for m in masks] == [(21, 2, N_PIXELS - 7), (21, branch.dense1.in_features), (21, 164)]
    fast = branch.masked_body(h, masks, n_samples)
    with torch.no_grad():
        expected = paper_body(branch, h.repeat_interleave(n_samples, dim=0), masks)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    assert not torch.equal(fast[0], fast[1])  # a star's passes differ


def test_keep_masks_have_the_dropout_rate_in_every_lane_and_no_correlation():
    torch.manual_seed(5)
    (keep,) = keep_masks(2000, (1000,), P, Scratch(), torch.empty(0))
    assert set(keep.unique().tolist()) == {0.0, 1.0}
    rate = 1.0 - keep.mean().item()
    assert abs(rate - P) < 5 * np.sqrt(P * (1 - P) / keep.numel())
    # each of the four 16-bit lanes of a 64-bit draw (the top one holds the sign bit) drops at the same rate
    lanes = 1.0 - keep.reshape(-1, 4).mean(0)
    assert (lanes - P).abs().max() < 5 * np.sqrt(P * (1 - P) / (keep.numel() / 4))
    neighbours = np.corrcoef(keep.flatten()[:-1].numpy(), keep.flatten()[1:].numpy())[0, 1]
    assert abs(neighbours) < 5 / np.sqrt(keep.numel())


def test_mc_passes_agree_with_dropout_layers_within_monte_carlo_noise():
    torch.manual_seed(2)
    model = ZeroPointNet(ModelConfig("spectra", "constant", luminosity_head="softplus", init_std=0.1))
    model.set_statistics(torch.full((N_PIXELS,), 0.9), torch.full((N_PIXELS,), 0.06), fakemag_scale=1.0)
    x = 0.9 + 0.06 * (spectra(3) + torch.tensor([[-1.0], [0.0], [1.0]]))  # stars offset by ∓1 standard deviation
    enable_mc_dropout(model)
    n_samples = 600
    with torch.no_grad():  # the fast path: 16-bit masks, blocks of passes
        fast = model(x, n_samples=n_samples)["fakemag"]
    with torch.enable_grad():  # with gradients on, the passes run through torch's Dropout layers
        paper = model(x, n_samples=n_samples)["fakemag"].detach()
    model.eval()
    noise = torch.sqrt((fast.var(1) + paper.var(1)) / n_samples)
    assert ((fast.mean(1) - paper.mean(1)).abs() < 4 * noise).all()
    assert (fast.std(1) / paper.std(1) - 1).abs().max() < 0.2  # sample std of 600 passes: ≈ 3 % noise
    assert (fast.std(1) > 0).all() and fast.mean(1).max() - fast.mean(1).min() > 3 * noise.max()  # stars differ


def test_monte_carlo_predictions_are_reproducible_whatever_the_threads():
    torch.manual_seed(0)
    model = ZeroPointNet(ModelConfig("spectra", "constant"))
    x = (1.0 - 0.1 * torch.rand(3, N_PIXELS)).numpy()
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(9)
            # 250 passes: blocks of 100, 100 and 50 passes for each star
            results.append(mc_predict(model, x, None, 250, torch.device("cpu")))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(results[0].fakemag, results[1].fakemag)
    np.testing.assert_array_equal(results[0].fakemag_model_var, results[1].fakemag_model_var)
    assert torch.get_num_threads() == threads


def test_matmul_equals_torch_linear_in_float32_and_bfloat16():
    generator = torch.Generator().manual_seed(0)
    x, weight = torch.randn(37, 7500, generator=generator), torch.randn(164, 7500, generator=generator)
    expected = functional.linear(x.double(), weight.double()).float()
    torch.testing.assert_close(matmul_t(x, weight), expected, rtol=1e-4, atol=1e-4)
    low = matmul_t(x.bfloat16(), weight.bfloat16())
    assert low.dtype == torch.bfloat16 and float((low.float() - expected).abs().max()) < 0.02 * float(
        expected.abs().max()
    )


def test_map_blocks_keeps_the_order_and_gives_each_thread_its_scratch():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        scratches = []

        def work(item: int, scratch: Scratch) -> int:
            scratches.append(scratch)
            assert torch.get_num_threads() == 1  # torch's own threads are off while the blocks run side by side
            return item * item

        assert map_blocks(work, list(range(20)), torch.device("cpu")) == [i * i for i in range(20)]
        assert 1 <= len({id(s) for s in scratches}) <= 2
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads


# --- the benchmark's own functions, at a tiny size on the CPU -----------------------------------------------


def test_benchmark_functions_run_on_cpu_at_a_tiny_size():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
    spec = importlib.util.spec_from_file_location("run_all", path)
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    cpu = torch.device("cpu")
    assert run_all.training_rate(cpu, 4, 8) > 0
    rate, flops = run_all.inference_rate(cpu, 4, n_samples=3)
    # the paper's layers: stem 2·1·2·8·7507 once; per pass conv 2·2·4·8·7500, dense 2·7500·164 + 2·164·64, heads 2·64·2
    assert rate > 0 and flops == 240_224 + 3 * (960_000 + 2_460_000 + 20_992 + 256)
    agreement = run_all.agreement(cpu, cpu, n_stars=4, n_samples=20)
    assert agreement["max_relative_difference"] < 1e-6
    assert run_all.survey_rate(cpu, n_stars=6, block=4, n_samples=3, precision="float32") > 0
