"""APOGEE-like fields and the magnitude-limited selection of the realistic mock (docs/method.md §10).

Stars are drawn from the Galaxy density model (:mod:`zpdist.mock.galaxy`) and kept when they lie in a field
and pass the H-band limit, with no draw in magnitude: at fixed labels the distant stars of the sample are the
luminous ones (Malmquist bias), as in the survey.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from zpdist.mock.realism import FieldSelection

#: Margin (deg) of the cheap pre-selection on heliocentric directions, over the exact test in (l, b).
PRESELECTION_MARGIN_DEG = 0.5


def field_centres(part: FieldSelection) -> tuple[np.ndarray, np.ndarray]:
    """Galactic longitude and latitude (deg) of the field centres: the disk grid, then the high-latitude one."""
    glon, glat = [], []
    for latitudes, step in (
        (part.disk_latitudes_deg, part.disk_longitude_step_deg),
        (part.high_latitudes_deg, part.high_longitude_step_deg),
    ):
        longitudes = np.arange(0.0, 360.0, step)
        for b in latitudes:
            glon.append(longitudes)
            glat.append(np.full(len(longitudes), float(b)))
    return np.concatenate(glon), np.concatenate(glat)


def _unit_vectors(glon_deg: np.ndarray, glat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(glon_deg), np.radians(glat_deg)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def field_index(
    glon_deg: np.ndarray, glat_deg: np.ndarray, part: FieldSelection, margin_deg: float = 0.0
) -> np.ndarray:
    """Index of the field (into :func:`field_centres`) each direction falls in, −1 for none.

    Parameters
    ----------
    glon_deg, glat_deg : ndarray
        Galactic longitude and latitude (deg).
    part : FieldSelection
        The fields.
    margin_deg : float
        Widen every field by this much (deg).
    """
    centres = _unit_vectors(*field_centres(part))
    chord = 2.0 * np.sin(np.radians(part.field_radius_deg + margin_deg) / 2.0)
    distance, index = cKDTree(centres).query(_unit_vectors(glon_deg, glat_deg), distance_upper_bound=chord)
    return np.where(np.isfinite(distance), index, -1)


def near_fields(xyz: np.ndarray, sun_xyz: np.ndarray, part: FieldSelection) -> np.ndarray:
    """True for Galactocentric positions (kpc) whose direction from the Sun is within a field (plus a margin).

    The direction is taken in the Galactocentric axes (x towards the centre, z to the north pole), which differ
    from Galactic (l, b) by the Sun's height, well under :data:`PRESELECTION_MARGIN_DEG`; the exact test is
    :func:`field_index` on the stars' (l, b).
    """
    path = xyz - sun_xyz
    glon = np.degrees(np.arctan2(path[:, 1], path[:, 0]))
    glat = np.degrees(np.arctan2(path[:, 2], np.hypot(path[:, 0], path[:, 1])))
    return field_index(glon, glat, part, PRESELECTION_MARGIN_DEG) >= 0


def selection_probability(h_mag: np.ndarray, part: FieldSelection) -> np.ndarray:
    """Probability that a star in a field with apparent H magnitude ``h_mag`` (mag) is kept.

    1 for ``h_bright`` ≤ H ≤ ``h_complete``, linear down to ``faint_keep`` at ``h_limit``, 0 outside
    [``h_bright``, ``h_limit``].
    """
    h_mag = np.asarray(h_mag, float)
    fading = np.clip((h_mag - part.h_complete) / max(part.h_limit - part.h_complete, 1e-12), 0.0, 1.0)
    probability = 1.0 - (1.0 - part.faint_keep) * fading
    return np.where((h_mag >= part.h_bright) & (h_mag <= part.h_limit), probability, 0.0)


def magnitude_limited(
    rng: np.random.Generator, part: FieldSelection, glon_deg: np.ndarray, glat_deg: np.ndarray, h_mag: np.ndarray
) -> np.ndarray:
    """Keep-mask of stars at (l, b) (deg) with true H (mag): in a field, then drawn by :func:`selection_probability`."""
    in_field = field_index(glon_deg, glat_deg, part) >= 0
    return in_field & (rng.random(len(h_mag)) < selection_probability(h_mag, part))
