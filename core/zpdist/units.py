"""Units: the one place where zpdist converts between them.

Naming scheme (docs/catalog.md): table columns carry bare names and their unit in the file's metadata (FITS
TUNITn, Parquet field metadata), in the Gaia archive's units — parallaxes and the zero-point Δϖ in mas, distances
in pc, Galactocentric coordinates in kpc, magnitudes in mag, Teff in K, abundances in dex; an error is
``<name>_error`` and its Monte-Carlo (model) part ``<name>_model_error``. Where no metadata can carry the unit
(JSON summaries, command-line options, the dashboard's derived display columns), the unit ends the name:
``offset_uas``, ``--offset-uas``, ``zp_offset_uas``, ``dist_kpc``. Every conversion below accepts a scalar or
an array and returns the same kind.

Examples
--------
>>> mas_to_uas(-0.0523)
-52.3
>>> uas_to_mas(-52.3)
-0.0523
>>> pc_to_kpc(8125.0)
8.125
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Number = TypeVar("Number", float, np.ndarray)

#: Microarcseconds per milliarcsecond.
UAS_PER_MAS = 1000.0
#: Parsecs per kiloparsec.
PC_PER_KPC = 1000.0
#: Kelvin per "kK", the unit of the mock's Teff slope of Δϖ.
K_PER_KK = 1000.0


def mas_to_uas(value: Number) -> Number:
    """Angle (parallax, Δϖ) from mas to µas."""
    return value * UAS_PER_MAS


def uas_to_mas(value: Number) -> Number:
    """Angle (parallax, Δϖ) from µas to mas."""
    return value / UAS_PER_MAS


def pc_to_kpc(value: Number) -> Number:
    """Distance from pc to kpc."""
    return value / PC_PER_KPC


def kpc_to_pc(value: Number) -> Number:
    """Distance from kpc to pc."""
    return value * PC_PER_KPC
