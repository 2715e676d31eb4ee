"""The distance prior of the selection-aware likelihood: the Galaxy's density along each star's line of sight.

At a fixed apparent magnitude, the stars along a sightline are distributed in distance as ρ(d)·d²·|∂d/∂m|
∝ ρ(d)·d³, whatever the magnitude limits were (the selection depends on the apparent magnitude, position and
colour, all of which the likelihood conditions on). :class:`DistancePrior` evaluates ln[ρ(d)·d³] with the
density of :mod:`zpdist.galaxy_model` (docs/method.md §12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.galaxy_model import BAR, COMPONENT_WEIGHTS, THICK_DISK, THIN_DISK
from zpdist.units import pc_to_kpc


def sightlines(glon_deg: np.ndarray, glat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors (N, 3) from the Sun towards Galactic longitude and latitude (deg), in Galactocentric axes
    (x towards the Galactic centre, y towards l = 90°, z towards the north Galactic pole); NaN where either is."""
    lon, lat = np.radians(np.asarray(glon_deg, float)), np.radians(np.asarray(glat_deg, float))
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _log_disk(weight: float, scale_length: float, scale_height: float, radius: torch.Tensor, z: torch.Tensor):
    """ln of a normalised exponential disk's density (kpc⁻³) times its weight."""
    norm = math.log(weight / (4.0 * math.pi * scale_length**2 * scale_height))
    return norm - radius / scale_length - z.abs() / scale_height


def _log_bar(weight: float, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """ln of the bar's normalised Gaussian density (kpc⁻³) times its weight (axes as in :mod:`zpdist.mock.galaxy`)."""
    angle = math.radians(BAR["angle_deg"])
    major = -x * math.cos(angle) + y * math.sin(angle)
    minor = x * math.sin(angle) + y * math.cos(angle)
    widths = (BAR["sigma_major"], BAR["sigma_minor"], BAR["sigma_z"])
    norm = math.log(weight / ((2.0 * math.pi) ** 1.5 * math.prod(widths)))
    return norm - 0.5 * ((major / widths[0]) ** 2 + (minor / widths[1]) ** 2 + (z / widths[2]) ** 2)


@dataclass(frozen=True)
class DistancePrior:
    """ln[ρ(d)·d³] along sightlines: the number of stars per unit distance modulus at fixed apparent magnitude.

    Attributes
    ----------
    sun_kpc : tuple of float
        The Sun's Galactocentric x, y, z (kpc).
    """

    sun_kpc: tuple[float, float, float]

    @classmethod
    def from_frame(cls, frame: GalactocentricFrameConfig) -> DistancePrior:
        """The prior for a Sun at (−R0, 0, z_sun) of ``frame``."""
        return cls((-frame.r0_kpc, 0.0, pc_to_kpc(frame.z_sun_pc)))

    def log_density(self, sightline: torch.Tensor, distance_kpc: torch.Tensor) -> torch.Tensor:
        """ln ρ (kpc⁻³, normalised over the Galaxy) at ``distance_kpc`` along ``sightline``.

        Parameters
        ----------
        sightline : Tensor, shape (..., 3)
            Unit vectors (:func:`sightlines`), broadcast against ``distance_kpc[..., None]``.
        distance_kpc : Tensor
            Heliocentric distances (kpc).
        """
        x, y, z = (self.sun_kpc[i] + distance_kpc * sightline[..., i] for i in range(3))
        radius = torch.sqrt(x**2 + y**2)
        components = torch.stack(
            [
                _log_disk(COMPONENT_WEIGHTS[0], THIN_DISK["scale_length"], THIN_DISK["scale_height"], radius, z),
                _log_disk(COMPONENT_WEIGHTS[1], THICK_DISK["scale_length"], THICK_DISK["scale_height"], radius, z),
                _log_bar(COMPONENT_WEIGHTS[2], x, y, z),
            ]
        )
        return torch.logsumexp(components, dim=0)

    def log_weight(self, sightline: torch.Tensor, distance_kpc: torch.Tensor) -> torch.Tensor:
        """ln[ρ(d)·d³] at ``distance_kpc`` (kpc) along ``sightline`` (see :meth:`log_density`)."""
        return self.log_density(sightline, distance_kpc) + 3.0 * torch.log(distance_kpc)
