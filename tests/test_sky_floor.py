"""The sky-systematics floor of a sample's mean offset: Lindegren et al. (2018) Table 4 by footprint size."""

from __future__ import annotations

import numpy as np
import pytest

from zpdist.nn.distance_prior import sightlines
from zpdist.sky_floor import footprint_diameter_deg, sky_floor_uas


def _cap(radius_deg: float, n: int = 4000, seed: int = 0) -> np.ndarray:
    """Sightlines uniform in a cap of ``radius_deg`` around (l, b) = (76°, 13°) (the Kepler field's centre)."""
    rng = np.random.default_rng(seed)
    cos_theta = rng.uniform(np.cos(np.radians(radius_deg)), 1.0, n)
    theta, phi = np.arccos(cos_theta), rng.uniform(0, 2 * np.pi, n)
    local = np.column_stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), cos_theta])
    centre = sightlines(np.array([76.0]), np.array([13.0]))[0]
    e1 = np.cross(centre, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    return local[:, :1] * e1 + local[:, 1:2] * e2 + local[:, 2:] * centre


def test_footprint_of_a_cap_is_its_median_diameter():
    # uniform in a cap of radius R: the median angle θ has 1 − cos θ = (1 − cos R) / 2
    radius = 8.0
    expected = 2 * np.degrees(np.arccos(1 - (1 - np.cos(np.radians(radius))) / 2))
    assert footprint_diameter_deg(_cap(radius)) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize(
    ("radius", "release", "floor"),
    [(8.0, "DR2", 17.0), (0.3, "DR2", 43.0), (180.0, "DR2", 5.0), (8.0, "DR3", None), (8.0, None, None)],
)
def test_floor_by_release_and_footprint(radius, release, floor):
    assert sky_floor_uas(release, footprint_diameter_deg(_cap(radius))) == floor


def test_no_finite_sightline_has_no_floor():
    assert sky_floor_uas("DR2", footprint_diameter_deg(np.full((3, 3), np.nan))) is None
