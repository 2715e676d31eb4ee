"""Device and arithmetic choice, in one place: CUDA when available, else CPU (``--device`` overrides);
bfloat16 Monte-Carlo inference on CUDA, float32 on CPU (``--precision`` overrides); how the spectra
branch's work is cut into blocks and run on the device (:func:`block_rows`, :func:`conv_rows`,
:func:`map_blocks`, :class:`Scratch`, :func:`matmul_t`)."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from zpdist.errors import InputError


def resolve_device(requested: str = "auto") -> torch.device:
    """The torch device for ``requested`` ("auto", "cpu", "cuda" or "cuda:N").

    Raises
    ------
    ValueError
        If CUDA is requested but not available, or the name is unknown.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {requested}: CUDA is not available on this machine (use auto or cpu)")
    try:
        return torch.device(requested)
    except RuntimeError as exc:
        raise InputError(f"--device {requested}: not a device name (auto, cpu, cuda, cuda:N)") from exc


def default_mc_rows(device: torch.device) -> int:
    """Rows (stars × Monte-Carlo samples) per forward pass: bounded memory on CPU, large batches on GPU."""
    return 32768 if device.type == "cuda" else 4096


def block_rows(device: torch.device) -> int:
    """Rows (stars, or star-passes) per block of the spectra branch's convolutions and of its Monte-Carlo passes.

    On a CPU a block's activations then mostly stay in the caches, which makes a batch of 512 stars as
    fast per star as one of 64; a GPU wants large kernels.
    """
    return 8192 if device.type == "cuda" else 200


def conv_rows(device: torch.device) -> int:
    """Star-passes per convolution inside a block of Monte-Carlo passes: on a CPU, ≈ 10 MB of activations."""
    return 8192 if device.type == "cuda" else 25


def matmul_t(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x @ weightᵀ without gradients: (M, K) × (N, K) → (M, N).

    On a CPU in float32 through oneDNN's matrix multiply (``torch.ops.mkldnn._linear_pointwise``, the
    kernel of torch's compiled CPU models) where torch has oneDNN: the MKL one torch calls otherwise
    runs its AVX2 code on AMD processors, ≈ 2× slower there. Elsewhere ``torch.nn.functional.linear``.
    """
    if x.device.type == "cpu" and x.dtype == torch.float32 and _onednn_linear_works():
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
    return torch.nn.functional.linear(x, weight)


@functools.cache
def _onednn_linear_works() -> bool:
    """Whether this torch build has oneDNN's linear kernel with the call signature used here (a private op: a
    torch release may rename or change it, and then the public ``linear`` is used)."""
    if not torch.backends.mkldnn.is_available():
        return False
    x, weight = torch.ones(2, 3), torch.ones(4, 3)
    try:
        result = torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
    except (AttributeError, RuntimeError, TypeError):
        return False
    return bool(torch.equal(result, torch.full((2, 4), 3.0)))


class Scratch:
    """Named buffers that a loop over blocks of Monte-Carlo passes reuses from one block to the next.

    Freeing and allocating a block's tens of MB at every block makes the C allocator hand the pages back
    to the system and fault them in again, which on a CPU costs about as much as the passes themselves.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """An uninitialised tensor of ``shape``: the same memory each time ``name`` is asked for."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype or buffer.device != device:
            buffer = self._buffers[name] = torch.empty(size, dtype=dtype, device=device)
        return buffer[:size].view(shape)


Item = TypeVar("Item")
Result = TypeVar("Result")


def map_blocks(work: Callable[[Item, Scratch], Result], items: Sequence[Item], device: torch.device) -> list[Result]:
    """``work(item, scratch)`` for each item, in order; on a CPU, side by side on torch's threads.

    On a CPU each of ``torch.get_num_threads()`` Python threads takes whole items, with torch's own
    (intra-op) threads, a process-wide setting, set to one meanwhile: small blocks then run without a
    synchronisation per operation, which on a busy machine costs more than the blocks themselves.
    Each thread has its own :class:`Scratch`. Gradient mode and autocast do not carry into the threads.
    """
    workers = min(torch.get_num_threads(), len(items)) if device.type == "cpu" else 1
    if workers <= 1:
        scratch = Scratch()
        return [work(item, scratch) for item in items]
    local = threading.local()

    def run(item: Item) -> Result:
        if not hasattr(local, "scratch"):
            local.scratch = Scratch()
        return work(item, local.scratch)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, items))
    finally:
        torch.set_num_threads(threads)


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def resolve_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for Monte-Carlo inference's stochastic layers, or None for full float32.

    "auto" is bfloat16 on a CUDA device that supports it (float16 on older GPUs) and float32 on
    CPU, where reduced precision is rarely faster. Only the dropout body of the luminosity branch
    runs in reduced precision; the standardisation, the log-linear term, the heads (exp/softplus)
    and the offset stay in float32 (see :meth:`zpdist.nn.model.ZeroPointNet.forward`).

    Raises
    ------
    ValueError
        If ``requested`` is not one of :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise InputError(f"--precision {requested}: not one of {', '.join(PRECISIONS)}")
    if requested == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None if requested == "float32" else getattr(torch, requested)
