"""Where mock stars are: drawn from the Milky-Way density model (:mod:`zpdist.galaxy_model`), and a dust disk.

Positions are Galactocentric Cartesian (kpc) in astropy's convention (Sun at x ≈ −R0, rotation along +y).
"""

from __future__ import annotations

import numpy as np

from zpdist.galaxy_model import BAR, COMPONENT_WEIGHTS, THICK_DISK, THIN_DISK

DUST = {"scale_length": 3.0, "scale_height": 0.1, "local_av_per_kpc": 0.7}
# Extinction in each band relative to A_V
EXTINCTION_RATIOS = {"j": 0.282, "h": 0.175, "k": 0.112, "g": 0.80, "bp": 1.00, "rp": 0.59}


def _disk(rng: np.random.Generator, n: int, scale_length: float, scale_height: float) -> np.ndarray:
    radius = np.minimum(rng.gamma(2.0, scale_length, n), 25.0)  # surface density ∝ exp(−R/h) → p(R) ∝ R e^(−R/h)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    z = rng.laplace(0.0, scale_height, n)
    return np.column_stack([radius * np.cos(phi), radius * np.sin(phi), z])


def _bar(rng: np.random.Generator, n: int) -> np.ndarray:
    major = rng.normal(0.0, BAR["sigma_major"], n)
    minor = rng.normal(0.0, BAR["sigma_minor"], n)
    angle = np.radians(BAR["angle_deg"])  # near end at positive Galactic longitude
    x = -major * np.cos(angle) + minor * np.sin(angle)
    y = major * np.sin(angle) + minor * np.cos(angle)
    return np.column_stack([x, y, rng.normal(0.0, BAR["sigma_z"], n)])


def draw_galaxy_positions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` positions from the whole-Galaxy density model.

    Returns
    -------
    xyz : ndarray, shape (n, 3)
        Galactocentric x, y, z (kpc).
    component : ndarray of int
        0 thin disk, 1 thick disk, 2 bar/bulge.
    """
    component = rng.choice(3, size=n, p=COMPONENT_WEIGHTS)
    xyz = np.empty((n, 3))
    for index, draw in enumerate(
        (
            lambda m: _disk(rng, m, **THIN_DISK),
            lambda m: _disk(rng, m, **THICK_DISK),
            lambda m: _bar(rng, m),
        )
    ):
        chosen = component == index
        xyz[chosen] = draw(int(chosen.sum()))
    return xyz, component


def draw_local_positions(rng: np.random.Generator, n: int, sun_xyz: np.ndarray, radius_kpc: float = 1.5) -> np.ndarray:
    """Draw ``n`` thin-disk positions within ``radius_kpc`` of the Sun (for dwarfs, seen only nearby).

    Uniform in the sphere, then thinned by the thin disk's vertical profile exp(−|z|/h_z).
    """
    out = np.empty((0, 3))
    while len(out) < n:
        m = 4 * (n - len(out)) + 64
        direction = rng.normal(size=(m, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        r = radius_kpc * rng.random(m) ** (1.0 / 3.0)
        xyz = sun_xyz + direction * r[:, None]
        keep = rng.random(m) < np.exp(-np.abs(xyz[:, 2]) / THIN_DISK["scale_height"])
        out = np.vstack([out, xyz[keep]])
    return out[:n]


def dust_density(xyz: np.ndarray, r0_kpc: float) -> np.ndarray:
    """dA_V/ds (mag/kpc) at Galactocentric positions: an exponential dust disk, 0.7 mag/kpc at the Sun."""
    radius = np.hypot(xyz[..., 0], xyz[..., 1])
    return DUST["local_av_per_kpc"] * np.exp(
        -(radius - r0_kpc) / DUST["scale_length"] - np.abs(xyz[..., 2]) / DUST["scale_height"]
    )


def extinction_av(sun_xyz: np.ndarray, star_xyz: np.ndarray, r0_kpc: float, n_steps: int = 48) -> np.ndarray:
    """A_V (mag) integrated along the line of sight from the Sun to each star (midpoint rule)."""
    fractions = (np.arange(n_steps) + 0.5) / n_steps
    path = star_xyz - sun_xyz
    length = np.linalg.norm(path, axis=1)
    av = np.zeros(len(star_xyz))
    for f in fractions:
        av += dust_density(sun_xyz + f * path, r0_kpc)
    return av * length / n_steps
