"""Speed and memory of zpdist's core: prints a Markdown table and writes it to benchmarks/results/.

Measures, on the machine it runs on (CUDA too when present):
- the machine's float32 matmul rate (the reference peak);
- spectra-model training throughput (stars/s per epoch) at batch sizes 64 and 512;
- Monte-Carlo inference throughput (stars/s, 100 passes), float32 and bfloat16;
- the FLOPs of the paper's layers per star and pass, and the fraction of the matmul rate reached;
- on a GPU, agreement with the CPU (same weights: one pass, and Monte-Carlo means) and, with ``--dr14``,
  Monte-Carlo inference at APOGEE DR14's size (277,000 stars × 100 passes) timed;
- mock generation throughput with spectra;
- peak memory (process RSS; CUDA allocator peak).

Never run by the tests (which run its functions at a tiny size). Usage:
``python benchmarks/run_all.py [--quick] [--device cpu|cuda|all] [--dr14] [--survey-stars N]``;
``benchmarks/gpu.sh`` runs it on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zpdist
from zpdist.io.spectra import N_PIXELS
from zpdist.mock.config import MockConfig
from zpdist.mock.generate import write_mock
from zpdist.nn.device import default_mc_rows
from zpdist.nn.infer import mc_predict
from zpdist.nn.loss import mean_parallax_nll
from zpdist.nn.model import ModelConfig, ZeroPointNet

RESULTS = Path(__file__).parent / "results"
#: Stars of APOGEE DR14 with spectra (the paper's catalogue's size).
DR14_STARS = 277_000


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


def pass_flops(model: ZeroPointNet) -> tuple[float, float]:
    """FLOPs of the paper's layers: once per star (the stem) and per Monte-Carlo pass (the rest).

    Counted from the layer shapes, as the paper's network would do them (a multiply-add is 2 FLOPs): the
    stride-4 forms of the convolutions zpdist runs do ≈ 40 % more arithmetic for the same result.
    """
    branch, n_pixels = model.branch, model.config.n_inputs
    conv1, conv2 = branch.conv1, branch.conv2
    stem_length = n_pixels - conv1.kernel_size[0] + 1
    conv2_length = stem_length - conv2.kernel_size[0] + 1
    stem = 2 * conv1.in_channels * conv1.out_channels * conv1.kernel_size[0] * stem_length
    body = 2 * conv2.in_channels * conv2.out_channels * conv2.kernel_size[0] * conv2_length
    dense = [branch.dense1, branch.dense2, model.head.fakemag, model.head.log_var]
    body += sum(2 * layer.in_features * layer.out_features for layer in dense)
    return float(stem), float(body)


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
    """Stars per second of Monte-Carlo inference (dropout body in ``precision``), and the paper's FLOPs per star."""
    model = ZeroPointNet(ModelConfig("spectra", "constant")).to(device)
    x = _batch(n_stars, device)[0].cpu().numpy()
    max_rows = default_mc_rows(device)
    mc_predict(model, x[:64], None, n_samples, device, max_rows, precision)
    _sync(device)
    start = time.perf_counter()
    mc_predict(model, x, None, n_samples, device, max_rows, precision)
    _sync(device)
    stem, body = pass_flops(model)
    return n_stars / (time.perf_counter() - start), stem + n_samples * body


def agreement(reference: torch.device, device: torch.device, n_stars: int, n_samples: int) -> dict[str, float]:
    """The same weights on ``reference`` and ``device``: one pass (dropout off) and Monte-Carlo means.

    Returns
    -------
    dict
        ``max_relative_difference`` of L with dropout off; ``median_z``, the median over stars of
        |mean L on device − mean L on reference| / its Monte-Carlo noise (≈ 0.67 when they agree).
    """
    torch.manual_seed(0)
    model = ZeroPointNet(ModelConfig("spectra", "constant", init_std=0.1))
    x = _batch(n_stars, torch.device("cpu"))[0].numpy()
    one, many = {}, {}
    for where in (reference, device):
        moved = model.to(where)
        one[where.type] = mc_predict(moved, x, None, 1, where).fakemag
        many[where.type] = mc_predict(moved, x, None, n_samples, where)
    first, second = (many[where.type] for where in (reference, device))
    noise = np.sqrt((first.fakemag_model_var + second.fakemag_model_var) / n_samples)
    return {
        "max_relative_difference": float(np.max(np.abs(one[device.type] / one[reference.type] - 1))),
        "median_z": float(np.median(np.abs(first.fakemag - second.fakemag) / noise)),
    }


def survey_rate(device: torch.device, n_stars: int, block: int, n_samples: int, precision: str) -> float:
    """Stars per second of Monte-Carlo inference over ``n_stars`` stars, read in blocks of ``block`` (one random
    block of spectra, reused)."""
    model = ZeroPointNet(ModelConfig("spectra", "constant")).to(device)
    x = _batch(block, torch.device("cpu"))[0].numpy()
    max_rows = default_mc_rows(device)
    mc_predict(model, x[:64], None, n_samples, device, max_rows, precision)
    _sync(device)
    start = time.perf_counter()
    for first in range(0, n_stars, block):
        mc_predict(model, x[: min(block, n_stars - first)], None, n_samples, device, max_rows, precision)
    _sync(device)
    return n_stars / (time.perf_counter() - start)


def mock_rate(n_stars: int) -> float:
    """Stars per second of writing a mock with spectra."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_mock(MockConfig(n_stars=n_stars, seed=1), tmp, progress=False)
        return n_stars / (time.perf_counter() - start)


def device_rows(device: torch.device, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """The table's rows for one device: matmul rate, training, inference, and on a GPU agreement and memory."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    gpu = device.type == "cuda"
    stem, body = pass_flops(ZeroPointNet(ModelConfig()))
    peak = matmul_rate(device, 8192 if gpu else 2048)
    rows = [(name, "float32 matmul rate (reference peak)", f"{peak / 1e9:,.0f} GFLOP/s", "torch.mm, square")]

    def fraction(flop_rate: float) -> str:
        return f"{flop_rate / 1e9:,.1f} GFLOP/s = {100 * flop_rate / peak:.0f} % of float32 matmul"

    if gpu:
        torch.cuda.reset_peak_memory_stats()
    for batch in (64, 512):
        rate = training_rate(device, batch, (512 if args.quick else 8192) * (4 if gpu else 1))
        note = fraction(rate * 3 * (stem + body)) + " (backward ≈ 2 × forward)"
        rows.append((name, f"training, spectra model, batch {batch}", f"{rate:,.0f} stars/s", note))
    for precision in ("float32", "bfloat16"):
        rate, flops = inference_rate(device, (64 if args.quick else 2048) * (8 if gpu else 1), precision=precision)
        rows.append(
            (name, f"inference, 100 MC passes, {precision} body", f"{rate:,.1f} stars/s", fraction(rate * flops))
        )
    if gpu:
        found = agreement(torch.device("cpu"), device, n_stars=32 if args.quick else 256, n_samples=200)
        rows.append((name, "same weights as on the CPU: L with dropout off", "max relative difference",
                     f"{found['max_relative_difference']:.1e}"))  # fmt: skip
        rows.append((name, "same weights as on the CPU: mean L of 200 passes", "median |Δ| / MC noise",
                     f"{found['median_z']:.2f} (≈ 0.67 when they agree)"))  # fmt: skip
    if args.dr14:
        block = min(args.survey_stars, 27_700 if gpu else 1000)
        for precision in ("float32", "bfloat16"):
            started = time.perf_counter()
            rate = survey_rate(device, args.survey_stars, block, 100, precision)
            rows.append((name, f"{args.survey_stars:,} stars × 100 passes, {precision} body",
                         f"{time.perf_counter() - started:,.1f} s", f"{rate:,.0f} stars/s"))  # fmt: skip
    if gpu:
        rows.append((name, "CUDA allocator peak", f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test of the script)")
    parser.add_argument("--device", default="all", help="cpu, cuda or all available (default)")
    parser.add_argument("--dr14", action="store_true", help="also time Monte-Carlo inference over --survey-stars")
    parser.add_argument("--survey-stars", type=int, default=DR14_STARS, help=f"default {DR14_STARS:,} (DR14)")
    args = parser.parse_args()
    devices = [torch.device("cpu")] if args.device in ("all", "cpu") else []
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if not devices:
        parser.error(f"--device {args.device}: no such device here (CUDA available: {torch.cuda.is_available()})")
    rows = [row for device in devices for row in device_rows(device, args)]
    n_mock = 1000 if args.quick else 10_000
    rows.append(("CPU", f"mock generation with spectra ({n_mock} stars)", f"{mock_rate(n_mock):,.0f} stars/s", ""))
    stem, body = pass_flops(ZeroPointNet(ModelConfig()))
    rows.append(("model", "FLOPs of the paper's layers per star", f"{stem / 1e6:.2f} MFLOP once + {body / 1e6:.2f} "
                 "MFLOP a pass", "stride-4 forms as run: ≈ 1.4× that"))  # fmt: skip
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
    devices_name = "-".join(device.type for device in devices)
    out = RESULTS / f"core-{platform.node()}-{devices_name}{'-quick' if args.quick else ''}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
