"""The floor that Gaia's sky-correlated parallax systematics put under a sample's mean offset (docs/method.md §12).

Gaia's parallax systematics vary over the sky on all angular scales; a sample's fitted Δϖ averages them over its
footprint only, however many stars it has. Lindegren et al. (2018, A&A 616, A2, Table 4) give the RMS of
Gaia DR2's parallax systematics, "to be interpreted as the noise floor when averaging many sources at the given
angular scale": 5 µas on scales of ~90°, 17 µas on 14–20°, 43 µas below 1°. Between 1° and 14° the table has no
value; a footprint in that range gets the 14–20° one. For (E)DR3 no floor is tabulated here yet (None).
"""

from __future__ import annotations

import numpy as np

#: DR2 floors (µas) by the smallest footprint diameter (deg) they apply to, widest first.
DR2_FLOORS_UAS: tuple[tuple[float, float], ...] = ((90.0, 5.0), (1.0, 17.0), (0.0, 43.0))
REFERENCE = "Lindegren et al. (2018), A&A 616, A2, Table 4"


def footprint_diameter_deg(sightline: np.ndarray) -> float:
    """Twice the median angle (deg) between the stars' sightlines (N, 3 unit vectors) and their mean direction;
    NaN rows ignored, NaN if none is finite."""
    rows = sightline[np.isfinite(sightline).all(axis=1)]
    if len(rows) == 0:
        return float("nan")
    mean = rows.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-9:  # spread evenly over the sky
        return 180.0
    cosines = np.clip(rows @ (mean / norm), -1.0, 1.0)
    return float(2.0 * np.degrees(np.median(np.arccos(cosines))))


def sky_floor_uas(gaia_release: str | None, diameter_deg: float) -> float | None:
    """The sky-systematics floor (µas) of a mean offset over a footprint of ``diameter_deg``; None where not known
    (not DR2, or no footprint)."""
    if gaia_release != "DR2" or not np.isfinite(diameter_deg):
        return None
    return next(floor for smallest, floor in DR2_FLOORS_UAS if diameter_deg >= smallest)
