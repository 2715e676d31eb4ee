"""The CUDA path gives the CPU's results within tolerance (skipped without a GPU; CI has none)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from zpdist.mock.config import MockConfig
from zpdist.mock.generate import write_mock
from zpdist.nn.infer import load_model, mc_predict
from zpdist.nn.luminosity import SpectraBranch, random_bits
from zpdist.nn.offset import NetworkOffset
from zpdist.nn.offset_export import dropout_masks
from zpdist.nn.train import TrainConfig, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)"),
]


@pytest.fixture(scope="module")
def trained_on_cpu(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu")
    files = write_mock(MockConfig(n_stars=4000, seed=3), folder / "mock", progress=False)
    config = TrainConfig(mode="spectra", epochs=4, device="cpu", offset_mc_passes=50, fit_mc_samples=5)
    summary = train(
        files.allstar, folder / "run", config, spectra_path=files.spectra, progress=False, log=lambda m: None
    )
    return files, folder / "run", summary


def spectra_and_models(trained_on_cpu):
    """512 mock spectra and the CPU-trained model loaded on the CPU and on the GPU."""
    import h5py

    files, run_dir, _ = trained_on_cpu
    with h5py.File(files.spectra) as f:
        spectra = f["spectra"][:512]
    return spectra, load_model(run_dir, torch.device("cpu"))[0], load_model(run_dir, torch.device("cuda"))[0]


def test_same_weights_give_same_predictions_on_cuda(trained_on_cpu):
    spectra, cpu_model, gpu_model = spectra_and_models(trained_on_cpu)
    cpu = mc_predict(cpu_model, spectra, None, 1, torch.device("cpu"))
    gpu = mc_predict(gpu_model, spectra, None, 1, torch.device("cuda"))
    np.testing.assert_allclose(gpu.fakemag, cpu.fakemag, rtol=1e-4)
    np.testing.assert_allclose(gpu.fakemag_pred_var, cpu.fakemag_pred_var, rtol=1e-3)
    # Monte-Carlo means agree within their sampling noise
    cpu_mc = mc_predict(cpu_model, spectra[:64], None, 400, torch.device("cpu"))
    gpu_mc = mc_predict(gpu_model, spectra[:64], None, 400, torch.device("cuda"))
    noise = np.sqrt((cpu_mc.fakemag_model_var + gpu_mc.fakemag_model_var) / 400)
    assert np.median(np.abs(gpu_mc.fakemag - cpu_mc.fakemag) / noise) < 2.0
    np.testing.assert_allclose(np.median(gpu_mc.fakemag_model_var / cpu_mc.fakemag_model_var), 1.0, atol=0.15)


def test_mixed_precision_on_cuda_matches_float32_cpu(trained_on_cpu):
    spectra, cpu_model, gpu_model = spectra_and_models(trained_on_cpu)
    cpu = mc_predict(cpu_model, spectra, None, 1, torch.device("cpu"))
    for precision in ("auto", "bfloat16", "float16"):
        gpu = mc_predict(gpu_model, spectra, None, 1, torch.device("cuda"), precision=precision)
        np.testing.assert_allclose(gpu.fakemag, cpu.fakemag, rtol=2e-2, err_msg=precision)
    cpu_mc = mc_predict(cpu_model, spectra[:64], None, 400, torch.device("cpu"))
    gpu_mc = mc_predict(gpu_model, spectra[:64], None, 400, torch.device("cuda"), 32768, "auto")
    noise = np.sqrt((cpu_mc.fakemag_model_var + gpu_mc.fakemag_model_var) / 400)
    assert np.median(np.abs(gpu_mc.fakemag - cpu_mc.fakemag) / noise) < 2.0


def test_training_on_cuda_matches_cpu(trained_on_cpu, tmp_path):
    files, _, cpu_summary = trained_on_cpu
    config = TrainConfig(mode="spectra", epochs=4, device="cuda", offset_mc_passes=50, fit_mc_samples=5)
    summary = train(
        files.allstar, tmp_path / "run", config, spectra_path=files.spectra, progress=False, log=lambda m: None
    )
    assert summary["device"].startswith("cuda")
    combined = np.hypot(summary["offset_uas_err"], cpu_summary["offset_uas_err"])
    assert abs(summary["offset_uas"] - cpu_summary["offset_uas"]) < 3 * combined
    cpu_loss = cpu_summary["history"][-1]["val_loss"]
    assert abs(summary["history"][-1]["val_loss"] - cpu_loss) < 0.25 * abs(cpu_loss) + 0.1


def test_offset_network_on_cuda_equals_its_numpy_export_pass_for_pass():
    torch.manual_seed(0)
    offset = NetworkOffset(dropout=0.3)
    with torch.no_grad():
        for p in offset.parameters():
            p.normal_(0.0, 0.3)
    offset.set_statistics(torch.tensor([13.5, 1.5, 4700.0]), torch.tensor([1.5, 0.3, 300.0]))
    rng = np.random.default_rng(1)
    z = np.column_stack([rng.uniform(10, 16, 500), rng.uniform(1, 3, 500), rng.uniform(4000, 5200, 500)])
    evaluator = offset.export(50, 7, 0.0, [[10, 16], [1, 3], [4000, 5200]])
    cuda = offset.to("cuda").eval()
    masks = tuple(torch.as_tensor(m, dtype=torch.float32, device="cuda") for m in dropout_masks((32, 16), 50, 7, 0.3))
    inputs = torch.as_tensor(z, dtype=torch.float32, device="cuda")
    with torch.no_grad():
        passes = cuda.masked_body(cuda.stem(inputs, 500), masks).T.double().cpu().numpy()
        deterministic = cuda(inputs, 500).double().cpu().numpy()
    np.testing.assert_allclose(evaluator.mc_passes(evaluator.first_layer(z)), passes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(evaluator.evaluate(z)["zp_offset"], deterministic, rtol=1e-4, atol=1e-5)
    # on the device the shared masks come from a CUDA generator: other numbers, the same distribution
    shared = cuda.shared_mask_passes(inputs, 400, seed=0).numpy()
    on_cpu = offset.cpu().shared_mask_passes(inputs.cpu(), 400, seed=0).numpy()
    assert shared.shape == (400,) and np.isfinite(shared).all() and not np.array_equal(shared, on_cpu)
    assert abs(shared.mean() - on_cpu.mean()) < 5 * np.hypot(shared.std(), on_cpu.std()) / np.sqrt(400)
    assert shared.std() == pytest.approx(on_cpu.std(), rel=0.25)


def test_spectra_branch_fast_paths_on_cuda_equal_the_cpu_with_the_same_masks():
    torch.manual_seed(0)
    branch = SpectraBranch(7514, 0.3)
    with torch.no_grad():
        for p in branch.parameters():
            p.normal_(0.0, 0.1)
    x = torch.randn(4, 7514)
    with torch.no_grad():
        h = branch.stem(x)
    bits = random_bits(4 * 50, branch.mask_widths, None, torch.device("cpu"), seed=0)
    cpu = branch.masked_body(h, bits, 50)
    cuda = copy.deepcopy(branch).cuda()
    with torch.no_grad():
        stem = cuda.stem(x.cuda())
    # cuDNN runs the convolutions in TF32 (torch's default): about 3 significant digits
    torch.testing.assert_close(stem.cpu(), h, rtol=5e-3, atol=5e-3 * float(h.abs().max()))
    gpu = cuda.masked_body(h.cuda(), bits.cuda(), 50).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=5e-3, atol=5e-3 * float(cpu.abs().max()))
    low = cuda.masked_body(h.cuda().bfloat16(), bits.cuda(), 50).float().cpu()
    assert low.dtype == torch.float32 and float((low - cpu).abs().median()) < 2e-2 * float(cpu.abs().max())
    # masks drawn on the device keep 70 % of the units
    keep = torch.cat([m.flatten(1) for m in cuda.draw_masks(stem, 200)], dim=1)
    assert abs(float(keep.mean()) - 0.7) < 5 * np.sqrt(0.21 / keep.numel())
