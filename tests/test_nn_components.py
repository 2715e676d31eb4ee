"""The network's components (zpdist.nn.offset, zpdist.nn.luminosity, zpdist.nn.offset_export): one interface for
the constant and the network offset, the torch and numpy paths pass for pass, one luminosity head for the forward
pass and the warm start, and checkpoints written before the components (format v1)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from zpdist.errors import FileFormatError
from zpdist.nn.batch import Batch
from zpdist.nn.infer import MODEL_FILE, load_model, mc_predict, save_model
from zpdist.nn.loss import mean_parallax_nll
from zpdist.nn.model import ModelConfig, ZeroPointNet
from zpdist.nn.offset import ConstantOffset, NetworkOffset, OffsetModel
from zpdist.nn.offset_export import ConstantOffsetEvaluator, NetworkOffsetEvaluator, dropout_masks
from zpdist.nn.offset_fit import offset_summary
from zpdist.nn.warm_start import warm_start_log_linear

CPU = torch.device("cpu")
OFFSET_MEAN, OFFSET_STD = torch.tensor([13.5, 1.5, 4700.0]), torch.tensor([1.5, 0.3, 300.0])
DOMAIN = [[9.0, 18.0], [0.5, 2.5], [3500.0, 5500.0]]


def offset_inputs(n: int, seed: int = 1) -> torch.Tensor:
    """G (mag), BP−RP (mag), Teff (K) of ``n`` giants."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([11 + 5 * torch.rand(n, generator=g), 1 + torch.rand(n, generator=g),
                        4200 + 1000 * torch.rand(n, generator=g)], 1)  # fmt: skip


def network(seed: int = 0, std: float = 0.3) -> NetworkOffset:
    """A network offset with weights large enough that stars and passes differ clearly, level −50 µas."""
    torch.manual_seed(seed)
    model = NetworkOffset(dropout=0.3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
        model.out.bias.fill_(-0.05)
    model.set_statistics(OFFSET_MEAN, OFFSET_STD)
    return model.eval()


def constant(value: float = -0.0523) -> ConstantOffset:
    model = ConstantOffset()
    with torch.no_grad():
        model.value.fill_(value)
    return model.eval()


# --- the torch-free export, pass for pass -------------------------------------------------------------------


def test_numpy_export_equals_torch_shared_mask_passes_pass_for_pass():
    model, z = network(), offset_inputs(300)
    masks = dropout_masks((32, 16), 40, seed=5, dropout=0.3)
    evaluator = model.export(40, 5, level_error_mas=0.003, domain=DOMAIN)
    assert isinstance(evaluator, NetworkOffsetEvaluator) and evaluator.mc_samples == 40
    with torch.no_grad():
        torch_passes = model.masked_body(model.stem(z, len(z)), tuple(torch.as_tensor(m).float() for m in masks))
        deterministic = model(z, len(z)).double().numpy()
    numpy_passes = evaluator.mc_passes(evaluator.first_layer(z.numpy()))
    assert torch_passes.shape == (40, 300) and numpy_passes.shape == (300, 40)
    np.testing.assert_allclose(numpy_passes, torch_passes.T.double().numpy(), rtol=1e-5, atol=1e-6)  # float32
    assert np.std(numpy_passes, axis=1).min() > 1e-3  # passes differ: the comparison has teeth
    out = evaluator.evaluate(z.numpy())
    np.testing.assert_allclose(out["zp_offset"], deterministic, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["zp_offset_model_error"], numpy_passes.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out["zp_offset_error"], np.hypot(numpy_passes.std(axis=1), 0.003), rtol=1e-5)
    assert not out["zp_outside_training_domain"].any()


def test_dropout_masks_are_inverted_dropout_drawn_in_layer_order():
    first, second = dropout_masks((32, 16), 500, seed=2, dropout=0.3)
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(first, (rng.random((500, 32)) < 0.7) / 0.7)
    np.testing.assert_array_equal(second, (rng.random((500, 16)) < 0.7) / 0.7)
    assert set(np.unique(first)) == {0.0, 1 / 0.7} and abs((first > 0).mean() - 0.7) < 0.01


def test_shared_mask_passes_are_the_star_mean_of_one_mask_per_pass():
    model, z = network(), offset_inputs(200)
    z_with_gap = torch.cat([z, torch.tensor([[np.nan, 1.5, 4700.0]])])
    passes = model.shared_mask_passes(z_with_gap, 120, seed=3)  # the star with a missing input is left out
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        h = model.stem(z, len(z))
        blocks = [model.masked_body(h, model.draw_masks(t, generator)).mean(1) for t in (50, 50, 20)]
    assert passes.dtype == torch.float64 and passes.shape == (120,)
    torch.testing.assert_close(passes, torch.cat(blocks).double(), rtol=0, atol=0)
    np.testing.assert_array_equal(passes.numpy(), model.shared_mask_passes(z, 120, seed=3).numpy())
    assert passes.std() > 1e-4 and not torch.equal(passes, model.shared_mask_passes(z, 120, seed=4))
    with torch.no_grad():
        mean = model(z, len(z)).double().mean()
    assert abs(passes.mean() - mean) < 5 * passes.std() / np.sqrt(120)


# --- the constant and the network through one interface ------------------------------------------------------


@pytest.mark.parametrize("make", [constant, network], ids=["constant", "network"])
def test_offset_models_share_one_interface(make):
    model: OffsetModel = make()
    z = offset_inputs(64) if model.needs_inputs else None
    with torch.no_grad():
        single = model(z, 64).detach().clone()  # the constant's output is a view of its parameter
        model.train()
        sampled = model(z, 64, n_samples=5)
        model.eval()
        again = model(z, 64, n_samples=5).reshape(64, 5)
    assert single.shape == (64,) and sampled.shape == (320,)
    torch.testing.assert_close(again, single[:, None].expand(64, 5), rtol=0, atol=0)  # dropout off: every sample
    passes = model.shared_mask_passes(z, 70, seed=1)
    assert passes.shape == (70,) and torch.isfinite(passes).all()
    # the level shifts every star alike
    model.shift_level(0.01)
    with torch.no_grad():
        shifted = model(z, 64).detach().clone()
    torch.testing.assert_close(shifted, single + 0.01, rtol=0, atol=1e-7)
    # the warm start's view: frozen features and a float64 level give the deterministic Δϖ
    with torch.no_grad():
        features = model.frozen_features(z, 64).double()
        rebuilt = model.from_frozen(features, model.level.detach().double()).expand(64)
    np.testing.assert_allclose(rebuilt.numpy(), shifted.double().numpy(), rtol=1e-6, atol=1e-7)
    # the export evaluates like the module
    inputs = z.numpy() if z is not None else np.full((64, 3), np.nan)
    out = model.export(30, 0, level_error_mas=0.002, domain=DOMAIN).evaluate(inputs)
    np.testing.assert_allclose(out["zp_offset"], shifted.numpy(), rtol=1e-5, atol=1e-7)
    assert (out["zp_offset_error"] >= np.float32(0.002)).all()


def test_the_constant_passes_return_the_constant_and_export_their_spread():
    model = constant(-0.0523)
    passes = model.shared_mask_passes(None, 1000, seed=0)
    np.testing.assert_array_equal(passes.numpy(), np.full(1000, float(np.float32(-0.0523))))
    assert model.uniform_value() == pytest.approx(-0.0523) and model.slow_parameters() == [model.value]
    evaluator = model.export(100, 0, level_error_mas=0.004, domain=None)
    assert isinstance(evaluator, ConstantOffsetEvaluator) and not evaluator.needs_inputs
    assert (evaluator.value_mas, evaluator.level_error_mas, evaluator.mc_error_mas) == (float(passes[0]), 0.004, 0.0)
    out = evaluator.evaluate(np.empty((3, 3)))
    np.testing.assert_array_equal(out["zp_offset"], np.full(3, -0.0523, np.float32))
    np.testing.assert_array_equal(out["zp_offset_error"], np.full(3, 0.004, np.float32))
    np.testing.assert_array_equal(out["zp_offset_model_error"], np.zeros(3, np.float32))
    assert not out["zp_outside_training_domain"].any()
    assert np.isnan(network().uniform_value()) and network().slow_parameters() == []


def test_network_needs_its_inputs():
    with pytest.raises(ValueError, match="needs offset_inputs"):
        network()(None, 4)


# --- one luminosity head -------------------------------------------------------------------------------------------


def labels_model(offset_model: str = "constant", seed: int = 0, dropout: float = 0.3) -> ZeroPointNet:
    torch.manual_seed(seed)
    config = ModelConfig(mode="labels", n_inputs=4, offset_model=offset_model, init_std=0.2, dropout=dropout)
    model = ZeroPointNet(config)
    model.set_statistics(torch.zeros(4), torch.ones(4), 80.0, OFFSET_MEAN, OFFSET_STD)
    with torch.no_grad():
        model.head.linear.weight.copy_(torch.tensor([[0.6, -0.4, 0.2, 0.1]]))
    return model.eval()


def test_the_head_evaluated_with_its_own_parameters_is_the_forward_pass():
    model, x = labels_model(), torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        features = model.branch.body(model.branch.stem(model.standardise(x)))
        linear = model.head.linear_inputs(model.standardise(x))
        own = dict(model.head.named_parameters()) | {"scale": model.head.scale}
        fakemag, log_var = model.head.evaluate(own, features, linear)
        # float64 copies of the parameters: the same function as the head converted to float64
        params64 = {name: t.double() for name, t in own.items()}
        f64, v64 = model.head.evaluate(params64, features.double(), linear.double())
        g64, w64 = copy.deepcopy(model.head).double()(features.double(), linear.double())
    torch.testing.assert_close(fakemag, out["fakemag"], rtol=0, atol=0)
    torch.testing.assert_close(log_var, out["log_var"], rtol=0, atol=0)
    assert f64.dtype == torch.float64 and torch.equal(f64, g64) and torch.equal(v64, w64)
    torch.testing.assert_close(f64.float(), out["fakemag"], rtol=1e-6, atol=0)
    assert model.head.scale.dtype == torch.float32  # the head's own tensors were not touched


@pytest.mark.parametrize("offset_model", ["constant", "multivariate"])
def test_the_warm_starts_likelihood_is_the_forward_passes(offset_model):
    """The warm start's loss before fitting is the model's own loss on the same stars (float64 vs float32)."""
    model = labels_model(offset_model)
    g = torch.Generator().manual_seed(1)
    stars = Batch(
        torch.randn(500, 4, generator=g),
        offset_inputs(500) if offset_model == "multivariate" else None,
        8 + 4 * torch.rand(500, generator=g),
        0.2 + torch.rand(500, generator=g),
        torch.full((500,), 0.02),
    )
    with torch.no_grad():
        out = model(stars.inputs, stars.offset_inputs)
        expected = mean_parallax_nll(
            stars.parallax.double(),
            stars.parallax_error.double(),
            out["fakemag"].double(),
            out["log_var"].double(),
            stars.k_corr.double(),
            out["offset"].double(),
        )
    result = warm_start_log_linear(model, [stars], max_iterations=1, log=lambda m: None)
    assert result.loss_before == pytest.approx(float(expected), rel=1e-6)  # fmt: skip


# --- the offset summary through the components -------------------------------------------------------------------


def test_offset_summary_moves_the_level_to_the_least_squares_optimum():
    """Noise-free parallaxes of a dropout-free network whose level is 20 µas off: the fit finds the 20 µas."""
    model = labels_model("multivariate", dropout=0.0)
    g = torch.Generator().manual_seed(2)
    x, z = torch.randn(2000, 4, generator=g), offset_inputs(2000, seed=3)
    k = 8 + 4 * torch.rand(2000, generator=g)
    with torch.no_grad():
        truth = model(x, z)
    parallax = (truth["fakemag"] * 10 ** (-0.2 * k) + truth["offset"] + 0.02).double()  # level off by +20 µas
    stars = [Batch(x, z, k, parallax.float(), torch.full((2000,), 0.01))]
    before = model.offset.level.item()
    summary = offset_summary(model, lambda: stars, CPU, mc_samples=2, n_passes=60, seed=0, network_draws=5)
    assert model.offset.level.item() - before == pytest.approx(0.02, abs=1e-5)
    assert summary["luminosity_scale_polish"] == pytest.approx(1.0, abs=1e-4)
    assert summary["offset_uas"] - summary["offset_uas_before_polish"] == pytest.approx(20.0, abs=0.01)
    assert summary["offset_mc_passes"] == 60 and summary["offset_uas_err_mc"] == 0.0  # no dropout, no model error
    assert summary["offset_uas_err_network"] == pytest.approx(0.0, abs=1e-6)  # every network draw is the same


# --- checkpoints written before the components ------------------------------------------------------------------

#: The state-dict keys of "zpdist-model-v1" (zpdist 0.1, before the components), for two architectures.
V1_LABELS_CONSTANT = [
    "offset_mas", "input_mean", "input_std", "offset_input_mean", "offset_input_std", "fakemag_scale",
    "branch.dense1.weight", "branch.dense1.bias", "branch.dense2.weight", "branch.dense2.bias", "branch.dense3.weight",
    "branch.dense3.bias", "fakemag_head.weight", "fakemag_head.bias", "log_var_head.weight", "log_var_head.bias",
    "log_linear.weight", "log_linear.bias",
]  # fmt: skip
V1_SPECTRA_MULTIVARIATE = [
    "input_mean", "input_std", "offset_input_mean", "offset_input_std", "fakemag_scale", "projection",
    "branch.conv1.weight", "branch.conv1.bias", "branch.conv2.weight", "branch.conv2.bias", "branch.dense1.weight",
    "branch.dense1.bias", "branch.dense2.weight", "branch.dense2.bias", "fakemag_head.weight", "fakemag_head.bias",
    "log_var_head.weight", "log_var_head.bias", "log_linear.weight", "log_linear.bias", "offset_mlp.dense1.weight",
    "offset_mlp.dense1.bias", "offset_mlp.dense2.weight", "offset_mlp.dense2.bias", "offset_mlp.out.weight",
    "offset_mlp.out.bias",
]  # fmt: skip
#: Where each v1 tensor lives now.
V1_TO_NOW = {
    "offset_mas": "offset.value", "offset_input_mean": "offset.input_mean", "offset_input_std": "offset.input_std",
    "fakemag_scale": "head.scale", "projection": "head.components.projection",
    "fakemag_head.weight": "head.fakemag.weight", "fakemag_head.bias": "head.fakemag.bias",
    "log_var_head.weight": "head.log_var.weight", "log_var_head.bias": "head.log_var.bias",
    "log_linear.weight": "head.linear.weight", "log_linear.bias": "head.linear.bias",
    **{f"offset_mlp.{layer}.{kind}": f"offset.{layer}.{kind}" for layer in ("dense1", "dense2", "out")
       for kind in ("weight", "bias")},
}  # fmt: skip


SPECTRA_QUADRATIC = ModelConfig(mode="spectra", luminosity_head="log_linear", n_components=6, n_quadratic=2,
                                offset_model="multivariate")  # fmt: skip


@pytest.mark.parametrize(
    "config, v1_keys",
    [(ModelConfig(mode="labels", n_inputs=4), V1_LABELS_CONSTANT), (SPECTRA_QUADRATIC, V1_SPECTRA_MULTIVARIATE)],
    ids=["labels-constant", "spectra-quadratic-multivariate"],
)
def test_a_v1_checkpoint_loads_and_predicts_identically(tmp_path, config, v1_keys):
    torch.manual_seed(3)
    model = ZeroPointNet(config)
    n, g = config.n_inputs, torch.Generator().manual_seed(4)
    x = 1.0 - 0.2 * torch.rand(6, n, generator=g) if config.mode == "spectra" else torch.randn(6, n, generator=g)
    model.set_statistics(x.mean(0), x.std(0) + 0.01, 120.0, OFFSET_MEAN, OFFSET_STD)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for name, buffer in model.named_buffers():
            if name.endswith("projection"):
                buffer.normal_(0.0, 0.01, generator=g)
    now_to_v1 = {now: old for old, now in V1_TO_NOW.items()}
    state = {now_to_v1.get(key, key): value for key, value in model.state_dict().items()}
    assert sorted(state) == sorted(v1_keys)
    payload = {"format": "zpdist-model-v1", "model_config": config.to_dict(), "state_dict": state,
               "metadata_json": "{}"}  # fmt: skip
    torch.save(payload, tmp_path / MODEL_FILE)
    loaded, _ = load_model(tmp_path, CPU)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    z = offset_inputs(6)
    model.eval()
    with torch.no_grad():
        expected, got = model(x, z), loaded(x, z)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    torch.manual_seed(5)
    a = mc_predict(model, x.numpy(), z.numpy(), 8, CPU)
    torch.manual_seed(5)
    b = mc_predict(loaded, x.numpy(), z.numpy(), 8, CPU)
    np.testing.assert_array_equal(a.fakemag, b.fakemag)
    np.testing.assert_array_equal(a.offset_std, b.offset_std)
    # saved again, it is written in the current format
    save_model(tmp_path / "again.pt", loaded, {})
    assert torch.load(tmp_path / "again.pt", weights_only=True)["format"] == "zpdist-model-v2"


def test_an_unknown_checkpoint_format_is_named(tmp_path):
    torch.save({"format": "something-else"}, tmp_path / MODEL_FILE)
    with pytest.raises(FileFormatError, match="not a zpdist model \\(format 'something-else'\\)"):
        load_model(tmp_path, CPU)


# --- the plane fitted to a multivariate offset model -------------------------------------------------------------


def test_plane_of_a_dropout_free_offset_is_its_least_squares_plane_with_only_the_level_error():
    """Dropout 0: every pass is the same network, so the plane is numpy's least-squares plane of its Δϖ and the
    slopes have no Monte-Carlo error; the intercept carries the level's error."""
    from zpdist.nn.offset_plane import COEFFICIENTS, design_matrix, offset_plane

    model = labels_model("multivariate", dropout=0.0)
    z = offset_inputs(3000, seed=5)
    z[7, 1] = float("nan")  # left out
    plane = offset_plane(model.offset, z, n_passes=20, seed=0, level_error_mas=0.002)
    keep = torch.isfinite(z).all(dim=1)
    with torch.no_grad():
        values = model.offset(z[keep], int(keep.sum())).double().numpy()
    expected = np.linalg.lstsq(design_matrix(z[keep].numpy()), 1000 * values, rcond=None)[0]
    np.testing.assert_allclose([plane[name][0] for name in COEFFICIENTS], expected, rtol=1e-6, atol=1e-6)
    assert [plane[name][1] for name in COEFFICIENTS[1:]] == pytest.approx([0, 0, 0], abs=1e-9)
    assert plane[COEFFICIENTS[0]][1] == pytest.approx(2.0)
    assert plane["pivot"] == {"g": 13.0, "bp_rp": 1.3, "teff": 4750.0}


def test_plane_recovers_an_exact_plane():
    from zpdist.nn.offset_plane import design_matrix

    z = offset_inputs(500, seed=6).numpy()
    truth = np.array([-45.0, -8.0, 10.0, 15.0])
    coefficients = np.linalg.pinv(design_matrix(z)) @ (design_matrix(z) @ truth)
    np.testing.assert_allclose(coefficients, truth, atol=1e-9)
