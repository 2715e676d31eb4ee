"""A plane fitted to a multivariate offset model: Δϖ's dependence on G, BP−RP and Teff in three numbers with errors.

Δϖ(G, BP−RP, Teff) ≈ c + s_G·(G − 13) + s_C·(BP−RP − 1.3) + s_T·(Teff − 4750 K)/1000 is fitted by least squares to
the model's Δϖ at the training stars, once per shared-mask Monte-Carlo pass of the offset network (one draw of
its weights for every star). The mean over the passes is the plane; the spread is its Monte-Carlo (network)
error. The statistical error of the offset's level is added to the intercept's; the slopes' own statistical
error (how well the data fix the dependence, network frozen) is not estimated here.
"""

from __future__ import annotations

import numpy as np
import torch

from zpdist.nn.offset import PASS_BLOCK, OffsetModel

#: The plane's pivot (G in mag, BP−RP in mag, Teff in K): the mock's and the paper's reference star.
PIVOT = (13.0, 1.3, 4750.0)
#: Names of the plane's coefficients in ``summary.json`` (µas, µas/mag, µas/mag, µas/kK).
COEFFICIENTS = ("intercept_uas", "slope_g_uas_per_mag", "slope_bp_rp_uas_per_mag", "slope_teff_uas_per_kk")


def design_matrix(offset_inputs: np.ndarray) -> np.ndarray:
    """Columns 1, G − 13, BP−RP − 1.3, (Teff − 4750)/1000 for rows of (G, BP−RP, Teff)."""
    g, colour, teff = (offset_inputs[:, i].astype(np.float64) for i in range(3))
    return np.column_stack([np.ones(len(g)), g - PIVOT[0], colour - PIVOT[1], (teff - PIVOT[2]) / 1000.0])


@torch.no_grad()
def offset_plane(offset: OffsetModel, offset_inputs: torch.Tensor, n_passes: int, seed: int, level_error_mas: float):
    """The plane of a multivariate offset model over the stars of ``offset_inputs`` (rows with a NaN are left out).

    Parameters
    ----------
    offset : OffsetModel
        A model that reads its inputs (``needs_inputs``).
    offset_inputs : Tensor, shape (N, 3)
        G (mag), BP−RP (mag), Teff (K) of the training stars.
    n_passes : int
        Shared-mask Monte-Carlo passes (at least 2).
    seed : int
        Seed of the passes' masks.
    level_error_mas : float
        Statistical error of the offset's level (mas), added in quadrature to the intercept's.

    Returns
    -------
    dict
        ``pivot`` and, for each of :data:`COEFFICIENTS`, ``[value, error]`` (µas, µas/mag, µas/kK).
    """
    rows = offset_inputs[torch.isfinite(offset_inputs).all(dim=1)]
    design = design_matrix(rows.cpu().numpy())
    h = offset.stem(rows, len(rows))
    generator = torch.Generator(device=h.device).manual_seed(seed)
    solve = np.linalg.pinv(design)  # (4, N): least squares for every pass at once
    planes = []
    for start in range(0, n_passes, PASS_BLOCK):
        values = offset.masked_body(h, offset.draw_masks(min(PASS_BLOCK, n_passes - start), generator))
        planes.append(values.double().cpu().numpy() @ solve.T)
    planes = 1000.0 * np.concatenate(planes)  # (passes, 4) in µas
    errors = planes.std(axis=0)
    errors[0] = np.hypot(errors[0], 1000.0 * level_error_mas)
    return {
        "pivot": {"g": PIVOT[0], "bp_rp": PIVOT[1], "teff": PIVOT[2]},
        **{name: [float(v), float(e)] for name, v, e in zip(COEFFICIENTS, planes.mean(axis=0), errors, strict=True)},
    }
