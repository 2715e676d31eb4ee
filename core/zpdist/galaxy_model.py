"""The Milky-Way density model shared by the mock Galaxy and the selection-aware likelihood's distance prior.

Three components of the giants' number density, in Galactocentric Cartesian coordinates (kpc; astropy's
convention: the Sun at x ≈ −R0, the Galactic centre at the origin):

- thin disk: ∝ exp(−R/2.6 kpc − |z|/0.3 kpc), and thick disk: ∝ exp(−R/2.0 kpc − |z|/0.9 kpc), the scale lengths
  and heights of Bland-Hawthorn & Gerhard (2016, ARA&A 54, 529: thin 2.6 ± 0.5 kpc and
  300 ± 50 pc; thick 2.0 ± 0.2 kpc and 900 ± 180 pc);
- a bar/bulge: a Gaussian ellipsoid (σ 1.2 × 0.45 × 0.35 kpc) whose major axis points 27° from the Sun–centre
  line, its near end at positive longitude (the bulge's angle in Wegg & Gerhard 2013, MNRAS 435, 1874);

with the fractions of all giants ``COMPONENT_WEIGHTS``. The mock Galaxy (:mod:`zpdist.mock.galaxy`) draws stars
from these numbers; the distance prior (:mod:`zpdist.nn.distance_prior`) evaluates the same density.
"""

from __future__ import annotations

#: Fractions of the giants in the thin disk, the thick disk and the bar/bulge.
COMPONENT_WEIGHTS = (0.70, 0.12, 0.18)
#: Exponential disks: scale length (kpc) and scale height (kpc).
THIN_DISK = {"scale_length": 2.6, "scale_height": 0.3}
THICK_DISK = {"scale_length": 2.0, "scale_height": 0.9}
#: The bar/bulge: Gaussian widths along its major and minor axes and vertically (kpc), and the angle of its
#: major axis from the Sun–centre line (deg).
BAR = {"sigma_major": 1.2, "sigma_minor": 0.45, "sigma_z": 0.35, "angle_deg": 27.0}
