"""Monte-Carlo-dropout inference (docs/method.md §6), and the model's checkpoint file.

For each star, T passes with dropout on give L_t and s_t. Model (epistemic) variance = Var_t(L_t);
predictive (aleatoric) variance = mean_t exp(s_t); total σ_L = sqrt(model + predictive). The
deterministic stem of each branch is evaluated once per star and only the stochastic body is
repeated T times, in batches of about ``max_rows`` star-samples.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zpdist.errors import FileFormatError, MissingInputError
from zpdist.nn.device import resolve_precision
from zpdist.nn.model import ModelConfig, ZeroPointNet, enable_mc_dropout, state_dict_from_v1

MODEL_FILE = "model.pt"
#: Checkpoint format written; "zpdist-model-v1" (before the model's components) is still read.
MODEL_FORMAT = "zpdist-model-v2"
V1_FORMAT = "zpdist-model-v1"


@dataclass
class MCPrediction:
    """Per-star Monte-Carlo results (float64 arrays, NaN where the inputs were invalid).

    Attributes
    ----------
    fakemag : ndarray
        Mean predicted L over the passes.
    fakemag_model_var, fakemag_pred_var : ndarray
        Model (variance of the passes) and predictive (mean of e^s) variance of L.
    offset, offset_std : ndarray
        Mean and standard deviation of the offset branch over the passes (mas).
    """

    fakemag: np.ndarray
    fakemag_model_var: np.ndarray
    fakemag_pred_var: np.ndarray
    offset: np.ndarray
    offset_std: np.ndarray

    @property
    def fakemag_error(self) -> np.ndarray:
        """Total σ_L = sqrt(model + predictive variance)."""
        return np.sqrt(self.fakemag_model_var + self.fakemag_pred_var)

    @classmethod
    def empty(cls, n: int) -> MCPrediction:
        return cls(*(np.full(n, np.nan) for _ in range(5)))

    def fill(self, rows: np.ndarray, other: MCPrediction) -> None:
        """Copy ``other``'s values into positions ``rows``."""
        for name in ("fakemag", "fakemag_model_var", "fakemag_pred_var", "offset", "offset_std"):
            getattr(self, name)[rows] = getattr(other, name)


@torch.inference_mode()
def mc_predict(
    model: ZeroPointNet,
    inputs: np.ndarray,
    offset_inputs: np.ndarray | None,
    n_samples: int,
    device: torch.device,
    max_rows: int = 4096,
    precision: str = "float32",
) -> MCPrediction:
    """Monte-Carlo-dropout predictions for rows whose inputs are all finite.

    Parameters
    ----------
    model : ZeroPointNet
    inputs : ndarray, shape (N, n_inputs)
        Spectra or labels (not standardised).
    offset_inputs : ndarray, shape (N, 3), optional
        G, BP−RP, Teff; needed by an offset model that reads them (``model.offset.needs_inputs``).
    n_samples : int
        Number of Monte-Carlo passes T (≥ 1; with 1, dropout is off and variances of the passes are 0).
    device : torch.device
    max_rows : int
        Star-samples per forward pass (memory bound).
    precision : {"float32", "auto", "bfloat16", "float16"}
        Arithmetic of the repeated dropout layers (see :func:`zpdist.nn.device.resolve_precision`);
        "auto" is bfloat16 on CUDA and float32 on CPU.
    """
    body_dtype = resolve_precision(precision, device)
    n = len(inputs)
    out = MCPrediction.empty(n)
    needs_offset_inputs = model.offset.needs_inputs
    valid = np.isfinite(inputs).all(axis=1)
    if needs_offset_inputs:
        valid &= np.isfinite(offset_inputs).all(axis=1)
    rows = np.flatnonzero(valid)
    if n_samples > 1:
        enable_mc_dropout(model)
    else:
        model.eval()
    stars_per_batch = max(1, max_rows // max(n_samples, 1))
    for start in range(0, len(rows), stars_per_batch):
        chunk = rows[start : start + stars_per_batch]
        x = torch.as_tensor(inputs[chunk], dtype=torch.float32, device=device)
        z = torch.as_tensor(offset_inputs[chunk], dtype=torch.float32, device=device) if needs_offset_inputs else None
        result = model(x, z, n_samples=n_samples, body_dtype=body_dtype)
        fakemag, log_var, offset = (
            result[k].double().reshape(len(chunk), -1) for k in ("fakemag", "log_var", "offset")
        )
        part = MCPrediction(
            fakemag=fakemag.mean(1).cpu().numpy(),
            fakemag_model_var=fakemag.var(1, unbiased=False).cpu().numpy(),
            fakemag_pred_var=torch.exp(log_var).mean(1).cpu().numpy(),
            offset=offset.mean(1).cpu().numpy(),
            offset_std=offset.std(1, unbiased=False).cpu().numpy(),
        )
        out.fill(chunk, part)
    model.eval()
    return out


def save_model(path: Path, model: ZeroPointNet, metadata: dict) -> None:
    """Write a checkpoint that ``torch.load(path, weights_only=True)`` can read (tensors and plain types)."""
    from zpdist.io.atomic import atomic_path

    payload = {
        "format": MODEL_FORMAT,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata_json": json.dumps(metadata),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(run_dir: str | Path, device: torch.device) -> tuple[ZeroPointNet, dict]:
    """Load ``RUN_DIR/model.pt`` (safely, ``weights_only=True``).

    Returns
    -------
    model : ZeroPointNet
        On ``device``, in evaluation mode.
    metadata : dict
        What training recorded: label columns, training cuts, offset summary, configuration.

    Raises
    ------
    MissingInputError
        If the folder has no ``model.pt``.
    FileFormatError
        If the file is not a zpdist model, or one whose weights do not fit its configuration; the one-line
        message names the file and the problem (v1 models are read, their keys mapped to the components).
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise MissingInputError(f"{path}: no trained model here (run `zpdist train --out {run_dir}` first)")
    payload = read_torch_file(path, "zpdist model")
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found not in (MODEL_FORMAT, V1_FORMAT):
        raise FileFormatError(f"{path}: not a zpdist model (format {found!r})")
    try:
        state = payload["state_dict"]
        model = ZeroPointNet(ModelConfig(**payload["model_config"]))
        model.load_state_dict(state_dict_from_v1(state) if found == V1_FORMAT else state)
        metadata = json.loads(payload["metadata_json"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"{path}: a zpdist model that cannot be loaded: {summarise_error(exc)}") from None
    return model.to(device).eval(), metadata


#: The first bytes of every file ``torch.save`` writes (a zip archive).
_TORCH_ARCHIVE_MAGIC = b"PK\x03\x04"


def read_torch_file(path: Path, what: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with a one-line error naming the file and the problem.

    torch's own messages (which, for a file holding Python objects, suggest loading it with
    ``weights_only=False``, i.e. running its code) never reach the user.

    Parameters
    ----------
    path : Path
        The file.
    what : str
        What it should be, for the message (e.g. "zpdist model").

    Raises
    ------
    FileFormatError
        If the file is empty, not a PyTorch archive, truncated or damaged, or holds anything but tensors
        and plain values.
    """
    with open(path, "rb") as handle:
        head = handle.read(len(_TORCH_ARCHIVE_MAGIC))
    if not head:
        raise FileFormatError(f"{path}: the {what} file is empty (0 bytes)")
    if head != _TORCH_ARCHIVE_MAGIC:
        raise FileFormatError(f"{path}: not a {what}: not a PyTorch archive (it begins with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FileFormatError(
            f"{path}: not a {what}: it holds Python objects other than tensors and plain values, which zpdist "
            "never writes (refused without running them)"
        ) from None
    except Exception as exc:  # a cut or damaged archive fails as OSError, RuntimeError, EOFError, IndexError, ...
        raise FileFormatError(
            f"{path}: not a readable {what}: the PyTorch archive is truncated or damaged ({type(exc).__name__})"
        ) from None


def summarise_error(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
