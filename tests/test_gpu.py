"""The CUDA path gives the CPU's results within tolerance (skipped without a GPU; CI has none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zpdist.mock.config import MockConfig
from zpdist.mock.generate import write_mock
from zpdist.nn.infer import load_model, mc_predict
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
