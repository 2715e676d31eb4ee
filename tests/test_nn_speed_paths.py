"""The spectra branch's fast paths (zpdist.nn.luminosity, zpdist.nn.device) give the paper's layers' numbers, on CPU.

The straightforward network is written out here with torch's own layers (Conv1d, MaxPool1d, Dropout): the stem
and the pooled convolution equal it to float rounding; the training path with the masks it draws gives the same
loss and gradients; Monte-Carlo passes with the same masks give the same features, and with their own 16-bit
masks the same means and spreads as torch's Dropout within Monte-Carlo noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from tests.benchmark_modules import load_benchmark
from zpdist.nn.device import Scratch, map_blocks, matmul_t
from zpdist.nn.infer import mc_predict
from zpdist.nn.luminosity import SpectraBranch, keep, keep_masks, random_bits, split_columns
from zpdist.nn.model import ModelConfig, ZeroPointNet, enable_mc_dropout
from zpdist.nn.offset_fit import shared_dropout_masks

N_PIXELS = 7514
LENGTH = N_PIXELS - 7  # Conv1D(2, 8)'s output positions
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
    """The body with torch's layers on h of shape (N, 2, 7507); dropout by ``masks`` (keep masks, rows as h's, the
    first positions first and padded as the stem's output) or by ``functional.dropout``."""

    def dropout(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return functional.dropout(x, P, branch.dropout.training)
        return x * mask.reshape(x.shape) / (1 - P)

    first, pooled, hidden = masks or (None, None, None)
    first = None if first is None else first.view(len(h), -1, 2)[:, :LENGTH].transpose(1, 2)
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
        assert h.shape == (3, branch.stem_length, 2) and branch.stem_length == 7508 and h.is_contiguous()
        torch.testing.assert_close(h[:, :LENGTH].transpose(1, 2), paper_stem(branch, x), rtol=1e-5, atol=1e-6)
        assert (h == 0).float().mean() > 0.2  # the ReLU switches
        pooled = branch.pooled_conv(h)
        expected = functional.max_pool1d(branch.conv2(h[:, :LENGTH].transpose(1, 2)), 4)
        torch.testing.assert_close(pooled.transpose(1, 2), expected, rtol=1e-5, atol=1e-6)
        # the no-gradient form (into given memory, dense1's order) gives the same numbers
        scratch, out = Scratch(), torch.empty_like(expected)
        for _ in range(2):
            found = branch.pooled_conv(h, branch.conv2_weights(1.0, h.dtype), out, scratch)
            assert found is out
            torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_pixels", [29, 30, 31, 32, 7517])
def test_blocked_convolutions_equal_the_paper_layers_for_any_length(n_pixels):
    torch.manual_seed(n_pixels)
    module = SpectraBranch(n_pixels, P).eval()
    x = torch.randn(2, n_pixels)
    n_pool = (n_pixels - 14) // 4
    with torch.no_grad():
        h = module.stem(x)
        assert h.shape[1] % 4 == 0 and h.shape[1] >= n_pixels - 7
        torch.testing.assert_close(h[:, : n_pixels - 7].transpose(1, 2), paper_stem(module, x), rtol=1e-5, atol=1e-6)
        expected = functional.max_pool1d(module.conv2(h[:, : n_pixels - 7].transpose(1, 2)), 4)
        assert expected.shape == (2, 4, n_pool)
        torch.testing.assert_close(module.pooled_conv(h).transpose(1, 2), expected, rtol=1e-5, atol=1e-6)
        assert module.body(h).shape == (2, 64)


def test_phase_maximum_sends_the_gradient_to_one_phase_as_max_pooling_does(branch):
    """Where a pooling window's input is all zero, its four phases tie at the bias: MaxPool1d's gradient goes to one
    phase, so the bias gets the window's gradient once, and so does the fast path's."""
    h = torch.rand(2, branch.stem_length, 2)
    h[0, 40:80] = 0.0  # windows 10 to 16 of the first star see only zeros
    h.requires_grad_(True)
    fast = branch.pooled_conv(h)
    (fast * torch.arange(fast.numel()).view(fast.shape)).sum().backward()
    fast_grads = [h.grad.clone(), branch.conv2.weight.grad.clone(), branch.conv2.bias.grad.clone()]
    h.grad = None
    branch.zero_grad()
    paper = functional.max_pool1d(branch.conv2(h[:, :LENGTH].transpose(1, 2)), 4).transpose(1, 2)
    assert (paper[0, 10:17] == branch.conv2.bias).all()  # the ties
    (paper * torch.arange(paper.numel()).view(paper.shape)).sum().backward()
    paper_grads = [h.grad, branch.conv2.weight.grad, branch.conv2.bias.grad]
    branch.zero_grad()
    for got, expected in zip(fast_grads, paper_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


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


def test_training_path_draws_its_masks_from_the_seed_and_gives_the_paper_layers_gradients(branch):
    branch.train()
    x = spectra(6)

    def loss_and_grads(body) -> tuple[torch.Tensor, list[torch.Tensor]]:
        branch.zero_grad()
        loss = (body(x) ** 2).sum()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in branch.parameters()]

    torch.manual_seed(11)
    fast = loss_and_grads(lambda x: branch.body(branch.stem(x)))
    torch.manual_seed(11)  # the same draw: the masks the training path used
    masks = tuple(m.clone() for m in branch.draw_masks(branch.stem(x).detach(), 1))
    assert 0.28 < 1.0 - float(masks[0].mean()) < 0.32
    paper = loss_and_grads(lambda x: paper_body(branch, paper_stem(branch, x), masks))
    branch.eval()
    torch.testing.assert_close(fast[0], paper[0], rtol=1e-5, atol=0)
    for got, expected in zip(fast[1], paper[1], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))


def test_shared_mask_hooks_act_on_the_dropout_layers_with_dropout_off(branch):
    """The level's network error (zpdist.nn.offset_fit.shared_dropout_masks) replaces the dropout layers' outputs by
    forward hooks in evaluation mode: the body must pass its three dropout layers' inputs through the module."""
    branch.eval()
    h, masks = branch.stem(spectra(4)).detach(), {}
    with torch.no_grad(), shared_dropout_masks(branch, masks, torch.Generator().manual_seed(3)):
        fast = branch.body(h)
    assert [shape for _, shape in masks] == [(branch.stem_length, 2), (branch.dense1.in_features,), (164,)]
    # one mask per layer for every star, scaled by 1/(1 − p)
    shared = tuple((mask * (1 - P)).flatten(1).repeat(len(h), 1) for mask in masks.values())
    with torch.no_grad():
        expected = paper_body(branch, h[:, :LENGTH].transpose(1, 2), shared)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    assert not torch.allclose(fast, branch.body(h).detach())  # the masks acted


# --- Monte-Carlo passes ------------------------------------------------------------------------------------


def test_masked_passes_equal_the_paper_layers_with_the_same_masks(branch):
    h, n_samples = branch.stem(spectra(3)).detach(), 7
    bits = random_bits(21, branch.mask_widths, Scratch(), h.device, seed=4)
    masks = split_columns(keep(bits, P, torch.empty(bits.shape)), branch.mask_widths)
    assert [m.shape for m in masks] == [(21, 2 * 7508), (21, branch.dense1.in_features), (21, 164)]
    # the masks the training path draws from a seed are these
    assert all(torch.equal(a, b) for a, b in zip(branch.draw_masks(h, n_samples, seed=4), masks, strict=True))
    fast = branch.masked_body(h, bits, n_samples)
    with torch.no_grad():
        paper_h = h[:, :LENGTH].transpose(1, 2).repeat_interleave(n_samples, dim=0)
        expected = paper_body(branch, paper_h, masks)
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
        # the paper's layers with torch's Dropout
        h = paper_stem(model.branch, model.standardise(x)).repeat_interleave(n_samples, dim=0)
        paper = model.head(paper_body(model.branch, h))[0].view(3, n_samples)
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
    run_all = load_benchmark("run_all")
    cpu = torch.device("cpu")
    assert run_all.training_rate(cpu, 4, 8) > 0
    rate, flops = run_all.inference_rate(cpu, 4, n_samples=3)
    # the paper's layers: stem 2·1·2·8·7507 once; per pass conv 2·2·4·8·7500, dense 2·7500·164 + 2·164·64, heads 2·64·2
    assert rate > 0 and flops == 240_224 + 3 * (960_000 + 2_460_000 + 20_992 + 256)
    agreement = run_all.agreement(cpu, cpu, n_stars=4, n_samples=20)
    assert agreement["max_relative_difference"] < 1e-6
    assert run_all.survey_rate(cpu, n_stars=6, block=4, n_samples=3, precision="float32") > 0
