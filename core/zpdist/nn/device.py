"""Device and arithmetic choice, in one place: CUDA when available, else CPU (``--device`` overrides);
bfloat16 Monte-Carlo inference on CUDA, float32 on CPU (``--precision`` overrides)."""

from __future__ import annotations

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
