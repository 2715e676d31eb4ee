"""Galactocentric coordinates with astropy; the frame's parameters live here, once (docs/method.md §7).

Convention: astropy's right-handed Galactocentric frame, in which the Sun sits at
x ≈ −R0, y = 0, z = +z_⊙ and the Galactic centre at the origin; φ = atan2(y, x) in degrees.

The parameters come in named sets, after astropy's ``galactocentric_frame_defaults``: each value
sits beside the publication it comes from (:data:`FRAME_PARAMETER_SETS`, listed in docs/frame.md).
:class:`GalactocentricFrameConfig`'s defaults are the set named :data:`DEFAULT_FRAME_PARAMETER_SET`,
the frame of Leung & Bovy's data release.

Examples
--------
>>> from zpdist.galactocentric import GalactocentricFrameConfig, frame_parameter_set
>>> GalactocentricFrameConfig()
GalactocentricFrameConfig(r0_kpc=8.125, z_sun_pc=20.8, v_sun_kms=(11.1, 245.7, 7.25))
>>> frame_parameter_set("astropy-v4.0").to_config()
GalactocentricFrameConfig(r0_kpc=8.122, z_sun_pc=20.8, v_sun_kms=(12.9, 245.6, 7.78))
>>> for reference in frame_parameter_set("leung-bovy-2019").references["z_sun_pc"]:
...     print(reference)
Bennett & Bovy (2019), MNRAS 482, 1417 [ADS 2019MNRAS.482.1417B, arXiv:1809.03507]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from urllib.parse import quote

import astropy.coordinates as coord
import astropy.units as u
import numpy as np
from numpy.typing import ArrayLike

from zpdist.errors import ConfigError


@dataclass(frozen=True)
class Reference:
    """A publication a frame parameter comes from.

    Attributes
    ----------
    citation : str
        Authors (year), journal, volume, first page.
    bibcode : str
        NASA ADS bibcode.
    arxiv : str
        arXiv identifier, or "" when none is recorded.
    """

    citation: str
    bibcode: str
    arxiv: str = ""

    @property
    def ads_url(self) -> str:
        """The paper's NASA ADS abstract page."""
        return f"https://ui.adsabs.harvard.edu/abs/{quote(self.bibcode)}"

    def __str__(self) -> str:
        arxiv = f", arXiv:{self.arxiv}" if self.arxiv else ""
        return f"{self.citation} [ADS {self.bibcode}{arxiv}]"


#: The publications the named sets' values come from.
GRAVITY_2018 = Reference("GRAVITY Collaboration (2018), A&A 615, L15", "2018A&A...615L..15G", "1807.09409")
BENNETT_BOVY_2019 = Reference("Bennett & Bovy (2019), MNRAS 482, 1417", "2019MNRAS.482.1417B", "1809.03507")
SCHOENRICH_2010 = Reference("Schönrich, Binney & Dehnen (2010), MNRAS 403, 1829", "2010MNRAS.403.1829S", "0912.3693")
REID_BRUNTHALER_2004 = Reference("Reid & Brunthaler (2004), ApJ 616, 872", "2004ApJ...616..872R", "astro-ph/0408107")
DRIMMEL_POGGIO_2018 = Reference("Drimmel & Poggio (2018), RNAAS 2, 210", "2018RNAAS...2..210D")
GILLESSEN_2009 = Reference("Gillessen et al. (2009), ApJ 692, 1075", "2009ApJ...692.1075G")
CHEN_2001 = Reference("Chen et al. (2001), ApJ 553, 184", "2001ApJ...553..184C")
BOVY_2015 = Reference("Bovy (2015), ApJS 216, 29", "2015ApJS..216...29B")

#: ICRS position (deg) of Sgr A*, the direction of the Galactic centre (Reid & Brunthaler 2004); shared by
#: every named set, as by astropy's.
SGR_A_STAR_RADEC_DEG: tuple[float, float] = (266.4051, -28.936175)

#: Names of a set's parameters, as in :class:`GalactocentricFrameConfig`.
FRAME_PARAMETERS: tuple[str, str, str] = ("r0_kpc", "z_sun_pc", "v_sun_kms")


@dataclass(frozen=True)
class FrameParameterSet:
    """A named set of Galactocentric frame parameters with the references of every value.

    Attributes
    ----------
    name : str
        Registry key.
    r0_kpc : float
        Sun–Galactic-centre distance (kpc).
    z_sun_pc : float
        Height of the Sun above the Galactic mid-plane (pc).
    v_sun_kms : tuple of float
        Solar velocity (U, V, W) relative to the Galactic centre (km/s): U towards the centre, V along
        the rotation, W towards the north Galactic pole.
    references : mapping
        Parameter name (one of :data:`FRAME_PARAMETERS`) -> the publications its value comes from.
    description : str
        Where the set is used as a whole.
    notes : mapping
        Parameter name -> how the value follows from those publications (parameters quoted as is have none).
    """

    name: str
    r0_kpc: float
    z_sun_pc: float
    v_sun_kms: tuple[float, float, float]
    references: Mapping[str, tuple[Reference, ...]]
    description: str
    notes: Mapping[str, str]

    def to_config(self) -> GalactocentricFrameConfig:
        """The :class:`GalactocentricFrameConfig` with these values."""
        return GalactocentricFrameConfig(self.r0_kpc, self.z_sun_pc, self.v_sun_kms)


def _register(*sets: FrameParameterSet) -> Mapping[str, FrameParameterSet]:
    return MappingProxyType({s.name: s for s in sets})


#: The named parameter sets (read-only).
FRAME_PARAMETER_SETS: Mapping[str, FrameParameterSet] = _register(
    FrameParameterSet(
        "leung-bovy-2019",
        r0_kpc=8.125,
        z_sun_pc=20.8,
        v_sun_kms=(11.1, 245.7, 7.25),
        references=MappingProxyType(
            {
                "r0_kpc": (GRAVITY_2018,),
                "z_sun_pc": (BENNETT_BOVY_2019,),
                "v_sun_kms": (SCHOENRICH_2010, REID_BRUNTHALER_2004, GRAVITY_2018),
            }
        ),
        description="the frame of Leung & Bovy (2019, MNRAS 489, 2079; arXiv:1902.08634)'s data release; "
        "zpdist's default",
        notes=MappingProxyType(
            {
                "r0_kpc": "the GRAVITY S2-orbit distance as Leung & Bovy's release adopts it (astropy's v4.0 set "
                "takes 8.122 kpc from the same paper)",
                "v_sun_kms": "U and W: the solar motion relative to the local standard of rest (Schönrich et al.); "
                "V = 4.74047 · 6.379 mas/yr · R0 = 245.7 km/s: Sgr A*'s proper motion along the Galactic plane "
                "(Reid & Brunthaler) at R0 = 8.125 kpc, Sgr A* taken to be at rest",
            }
        ),
    ),
    FrameParameterSet(
        "astropy-v4.0",
        r0_kpc=8.122,
        z_sun_pc=20.8,
        v_sun_kms=(12.9, 245.6, 7.78),
        references=MappingProxyType(
            {
                "r0_kpc": (GRAVITY_2018,),
                "z_sun_pc": (BENNETT_BOVY_2019,),
                "v_sun_kms": (DRIMMEL_POGGIO_2018, GRAVITY_2018, REID_BRUNTHALER_2004),
            }
        ),
        description="astropy's galactocentric_frame_defaults 'v4.0', its default since astropy 4.0",
        notes=MappingProxyType(
            {"v_sun_kms": "Drimmel & Poggio combine Sgr A*'s proper motion (Reid & Brunthaler) with the GRAVITY R0"}
        ),
    ),
    FrameParameterSet(
        "astropy-pre-v4.0",
        r0_kpc=8.3,
        z_sun_pc=27.0,
        v_sun_kms=(11.1, 232.24, 7.25),
        references=MappingProxyType(
            {
                "r0_kpc": (GILLESSEN_2009,),
                "z_sun_pc": (CHEN_2001,),
                "v_sun_kms": (SCHOENRICH_2010, BOVY_2015),
            }
        ),
        description="astropy's galactocentric_frame_defaults 'pre-v4.0', its default before astropy 4.0",
        notes=MappingProxyType(
            {"v_sun_kms": "V = 220 km/s circular velocity (galpy's, Bovy 2015) + 12.24 km/s (Schönrich et al.)"}
        ),
    ),
)

#: The set :class:`GalactocentricFrameConfig` defaults to.
DEFAULT_FRAME_PARAMETER_SET = "leung-bovy-2019"


def frame_parameter_set(name: str) -> FrameParameterSet:
    """The named parameter set ``name`` of :data:`FRAME_PARAMETER_SETS`.

    Raises
    ------
    ConfigError
        If no set has that name (the message lists the known names).

    Examples
    --------
    >>> params = frame_parameter_set("leung-bovy-2019")
    >>> params.r0_kpc, params.z_sun_pc
    (8.125, 20.8)
    >>> print(params.references["r0_kpc"][0].ads_url)
    https://ui.adsabs.harvard.edu/abs/2018A%26A...615L..15G
    """
    try:
        return FRAME_PARAMETER_SETS[name]
    except KeyError:
        known = ", ".join(FRAME_PARAMETER_SETS)
        raise ConfigError(f"unknown Galactocentric frame parameter set {name!r}; choose one of {known}") from None


_DEFAULT = FRAME_PARAMETER_SETS[DEFAULT_FRAME_PARAMETER_SET]


@dataclass(frozen=True)
class GalactocentricFrameConfig:
    """Parameters of the Galactocentric frame; the defaults are the set ``"leung-bovy-2019"`` (docs/frame.md).

    Attributes
    ----------
    r0_kpc : float
        Sun–Galactic-centre distance (kpc); 8.125, GRAVITY Collaboration (2018).
    z_sun_pc : float
        Height of the Sun above the Galactic mid-plane (pc); 20.8, Bennett & Bovy (2019).
    v_sun_kms : tuple of float
        Solar velocity (U, V, W) relative to the Galactic centre (km/s); recorded, and used
        only when velocities are transformed.
    """

    r0_kpc: float = _DEFAULT.r0_kpc
    z_sun_pc: float = _DEFAULT.z_sun_pc
    v_sun_kms: tuple[float, float, float] = _DEFAULT.v_sun_kms

    @classmethod
    def from_parameter_set(cls, name: str) -> GalactocentricFrameConfig:
        """The frame of the named parameter set ``name`` (see :func:`frame_parameter_set`)."""
        return frame_parameter_set(name).to_config()

    def to_astropy(self) -> coord.Galactocentric:
        """The equivalent :class:`astropy.coordinates.Galactocentric` frame.

        Every attribute is set explicitly (the Galactic centre at Sgr A*, :data:`SGR_A_STAR_RADEC_DEG`,
        and no roll), so the frame does not depend on astropy's global ``galactocentric_frame_defaults``.
        """
        ra, dec = SGR_A_STAR_RADEC_DEG
        return coord.Galactocentric(
            galcen_coord=coord.ICRS(ra=ra * u.deg, dec=dec * u.deg),
            galcen_distance=self.r0_kpc * u.kpc,
            z_sun=self.z_sun_pc * u.pc,
            galcen_v_sun=coord.CartesianDifferential(list(self.v_sun_kms) * (u.km / u.s)),
            roll=0.0 * u.deg,
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

    Examples
    --------
    A star 8.125 kpc away towards Sgr A* sits at the Galactic centre; the anticentre star 1 kpc away
    sits 1 kpc beyond the Sun:

    >>> out = radec_distance_to_galactocentric([266.4051, 86.4051], [-28.936175, 28.936175], [8125.0, 1000.0])
    >>> np.round(out["r_gc"], 3)
    array([0.   , 9.125])
    >>> np.round(out["z_gc"], 4)
    array([0.    , 0.0234])
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

    Examples
    --------
    The Galactic centre is R0 away, in the direction of Sgr A*:

    >>> sky = galactocentric_to_icrs([0.0], [0.0], [0.0])
    >>> np.round(sky["distance_pc"], 6), np.round(sky["ra"], 4), np.round(sky["dec"], 6)
    (array([8125.]), array([266.4051]), array([-28.936175]))
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
