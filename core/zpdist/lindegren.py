"""The Lindegren et al. (2021) parallax zero-point of Gaia (E)DR3 per star ("L21", docs/method.md §11).

L21 (A&A 649, A4) is the Gaia team's recipe for the parallax bias of Gaia EDR3 (and DR3, which has the same
astrometry): a function Z of the G magnitude, the colour the astrometric solution used (``nu_eff_used_in_astrometry``
for 5-parameter solutions, ``pseudocolour`` for 6-parameter ones, both in µm⁻¹) and the ecliptic latitude β. The
values come from the Gaia team's own implementation, the PyPI package ``gaiadr3-zeropoint`` (module
``zero_point.zpt``), called only on rows inside the range the recipe was fitted on; every other row gets NaN and
a flag, never an extrapolation.

Sign: Z is the parallax bias, ϖ_Gaia − ϖ_true, so the corrected parallax is ``parallax − Z``; it is the same sense
as zpdist's Δϖ (docs/method.md §2). Z is negative for most stars (about −0.02 mas for faint quasar-like sources).
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pandas as pd

#: The recipe's range, as the package checks it (zero_point.zpt.get_zpt): open intervals, the ends excluded.
G_RANGE: tuple[float, float] = (6.0, 21.0)  # mag
NU_EFF_RANGE: tuple[float, float] = (1.1, 1.9)  # µm⁻¹, 5-parameter solutions
PSEUDOCOLOUR_RANGE: tuple[float, float] = (1.24, 1.72)  # µm⁻¹, 6-parameter solutions

#: ``astrometric_params_solved`` of a 5-parameter (position, parallax, proper motion) and a 6-parameter (also the
#: pseudocolour) solution; 2-parameter solutions (3) have no parallax, hence no correction.
FIVE_PARAMETER = 31
SIX_PARAMETER = 95

#: Releases whose parallaxes L21 describes (EDR3 and DR3 share one astrometric solution).
L21_RELEASES: frozenset[str] = frozenset({"EDR3", "DR3"})

#: Canonical columns L21 needs from a table; ``ecl_lat`` may instead be computed from ``ra`` and ``dec``.
L21_COLUMNS: tuple[str, ...] = (
    "phot_g_mean_mag", "nu_eff_used_in_astrometry", "pseudocolour", "astrometric_params_solved",
)  # fmt: skip

#: Obliquity of the ecliptic that Gaia's ``ecl_lon``/``ecl_lat`` use: the IAU 1976 value at J2000,
#: 23°26′21.448″, applied as a pure rotation of the ICRS (the convention of the Hipparcos catalogue, ESA 1997).
GAIA_OBLIQUITY_ARCSEC = 84381.448


@functools.cache
def _zpt() -> ModuleType:
    """``zero_point.zpt`` with its coefficient tables loaded (once per process)."""
    from zero_point import zpt

    zpt.load_tables()
    return zpt


def _in_open(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (values > bounds[0]) & (values < bounds[1])


def l21_valid(
    phot_g_mean_mag: npt.ArrayLike,
    nu_eff_used_in_astrometry: npt.ArrayLike,
    pseudocolour: npt.ArrayLike,
    ecl_lat: npt.ArrayLike,
    astrometric_params_solved: npt.ArrayLike,
) -> np.ndarray:
    """True for the rows inside the range of L21: 6 < G < 21 mag, |β| ≤ 90°, and a 5-parameter solution with
    1.1 < nu_eff < 1.9 µm⁻¹ or a 6-parameter one with 1.24 < pseudocolour < 1.72 µm⁻¹ (NaN anywhere needed: False).

    Parameters are those of :func:`l21_zero_point`.
    """
    g = np.asarray(phot_g_mean_mag, dtype=float)
    nu_eff = np.asarray(nu_eff_used_in_astrometry, dtype=float)
    colour = np.asarray(pseudocolour, dtype=float)
    beta = np.asarray(ecl_lat, dtype=float)
    solved = np.asarray(astrometric_params_solved, dtype=float)
    with np.errstate(invalid="ignore"):
        position = np.abs(beta) <= 90.0
    five = (solved == FIVE_PARAMETER) & _in_open(nu_eff, NU_EFF_RANGE)
    six = (solved == SIX_PARAMETER) & _in_open(colour, PSEUDOCOLOUR_RANGE)
    return _in_open(g, G_RANGE) & position & (five | six)


def l21_zero_point(
    phot_g_mean_mag: npt.ArrayLike,
    nu_eff_used_in_astrometry: npt.ArrayLike,
    pseudocolour: npt.ArrayLike,
    ecl_lat: npt.ArrayLike,
    astrometric_params_solved: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """The L21 parallax zero-point Z of each star (Lindegren et al. 2021, A&A 649, A4), in mas.

    Parameters
    ----------
    phot_g_mean_mag : array_like
        Gaia G (mag).
    nu_eff_used_in_astrometry : array_like
        Effective wavenumber used by a 5-parameter solution (µm⁻¹); NaN for 6-parameter ones.
    pseudocolour : array_like
        Pseudocolour fitted by a 6-parameter solution (µm⁻¹); NaN for 5-parameter ones.
    ecl_lat : array_like
        Ecliptic latitude β (deg), Gaia's ``ecl_lat`` or :func:`ecliptic_latitude`.
    astrometric_params_solved : array_like
        31 (5-parameter) or 95 (6-parameter); anything else is outside the recipe.

    Returns
    -------
    zero_point : numpy.ndarray
        Z (mas), the bias ϖ_Gaia − ϖ_true: the corrected parallax is ``parallax − zero_point``. NaN where
        ``outside`` is True.
    outside : numpy.ndarray of bool
        True where a row is outside the range of :func:`l21_valid` (or an input is missing), so no value is given.

    Examples
    --------
    A faint 5-parameter source on the ecliptic, and one at G = 5.9 (too bright for the recipe):

    >>> zp, outside = l21_zero_point([19.0, 5.9], [1.6, 1.5], [np.nan, np.nan], [0.0, 0.0], [31, 31])
    >>> zp.round(6).tolist(), outside.tolist()
    ([-0.016247, nan], [False, True])
    """
    g = np.asarray(phot_g_mean_mag, dtype=float)
    arrays = [np.broadcast_to(np.asarray(a, dtype=float), g.shape) for a in
              (nu_eff_used_in_astrometry, pseudocolour, ecl_lat, astrometric_params_solved)]  # fmt: skip
    valid = l21_valid(g, *arrays)
    zero_point = np.full(g.shape, np.nan)
    if valid.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package warns on out-of-range rows; none are passed
            zero_point[valid] = _zpt().get_zpt(g[valid], *(a[valid] for a in arrays), _warnings=False)
    outside = ~np.isfinite(zero_point)
    return zero_point, outside


def ecliptic_latitude(ra: npt.ArrayLike, dec: npt.ArrayLike) -> np.ndarray:
    """Ecliptic latitude β (deg) of ICRS positions, as Gaia's ``ecl_lat`` defines it.

    Gaia's ecliptic frame is the ICRS rotated about its x axis by the obliquity 23°26′21.448″
    (:data:`GAIA_OBLIQUITY_ARCSEC`), which is astropy's ``CustomBarycentricEcliptic`` with that obliquity.
    ``BarycentricMeanEcliptic`` (IAU 2006 obliquity and the frame bias) differs from it by at most 0.04″;
    ``GeocentricTrueEcliptic`` by up to 21″ (it adds nutation and annual aberration). Either is far below what L21
    resolves (it depends on sin β smoothly), but this one is Gaia's.

    Parameters
    ----------
    ra, dec : array_like
        ICRS right ascension and declination (deg); NaN gives NaN.

    Returns
    -------
    numpy.ndarray
        β (deg).
    """
    import astropy.units as u
    from astropy.coordinates import ICRS, CustomBarycentricEcliptic

    icrs = ICRS(ra=np.asarray(ra, dtype=float) * u.deg, dec=np.asarray(dec, dtype=float) * u.deg)
    ecliptic = icrs.transform_to(CustomBarycentricEcliptic(obliquity=GAIA_OBLIQUITY_ARCSEC * u.arcsec))
    return np.asarray(ecliptic.lat.to_value(u.deg), dtype=float)


def table_l21(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """L21 for each row of a canonical table (:func:`zpdist.io.tables.read_table`), or None where it does not apply.

    It applies when ``table.attrs["gaia_release"]`` is EDR3 or DR3 and the table holds :data:`L21_COLUMNS` and
    ``ecl_lat`` (else β is computed from ``ra`` and ``dec`` with :func:`ecliptic_latitude`).

    Returns
    -------
    tuple or None
        ``(zero_point, outside)`` of :func:`l21_zero_point` (mas, bool), or None.
    """
    if table.attrs.get("gaia_release") not in L21_RELEASES or not set(L21_COLUMNS) <= set(table.columns):
        return None
    if "ecl_lat" in table:
        beta = table["ecl_lat"].to_numpy(float)
    elif {"ra", "dec"} <= set(table.columns):
        beta = ecliptic_latitude(table["ra"].to_numpy(float), table["dec"].to_numpy(float))
    else:
        return None
    return l21_zero_point(
        table["phot_g_mean_mag"].to_numpy(float),
        table["nu_eff_used_in_astrometry"].to_numpy(float),
        table["pseudocolour"].to_numpy(float),
        beta,
        table["astrometric_params_solved"].to_numpy(),
    )
