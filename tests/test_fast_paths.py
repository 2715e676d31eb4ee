"""The training step's fast paths give the straightforward module's numbers, on CPU.

The straightforward step is written out here: the paper's layers with torch's Conv1d, MaxPool1d and Linear,
the same dropout masks, and the L2 term through autograd. The trainer's step (:func:`zpdist.nn.trainer.train_step`)
must give the same loss and the same gradients; its products (:class:`zpdist.nn.luminosity.ScaledLinear`) the
products of ``torch.nn.functional.linear`` forward and backward.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from zpdist.nn.batch import Batch
from zpdist.nn.loss import PAPER_LIKELIHOOD
from zpdist.nn.luminosity import ScaledLinear, random_bits
from zpdist.nn.model import ModelConfig, ZeroPointNet
from zpdist.nn.trainer import train_step

N_PIXELS = 7514
LENGTH = N_PIXELS - 7
P = 0.3
L2 = 1e-3


def test_scaled_linear_gives_linears_products_forward_and_backward():
    generator = torch.Generator().manual_seed(0)
    x, weight = torch.randn(37, 7500, generator=generator), torch.randn(164, 7500, generator=generator)
    bias, grad = torch.randn(164, generator=generator), torch.randn(37, 164, generator=generator)
    found = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    expected = [t.double().requires_grad_(True) for t in (x, weight, bias)]
    out = ScaledLinear.apply(*found, 1.25)
    reference = functional.linear(expected[0], expected[1] * 1.25, expected[2])
    out.backward(grad)
    reference.backward(grad.double())
    torch.testing.assert_close(out, reference.float(), rtol=1e-4, atol=1e-3)
    for got, want in zip(found, expected, strict=True):
        torch.testing.assert_close(got.grad, want.grad.float(), rtol=1e-4, atol=1e-4 * float(want.grad.abs().max()))


def test_random_bits_come_from_the_seed():
    widths = (1000, 24)
    first = random_bits(30, widths, None, torch.device("cpu"), seed=7)
    assert first.shape == (30, 1024) and first.dtype == torch.int16
    assert torch.equal(first, random_bits(30, widths, None, torch.device("cpu"), seed=7))
    assert not torch.equal(first, random_bits(30, widths, None, torch.device("cpu"), seed=8))
    torch.manual_seed(3)
    drawn = random_bits(30, widths, None, torch.device("cpu"))
    torch.manual_seed(3)
    assert torch.equal(drawn, random_bits(30, widths, None, torch.device("cpu")))


def _model() -> tuple[ZeroPointNet, Batch]:
    """The paper's network with the multivariate offset (whose own dropout draws too) and a batch of 6 stars."""
    torch.manual_seed(0)
    model = ZeroPointNet(ModelConfig("spectra", "multivariate", luminosity_head="softplus", init_std=0.1))
    generator = torch.Generator().manual_seed(1)
    x = 1.0 - 0.1 * torch.rand(6, N_PIXELS, generator=generator)
    z = torch.column_stack([12 + 3 * torch.rand(6), 1 + torch.rand(6), 4300 + 800 * torch.rand(6)])
    model.set_statistics(x.mean(0), x.std(0), 1.0, z.mean(0), z.std(0))
    batch = Batch(x, z, torch.full((6,), 10.0), 0.2 + 0.3 * torch.rand(6), torch.full((6,), 0.05))
    return model.train(), batch


def _straightforward_loss(model: ZeroPointNet, batch: Batch) -> torch.Tensor:
    """The objective with torch's layers, the masks drawn as the network draws them, the L2 term by autograd."""
    branch = model.branch
    standardised = model.standardise(batch.inputs)
    h = torch.relu(branch.conv1(standardised.unsqueeze(1)))
    first, pooled, hidden = (m.clone() for m in branch.draw_masks(h, 1))
    x = h * first.view(len(h), -1, 2)[:, :LENGTH].transpose(1, 2) / (1 - P)
    x = functional.max_pool1d(torch.relu(branch.conv2(x)), 4).flatten(1)
    x = torch.relu(branch.dense1(x * pooled / (1 - P)))
    features = torch.relu(branch.dense2(x * hidden / (1 - P)))
    fakemag, log_var = model.head(features)
    offset = model.offset(batch.offset_inputs, len(batch))
    nll = PAPER_LIKELIHOOD.mean(batch, fakemag, log_var, offset)
    return nll + L2 * sum((p**2).sum() for name, p in model.named_parameters() if name.endswith("weight"))


def test_the_training_step_gives_the_straightforward_loss_and_gradients():
    model, batch = _model()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.0)  # a step that leaves the weights as they are
    torch.manual_seed(5)
    loss = train_step(model, optimiser, batch, L2)
    fast = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)  # the same draws, in the same order
    expected = _straightforward_loss(model, batch)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=0)
    for name, p in model.named_parameters():
        scale = float(p.grad.abs().max())
        torch.testing.assert_close(fast[name], p.grad, rtol=1e-4, atol=1e-5 * scale, msg=name)
    assert all(float(g.abs().max()) > 0 for g in fast.values())


def test_the_training_step_moves_the_weights_as_adam_on_the_straightforward_gradients():
    model, batch = _model()
    reference = ZeroPointNet(model.config)
    reference.load_state_dict(model.state_dict())
    reference.train()
    optimisers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in (model, reference)]
    for step in range(3):
        torch.manual_seed(step)
        train_step(model, optimisers[0], batch, L2)
        torch.manual_seed(step)
        optimisers[1].zero_grad(set_to_none=True)
        _straightforward_loss(reference, batch).backward()
        optimisers[1].step()
    # Adam steps by ≈ lr · sign(gradient): where the likelihood's and the L2 term's gradients almost cancel, float
    # rounding may flip the sign, so a handful of the 1.2 million weights differ by a fraction of a step
    start = _model()[0].state_dict()
    for (name, got), want in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        difference = (got - want).abs()
        assert float(difference.max()) < 0.1 * 3 * 1e-3, name
        assert int((difference > 1e-6).sum()) <= 1e-4 * got.numel() + 1, name
    moved = model.state_dict()["branch.dense1.weight"] - start["branch.dense1.weight"]
    assert float(moved.abs().max()) > 2e-3  # the weights moved
