"""Monte-Carlo-dropout inference (METHOD §6) and the uncertainty of the fitted zero-point.

For each star, T passes with dropout on give L_t and s_t. Model (epistemic) variance = Var_t(L_t);
predictive (aleatoric) variance = mean_t exp(s_t); total σ_L = sqrt(model + predictive). The
deterministic stem of each branch is evaluated once per star and only the stochastic body is
repeated T times, in batches of about ``max_rows`` star-samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zpdist.nn.device import resolve_precision
from zpdist.nn.model import ModelConfig, ZeroPointNet, enable_mc_dropout

MODEL_FILE = "model.pt"
MODEL_FORMAT = "zpdist-model-v1"


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


@torch.no_grad()
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
        G, BP−RP, Teff; needed by the multivariate offset model.
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
    multivariate = model.offset_mlp is not None
    valid = np.isfinite(inputs).all(axis=1)
    if multivariate:
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
        z = torch.as_tensor(offset_inputs[chunk], dtype=torch.float32, device=device) if multivariate else None
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


@torch.no_grad()
def global_offset_passes(
    model: ZeroPointNet, offset_inputs: np.ndarray, n_passes: int, device: torch.device, seed: int = 0
) -> np.ndarray:
    """Mean offset (mas) over the given stars for each of ``n_passes`` shared dropout masks.

    Each pass draws one dropout mask for the offset MLP and applies it to every star (one draw
    of the network's weights), so the spread of the returned values is the model uncertainty
    of the global offset. For the constant model every pass returns the fitted constant.
    """
    if model.offset_mlp is None:
        return np.full(n_passes, float(model.offset_mas))
    mlp = model.offset_mlp
    keep = 1.0 - model.config.dropout
    generator = torch.Generator(device=device).manual_seed(seed)
    z = torch.as_tensor(offset_inputs[np.isfinite(offset_inputs).all(axis=1)], dtype=torch.float32, device=device)
    h1 = mlp.stem((z - model.offset_input_mean) / model.offset_input_std)  # (N, 32)
    means = []
    for start in range(0, n_passes, 50):
        t = min(50, n_passes - start)
        mask1 = (torch.rand(t, 1, h1.shape[1], generator=generator, device=device) < keep) / keep
        h2 = torch.tanh(mlp.dense2(h1.unsqueeze(0) * mask1))  # (t, N, 16)
        mask2 = (torch.rand(t, 1, h2.shape[2], generator=generator, device=device) < keep) / keep
        means.append(mlp.out(h2 * mask2).squeeze(-1).mean(1).double().cpu())
    return torch.cat(means).numpy()


@torch.no_grad()
def deterministic_offset(
    model: ZeroPointNet, offset_inputs: np.ndarray | None, n_stars: int, device: torch.device
) -> np.ndarray:
    """Each star's offset (mas) with dropout off; NaN where a multivariate model's inputs are missing."""
    if model.offset_mlp is None:
        return np.full(n_stars, float(model.offset_mas))
    model.eval()
    out = np.full(n_stars, np.nan)
    valid = np.isfinite(offset_inputs).all(axis=1)
    z = torch.as_tensor(offset_inputs[valid], dtype=torch.float32, device=device)
    mlp = model.offset_mlp
    out[valid] = mlp.body(mlp.stem((z - model.offset_input_mean) / model.offset_input_std)).double().cpu().numpy()
    return out


@dataclass
class OffsetLevelFit:
    """Weighted least-squares solution of ϖ_G − Δϖ_i = δ + a·ϖ_NN,i with the network frozen.

    Attributes
    ----------
    shift : float
        δ, the change of the offset's level (mas): added to the constant, or to the MLP's final bias.
    luminosity_scale : float
        a, the factor by which every L should be multiplied.
    covariance : ndarray, shape (2, 2)
        Inverse of the Gauss–Newton Fisher matrix of (δ, a).
    """

    shift: float
    luminosity_scale: float
    covariance: np.ndarray

    @property
    def shift_error(self) -> float:
        """Statistical error of the offset's level (mas), marginalised over the luminosity scale."""
        return float(np.sqrt(self.covariance[0, 0]))


def fit_offset_level(
    offset: np.ndarray,
    parallax_nn: np.ndarray,
    parallax: np.ndarray,
    parallax_error: np.ndarray,
    parallax_nn_error: np.ndarray,
) -> OffsetLevelFit:
    """Maximum-likelihood level of the offset and global luminosity scale, everything else frozen.

    The offset's level and a global scale of L enter the parallax likelihood linearly
    (ϖ_pred = a·ϖ_NN + Δϖ + δ), so with variance σ_ϖ² + σ_NN² per star their optimum follows from
    weighted least squares, and (JᵀWJ)⁻¹ is their statistical covariance, including the degeneracy
    between the zero-point and the luminosity scale.

    Parameters
    ----------
    offset : ndarray
        The current offset of each star (mas, dropout off).
    parallax_nn, parallax_nn_error : ndarray
        Network parallax (offset excluded) and the error the likelihood assigns to it (mas).
    parallax, parallax_error : ndarray
        Gaia parallax and error (mas).
    """
    ok = (
        np.isfinite(offset) & np.isfinite(parallax_nn) & np.isfinite(parallax) & np.isfinite(parallax_error)
        & np.isfinite(parallax_nn_error)
    )  # fmt: skip
    design = np.column_stack([np.ones(ok.sum()), parallax_nn[ok]])
    weight = 1.0 / (parallax_error[ok] ** 2 + parallax_nn_error[ok] ** 2)
    covariance = np.linalg.inv(design.T @ (design * weight[:, None]))
    shift, scale = covariance @ (design.T @ (weight * (parallax[ok] - offset[ok])))
    return OffsetLevelFit(float(shift), float(scale), covariance)


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
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model here (run `zpdist train --out {run_dir}` first)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a zpdist model (format {payload.get('format')!r})")
    model = ZeroPointNet(ModelConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), json.loads(payload["metadata_json"])
