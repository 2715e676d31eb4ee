"""Instrument nuisances of the realistic mock's spectra (docs/method.md §10), each a small function on a batch.

All act on continuum-normalised spectra of shape (n_stars, 7514) on the network's grid, whose three chips
(:data:`CHIP_EDGES`) are separate detectors: convolutions and continuum polynomials never cross a chip edge.
The sub-pixel radial-velocity shift is applied to the line profiles themselves
(:meth:`zpdist.mock.spectra.SpectrumModel.noiseless`), before the star's lines meet the instrument.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from numpy.polynomial import legendre
from scipy.special import ndtr

from zpdist.io.spectra import CHIP_SLICES, N_PIXELS
from zpdist.mock.realism import Realism

#: Pixel edges of the three chips on the 7,514-pixel grid: chip i is [CHIP_EDGES[i], CHIP_EDGES[i + 1]).
CHIP_EDGES: tuple[int, ...] = tuple(np.cumsum([0] + [s.stop - s.start for s in CHIP_SLICES]).tolist())
#: Seed of the fixed sky-line positions (the sky's lines, like a spectrograph's, do not change with the star).
SKY_LINE_SEED = 5577
#: Gaussian σ (pixels) of a sky-line residual.
SKY_LINE_WIDTH_PIX = 1.0


def saturate(flux: np.ndarray, floor: float) -> np.ndarray:
    """Clip the normalised flux at ``floor``: cores of lines deeper than that are flat and carry no signal."""
    return np.maximum(flux, np.float32(floor))


def lsf_kernels(sigma_pix: np.ndarray, half_width: int) -> np.ndarray:
    """Pixel-integrated unit-area Gaussian kernels, shape (n, 2 half_width + 1), of σ ``sigma_pix`` (pixels).

    σ = 0 gives the identity (1 at the centre).
    """
    sigma = np.maximum(np.asarray(sigma_pix, float), 1e-9)[:, None]
    k = np.arange(-half_width, half_width + 1)[None, :]
    kernels = ndtr((k + 0.5) / sigma) - ndtr((k - 0.5) / sigma)
    return kernels / kernels.sum(axis=1, keepdims=True)


def broaden(flux: np.ndarray, sigma_pix: np.ndarray) -> np.ndarray:
    """Convolve each spectrum with its own Gaussian LSF broadening σ (pixels), chip by chip (edges repeated)."""
    half_width = int(np.ceil(5.0 * max(float(np.max(sigma_pix, initial=0.0)), 0.2)))
    kernels = lsf_kernels(sigma_pix, half_width).astype(np.float32)
    out = np.empty_like(flux)
    for lo, hi in itertools.pairwise(CHIP_EDGES):
        padded = np.pad(flux[:, lo:hi], ((0, 0), (half_width, half_width)), mode="edge")
        chip = np.zeros((len(flux), hi - lo), dtype=flux.dtype)
        for j in range(2 * half_width + 1):
            chip += kernels[:, j, None] * padded[:, j : j + hi - lo]
        out[:, lo:hi] = chip
    return out


def continuum_factors(rng: np.random.Generator, n: int, rms: float, degree: int) -> np.ndarray:
    """Multiplicative continuum errors, shape (n, 7514): per star and chip 1 + Σ_j a_j P_j(x), x ∈ [−1, 1].

    a_j ~ N(0, rms √((2j + 1)/(degree + 1))) for j = 0 … degree, so that each term adds rms²/(degree + 1) to
    the mean square over a chip (⟨P_j²⟩ = 1/(2j + 1)): the rms about 1 is ``rms`` on average.
    """
    j = np.arange(degree + 1)
    scale = rms * np.sqrt((2 * j + 1) / (degree + 1))
    out = np.empty((n, N_PIXELS), dtype=np.float32)
    for lo, hi in itertools.pairwise(CHIP_EDGES):
        basis = legendre.legvander(np.linspace(-1.0, 1.0, hi - lo), degree)  # (pixels, degree + 1)
        coefficients = rng.normal(0.0, 1.0, (n, degree + 1)) * scale
        out[:, lo:hi] = 1.0 + coefficients @ basis.T
    return out


@lru_cache(maxsize=8)
def sky_line_profiles(n_lines: int) -> np.ndarray:
    """Peak-1 Gaussian profiles of the fixed sky lines, shape (n_lines, 7514), from :data:`SKY_LINE_SEED`."""
    centres = np.random.default_rng(SKY_LINE_SEED).uniform(5.0, N_PIXELS - 5.0, n_lines)
    pixels = np.arange(N_PIXELS)[None, :]
    offsets = (pixels - centres[:, None]) / SKY_LINE_WIDTH_PIX
    profiles = np.where(np.abs(offsets) <= 4.0, np.exp(-0.5 * offsets**2), 0.0)
    profiles.setflags(write=False)
    return profiles


def sky_residuals(rng: np.random.Generator, h_mag: np.ndarray, n_lines: int, rms: float, h_ref: float) -> np.ndarray:
    """Additive sky-line residuals, shape (n, 7514): each line's peak N(0, rms · 10^(0.4 (H − h_ref)))."""
    scale = rms * 10.0 ** (0.4 * (np.asarray(h_mag, float) - h_ref))
    amplitude = rng.normal(0.0, 1.0, (len(scale), n_lines)) * scale[:, None]
    return (amplitude @ sky_line_profiles(n_lines)).astype(np.float32)


def apply_instrument(
    realism: Realism,
    flux: np.ndarray,
    h_mag: np.ndarray,
    lsf_sigma_pix: np.ndarray,
    continuum_rng: np.random.Generator,
    sky_rng: np.random.Generator,
) -> np.ndarray:
    """The nuisances of ``realism`` that are on, in the order light meets them, on noise-free spectra (n, 7514).

    Saturation of the line cores, then the star's LSF broadening (σ in pixels), the continuum-normalisation
    error and the sky-line residuals (scaled by the star's H, mag); the photon noise comes after
    (:meth:`zpdist.mock.spectra.SpectrumModel.observe`).
    """
    if realism.saturation.enabled:
        flux = saturate(flux, realism.saturation.floor)
    if realism.lsf.enabled:
        flux = broaden(flux, lsf_sigma_pix)
    if realism.continuum.enabled:
        flux = flux * continuum_factors(continuum_rng, len(flux), realism.continuum.rms, realism.continuum.degree)
    if realism.sky_residuals.enabled:
        part = realism.sky_residuals
        flux = flux + sky_residuals(sky_rng, h_mag, part.n_lines, part.rms, part.h_ref)
    return flux
