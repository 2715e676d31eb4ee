"""Device choice, in one place: CUDA when available, else CPU; ``--device`` overrides."""

from __future__ import annotations

import torch


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
        raise ValueError(f"--device {requested}: CUDA is not available on this machine (use auto or cpu)")
    try:
        return torch.device(requested)
    except RuntimeError as exc:
        raise ValueError(f"--device {requested}: not a device name (auto, cpu, cuda, cuda:N)") from exc


def default_mc_rows(device: torch.device) -> int:
    """Rows (stars × Monte-Carlo samples) per forward pass: bounded memory on CPU, large batches on GPU."""
    return 32768 if device.type == "cuda" else 4096
