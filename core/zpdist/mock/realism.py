"""The realistic mock family (docs/method.md §10): what a user can switch on beyond the easy mock.

Each part is a frozen dataclass with an ``enabled`` switch and its physical parameters; :class:`Realism`
holds one of each, all off by default, so ``MockConfig()`` is the easy mock, unchanged. ``Realism.realistic()``
switches every part on at its defaults (``zpdist mock --realistic``); :func:`load_realism` reads a TOML file
in which every table present switches its part on, at the defaults for the keys it does not give
(``enabled = false`` switches a part off again)::

    [selection]          # magnitude-limited selection in APOGEE-like fields
    h_limit = 12.0
    [mass_tracers]       # [C/N] traces giant mass with this scatter
    scatter_dex = 0.1
    [sky_systematics]    # a smooth random parallax field on the sky
    rms_uas = 8.0

Where each part acts: :mod:`zpdist.mock.fields` (selection), :func:`zpdist.mock.chemistry.scatter_mass_tracers`,
:mod:`zpdist.mock.nuisances` and :meth:`zpdist.mock.spectra.SpectrumModel.noiseless` (the spectra),
:mod:`zpdist.mock.gaia` (the astrometry).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from zpdist.config import read_toml, section_from_toml
from zpdist.errors import ConfigError
from zpdist.mock.chemistry import CN_BASE_SCATTER_DEX


def _require(condition: bool, part: object, message: str) -> None:
    """Raise :class:`ConfigError` naming the part and the rule its values break."""
    if not condition:
        raise ConfigError(f"{type(part).__name__}: {message}")


@dataclass(frozen=True)
class FieldSelection:
    """Magnitude-limited selection in APOGEE-like fields, stars drawn from the Galaxy density model.

    Fields are circles of ``field_radius_deg`` on a grid of disk pointings (every ``disk_longitude_step_deg``
    in l at each of ``disk_latitudes_deg``) and of high-latitude pointings (every ``high_longitude_step_deg``
    at each of ``high_latitudes_deg``). A star in a field with (J−K)_0 ≥ 0.5 is kept with probability 1 for
    ``h_bright`` ≤ H ≤ ``h_complete``, falling linearly to ``faint_keep`` at ``h_limit`` (the faint cohorts are
    sampled sparsely, as APOGEE's are) and 0 beyond: Malmquist bias is present, as in a real survey.

    Attributes
    ----------
    h_bright, h_complete, h_limit : float
        Bright limit, faintest H of complete sampling, faint limit (mag).
    faint_keep : float
        Fraction of the stars kept at ``h_limit``.
    field_radius_deg : float
        Field radius (deg).
    disk_latitudes_deg, high_latitudes_deg : tuple of float
        Galactic latitudes of the disk and high-latitude pointings (deg).
    disk_longitude_step_deg, high_longitude_step_deg : float
        Their spacing in Galactic longitude (deg).
    """

    enabled: bool = False
    h_bright: float = 7.0
    h_complete: float = 11.0
    h_limit: float = 12.2
    faint_keep: float = 0.5
    field_radius_deg: float = 1.5
    disk_latitudes_deg: tuple[float, ...] = (-4.0, 0.0, 4.0)
    disk_longitude_step_deg: float = 10.0
    high_latitudes_deg: tuple[float, ...] = (-60.0, -30.0, 30.0, 60.0)
    high_longitude_step_deg: float = 45.0

    def __post_init__(self) -> None:
        _require(self.h_bright < self.h_complete <= self.h_limit, self, "needs h_bright < h_complete <= h_limit")
        _require(0.0 < self.faint_keep <= 1.0, self, f"faint_keep = {self.faint_keep} must be in (0, 1]")
        _require(0.0 < self.field_radius_deg <= 10.0, self, "field_radius_deg must be in (0, 10]")
        _require(self.disk_longitude_step_deg > 0 and self.high_longitude_step_deg > 0, self, "steps must be > 0")
        latitudes = self.disk_latitudes_deg + self.high_latitudes_deg
        _require(len(latitudes) > 0 and all(abs(b) <= 90 for b in latitudes), self, "latitudes must be in [-90, 90]")


@dataclass(frozen=True)
class MassTracers:
    """[C/N] traces giant mass with a realistic scatter.

    The first dredge-up sets [C/N] from the mass (:func:`zpdist.mock.chemistry.draw_element_ratios`); this part
    moves [C/Fe] and [N/Fe] of each giant in opposite directions (their sum kept, as by the CN cycle) so that [C/N] at
    fixed mass and composition scatters by ``scatter_dex`` in all (the easy mock's own is 0.042 dex).
    """

    enabled: bool = False
    scatter_dex: float = 0.1

    def __post_init__(self) -> None:
        _require(
            self.scatter_dex >= CN_BASE_SCATTER_DEX,
            self,
            f"scatter_dex = {self.scatter_dex} is below the easy mock's own {CN_BASE_SCATTER_DEX:.3f} dex",
        )


@dataclass(frozen=True)
class Saturation:
    """Saturated strong lines: the normalised flux is clipped at ``floor``, so the deepest cores carry no signal."""

    enabled: bool = False
    floor: float = 0.2

    def __post_init__(self) -> None:
        _require(0.0 <= self.floor < 1.0, self, f"floor = {self.floor} must be in [0, 1)")


@dataclass(frozen=True)
class ContinuumWiggles:
    """Residual continuum-normalisation errors: a multiplicative Legendre polynomial per chip and star.

    Coefficients 0 … ``degree`` are Gaussian, scaled so that the polynomial's rms about 1 is ``rms`` on average.
    """

    enabled: bool = False
    rms: float = 0.01
    degree: int = 3

    def __post_init__(self) -> None:
        _require(self.rms >= 0 and 0 <= self.degree <= 10, self, "needs rms >= 0 and 0 <= degree <= 10")


@dataclass(frozen=True)
class RadialVelocityShifts:
    """Residual sub-pixel radial-velocity shifts: each spectrum moved by N(0, ``rms_pix``) pixels (1 px = 4.14 km/s)."""

    enabled: bool = False
    rms_pix: float = 0.2

    def __post_init__(self) -> None:
        _require(0.0 <= self.rms_pix <= 2.0, self, f"rms_pix = {self.rms_pix} must be in [0, 2]")


@dataclass(frozen=True)
class SkyResiduals:
    """Sky-line residuals at ``n_lines`` fixed pixels (airglow), additive, larger for fainter stars.

    Each line's residual peak is N(0, ``rms`` · 10^(0.4 (H − ``h_ref``))) in normalised flux: the sky's share of
    the light grows as the star fades.
    """

    enabled: bool = False
    n_lines: int = 60
    rms: float = 0.01
    h_ref: float = 12.2

    def __post_init__(self) -> None:
        _require(self.rms >= 0 and 1 <= self.n_lines <= 1000, self, "needs rms >= 0 and 1 <= n_lines <= 1000")


@dataclass(frozen=True)
class LsfVariation:
    """Line-spread-function variation: each spectrum broadened by a Gaussian of σ uniform in [0, ``sigma_max_pix``]."""

    enabled: bool = False
    sigma_max_pix: float = 0.5

    def __post_init__(self) -> None:
        _require(0.0 <= self.sigma_max_pix <= 3.0, self, f"sigma_max_pix = {self.sigma_max_pix} must be in [0, 3]")


@dataclass(frozen=True)
class SnrLaw:
    """SNR tied to H: SNR = ``snr_at_ref`` · 10^(0.2 (``h_ref`` − H)) · lognormal(0, ``scatter``), clipped.

    The spectra's noise is ∝ 1/SNR (:meth:`zpdist.mock.spectra.SpectrumModel.observe`). Off, the easy mock's
    law holds (100 at H = 12.2, ln-scatter 0.3, clipped to 10–2000).
    """

    enabled: bool = False
    snr_at_ref: float = 100.0
    h_ref: float = 12.2
    scatter: float = 0.2
    snr_min: float = 10.0
    snr_max: float = 1000.0

    def __post_init__(self) -> None:
        _require(0 < self.snr_min < self.snr_max, self, "needs 0 < snr_min < snr_max")
        _require(self.snr_at_ref > 0 and self.scatter >= 0, self, "needs snr_at_ref > 0 and scatter >= 0")


@dataclass(frozen=True)
class ParallaxUnderreport:
    """Gaia's σϖ under-reported: the true noise is (1 + ``fraction``) × the quoted ``parallax_error``."""

    enabled: bool = False
    fraction: float = 0.1

    def __post_init__(self) -> None:
        _require(-0.5 < self.fraction <= 2.0, self, f"fraction = {self.fraction} must be in (-0.5, 2]")


@dataclass(frozen=True)
class SkySystematics:
    """A smooth Gaussian random field on the sky added to every parallax (µas).

    Its correlation is exp(−c²/2c₀²) in the chord c = 2 sin(θ/2) between two directions, with
    c₀ = 2 sin(``correlation_deg``/2), i.e. ≈ exp(−θ²/2θ₀²) (:class:`zpdist.mock.gaia.SkyField`).
    """

    enabled: bool = False
    rms_uas: float = 8.0
    correlation_deg: float = 10.0
    n_modes: int = 2000

    def __post_init__(self) -> None:
        _require(self.rms_uas >= 0 and 0.5 <= self.correlation_deg <= 90, self, "needs rms_uas >= 0, 0.5-90 deg")
        _require(self.n_modes >= 100, self, f"n_modes = {self.n_modes} must be >= 100")


@dataclass(frozen=True)
class NonlinearOffset:
    """Non-linear terms added to the injected Δϖ (µas), about the pivots of :class:`~zpdist.mock.config.InjectedOffset`.

    Δϖ_nl = ½ ``step_uas`` tanh((G − ``step_g``)/``step_width_mag``) + ``curvature_bp_rp`` (c − pivot)²
    + ``interaction_g_teff`` (G − pivot_G)(T_eff − pivot_T)/1000 K, with c = min(BP−RP, ``bp_rp_max``): the
    colour term saturates for the reddest stars, whose BP−RP is mostly reddening.
    """

    enabled: bool = False
    step_uas: float = 10.0
    step_g: float = 13.0
    step_width_mag: float = 0.1
    curvature_bp_rp: float = 8.0
    bp_rp_max: float = 3.0
    interaction_g_teff: float = 3.0

    def __post_init__(self) -> None:
        _require(self.step_width_mag > 0, self, f"step_width_mag = {self.step_width_mag} must be > 0")


@dataclass(frozen=True)
class AstrometricOutliers:
    """A fraction of stars whose parallax is off by ± U(``min_sigma``, ``max_sigma``) × the quoted σϖ."""

    enabled: bool = False
    fraction: float = 0.005
    min_sigma: float = 5.0
    max_sigma: float = 30.0

    def __post_init__(self) -> None:
        _require(0.0 <= self.fraction <= 0.5, self, f"fraction = {self.fraction} must be in [0, 0.5]")
        _require(0 < self.min_sigma <= self.max_sigma, self, "needs 0 < min_sigma <= max_sigma")


@dataclass(frozen=True)
class Realism:
    """One switchable part of each kind; all off by default (the easy mock)."""

    selection: FieldSelection = field(default_factory=FieldSelection)
    mass_tracers: MassTracers = field(default_factory=MassTracers)
    saturation: Saturation = field(default_factory=Saturation)
    continuum: ContinuumWiggles = field(default_factory=ContinuumWiggles)
    rv_shifts: RadialVelocityShifts = field(default_factory=RadialVelocityShifts)
    sky_residuals: SkyResiduals = field(default_factory=SkyResiduals)
    lsf: LsfVariation = field(default_factory=LsfVariation)
    snr: SnrLaw = field(default_factory=SnrLaw)
    parallax_noise: ParallaxUnderreport = field(default_factory=ParallaxUnderreport)
    sky_systematics: SkySystematics = field(default_factory=SkySystematics)
    nonlinear_offset: NonlinearOffset = field(default_factory=NonlinearOffset)
    outliers: AstrometricOutliers = field(default_factory=AstrometricOutliers)

    @classmethod
    def realistic(cls) -> Realism:
        """Every part on, at its defaults."""
        return cls(**{name: part(enabled=True) for name, part in _parts().items()})

    @property
    def enabled(self) -> bool:
        """True if any part is on."""
        return any(getattr(self, name).enabled for name in _parts())

    @classmethod
    def from_dict(cls, data: dict, source: str | Path = "mock.json", switch_on: bool = False) -> Realism:
        """Build from ``dataclasses.asdict`` output or a TOML document: one table per part.

        Parameters
        ----------
        data : dict
            Part name -> its keys; parts not given stay off.
        source : str or path
            Named in error messages.
        switch_on : bool
            A part present without an ``enabled`` key is switched on (the TOML file's rule).

        Raises
        ------
        ConfigError
            On an unknown part or key, a value of the wrong type or out of range.
        """
        parts = _parts()
        unknown = [name for name in data if name not in parts]
        if unknown:
            raise ConfigError(f"{source}: unknown realism part(s) {', '.join(unknown)}; known: {', '.join(parts)}")
        built = {}
        for name, values in data.items():
            if switch_on and isinstance(values, dict):
                values = {"enabled": True, **values}
            built[name] = section_from_toml(parts[name], values, Path(source), name)
        return cls(**built)


def _parts() -> dict[str, type]:
    """The parts of :class:`Realism`, in order: name -> class."""
    return {f.name: f.default_factory for f in dataclasses.fields(Realism)}


def load_realism(path: str | Path) -> Realism:
    """Read a realism TOML file (see the module's docstring): every table present switches its part on.

    Raises
    ------
    ConfigError
        On a missing or invalid file, an unknown part or key, or a bad value (naming the file and the key).
    """
    path = Path(path)
    return Realism.from_dict(read_toml(path, "realism file"), path, switch_on=True)
