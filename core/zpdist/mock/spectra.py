"""A forward model of continuum-normalised APOGEE-like spectra on the 7,514-pixel grid.

Each spectrum is F = exp(−Σ_l τ_l φ_l) with Gaussian line profiles φ_l (peak 1) and line strengths

    log10 τ_l = log10 τ0_l + [X_l/H] + χ_l (θ − 1) + γ_l (log g − 2.5),    θ = 5040 / T_eff,

so that every line responds to its element's abundance, to temperature (χ: molecules strongest in
cool stars, hydrogen in hot ones) and to surface gravity (γ: ionised lines and molecules stronger at
low gravity, hydrogen at high gravity). Gravity, and through [C/N] the mass of giants, is therefore
encoded in the spectrum, so luminosity is recoverable from it as in real data. The line list is
fixed (its own seed), like the physics of a real spectrograph; only the stars change.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from zpdist.io.columns import ELEMENTS
from zpdist.io.spectra import N_PIXELS

LINE_LIST_SEED = 20190222
BAD_PIXEL_FRACTION = 0.005

# species (molecular bands suffixed "_band", so the CO molecule and cobalt stay apart):
# (number of lines, log10 τ0 range, χ range, γ range, width range in pixels)
_SPECIES: dict[str, tuple[int, tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "FE": (380, (-1.5, 0.4), (1.0, 4.0), (-0.05, 0.15), (1.0, 2.0)),
    "FEII": (30, (-1.2, 0.0), (-1.0, 0.5), (-0.40, -0.25), (1.0, 2.0)),
    "CN_band": (240, (-1.4, 0.2), (4.0, 8.0), (-0.35, -0.10), (0.9, 1.3)),
    "CO_band": (120, (-1.2, 0.4), (3.0, 6.0), (-0.30, -0.10), (0.9, 1.3)),
    "OH_band": (120, (-1.4, 0.2), (5.0, 8.0), (-0.30, -0.10), (0.9, 1.3)),
    "H": (8, (-0.5, 0.0), (-7.0, -5.0), (0.20, 0.40), (12.0, 20.0)),
}
_ATOMIC_LINES = {"C": 8, "NA": 4, "MG": 30, "AL": 8, "SI": 30, "S": 8, "K": 4, "CA": 15,
                 "TIII": 6, "V": 6, "MN": 10, "CO": 6, "NI": 25}  # fmt: skip
for _element, _n in _ATOMIC_LINES.items():
    _gamma = (-0.40, -0.25) if _element == "TIII" else (-0.05, 0.15)
    _SPECIES[_element] = (_n, (-1.3, 0.3), (0.5, 3.5), _gamma, (1.0, 2.0))

#: Abundance features the line strengths depend on: [Fe/H] then [X/H] for each of the 15 elements.
FEATURES = ("fe_h", *(f"{el.lower()}_h" for el in ELEMENTS))


class SpectrumModel:
    """The fixed line list and the linear algebra that turns stellar labels into spectra."""

    def __init__(self) -> None:
        rng = np.random.default_rng(LINE_LIST_SEED)
        n_feat = len(FEATURES) + 2  # abundances, θ − 1, log g − 2.5
        design_columns, log_tau0, centres, widths = [], [], [], []
        for species, (n_lines, tau_range, chi_range, gamma_range, width_range) in _SPECIES.items():
            weights = np.zeros(n_feat)
            if species in ("FE", "FEII"):
                weights[FEATURES.index("fe_h")] = 1.0
            elif species == "CN_band":
                weights[FEATURES.index("c_h")] = weights[FEATURES.index("n_h")] = 0.6
            elif species == "CO_band":
                weights[FEATURES.index("c_h")] = 1.0
            elif species == "OH_band":
                weights[FEATURES.index("o_h")] = 1.0
            elif species != "H":
                weights[FEATURES.index(f"{species.lower()}_h")] = 1.0
            for _ in range(n_lines):
                column = weights.copy()
                column[-2] = rng.uniform(*chi_range)
                column[-1] = rng.uniform(*gamma_range)
                design_columns.append(column)
            log_tau0.append(rng.uniform(*tau_range, n_lines))
            centres.append(rng.uniform(0, N_PIXELS, n_lines))
            widths.append(rng.uniform(*width_range, n_lines))
        self.design = np.array(design_columns).T  # (n_feat, n_lines)
        self.log_tau0 = np.concatenate(log_tau0)
        self.centres = np.concatenate(centres)  # pixels
        self.widths = np.concatenate(widths)  # Gaussian σ, pixels
        self.profiles = _gaussian_profiles(self.centres, self.widths)
        self.profiles_t = self.profiles.T.tocsr()
        self.pixel_noise = 0.8 + 0.5 * rng.random(N_PIXELS)  # fixed per-pixel sensitivity pattern

    @property
    def n_lines(self) -> int:
        """Number of lines in the list."""
        return len(self.log_tau0)

    def noiseless(
        self,
        teff: np.ndarray,
        logg: np.ndarray,
        abundances_h: dict[str, np.ndarray],
        shift_pix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Noise-free normalised spectra, shape (n_stars, 7514), float32.

        Parameters
        ----------
        teff, logg : ndarray
            T_eff (K) and log g (dex).
        abundances_h : dict of ndarray
            [Fe/H] and [X/H] (dex) keyed by the names in :data:`FEATURES`.
        shift_pix : ndarray, optional
            Per-star shift of every line (pixels; a radial velocity, 1 px = 4.14 km/s): each profile is
            evaluated at its shifted centre, so a sub-pixel shift is exact.
        """
        labels = np.column_stack(
            [abundances_h[name] for name in FEATURES] + [5040.0 / np.asarray(teff) - 1.0, np.asarray(logg) - 2.5]
        )
        tau = 10.0 ** (labels @ self.design + self.log_tau0)
        if shift_pix is None:
            depth = np.asarray(self.profiles_t @ tau.T).T
        else:
            depth = self._shifted_depth(tau, np.asarray(shift_pix, float))
        return np.exp(-depth).astype(np.float32)

    def _shifted_depth(self, tau: np.ndarray, shift_pix: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Σ_l τ_l φ_l(x − δ) per star: the profiles (truncated at ±4σ) evaluated at centres moved by δ (pixels)."""
        margin = int(np.ceil(np.max(np.abs(shift_pix), initial=0.0))) + 1
        lo = np.maximum(0, np.floor(self.centres - 4 * self.widths).astype(int) - margin)
        hi = np.minimum(N_PIXELS - 1, np.ceil(self.centres + 4 * self.widths).astype(int) + margin)
        lines = np.repeat(np.arange(self.n_lines), hi - lo + 1)
        pixels = np.arange(len(lines)) - np.repeat(np.cumsum(hi - lo + 1) - (hi - lo + 1), hi - lo + 1) + lo[lines]
        scatter = sp.csr_matrix((np.ones(len(lines)), (np.arange(len(lines)), pixels)), shape=(len(lines), N_PIXELS))
        depth = np.empty((len(tau), N_PIXELS))
        for start in range(0, len(tau), chunk):
            rows = slice(start, start + chunk)
            offset = (pixels[None, :] - self.centres[lines][None, :] - shift_pix[rows, None]) / self.widths[lines]
            values = np.where(np.abs(offset) <= 4.0, tau[rows][:, lines] * np.exp(-0.5 * offset**2), 0.0)
            depth[rows] = (scatter.T @ values.T).T
        return depth

    def observe(self, rng: np.random.Generator, flux: np.ndarray, snr: np.ndarray) -> np.ndarray:
        """Add Gaussian noise of σ = pixel pattern / SNR and set a random 0.5 % of bad pixels to 1."""
        sigma = (self.pixel_noise[None, :] / np.asarray(snr)[:, None]).astype(np.float32)
        noisy = flux + sigma * rng.standard_normal(flux.shape, dtype=np.float32)
        noisy[rng.random(flux.shape) < BAD_PIXEL_FRACTION] = 1.0
        return noisy


def _gaussian_profiles(centres: np.ndarray, widths: np.ndarray) -> sp.csr_matrix:
    """Sparse (n_lines, 7514) matrix of Gaussian profiles of peak 1, truncated at ±4σ."""
    rows, cols, vals = [], [], []
    for line, (centre, width) in enumerate(zip(centres, widths, strict=True)):
        pixels = np.arange(max(0, int(centre - 4 * width)), min(N_PIXELS, int(centre + 4 * width) + 1))
        rows.append(np.full(len(pixels), line))
        cols.append(pixels)
        vals.append(np.exp(-0.5 * ((pixels - centre) / width) ** 2))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(centres), N_PIXELS)
    )


@lru_cache(maxsize=1)
def spectrum_model() -> SpectrumModel:
    """The shared, fixed spectrum model (built once per process)."""
    return SpectrumModel()
