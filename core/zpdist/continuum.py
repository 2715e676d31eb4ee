"""Continuum normalisation of APOGEE spectra, chip by chip, as in APOGEE/ASPCAP and astroNN (pure numpy).

On each of the three detector chips the continuum is a low-order Chebyshev polynomial in pixel index (degree 2
by default, as astroNN's ``apogee_continuum``), fitted by weighted least squares (inverse-variance weights
1/σ², i.e. each residual divided by σ) to the chip's *continuum pixels*, and the flux and its error are divided
by it.

Continuum pixels. APOGEE and astroNN use a fixed list of pseudo-continuum pixels (Bovy's ``apogee`` package,
chosen with The Cannon); it is not available offline, so the pixels are chosen per spectrum by iterative
asymmetric σ-clipping, which walks the fit up out of the absorption lines:

1. fit all usable pixels of the chip (not flagged bad, finite flux and error, σ > 0);
2. standardise the residuals, z = (F − C) / σ, and estimate their noise scale s from the *positive* residuals of
   the pixels in use (root mean square of z > 0: absorption lines only ever push z down, so the positive side
   measures the noise, and s also absorbs errors that are over- or under-estimated);
3. keep the usable pixels with −``clip_low``·s < z < ``clip_high``·s (lines below, cosmic rays and sky residuals
   above), refit, and repeat until the set of pixels no longer changes (or ``max_iterations``).

Lines shallower than ``clip_low``·σ stay in the fit, so the result is a *pseudo*-continuum, as APOGEE's is. On
a synthetic spectrum (quadratic continuum per chip × absorption lines covering half the pixels + noise) it
recovers the continuum to ≤ 0.3 % at S/N 200 and ≤ 1 % at S/N 60. On a warm star it is the upper envelope of
the spectrum (a real DR17 star of T_eff ≈ 5,200 K: median normalised flux 0.994, 99th percentile 1.03). On a
cool M giant, whose molecular bands leave no line-free pixel and curve the pseudo-continuum beyond a quadratic,
the noise scale s grows with that structure and the fit settles near the middle of the spectrum (a real DR17
M giant, T_eff ≈ 3,700 K: median 0.98, 90th percentile 1.12). Either way it is the same deterministic function
of the spectrum for training and prediction, which is what the network needs.

After normalisation every bad pixel (flagged on input, non-finite after division, a non-positive continuum, or a
normalised error above ``max_error``) is set to 1 and its error to :data:`BAD_PIXEL_ERROR` (docs/method.md §3). A chip
with fewer than ``min_pixels`` usable pixels is bad as a whole.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
from numpy.polynomial import chebyshev

from zpdist.errors import InputError
from zpdist.io.spectra import CHIP_SLICES

#: Error given to bad pixels after normalisation (they carry no information).
BAD_PIXEL_ERROR = 1.0e10


def chip_segments() -> tuple[slice, slice, slice]:
    """Slices of the 7,514-pixel grid covered by the blue, green and red chips."""
    bounds = np.cumsum([0] + [s.stop - s.start for s in CHIP_SLICES])
    return tuple(slice(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds))


@dataclass(frozen=True)
class ContinuumConfig:
    """How spectra are continuum-normalised; saved with the ingested spectra.

    Attributes
    ----------
    degree : int
        Degree of the Chebyshev polynomial fitted on each chip (astroNN: 2).
    clip_low, clip_high : float
        Pixels more than ``clip_low`` (below) or ``clip_high`` (above) noise scales from the fit are not continuum.
    max_iterations : int
        Most fit-and-clip iterations per chip.
    min_pixels : int
        Fewest usable pixels a chip needs; with fewer, the whole chip is bad.
    max_error : float
        Normalised error (in units of the continuum) above which a pixel is bad.
    """

    degree: int = 2
    clip_low: float = 2.0
    clip_high: float = 3.0
    max_iterations: int = 30
    min_pixels: int = 100
    max_error: float = 1.0

    def __post_init__(self):
        if self.degree < 0:
            raise InputError(f"degree must be non-negative (got {self.degree})")
        if self.clip_low <= 0 or self.clip_high <= 0:
            raise InputError(f"clip_low and clip_high must be positive (got {self.clip_low}, {self.clip_high})")
        if self.max_iterations < 1:
            raise InputError(f"max_iterations must be at least 1 (got {self.max_iterations})")
        if self.min_pixels < self.degree + 1:
            raise InputError(f"min_pixels ({self.min_pixels}) must exceed the degree ({self.degree})")
        if not self.max_error > 0:
            raise InputError(f"max_error must be positive (got {self.max_error})")

    def to_dict(self) -> dict:
        return asdict(self)


def invalid_pixels(flux: np.ndarray, error: np.ndarray | None) -> np.ndarray:
    """Pixels without a usable measurement: non-finite or zero flux (no data), non-finite or non-positive error."""
    bad = ~np.isfinite(flux) | (flux == 0)
    if error is not None:
        bad |= ~np.isfinite(error) | ~(error > 0)
    return bad


def fit_chip_continuum(
    flux: np.ndarray, error: np.ndarray | None, usable: np.ndarray, config: ContinuumConfig
) -> np.ndarray | None:
    """The continuum of one chip, by iterative asymmetric σ-clipping (see the module's description).

    Parameters
    ----------
    flux : ndarray, shape (n,)
        Flux of the chip's pixels (any units).
    error : ndarray, shape (n,), or None
        1σ flux errors (same units); None: equal weights, the noise scale is then estimated from the residuals.
    usable : ndarray of bool, shape (n,)
        Pixels that may be used (not bad, finite flux and error).
    config : ContinuumConfig
        Degree, clipping and iteration settings.

    Returns
    -------
    ndarray, shape (n,), or None
        The fitted continuum (flux units) at every pixel; None if fewer than ``config.min_pixels`` are usable.
    """
    if int(usable.sum()) < config.min_pixels:
        return None
    vander = chebyshev.chebvander(np.linspace(-1.0, 1.0, len(flux)), config.degree)
    sigma = np.ones(len(flux)) if error is None else np.where(usable, error, 1.0)
    values = np.where(usable, flux, 0.0)
    use = usable.copy()
    continuum = np.zeros(len(flux))
    inverse_variance = 1.0 / sigma**2
    for _ in range(config.max_iterations):
        weighted = vander.T * np.where(use, inverse_variance, 0.0)
        try:
            coef = np.linalg.solve(weighted @ vander, weighted @ values)
        except np.linalg.LinAlgError:
            return None
        continuum = vander @ coef
        z = (values - continuum) / sigma
        positive = z[use & (z > 0)]
        if len(positive) <= config.degree:
            break
        scale = float(np.sqrt(np.mean(positive**2)))
        keep = usable & (z > -config.clip_low * scale) & (z < config.clip_high * scale)
        if int(keep.sum()) < config.min_pixels or np.array_equal(keep, use):
            break
        use = keep
    return continuum


def fit_continuum(
    flux: np.ndarray,
    error: np.ndarray | None,
    bad: np.ndarray,
    config: ContinuumConfig | None = None,
    segments: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """The continuum of a spectrum, fitted chip by chip.

    Parameters
    ----------
    flux, error : ndarray, shape (n,)
        Flux and 1σ error (error may be None: equal weights).
    bad : ndarray of bool, shape (n,)
        Pixels flagged bad on input (e.g. from the APOGEE pixel bitmask); never used in the fit.
    config : ContinuumConfig, optional
        Fit settings.
    segments : tuple of slice, optional
        The chips; default the three chips of the 7,514-pixel grid (:func:`chip_segments`).

    Returns
    -------
    ndarray, shape (n,)
        The continuum (flux units); NaN on chips with too few usable pixels and outside every segment.
    """
    config = config or ContinuumConfig()
    segments = segments or chip_segments()
    flux = np.asarray(flux, dtype=float)
    error = None if error is None else np.asarray(error, dtype=float)
    usable = ~(np.asarray(bad, dtype=bool) | invalid_pixels(flux, error))
    continuum = np.full(len(flux), np.nan)
    for chip in segments:
        chip_error = None if error is None else error[chip]
        fitted = fit_chip_continuum(flux[chip], chip_error, usable[chip], config)
        if fitted is not None:
            continuum[chip] = fitted
    return continuum


def clean_normalised(
    flux: np.ndarray, error: np.ndarray | None, bad: np.ndarray, config: ContinuumConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flag the bad pixels of a normalised spectrum and set them to 1 (error :data:`BAD_PIXEL_ERROR`).

    Parameters
    ----------
    flux, error : ndarray, shape (n,)
        Normalised flux and error (error None: no error-based flagging; the returned error is 0 on good pixels).
    bad : ndarray of bool, shape (n,)
        Pixels already known to be bad.
    config : ContinuumConfig, optional
        Supplies ``max_error``.

    Returns
    -------
    flux, error : ndarray, shape (n,), float64
        The cleaned spectrum and error.
    bad : ndarray of bool, shape (n,)
        Every bad pixel: ``bad``, non-finite or zero flux, non-finite, non-positive or above-``max_error`` error.
    """
    config = config or ContinuumConfig()
    flux = np.asarray(flux, dtype=float)
    error = np.zeros(len(flux)) if error is None else np.asarray(error, dtype=float)
    bad = np.asarray(bad, dtype=bool) | invalid_pixels(flux, None) | ~np.isfinite(error) | (error < 0)
    bad |= error > config.max_error
    return np.where(bad, 1.0, flux), np.where(bad, BAD_PIXEL_ERROR, error), bad


def normalise(
    flux: np.ndarray,
    error: np.ndarray | None,
    bad: np.ndarray,
    config: ContinuumConfig | None = None,
    segments: tuple[slice, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuum-normalise a spectrum chip by chip; bad pixels become 1.

    Parameters
    ----------
    flux, error : ndarray, shape (n,)
        Flux and 1σ error in the same units (error may be None).
    bad : ndarray of bool, shape (n,)
        Pixels flagged bad on input.
    config : ContinuumConfig, optional
        Fit settings.
    segments : tuple of slice, optional
        The chips (default: those of the 7,514-pixel grid).

    Returns
    -------
    flux, error : ndarray, shape (n,), float64
        Normalised flux (dimensionless, ≈ 1 in the continuum) and error; 1 and :data:`BAD_PIXEL_ERROR` on bad pixels.
    bad : ndarray of bool, shape (n,)
        The bad pixels (see :func:`clean_normalised`, plus pixels without a fitted, positive continuum).
    """
    config = config or ContinuumConfig()
    flux = np.asarray(flux, dtype=float)
    error = None if error is None else np.asarray(error, dtype=float)
    bad = np.asarray(bad, dtype=bool) | invalid_pixels(flux, error)
    continuum = fit_continuum(flux, error, bad, config, segments)
    no_continuum = ~(continuum > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = flux / continuum
        normalised_error = None if error is None else error / continuum
    return clean_normalised(normalised, normalised_error, bad | no_continuum, config)
