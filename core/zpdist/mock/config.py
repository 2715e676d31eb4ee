"""Configuration of the embedded mock Galaxy (docs/method.md §10), saved as ``mock.json`` beside its files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.mock.realism import Realism


@dataclass(frozen=True)
class InjectedOffset:
    """The Gaia parallax zero-point offset injected into the mock: ϖ_Gaia = ϖ_true + Δϖ + noise.

    Δϖ = offset_uas + slope_g·(G − pivot_g) + slope_bp_rp·(BP−RP − pivot_bp_rp)
    + slope_teff·(Teff − pivot_teff)/1000, in µas; the slopes are used only when ``model`` is
    ``"multivariate"``. The default slopes follow the paper's finding (more negative for fainter
    and cooler stars) with amplitudes large enough to be measured on a mock of ~10⁵ stars.

    Attributes
    ----------
    model : {"constant", "multivariate"}
        Which offset to inject.
    offset_uas : float
        Constant offset, or the multivariate offset at the pivot point (µas).
    slope_g : float
        µas per mag of G.
    slope_bp_rp : float
        µas per mag of BP−RP.
    slope_teff : float
        µas per 1000 K of Teff.
    pivot_g, pivot_bp_rp, pivot_teff : float
        Pivot point (mag, mag, K).
    """

    model: Literal["constant", "multivariate"] = "constant"
    offset_uas: float = -52.3
    slope_g: float = -8.0
    slope_bp_rp: float = 10.0
    slope_teff: float = 15.0
    pivot_g: float = 13.0
    pivot_bp_rp: float = 1.3
    pivot_teff: float = 4750.0


@dataclass(frozen=True)
class MockConfig:
    """Everything that determines a mock; the same config and seed give the same files.

    Attributes
    ----------
    n_stars : int
        Number of stars that pass the APOGEE-like selection.
    seed : int
        Random seed.
    offset : InjectedOffset
        The injected parallax zero-point.
    write_spectra : bool
        Write ``spectra.h5`` (N × 7514 float32).
    dwarf_fraction : float
        Fraction of main-sequence dwarfs; the rest are red giants (RGB and red clump).
    red_clump_fraction : float
        Fraction of the giants that are core-helium-burning red-clump stars.
    h_mag_range : tuple of float
        APOGEE-like H-band selection window (mag).
    low_latitude_deg : float
        Fields are complete for |b| below this (deg); beyond it only ``high_latitude_keep`` of stars are kept.
    high_latitude_keep : float
        Fraction of stars kept at |b| > ``low_latitude_deg``.
    missing_gaia_fraction : float
        Fraction of stars with no Gaia parallax (−9999 in the file), besides those fainter than
        ``gaia_g_limit``.
    gaia_g_limit : float
        Faintest Gaia G magnitude with astrometry (mag).
    missing_ak_fraction : float
        Fraction of stars with no ``AK_TARG``.
    spectra_batch : int
        Stars per spectra batch: memory is O(spectra_batch × 7514) whatever ``n_stars``.
    frame : GalactocentricFrameConfig
        The frame used to place stars.
    realism : Realism
        The realistic mock's parts (docs/method.md §10), all off by default. With the field selection on,
        ``h_mag_range``, ``low_latitude_deg`` and ``high_latitude_keep`` give way to its fields and limits.
    """

    n_stars: int = 30_000
    seed: int = 42
    offset: InjectedOffset = field(default_factory=InjectedOffset)
    write_spectra: bool = True
    dwarf_fraction: float = 0.08
    red_clump_fraction: float = 0.3
    h_mag_range: tuple[float, float] = (7.0, 12.2)
    low_latitude_deg: float = 16.0
    high_latitude_keep: float = 0.15
    missing_gaia_fraction: float = 0.02
    gaia_g_limit: float = 20.7
    missing_ak_fraction: float = 0.02
    spectra_batch: int = 2048
    frame: GalactocentricFrameConfig = field(default_factory=GalactocentricFrameConfig)
    realism: Realism = field(default_factory=Realism)

    def to_json(self) -> str:
        """JSON text of the configuration; ``realism`` appears only when a part is on (the easy mock's is as before)."""
        data = asdict(self)
        if not self.realism.enabled:
            del data["realism"]
        return json.dumps(data, indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> MockConfig:
        """Rebuild a configuration from :meth:`to_json`'s content."""
        data = dict(data)
        data["offset"] = InjectedOffset(**data.get("offset", {}))
        frame = dict(data.get("frame", {}))
        if "v_sun_kms" in frame:
            frame["v_sun_kms"] = tuple(frame["v_sun_kms"])
        data["frame"] = GalactocentricFrameConfig(**frame)
        data["h_mag_range"] = tuple(data.get("h_mag_range", cls.h_mag_range))
        data["realism"] = Realism.from_dict(data.get("realism", {}))
        return cls(**data)
