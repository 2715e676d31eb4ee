"""Conversions between parallax, "fakemag" pseudo-luminosity, distance and absolute magnitude.

All functions are pure, vectorised numpy: they accept scalars or arrays, broadcast, and
return NaN wherever an input is NaN or the result is undefined (for example a distance
from a non-positive pseudo-luminosity). Negative parallaxes are allowed wherever the
formula stays defined (fakemag is linear in parallax, see docs/method.md §2).

Units: parallax in mas, distance in pc, magnitudes in mag, luminosity in solar units.

Examples
--------
A star 1 kpc away (ϖ = 1 mas) with K = 10 has L = 100, M_K = 0 and is 10^1.308 ≈ 20 times as luminous
in K as the Sun; every conversion leads back to where it started:

>>> from zpdist import photometry as ph
>>> fakemag = ph.mag_parallax_to_fakemag(10.0, [1.0])
>>> fakemag, ph.fakemag_to_absmag(fakemag), ph.fakemag_to_log_solar_luminosity(fakemag)
(array([100.]), array([0.]), array([1.308]))
>>> ph.fakemag_to_distance(fakemag, 10.0), ph.fakemag_to_parallax(fakemag, 10.0)
(array([1000.]), array([1.]))
>>> ph.distance_to_parallax(ph.fakemag_to_distance(fakemag, 10.0))
array([1.])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: Absolute K-band magnitude of the Sun (mag), docs/method.md §2.
SOLAR_ABSMAG_K = 3.27


def _as_float(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def mag_parallax_to_fakemag(mag: ArrayLike, parallax: ArrayLike) -> np.ndarray:
    """Pseudo-luminosity L = ϖ · 10^(0.2 m).

    Parameters
    ----------
    mag : array_like
        Apparent magnitude, extinction-corrected (mag).
    parallax : array_like
        Parallax (mas); may be negative.

    Returns
    -------
    ndarray
        fakemag L (dimensionless); equal to 10^(0.2 M + 2) for a noise-free parallax.

    Examples
    --------
    Linear in ϖ, so defined for negative and zero parallaxes too:

    >>> mag_parallax_to_fakemag(10.0, [1.0, -0.5, 0.0])
    array([100., -50.,   0.])
    """
    return _as_float(parallax) * 10.0 ** (0.2 * _as_float(mag))


def fakemag_error_from_parallax(fakemag: ArrayLike, parallax: ArrayLike, parallax_error: ArrayLike) -> np.ndarray:
    """Propagated fakemag error σ_L = |σ_ϖ / ϖ| · L (docs/method.md §2).

    Parameters
    ----------
    fakemag : array_like
        Pseudo-luminosity L.
    parallax, parallax_error : array_like
        Parallax and its error (mas).

    Returns
    -------
    ndarray
        σ_L, non-negative; NaN where ϖ = 0.

    Examples
    --------
    σ_L = σ_ϖ · 10^(0.2 m) whatever the sign of ϖ (here K = 10, σ_ϖ = 0.1 mas):

    >>> fakemag_error_from_parallax([100.0, -50.0], [1.0, -0.5], [0.1, 0.1])
    array([10., 10.])
    """
    parallax = _as_float(parallax)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(_as_float(parallax_error) / np.where(parallax == 0, np.nan, parallax))
    return ratio * np.abs(_as_float(fakemag))


def fakemag_to_parallax(fakemag: ArrayLike, mag: ArrayLike) -> np.ndarray:
    """Parallax (mas) implied by a pseudo-luminosity at apparent magnitude ``mag``: ϖ = L · 10^(−0.2 m).

    Examples
    --------
    The inverse of :func:`mag_parallax_to_fakemag`, negative parallaxes included:

    >>> fakemag_to_parallax(mag_parallax_to_fakemag(12.0, [0.25, -0.1, 3.0]), 12.0)
    array([ 0.25, -0.1 ,  3.  ])
    """
    return _as_float(fakemag) * 10.0 ** (-0.2 * _as_float(mag))


def fakemag_to_distance(fakemag: ArrayLike, mag: ArrayLike) -> np.ndarray:
    """Distance d = 1000 · 10^(0.2 m) / L in pc; NaN for L ≤ 0.

    Parameters
    ----------
    fakemag : array_like
        Pseudo-luminosity L.
    mag : array_like
        Apparent magnitude, extinction-corrected (mag).

    Examples
    --------
    L = 10^(0.2 M + 2) grows as the star gets fainter: at K = 10, L = 100 (M = 0) is 1 kpc away and
    L = 400 (M ≈ 3.0) 250 pc away; L ≤ 0 has no distance:

    >>> fakemag_to_distance([100.0, 400.0, 0.0, -50.0], 10.0)
    array([1000.,  250.,   nan,   nan])
    """
    fakemag = _as_float(fakemag)
    positive = np.where(fakemag > 0, fakemag, np.nan)
    return 1000.0 * 10.0 ** (0.2 * _as_float(mag)) / positive


def fakemag_to_distance_error(fakemag: ArrayLike, fakemag_error: ArrayLike, distance: ArrayLike) -> np.ndarray:
    """Distance error σ_d = (σ_L / L) · d in the units of ``distance``; NaN for L ≤ 0.

    Examples
    --------
    A 10 % error on L is a 10 % error on d:

    >>> fakemag_to_distance_error([100.0, 0.0], [10.0, 10.0], [1000.0, 1000.0])
    array([100.,  nan])
    """
    fakemag = _as_float(fakemag)
    positive = np.where(fakemag > 0, fakemag, np.nan)
    return _as_float(fakemag_error) / positive * _as_float(distance)


def fakemag_to_absmag(fakemag: ArrayLike) -> np.ndarray:
    """Absolute magnitude M = 5 (log10 L − 2); NaN for L ≤ 0.

    Examples
    --------
    >>> fakemag_to_absmag([100.0, 1000.0, 0.0])
    array([ 0.,  5., nan])
    >>> fakemag_to_absmag(absmag_to_fakemag([-3.0, 0.0, 1.5]))
    array([-3. ,  0. ,  1.5])
    """
    fakemag = _as_float(fakemag)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 5.0 * (np.log10(np.where(fakemag > 0, fakemag, np.nan)) - 2.0)


def absmag_to_fakemag(absmag: ArrayLike) -> np.ndarray:
    """Pseudo-luminosity L = 10^(0.2 M + 2) of an absolute magnitude M (mag).

    Examples
    --------
    M = 0 is L = 100 and 5 mag is a factor of 100; the Sun (M_K = 3.27) has L ≈ 451:

    >>> absmag_to_fakemag([0.0, -5.0, SOLAR_ABSMAG_K])
    array([100.        ,  10.        , 450.81670454])
    """
    return 10.0 ** (0.2 * _as_float(absmag) + 2.0)


def absmag_to_log_solar_luminosity(absmag: ArrayLike, solar_absmag: float = SOLAR_ABSMAG_K) -> np.ndarray:
    """log10(L/L_⊙) = 0.4 (M_⊙ − M) in the band of ``absmag`` (K by default, M_K,⊙ = 3.27).

    Examples
    --------
    >>> absmag_to_log_solar_luminosity([0.0, 3.27, -1.73])
    array([1.308, 0.   , 2.   ])
    """
    return 0.4 * (solar_absmag - _as_float(absmag))


def fakemag_to_log_solar_luminosity(fakemag: ArrayLike, solar_absmag: float = SOLAR_ABSMAG_K) -> np.ndarray:
    """log10(L_K/L_⊙) of a pseudo-luminosity; NaN for L ≤ 0.

    Examples
    --------
    >>> fakemag_to_log_solar_luminosity([100.0, -1.0])
    array([1.308,   nan])
    """
    return absmag_to_log_solar_luminosity(fakemag_to_absmag(fakemag), solar_absmag)


def mag_parallax_to_absmag(mag: ArrayLike, parallax: ArrayLike) -> np.ndarray:
    """Absolute magnitude M = m + 5 log10(ϖ / 100 mas); NaN for ϖ ≤ 0.

    Examples
    --------
    >>> mag_parallax_to_absmag([10.0, 10.0], [1.0, -0.2])
    array([ 0., nan])
    """
    return fakemag_to_absmag(mag_parallax_to_fakemag(mag, parallax))


def parallax_to_distance(parallax: ArrayLike) -> np.ndarray:
    """Distance d = 1000 / ϖ in pc for a parallax in mas; NaN for ϖ ≤ 0.

    Examples
    --------
    >>> parallax_to_distance([2.0, 0.0, -1.0])
    array([500.,  nan,  nan])
    >>> parallax_to_distance(distance_to_parallax([125.0, 2500.0]))
    array([ 125., 2500.])
    """
    parallax = _as_float(parallax)
    return 1000.0 / np.where(parallax > 0, parallax, np.nan)


def distance_to_parallax(distance: ArrayLike) -> np.ndarray:
    """Parallax ϖ = 1000 / d in mas for a distance in pc; NaN for d ≤ 0.

    Examples
    --------
    >>> distance_to_parallax([1000.0, 8125.0])
    array([1.        , 0.12307692])
    """
    distance = _as_float(distance)
    return 1000.0 / np.where(distance > 0, distance, np.nan)


def extinction_corrected_mag(mag: ArrayLike, extinction: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Extinction-corrected magnitude m − A, treating a missing or negative A as 0.

    Parameters
    ----------
    mag : array_like
        Apparent magnitude (mag).
    extinction : array_like
        Extinction in the same band (mag), e.g. APOGEE ``AK_TARG``; NaN means missing.

    Returns
    -------
    corrected : ndarray
        m − A, or m where A was missing or negative; NaN where ``mag`` is NaN.
    flag : ndarray of bool
        True where A was missing or negative and 0 was used instead.

    Examples
    --------
    >>> extinction_corrected_mag([10.0, 10.0, 10.0], [0.2, np.nan, -0.05])
    (array([ 9.8, 10. , 10. ]), array([False,  True,  True]))
    """
    extinction = _as_float(extinction)
    flag = ~(extinction >= 0)
    used = np.where(flag, 0.0, extinction)
    return _as_float(mag) - used, np.broadcast_to(flag, np.broadcast(mag, extinction).shape).copy()


def inverse_variance_mean(
    value_a: ArrayLike, error_a: ArrayLike, value_b: ArrayLike, error_b: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean of two measurements, using whichever are finite.

    Returns
    -------
    mean, error : ndarray
        The combination and its error; a single finite measurement is returned as is,
        NaN where neither is finite.

    Examples
    --------
    Weights 1 and 1/4 give (1 + 3/4) / (5/4) = 1.4 ± 1/√(5/4); a missing value leaves the other:

    >>> inverse_variance_mean([1.0, np.nan], [1.0, 1.0], [3.0, 8.0], [2.0, 0.5])
    (array([1.4, 8. ]), array([0.89442719, 0.5       ]))
    """
    value_a, error_a, value_b, error_b = (_as_float(v) for v in (value_a, error_a, value_b, error_b))
    ok_a = np.isfinite(value_a) & np.isfinite(error_a) & (error_a > 0)
    ok_b = np.isfinite(value_b) & np.isfinite(error_b) & (error_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_a = np.where(ok_a, 1.0 / error_a**2, 0.0)
        w_b = np.where(ok_b, 1.0 / error_b**2, 0.0)
        total = w_a + w_b
        mean = (np.where(ok_a, value_a, 0.0) * w_a + np.where(ok_b, value_b, 0.0) * w_b) / total
        error = 1.0 / np.sqrt(total)
    none = total == 0
    return np.where(none, np.nan, mean), np.where(none, np.nan, error)
