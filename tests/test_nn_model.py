"""ZeroPointNet (docs/method.md §3), Monte-Carlo-dropout inference and the offset level's fit (§6), on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zpdist.errors import ConfigError
from zpdist.nn.device import resolve_precision
from zpdist.nn.infer import MODEL_FILE, MODEL_FORMAT, load_model, mc_predict, save_model
from zpdist.nn.model import ModelConfig, ZeroPointNet, enable_mc_dropout
from zpdist.nn.offset_fit import fit_offset_level

CPU = torch.device("cpu")
N_PIXELS = 7514


def spectra_batch(n: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1.0 - 0.2 * torch.rand(n, N_PIXELS, generator=generator)


def offset_batch(n: int = 4, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    g = 11.0 + 5.0 * torch.rand(n, generator=generator)
    bp_rp = 1.0 + torch.rand(n, generator=generator)
    teff = 4200.0 + 1000.0 * torch.rand(n, generator=generator)
    return torch.stack([g, bp_rp, teff], dim=1)


def standardise_offset_inputs(model: ZeroPointNet) -> None:
    """Offset-input statistics of the kind training stores (G, BP−RP, Teff)."""
    n = model.config.n_inputs
    model.set_statistics(torch.zeros(n), torch.ones(n), 1.0, torch.tensor([13.5, 1.5, 4700.0]),
                         torch.tensor([1.5, 0.3, 300.0]))  # fmt: skip


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@pytest.fixture(scope="module")
def spectra_model():
    torch.manual_seed(0)
    model = ZeroPointNet(ModelConfig(mode="spectra", offset_model="constant"))
    # standardisation of the kind training stores, so that different spectra give clearly different outputs
    model.set_statistics(torch.full((N_PIXELS,), 0.9), torch.full((N_PIXELS,), 0.06), fakemag_scale=1.0)
    return model


# --- forward shapes -------------------------------------------------------------------------------------


def test_spectra_forward_shapes_and_positive_fakemag(spectra_model):
    spectra_model.eval()
    out = spectra_model(spectra_batch())
    assert set(out) == {"fakemag", "log_var", "offset"}
    for value in out.values():
        assert value.shape == (4,)
        assert torch.isfinite(value).all()
    assert (out["fakemag"] > 0).all()
    # the constant offset starts at 0 and is shared by every star
    assert torch.equal(out["offset"], torch.zeros(4))


def test_spectra_forward_with_samples(spectra_model):
    spectra_model.train()
    out = spectra_model(spectra_batch(), n_samples=5)
    for value in out.values():
        assert value.shape == (4, 5)
    assert (out["fakemag"] > 0).all()
    spectra_model.eval()


def test_samples_axis_belongs_to_the_right_star(spectra_model):
    # without dropout every sample of a star equals the single-pass prediction for that star
    spectra_model.eval()
    x = spectra_batch(seed=3)
    single = spectra_model(x)
    many = spectra_model(x, n_samples=5)
    for key in ("fakemag", "log_var", "offset"):
        torch.testing.assert_close(many[key], single[key][:, None].expand(4, 5), rtol=1e-5, atol=1e-6)
    # different stars differ by far more than the tolerance, so a mix-up of the sample axis would be caught
    assert (single["fakemag"].max() - single["fakemag"].min()) > 1e-3


def test_fakemag_scale_sets_units(spectra_model):
    model = ZeroPointNet(ModelConfig())
    model.load_state_dict(spectra_model.state_dict())
    model.eval()
    x = spectra_batch()
    base = model(x)
    model.set_statistics(model.input_mean.clone(), model.input_std.clone(), fakemag_scale=200.0)
    scaled = model(x)
    torch.testing.assert_close(scaled["fakemag"], 200.0 * base["fakemag"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scaled["log_var"], base["log_var"] + 2.0 * np.log(200.0), rtol=1e-5, atol=1e-5)


def test_labels_mode():
    model = ZeroPointNet(ModelConfig(mode="labels", n_inputs=4))
    model.eval()
    labels = torch.tensor(
        [[4800.0, 2.5, 0.0, 0.05], [4500.0, 2.0, -0.3, 0.2], [5000, 3.0, 0.2, 0.0], [4300, 1.5, 0, 0]]
    )
    out = model(labels)
    for value in out.values():
        assert value.shape == (4,)
        assert torch.isfinite(value).all()
    assert (out["fakemag"] > 0).all()
    out = model(labels, n_samples=3)
    assert out["fakemag"].shape == (4, 3)


def test_multivariate_offset_needs_offset_inputs():
    model = ZeroPointNet(ModelConfig(mode="labels", n_inputs=4, offset_model="multivariate"))
    standardise_offset_inputs(model)
    model.eval()
    labels = torch.randn(4, 4)
    with pytest.raises(ValueError, match="offset_inputs"):
        model(labels)
    out = model(labels, offset_batch())
    assert out["offset"].shape == (4,)
    assert torch.isfinite(out["offset"]).all()
    assert out["offset"].std() > 0  # depends on the star
    out = model(labels, offset_batch(), n_samples=5)
    assert out["offset"].shape == (4, 5)


def test_unknown_offset_model_mode_and_head_are_configuration_errors():
    with pytest.raises(ConfigError, match="unknown offset model 'quadratic'"):
        ZeroPointNet(ModelConfig(mode="labels", n_inputs=4, offset_model="quadratic"))
    with pytest.raises(ConfigError, match="unknown mode 'photometry'"):
        ZeroPointNet(ModelConfig(mode="photometry", n_inputs=4))


# --- dropout ----------------------------------------------------------------------------------------------


def test_eval_is_deterministic_and_mc_dropout_is_not(spectra_model):
    x = spectra_batch()
    spectra_model.eval()
    a, b = spectra_model(x), spectra_model(x)
    torch.testing.assert_close(a["fakemag"], b["fakemag"], rtol=0, atol=0)
    torch.testing.assert_close(a["log_var"], b["log_var"], rtol=0, atol=0)
    enable_mc_dropout(spectra_model)
    assert not spectra_model.training  # only the dropout layers are in training mode
    assert all(m.training for m in spectra_model.modules() if isinstance(m, torch.nn.Dropout))
    c, d = spectra_model(x), spectra_model(x)
    assert not torch.equal(c["fakemag"], d["fakemag"])
    assert not torch.equal(c["fakemag"], a["fakemag"])
    many = spectra_model(x, n_samples=8)
    assert (many["fakemag"].std(dim=1) > 0).all()
    spectra_model.eval()


# --- Monte-Carlo prediction --------------------------------------------------------------------------------


def test_mc_predict_nan_rows_and_variances(spectra_model):
    inputs = spectra_batch(6).numpy()
    inputs[1, 100] = np.nan
    inputs[4, :] = np.nan
    spectra_model.eval()
    single = mc_predict(spectra_model, inputs, None, n_samples=1, device=CPU)
    bad = np.array([False, True, False, False, True, False])
    for name in ("fakemag", "fakemag_model_var", "fakemag_pred_var", "offset", "offset_std", "fakemag_error"):
        values = getattr(single, name)
        assert values.shape == (6,)
        assert np.isnan(values[bad]).all(), name
        assert np.isfinite(values[~bad]).all(), name
    assert np.all(single.fakemag_model_var[~bad] == 0.0)
    assert np.all(single.offset_std[~bad] == 0.0)
    # with one pass it is the deterministic forward pass; total error is the predictive one
    with torch.no_grad():
        direct = spectra_model(torch.as_tensor(inputs[~bad]))
    np.testing.assert_allclose(single.fakemag[~bad], direct["fakemag"].double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(single.fakemag_pred_var[~bad], np.exp(direct["log_var"].double().numpy()), rtol=1e-5)
    np.testing.assert_allclose(single.fakemag_error[~bad], np.sqrt(single.fakemag_pred_var[~bad]), rtol=1e-12)

    many = mc_predict(spectra_model, inputs, None, n_samples=10, device=CPU, max_rows=16)
    assert np.isnan(many.fakemag[bad]).all()
    assert np.all(many.fakemag_model_var[~bad] > 0)
    np.testing.assert_allclose(
        many.fakemag_error[~bad] ** 2, many.fakemag_model_var[~bad] + many.fakemag_pred_var[~bad], rtol=1e-12
    )
    assert not spectra_model.training  # inference leaves the model in evaluation mode


def test_mc_predict_multivariate_needs_finite_offset_inputs():
    model = ZeroPointNet(ModelConfig(mode="labels", n_inputs=4, offset_model="multivariate"))
    standardise_offset_inputs(model)
    inputs = np.random.default_rng(0).normal(size=(5, 4))
    offset_inputs = offset_batch(5).numpy()
    offset_inputs[2, 0] = np.nan
    result = mc_predict(model, inputs, offset_inputs, n_samples=4, device=CPU)
    assert np.isnan(result.fakemag[2]) and np.isnan(result.offset[2])
    keep = np.array([0, 1, 3, 4])
    assert np.isfinite(result.fakemag[keep]).all() and np.isfinite(result.offset[keep]).all()
    assert np.all(result.offset_std[keep] > 0)


# --- checkpoints -------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    config = ModelConfig(mode="spectra", offset_model="constant", dropout=0.2)
    model = ZeroPointNet(config)
    model.set_statistics(0.9 * torch.ones(N_PIXELS), 0.05 * torch.ones(N_PIXELS), fakemag_scale=150.0)
    with torch.no_grad():
        model.offset.level.fill_(-0.0523)
    model.eval()
    metadata = {"labels": ["teff", "logg"], "offset_mas": -0.0523}
    path = tmp_path / MODEL_FILE
    save_model(path, model, metadata)
    payload = torch.load(path, weights_only=True)
    assert payload["model_config"] == config.to_dict() and payload["format"] == MODEL_FORMAT

    loaded, loaded_meta = load_model(tmp_path, CPU)
    assert loaded_meta == metadata
    assert loaded.config == config
    assert not loaded.training
    x = spectra_batch()
    expected, got = model(x), loaded(x)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert float(loaded.head.scale) == 150.0
    assert loaded.offset.level.item() == pytest.approx(-0.0523)


def test_load_model_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path, CPU)


# --- offset fitting ------------------------------------------------------------------------------------------


def test_fit_offset_level_recovers_offset_and_scale():
    rng = np.random.default_rng(7)
    n = 4000
    parallax_nn = rng.uniform(0.1, 2.0, n)
    parallax_error = np.full(n, 0.05)
    parallax = 1.02 * parallax_nn - 0.05 + rng.normal(0.0, parallax_error)
    parallax[:5] = np.nan  # ignored
    # the network's current offset is 0 everywhere: the fitted level is the whole offset
    fit = fit_offset_level(np.zeros(n), parallax_nn, parallax, parallax_error, np.zeros(n))
    scale_error = float(np.sqrt(fit.covariance[1, 1]))
    assert abs(fit.shift - (-0.05)) < 3.0 * fit.shift_error
    assert abs(fit.luminosity_scale - 1.02) < 3.0 * scale_error
    # the quoted errors are the least-squares ones: σ² (XᵀX)⁻¹ with X = (1, ϖ_NN) over the finite rows
    design = np.column_stack([np.ones(n - 5), parallax_nn[5:]])
    expected_cov = 0.05**2 * np.linalg.inv(design.T @ design)
    np.testing.assert_allclose(fit.covariance, expected_cov, rtol=1e-8)
    assert fit.shift_error == pytest.approx(np.sqrt(expected_cov[0, 0]), rel=1e-8)
    coef = np.linalg.lstsq(design, parallax[5:], rcond=None)[0]
    np.testing.assert_allclose([fit.shift, fit.luminosity_scale], coef, rtol=1e-8)
    # errors small enough that the test has teeth
    assert fit.shift_error < 0.005 and scale_error < 0.005


def test_fit_offset_level_is_relative_to_current_offset_and_weights_both_errors():
    rng = np.random.default_rng(8)
    n = 3000
    parallax_nn = rng.uniform(0.1, 2.0, n)
    parallax_error = rng.uniform(0.02, 0.1, n)
    nn_error = 0.03 * parallax_nn
    total = np.sqrt(parallax_error**2 + nn_error**2)
    current = rng.uniform(-0.06, -0.02, n)  # a star-dependent offset the network already predicts
    parallax = 0.98 * parallax_nn + current + 0.03 + rng.normal(0.0, total)
    fit = fit_offset_level(current, parallax_nn, parallax, parallax_error, nn_error)
    design = np.column_stack([np.ones(n), parallax_nn]) / total[:, None]
    coef = np.linalg.lstsq(design, (parallax - current) / total, rcond=None)[0]
    np.testing.assert_allclose([fit.shift, fit.luminosity_scale], coef, rtol=1e-8)
    assert abs(fit.shift - 0.03) < 3.0 * fit.shift_error
    assert abs(fit.luminosity_scale - 0.98) < 3.0 * np.sqrt(fit.covariance[1, 1])
    # a star whose current offset is NaN is left out
    current_nan = current.copy()
    current_nan[0] = np.nan
    fit_nan = fit_offset_level(current_nan, parallax_nn, parallax, parallax_error, nn_error)
    fit_drop = fit_offset_level(current[1:], parallax_nn[1:], parallax[1:], parallax_error[1:], nn_error[1:])
    assert fit_nan.shift == pytest.approx(fit_drop.shift, abs=1e-12)


def test_spectra_log_linear_head_whitens_principal_components_and_round_trips(tmp_path):
    config = ModelConfig(mode="spectra", luminosity_head="log_linear", n_components=6)
    model = ZeroPointNet(config)
    components = model.head.components
    assert model.head.linear.in_features == 6 and components.projection.shape == (6, N_PIXELS)
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(6, N_PIXELS, generator=generator)
    scores = torch.randn(400, 6, generator=generator) * torch.tensor([5.0, 4.0, 3.0, 2.0, 1.5, 1.0])
    spectra = scores @ directions + 0.01 * torch.randn(400, N_PIXELS, generator=generator)
    model.set_projection(spectra - spectra.mean(0))
    whitened = (spectra - spectra.mean(0)) @ components.projection.T
    torch.testing.assert_close(whitened.std(0), torch.ones(6), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(whitened.T @ whitened / 399, torch.eye(6), rtol=0, atol=1e-3)
    with torch.no_grad():
        model.head.linear.weight.fill_(0.1)
    model.eval()
    save_model(tmp_path / MODEL_FILE, model, {})
    loaded, _ = load_model(tmp_path, CPU)
    assert loaded.config == config
    x = spectra_batch()
    torch.testing.assert_close(loaded(x)["fakemag"], model(x)["fakemag"], rtol=0, atol=0)


def test_old_model_configs_keep_their_luminosity_head():
    """Checkpoints written before ``luminosity_head`` existed load as they were trained ("auto")."""
    assert ModelConfig(mode="labels", n_inputs=4).uses_log_linear
    assert not ModelConfig(mode="spectra").uses_log_linear
    with pytest.raises(ValueError, match="unknown luminosity head"):
        ZeroPointNet(ModelConfig(mode="spectra", luminosity_head="cubic"))


# --- mixed precision ------------------------------------------------------------------------------------


def test_precision_names_resolve_and_bad_ones_are_named():
    assert resolve_precision("auto", CPU) is None  # float32 on CPU
    assert resolve_precision("float32", CPU) is None
    assert resolve_precision("bfloat16", CPU) is torch.bfloat16
    assert resolve_precision("float16", CPU) is torch.float16
    with pytest.raises(ValueError, match="--precision half"):
        resolve_precision("half", CPU)


@pytest.mark.parametrize("precision, rtol", [("bfloat16", 2e-2), ("float16", 4e-3)])
def test_reduced_precision_body_gives_float32_outputs_close_to_full_precision(spectra_model, precision, rtol):
    inputs = spectra_batch(8).numpy()
    full = mc_predict(spectra_model, inputs, None, n_samples=1, device=CPU)
    low = mc_predict(spectra_model, inputs, None, n_samples=1, device=CPU, precision=precision)
    np.testing.assert_allclose(low.fakemag, full.fakemag, rtol=rtol)
    np.testing.assert_allclose(low.fakemag_pred_var, full.fakemag_pred_var, rtol=5 * rtol)
    assert not np.array_equal(low.fakemag, full.fakemag)  # the body really ran in reduced precision
    with torch.no_grad():
        out = spectra_model(torch.as_tensor(inputs), n_samples=3, body_dtype=resolve_precision(precision, CPU))
    assert all(v.dtype == torch.float32 for v in out.values())  # heads and offset stay in float32


def test_reduced_precision_monte_carlo_agrees_within_sampling_noise(spectra_model):
    inputs = spectra_batch(16).numpy()
    full = mc_predict(spectra_model, inputs, None, n_samples=300, device=CPU)
    low = mc_predict(spectra_model, inputs, None, n_samples=300, device=CPU, precision="bfloat16")
    noise = np.sqrt((full.fakemag_model_var + low.fakemag_model_var) / 300)
    assert np.median(np.abs(low.fakemag - full.fakemag) / noise) < 2.0
    assert np.median(low.fakemag_model_var / full.fakemag_model_var) == pytest.approx(1.0, abs=0.2)


def test_quadratic_terms_of_the_leading_components():
    config = ModelConfig(mode="spectra", luminosity_head="log_linear", n_components=5, n_quadratic=3)
    model = ZeroPointNet(config)
    assert model.head.linear.in_features == 5 + 6
    generator = torch.Generator().manual_seed(2)
    projection = model.head.components.projection
    with torch.no_grad():
        projection.copy_(torch.randn(5, N_PIXELS, generator=generator) / 100)
    x = spectra_batch(3)
    z = x @ projection.T  # identity standardisation
    features = model.head.linear_inputs(x)
    expected = [z[:, 0] ** 2, z[:, 0] * z[:, 1], z[:, 0] * z[:, 2], z[:, 1] ** 2, z[:, 1] * z[:, 2], z[:, 2] ** 2]
    torch.testing.assert_close(features, torch.cat([z, torch.stack(expected, 1)], 1))
    with pytest.raises(ConfigError, match="n_quadratic 6 is not in"):
        ZeroPointNet(ModelConfig(mode="spectra", luminosity_head="log_linear", n_components=5, n_quadratic=6))


def test_quadratic_log_linear_model_round_trips(tmp_path):
    config = ModelConfig(mode="spectra", luminosity_head="log_linear", n_components=4, n_quadratic=2)
    model = ZeroPointNet(config)
    with torch.no_grad():
        model.head.components.projection.normal_(0.0, 0.01)
        model.head.linear.weight.fill_(0.05)
    model.eval()
    save_model(tmp_path / MODEL_FILE, model, {})
    saved = torch.load(tmp_path / MODEL_FILE, weights_only=True)["state_dict"]
    assert "head.components.projection" in saved and not any(k.endswith("quadratic_pairs") for k in saved)
    loaded, _ = load_model(tmp_path, CPU)
    assert loaded.config == config
    x = spectra_batch()
    torch.testing.assert_close(loaded(x)["fakemag"], model(x)["fakemag"], rtol=0, atol=0)
