"""zpdist against the paper's own code, astroNN 1.1.0 on TensorFlow 2.12 (CPU), on the same machine and data.

Each measurement runs in a fresh process of its own, the two codes interleaved round by round (zpdist,
astroNN, zpdist, astroNN, ...), on the same random 7,514-pixel spectra:

- Monte-Carlo inference: 100 passes for each of 2,000 stars (stars/s of the whole call);
- training: stars/s of the training batches of the epochs after the first (which holds the set-up and
  the warm-up), at batch 64 and 512.

astroNN runs the paper's own class, ``ApogeeDR14GaiaDR2BCNN`` (``train``; ``predict``, i.e.
``FastMCInference``), with zpdist's 164 units in the first dense layer. It differs from zpdist's network
by "same" padding in its convolutions (7,514 positions instead of 7,507 and 7,500) and by evaluating no
offset at inference, together well under 1 % of the FLOPs. zpdist runs ``mc_predict`` and the trainer's
step (``zpdist.nn.trainer.train_step``: forward, loss plus the L2 term, backward, Adam as ``zpdist train``
builds it) on in-memory batches, with the paper's softplus head and the multivariate offset MLP.

The tables end with the FLOP rate of zpdist's Monte-Carlo inference (the paper's layers: 0.24 MFLOP per
star once, 3.44 MFLOP per pass) as a fraction of the machine's float32 matmul rate at the same threads,
measured once in the run by torch's own matmul (square 2048) and by oneDNN's (the first dense layer's
shape, ``zpdist.nn.device.matmul_t``), per wall and per CPU second (the latter hardly moves with the load
of a shared machine).

The astroNN environment is created on first use in ~/.cache/zpdist-bench/astronn-venv (``python3.11 -m
venv``, then ``tensorflow-cpu==2.12.* tensorflow-probability==0.20.* astroNN==1.1.0 "numpy<1.24"`` from
PyPI). Both codes use the same number of threads (``--threads``, default all cores). On a machine
shared with other work, quote the ratios of the interleaved rounds, not the rates.

Never run by the tests. Writes benchmarks/results/vs_astronn-<host>.md.

Usage: ``python benchmarks/vs_astronn.py [--rounds 2] [--stars 2000] [--train-stars 4096] [--threads N]``
(``--quick``: a smoke test at small sizes). The same file is each side's worker (``--worker``), run by
that side's interpreter; the worker imports only numpy and its own framework.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
ASTRONN_VENV = Path.home() / ".cache" / "zpdist-bench" / "astronn-venv"
ASTRONN_REQUIREMENTS = ["tensorflow-cpu==2.12.*", "tensorflow-probability==0.20.*", "astroNN==1.1.0", "numpy<1.24"]
N_PIXELS = 7514
MC_PASSES = 100
DROPOUT = 0.3
HIDDEN = [164, 64, 32, 16]  # astroNN's num_hidden with zpdist's first dense layer
VAL_FRACTION = 0.1  # astroNN holds out 10 % for validation; zpdist trains on as many stars per epoch


class Clock:
    """Wall and CPU seconds (all the process's threads) since :meth:`start`, accumulated over intervals."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    @staticmethod
    def _now() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> None:
        wall, cpu = self._now()
        self.wall += wall - self._started[0]
        self.cpu += cpu - self._started[1]

    def rates(self, stars: int) -> dict[str, float]:
        """Stars per wall second and per CPU second."""
        return {"stars_per_s": stars / self.wall, "stars_per_cpu_s": stars / self.cpu}


# --- data ---------------------------------------------------------------------------------------------


def write_data(path: Path, n_stars: int, seed: int = 0) -> None:
    """Random continuum-normalised spectra, K, (G, BP−RP, Teff), parallaxes and errors: float32, in a .npz."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        spectra=(1.0 - 0.1 * rng.random((n_stars, N_PIXELS))).astype(np.float32),
        k_corr=(9.0 + 2.0 * rng.random(n_stars)).astype(np.float32),
        offset_inputs=np.column_stack(
            [12.0 + 3.0 * rng.random(n_stars), 1.0 + rng.random(n_stars), 4300.0 + 800.0 * rng.random(n_stars)]
        ).astype(np.float32),
        parallax=(0.2 + 0.3 * rng.random(n_stars)).astype(np.float32),
        parallax_error=np.full(n_stars, 0.05, np.float32),
    )


def steady_epoch_stars(n_stars: int, batch: int) -> int:
    """Stars in one epoch's training batches: astroNN's whole batches of the 90 % it trains on."""
    return int(n_stars * (1 - VAL_FRACTION)) // batch * batch


# --- zpdist worker ------------------------------------------------------------------------------------


def zpdist_model(data: dict[str, np.ndarray]):
    """The paper's architecture in zpdist (softplus head, multivariate offset), statistics from ``data``."""
    import torch

    from zpdist.nn.model import ModelConfig, ZeroPointNet

    model = ZeroPointNet(ModelConfig("spectra", "multivariate", luminosity_head="softplus", dropout=DROPOUT))
    spectra, offset_inputs = torch.as_tensor(data["spectra"]), torch.as_tensor(data["offset_inputs"])
    model.set_statistics(
        spectra.mean(0), spectra.std(0), 1.0, offset_inputs.mean(0), offset_inputs.std(0)
    )  # fmt: skip
    return model


def zpdist_infer(data: dict[str, np.ndarray], n_stars: int) -> dict[str, float]:
    """Stars per second of ``mc_predict`` with 100 passes over ``n_stars`` stars (after a 64-star warm-up)."""
    import torch

    from zpdist.nn.infer import mc_predict

    model, cpu = zpdist_model(data), torch.device("cpu")
    spectra, offset_inputs = data["spectra"][:n_stars], data["offset_inputs"][:n_stars]
    mc_predict(model, spectra[:64], offset_inputs[:64], MC_PASSES, cpu)
    clock = Clock()
    clock.start()
    mc_predict(model, spectra, offset_inputs, MC_PASSES, cpu)
    clock.stop()
    return clock.rates(n_stars)


def zpdist_train(data: dict[str, np.ndarray], batch: int, epochs: int) -> dict[str, float]:
    """Stars per second of the trainer's step (:class:`zpdist.nn.trainer.Trainer`) over the epochs after the first."""
    import torch

    from zpdist.nn.batch import Batch
    from zpdist.nn.trainer import train_step

    torch.manual_seed(0)
    model = zpdist_model(data)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    tensors = {name: torch.as_tensor(values) for name, values in data.items()}
    n_epoch = steady_epoch_stars(len(data["parallax"]), batch)
    generator = torch.Generator().manual_seed(0)
    model.train()
    clock = Clock()
    for epoch in range(epochs):
        order = torch.randperm(len(data["parallax"]), generator=generator)[:n_epoch]
        if epoch > 0:
            clock.start()
        for first in range(0, n_epoch, batch):
            rows = order[first : first + batch]
            stars = Batch(*(tensors[name][rows] for name in ("spectra", "offset_inputs", "k_corr", "parallax",
                                                               "parallax_error")))  # fmt: skip
            train_step(model, optimiser, stars, 5e-9)
        if epoch > 0:
            clock.stop()
    return clock.rates(n_epoch * (epochs - 1))


#: FLOPs of the paper's layers per star (a multiply-add is 2): the first convolution once, then per pass the
#: second convolution, the dense layers and the two heads (as ``benchmarks/run_all.py`` counts them).
STEM_FLOPS = 2 * 1 * 2 * 8 * (N_PIXELS - 7)
N_POOLED = 4 * ((N_PIXELS - 14) // 4)
PASS_FLOPS = 2 * 2 * 8 * N_POOLED * 4 + 2 * N_POOLED * HIDDEN[0] + 2 * HIDDEN[0] * 64 + 2 * 64 * 2


def zpdist_matmul() -> dict[str, float]:
    """The float32 matmul rates (FLOP per wall and per CPU second) of torch's own matmul (square 2048) and of
    oneDNN's (4096 × 7500 × 164, ``zpdist.nn.device.matmul_t``)."""
    import torch

    from zpdist.nn.device import matmul_t

    def rates(name: str, product, flops: float, repeats: int = 10) -> dict[str, float]:
        product()
        clock = Clock()
        clock.start()
        for _ in range(repeats):
            product()
        clock.stop()
        return {f"{name}_per_s": flops * repeats / clock.wall, f"{name}_per_cpu_s": flops * repeats / clock.cpu}

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    x, weight = torch.randn(4096, 7500), torch.randn(164, 7500)
    return rates("torch_mm", lambda: a @ b, 2 * 2048**3) | rates(
        "onednn", lambda: matmul_t(x, weight), 2 * 4096 * 7500 * 164
    )


# --- astroNN worker -----------------------------------------------------------------------------------


def astronn_inputs(data: dict[str, np.ndarray]) -> np.ndarray:
    """astroNN's input rows for ``ApogeeDR14GaiaDR2BCNN``: spectrum, K, then the offset model's three inputs."""
    return np.hstack([data["spectra"], data["k_corr"][:, None], data["offset_inputs"]]).astype(np.float32)


def astronn_network(batch: int, epochs: int, callbacks: list | None = None):
    """The paper's class with zpdist's layer widths, quiet and not saving."""
    from astroNN.models import ApogeeDR14GaiaDR2BCNN

    net = ApogeeDR14GaiaDR2BCNN(dropout_rate=DROPOUT)
    net.num_hidden = list(HIDDEN)
    net.max_epochs, net.batch_size, net.verbose, net.autosave, net.callbacks = epochs, batch, 0, False, callbacks
    return net


def astronn_train(data: dict[str, np.ndarray], batch: int, epochs: int) -> dict[str, float]:
    """Stars per second of astroNN's training batches (``train``) over the epochs after the first."""
    import tensorflow as tf

    clock = Clock()

    class EpochTimer(tf.keras.callbacks.Callback):
        """Times each epoch after the first from its start to its validation (the training batches only)."""

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epoch = epoch
            if epoch > 0:
                clock.start()

        def on_test_begin(self, logs=None) -> None:
            if self.epoch > 0:
                clock.stop()

    net = astronn_network(batch, epochs, [EpochTimer()])
    net.train(astronn_inputs(data), data["parallax"][:, None], labels_err=data["parallax_error"][:, None])
    return clock.rates(net.num_train // batch * batch * (epochs - 1))


def astronn_infer(data: dict[str, np.ndarray], n_stars: int) -> dict[str, float]:
    """Stars per second of astroNN's Monte-Carlo ``predict`` (100 passes) over ``n_stars`` stars.

    The network is first trained for one epoch on 512 stars (``predict`` needs the statistics training
    stores) and ``predict`` warmed up on 64 stars.
    """
    inputs = astronn_inputs(data)
    net = astronn_network(64, 1)
    net.train(inputs[:512], data["parallax"][:512, None], labels_err=data["parallax_error"][:512, None])
    net.mc_num = MC_PASSES
    net.predict(inputs[:64])
    clock = Clock()
    clock.start()
    net.predict(inputs[:n_stars])
    clock.stop()
    return clock.rates(n_stars)


def worker(side: str, task: str, data_path: str, size: int, epochs: int) -> None:
    """Run one measurement of ``side`` ("zpdist" or "astronn"); print its rates as the last line (JSON)."""
    with np.load(data_path) as archive:
        data = {name: archive[name] for name in archive.files}
    if side == "astronn":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        rates = astronn_infer(data, size) if task == "infer" else astronn_train(data, size, epochs)
    elif task == "matmul":
        rates = zpdist_matmul()
    else:
        rates = zpdist_infer(data, size) if task == "infer" else zpdist_train(data, size, epochs)
    print(json.dumps(rates))


# --- driver -------------------------------------------------------------------------------------------


def astronn_python() -> Path:
    """The astroNN environment's interpreter, creating the environment if it is missing."""
    python = ASTRONN_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating the astroNN environment in {ASTRONN_VENV} (once; a few minutes)", flush=True)
        ASTRONN_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3.11", "-m", "venv", str(ASTRONN_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *ASTRONN_REQUIREMENTS], check=True)
    return python


def measure(
    python: Path, side: str, task: str, data_path: Path, size: int, epochs: int, threads: int
) -> dict[str, float]:
    """Stars per wall second and per CPU second, as a fresh worker process of ``side`` reports them."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")  # fmt: skip
    command = [str(python), __file__, "--worker", side, task, str(data_path), str(size), str(epochs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=data_path.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{side} {task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--stars", type=int, default=2000, help="stars for Monte-Carlo inference (default 2000)")
    parser.add_argument("--train-stars", type=int, default=4096, help="stars for training (default 4096)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs, the first not timed (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both codes")
    parser.add_argument("--quick", action="store_true", help="a smoke test at small sizes")
    parser.add_argument("--worker", nargs=5, metavar=("SIDE", "TASK", "DATA", "SIZE", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        side, task, data_path, size, epochs = args.worker
        worker(side, task, data_path, int(size), int(epochs))
        return
    if args.quick:
        args.stars, args.train_stars, args.epochs = 128, 1200, 2
    pythons = {"zpdist": Path(sys.executable), "astroNN": astronn_python()}
    tasks = [("MC inference, 100 passes", "infer", args.stars)] + [
        (f"training, batch {batch}", "train", batch) for batch in (64, 512)
    ]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data_path = Path(folder) / "data.npz"
        write_data(data_path, max(args.stars, args.train_stars))
        for round_ in range(1, args.rounds + 1):
            for label, task, size in tasks:
                rates = {}
                for side, python in pythons.items():
                    load = os.getloadavg()[0]
                    rates[side] = measure(python, side.lower(), task, data_path, size, args.epochs, args.threads)
                    print(f"round {round_}: {label}: {side} {rates[side]['stars_per_s']:,.1f} stars/s, "
                          f"{rates[side]['stars_per_cpu_s']:,.1f} per CPU s (load {load:.1f})", flush=True)  # fmt: skip
                rows.append((round_, label, rates["zpdist"], rates["astroNN"]))
        matmul = measure(pythons["zpdist"], "zpdist", "matmul", data_path, 0, 0, args.threads)
    write_table(rows, args, matmul)


def write_table(rows: list[tuple[int, str, dict, dict]], args: argparse.Namespace, matmul: dict[str, float]) -> None:
    """Print the Markdown table of rates and ratios and the matmul fraction; write them under benchmarks/results/."""
    header = (
        f"zpdist vs astroNN 1.1.0 (TensorFlow 2.12 CPU), {platform.node()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, {args.threads} threads each (OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}), load {os.getloadavg()[0]:.1f} at the end; "
        f"{args.stars} stars for inference, {args.train_stars} for training"
    )
    lines = [f"### {header}", "", "| round | measurement | zpdist stars/s (per CPU s) | astroNN stars/s (per CPU s) "
             "| ratio (per CPU s) |", "|---|---|---|---|---|"]  # fmt: skip
    for r, label, a, b in rows:
        wall, cpu = a["stars_per_s"] / b["stars_per_s"], a["stars_per_cpu_s"] / b["stars_per_cpu_s"]
        lines.append(
            f"| {r} | {label} | {a['stars_per_s']:,.1f} ({a['stars_per_cpu_s']:,.1f}) | "
            f"{b['stars_per_s']:,.1f} ({b['stars_per_cpu_s']:,.1f}) | **{wall:.2f}×** ({cpu:.2f}×) |"
        )
    lines += ["", "| measurement | wall-clock ratios by round | median | per-CPU-second ratios | median |",
              "|---|---|---|---|---|"]  # fmt: skip
    for label in dict.fromkeys(label for _, label, _, _ in rows):
        pairs = [(a, b) for _, name, a, b in rows if name == label]
        wall = [a["stars_per_s"] / b["stars_per_s"] for a, b in pairs]
        cpu = [a["stars_per_cpu_s"] / b["stars_per_cpu_s"] for a, b in pairs]
        lines.append(f"| {label} | {' / '.join(f'{x:.2f}' for x in wall)} | **{statistics.median(wall):.2f}×** | "
                     f"{' / '.join(f'{x:.2f}' for x in cpu)} | {statistics.median(cpu):.2f}× |")  # fmt: skip
    flops = STEM_FLOPS + MC_PASSES * PASS_FLOPS
    mc = {unit: flops * statistics.median(a[f"stars_{unit}"] for _, name, a, _ in rows if name.startswith("MC"))
          for unit in ("per_s", "per_cpu_s")}  # fmt: skip
    lines += [
        "",
        "| zpdist's Monte-Carlo inference (median of the rounds), the paper's layers | per wall second "
        "| per CPU second |",
        "|---|---|---|",
        f"| GFLOP/s | {mc['per_s'] / 1e9:.1f} | {mc['per_cpu_s'] / 1e9:.1f} |",
    ]
    for name, label in (
        ("torch_mm", "torch's float32 matmul (square 2048)"),
        ("onednn", "oneDNN's (4096 × 7500 × 164)"),
    ):
        per_s, per_cpu_s = matmul[f"{name}_per_s"], matmul[f"{name}_per_cpu_s"]
        lines.append(f"| fraction of {label}: {per_s / 1e9:.0f} / {per_cpu_s / 1e9:.0f} GFLOP/s | "
                     f"{mc['per_s'] / per_s:.0%} | {mc['per_cpu_s'] / per_cpu_s:.0%} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"vs_astronn-{platform.node()}-{args.threads}threads{'-quick' if args.quick else ''}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
