"""Speed and memory of zpdist's core: prints a Markdown table and writes it to benchmarks/results/.

Measures, on the machine it runs on (CUDA too when present):
- the machine's float32 matmul rate (the reference peak);
- spectra-model training throughput (stars/s per epoch) at batch sizes 64 and 512;
- Monte-Carlo inference throughput (stars/s, 100 passes);
- FLOPs per star (counted by torch's FlopCounterMode) and the fraction of the matmul rate reached;
- mock generation throughput with spectra;
- peak memory (process RSS; CUDA allocator peak).

Never run by the tests. Usage: ``python benchmarks/run_all.py [--quick] [--device cpu|cuda|all]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import zpdist
from zpdist.io.spectra import N_PIXELS
from zpdist.mock.config import MockConfig
from zpdist.mock.generate import write_mock
from zpdist.nn.infer import mc_predict
from zpdist.nn.loss import mean_parallax_nll
from zpdist.nn.model import ModelConfig, ZeroPointNet

RESULTS = Path(__file__).parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device: torch.device, size: int) -> float:
    """Measured float32 matmul rate (FLOP/s) of ``size``×``size`` products."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    _sync(device)
    repeats = 10 if device.type == "cpu" else 50
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _batch(n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = (1 - 0.1 * torch.rand(n, N_PIXELS, generator=g)).to(device)
    k = torch.full((n,), 10.0, device=device)
    plx = torch.full((n,), 0.3, device=device)
    err = torch.full((n,), 0.05, device=device)
    return x, k, plx, err


def flops_per_star_forward(model: ZeroPointNet, device: torch.device) -> float:
    """FLOPs of one forward pass per star (FlopCounterMode, batch of 64)."""
    x, *_ = _batch(64, device)
    with FlopCounterMode(display=False) as counter:  # (FlopCounterMode's module tracker needs autograd on)
        model(x)
    return counter.get_total_flops() / 64


def training_rate(device: torch.device, batch_size: int, n_stars: int) -> float:
    """Stars per second of one training epoch over ``n_stars`` synthetic spectra (after a warm-up)."""
    model = ZeroPointNet(ModelConfig("spectra", "constant")).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, k, plx, err = _batch(n_stars, device)

    def epoch(limit: int) -> None:
        for start in range(0, limit, batch_size):
            out = model(x[start : start + batch_size])
            s = slice(start, start + batch_size)
            loss = mean_parallax_nll(plx[s], err[s], out["fakemag"], out["log_var"], k[s], out["offset"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

    model.train()
    epoch(min(n_stars, 4 * batch_size))
    _sync(device)
    start = time.perf_counter()
    epoch(n_stars)
    _sync(device)
    return n_stars / (time.perf_counter() - start)


def inference_rate(
    device: torch.device, n_stars: int, n_samples: int = 100, precision: str = "float32"
) -> tuple[float, float]:
    """Stars per second of Monte-Carlo inference (dropout body in ``precision``), and FLOPs per star."""
    model = ZeroPointNet(ModelConfig("spectra", "constant")).to(device)
    x = _batch(n_stars, device)[0].cpu().numpy()
    max_rows = 32768 if device.type == "cuda" else 4096
    mc_predict(model, x[:64], None, n_samples, device, max_rows, precision)
    _sync(device)
    start = time.perf_counter()
    mc_predict(model, x, None, n_samples, device, max_rows, precision)
    _sync(device)
    rate = n_stars / (time.perf_counter() - start)
    sample = torch.as_tensor(x[:16], device=device)
    with FlopCounterMode(display=False) as counter:  # (FlopCounterMode's module tracker needs autograd on)
        model(sample, n_samples=n_samples)
    return rate, counter.get_total_flops() / 16


def mock_rate(n_stars: int) -> float:
    """Stars per second of writing a mock with spectra."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_mock(MockConfig(n_stars=n_stars, seed=1), tmp, progress=False)
        return n_stars / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test of the script)")
    parser.add_argument("--device", default="all", help="cpu, cuda or all available (default)")
    args = parser.parse_args()
    devices = [torch.device("cpu")] if args.device in ("all", "cpu") else []
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    n_train = 512 if args.quick else 8192
    n_infer = 64 if args.quick else 2048
    rows = []
    forward_flops = flops_per_star_forward(ZeroPointNet(ModelConfig()), torch.device("cpu"))
    for device in devices:
        name = (
            torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
        )
        peak = matmul_rate(device, 2048 if device.type == "cpu" else 8192)
        rows.append((name, "float32 matmul rate (reference peak)", f"{peak / 1e9:,.0f} GFLOP/s", ""))
        for batch in (64, 512):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            rate = training_rate(device, batch, n_train * (4 if device.type == "cuda" else 1))
            achieved = rate * 3 * forward_flops  # backward ≈ 2 × forward
            rows.append((name, f"training, spectra model, batch {batch}", f"{rate:,.0f} stars/s",
                         f"{achieved / 1e9:,.1f} GFLOP/s = {100 * achieved / peak:.1f} % of matmul"))  # fmt: skip
        for precision in ("float32", "bfloat16"):
            rate, mc_flops = inference_rate(device, n_infer * (8 if device.type == "cuda" else 1), precision=precision)
            achieved = rate * mc_flops
            note = f"{achieved / 1e9:,.1f} GFLOP/s = {100 * achieved / peak:.1f} % of float32 matmul"
            rows.append((name, f"inference, 100 MC passes, {precision} body", f"{rate:,.0f} stars/s", note))
        if device.type == "cuda":
            rows.append((name, "CUDA allocator peak", f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB", ""))
    n_mock = 1000 if args.quick else 10_000
    rows.append(("CPU", f"mock generation with spectra ({n_mock} stars)", f"{mock_rate(n_mock):,.0f} stars/s", ""))
    rows.append(
        ("model", "forward FLOPs per star (spectra model)", f"{forward_flops / 1e6:.2f} MFLOP", "training ≈ 3×")
    )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("process", "peak resident memory", f"{peak_rss:,.0f} MiB", ""))
    machine = platform.processor() or platform.machine()
    header = (
        f"zpdist {zpdist.__version__}, torch {torch.__version__}, {platform.node()}, {machine}, {os.cpu_count()} cores"
    )
    lines = [f"### {header}", "", "| device | measurement | value | note |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"core-{platform.node()}{'-quick' if args.quick else ''}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
