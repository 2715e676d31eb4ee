"""Galactocentric coordinates with astropy; the frame's parameters live here, once (METHOD §7).

Convention: astropy's right-handed Galactocentric frame, in which the Sun sits at
x ≈ −R0, y = 0, z = +z_⊙ and the Galactic centre at the origin; φ = atan2(y, x) in degrees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import astropy.coordinates as coord
import astropy.units as u
import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class GalactocentricFrameConfig:
    """Parameters of the Galactocentric frame.

    Attributes
    ----------
    r0_kpc : float
        Sun–Galactic-centre distance (kpc); GRAVITY Collaboration (2018).
    z_sun_pc : float
        Height of the Sun above the Galactic mid-plane (pc).
    v_sun_kms : tuple of float
        Solar velocity (U, V, W) relative to the Galactic centre (km/s); recorded, and used
        only when velocities are transformed.
    """

    r0_kpc: float = 8.125
    z_sun_pc: float = 20.8
    v_sun_kms: tuple[float, float, float] = (11.1, 245.7, 7.25)

    def to_astropy(self) -> coord.Galactocentric:
        """The equivalent :class:`astropy.coordinates.Galactocentric` frame."""
        return coord.Galactocentric(
            galcen_distance=self.r0_kpc * u.kpc,
            z_sun=self.z_sun_pc * u.pc,
            galcen_v_sun=coord.CartesianDifferential(list(self.v_sun_kms) * (u.km / u.s)),
        )

    def to_dict(self) -> dict:
        """Plain-python dictionary (JSON-safe) of the parameters."""
        return asdict(self)


def radec_distance_to_galactocentric(
    ra_deg: ArrayLike,
    dec_deg: ArrayLike,
    distance_pc: ArrayLike,
    frame: GalactocentricFrameConfig | None = None,
) -> dict[str, np.ndarray]:
    """Galactocentric Cartesian and cylindrical coordinates of stars.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        ICRS right ascension and declination (deg).
    distance_pc : array_like
        Heliocentric distance (pc); NaN or non-positive gives NaN coordinates.
    frame : GalactocentricFrameConfig, optional
        Frame parameters; the defaults of :class:`GalactocentricFrameConfig` when omitted.

    Returns
    -------
    dict of ndarray
        ``x_gc``, ``y_gc``, ``z_gc``, ``r_gc`` (kpc) and ``phi_gc`` (deg).
    """
    frame = frame or GalactocentricFrameConfig()
    ra, dec, dist = np.broadcast_arrays(
        np.asarray(ra_deg, float), np.asarray(dec_deg, float), np.asarray(distance_pc, float)
    )
    valid = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(dist) & (dist > 0)
    out = {name: np.full(ra.shape, np.nan) for name in ("x_gc", "y_gc", "z_gc", "r_gc", "phi_gc")}
    if valid.any():
        icrs = coord.SkyCoord(ra=ra[valid] * u.deg, dec=dec[valid] * u.deg, distance=dist[valid] * u.pc)
        cart = icrs.transform_to(frame.to_astropy()).cartesian
        x, y, z = (c.to_value(u.kpc) for c in (cart.x, cart.y, cart.z))
        out["x_gc"][valid], out["y_gc"][valid], out["z_gc"][valid] = x, y, z
        out["r_gc"][valid] = np.hypot(x, y)
        out["phi_gc"][valid] = np.degrees(np.arctan2(y, x))
    return out


def galactocentric_to_icrs(
    x_kpc: ArrayLike,
    y_kpc: ArrayLike,
    z_kpc: ArrayLike,
    frame: GalactocentricFrameConfig | None = None,
) -> dict[str, np.ndarray]:
    """ICRS position, distance and Galactic (l, b) of Galactocentric Cartesian positions.

    Parameters
    ----------
    x_kpc, y_kpc, z_kpc : array_like
        Galactocentric Cartesian coordinates (kpc), in the convention of this module.
    frame : GalactocentricFrameConfig, optional
        Frame parameters.

    Returns
    -------
    dict of ndarray
        ``ra``, ``dec``, ``glon``, ``glat`` (deg) and ``distance_pc`` (pc).
    """
    frame = frame or GalactocentricFrameConfig()
    galcen = coord.SkyCoord(
        x=np.asarray(x_kpc, float) * u.kpc,
        y=np.asarray(y_kpc, float) * u.kpc,
        z=np.asarray(z_kpc, float) * u.kpc,
        frame=frame.to_astropy(),
    )
    icrs = galcen.transform_to(coord.ICRS())
    galactic = icrs.transform_to(coord.Galactic())
    return {
        "ra": icrs.ra.to_value(u.deg),
        "dec": icrs.dec.to_value(u.deg),
        "glon": galactic.l.to_value(u.deg),
        "glat": galactic.b.to_value(u.deg),
        "distance_pc": icrs.distance.to_value(u.pc),
    }
