"""Build a mock APOGEE × Gaia sample with known truth and write it in the survey formats (docs/method.md §9–§10).

Outputs in the chosen folder:

- ``allstar.fits``: an APOGEE DR16-like allStar table (DR16 column names, −9999 for missing);
- ``spectra.h5``: N × 7514 float32 continuum-normalised spectra, row-aligned with the table;
- ``truth.parquet``: the true distance, luminosity, parallax, offset, labels and abundances, and what each
  realism part that is on injected (:data:`REALISM_TRUTH_COLUMNS`);
- ``mock.json``: the configuration and a few counts.

The folder is written whole: built in a hidden sibling folder and renamed into place at the end, so a failed or
interrupted run leaves any previous mock as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.errors import OutputError
from zpdist.galactocentric import galactocentric_to_icrs
from zpdist.io.columns import ELEMENTS, MISSING_VALUE
from zpdist.io.spectra import SpectraWriter
from zpdist.mock import chemistry, fields, galaxy, stars
from zpdist.mock.config import MockConfig
from zpdist.mock.gaia import SkyField, draw_outliers, injected_offset_mas, nonlinear_offset_mas, observe_parallax
from zpdist.mock.nuisances import apply_instrument
from zpdist.mock.spectra import FEATURES, spectrum_model
from zpdist.photometry import absmag_to_fakemag, distance_to_parallax
from zpdist.units import pc_to_kpc, uas_to_mas

#: APOGEE's dereddened colour cut for targets, (J − K_s)_0 ≥ 0.5 mag.
MIN_DEREDDENED_J_K = 0.5
#: Independent random streams, ``default_rng([seed, stream])``: switching one realism part on or off never
#: changes what another draws.
STREAMS = {
    "spectra_noise": 1, "mass_tracers": 2, "rv_shifts": 3, "lsf": 4,
    "continuum": 5, "sky_residuals": 6, "sky_systematics": 7, "outliers": 8,
}  # fmt: skip
#: Truth columns each realism part adds (only when it is on).
REALISM_TRUTH_COLUMNS = {
    "selection": ("field", "selection_probability"),
    "mass_tracers": ("cn_scatter_dex",),
    "rv_shifts": ("rv_shift_pix",),
    "lsf": ("lsf_sigma_pix",),
    "parallax_noise": ("parallax_noise_scale",),
    "sky_systematics": ("parallax_systematic_mas",),
    "nonlinear_offset": ("offset_nonlinear_mas",),
    "outliers": ("parallax_outlier", "parallax_outlier_mas"),
}


@dataclass(frozen=True)
class MockFiles:
    """Paths of a written mock."""

    folder: Path

    @property
    def allstar(self) -> Path:
        return self.folder / "allstar.fits"

    @property
    def spectra(self) -> Path:
        return self.folder / "spectra.h5"

    @property
    def truth(self) -> Path:
        return self.folder / "truth.parquet"

    @property
    def config(self) -> Path:
        return self.folder / "mock.json"

    @property
    def names(self) -> tuple[str, ...]:
        """File names a mock folder may hold."""
        return tuple(p.name for p in (self.allstar, self.spectra, self.truth, self.config))


def _stream(config: MockConfig, name: str) -> np.random.Generator:
    """The random generator of one of the mock's independent :data:`STREAMS`."""
    return np.random.default_rng([config.seed, STREAMS[name]])


def _sun(config: MockConfig) -> np.ndarray:
    """The Sun's Galactocentric position (kpc)."""
    return np.array([-config.frame.r0_kpc, 0.0, pc_to_kpc(config.frame.z_sun_pc)])


def _describe_stars(
    rng: np.random.Generator, config: MockConfig, xyz: np.ndarray, component: np.ndarray, dwarf: bool
) -> dict[str, np.ndarray]:
    """True physical properties and noise-free photometry of stars at Galactocentric positions ``xyz``."""
    n = len(xyz)
    r0 = config.frame.r0_kpc
    sun = _sun(config)
    radius = np.hypot(xyz[:, 0], xyz[:, 1])
    fe_h, alpha = chemistry.draw_iron_and_alpha(rng, component, radius, xyz[:, 2], r0)
    if dwarf:
        params = stars.draw_dwarfs(rng, n)
        mass = params["mass"]
    else:
        mass = stars.draw_giant_masses(rng, component)
        params = stars.draw_giants(rng, fe_h, mass, config.red_clump_fraction)
    ratios = chemistry.draw_element_ratios(rng, fe_h, alpha, component, mass, np.full(n, not dwarf))
    absmag_k = stars.absmag_k(params["log_lum"], params["teff"])
    colours = stars.intrinsic_colours(params["teff"])
    av = galaxy.extinction_av(sun, xyz, r0)
    sky = galactocentric_to_icrs(xyz[:, 0], xyz[:, 1], xyz[:, 2], config.frame)
    distmod = 5.0 * np.log10(sky["distance_pc"]) - 5.0
    ext = {band: ratio * av for band, ratio in galaxy.EXTINCTION_RATIOS.items()}
    k_mag = absmag_k + distmod + ext["k"]
    return {
        "x_gc": xyz[:, 0], "y_gc": xyz[:, 1], "z_gc": xyz[:, 2], "r_gc": radius,
        "component": component, "state": params["state"], "mass": mass,
        "teff": params["teff"], "logg": params["logg"], "log_lum": params["log_lum"],
        "absmag_k": absmag_k, "fe_h": fe_h, "alpha_fe": alpha, **ratios,
        "a_v": av, "a_k": ext["k"], "distance_pc": sky["distance_pc"],
        "ra": sky["ra"], "dec": sky["dec"], "glon": sky["glon"], "glat": sky["glat"],
        "k": k_mag,
        "h": k_mag + colours["h_k"] + ext["h"] - ext["k"],
        "j": k_mag + colours["j_k"] + ext["j"] - ext["k"],
        "j_k0": colours["j_k"],
        "g": k_mag + colours["g_k"] + ext["g"] - ext["k"],
        "bp_rp": colours["bp_rp"] + ext["bp"] - ext["rp"],
    }  # fmt: skip


def _candidates(rng: np.random.Generator, config: MockConfig, m: int, dwarf: bool) -> tuple[np.ndarray, np.ndarray]:
    """``m`` positions drawn from the density model (kpc) and their components; with the field selection on,
    only those near a field remain."""
    sun = _sun(config)
    if dwarf:
        xyz, component = galaxy.draw_local_positions(rng, m, sun), np.zeros(m, dtype=int)
    else:
        xyz, component = galaxy.draw_galaxy_positions(rng, m)
    if config.realism.selection.enabled:
        near = fields.near_fields(xyz, sun, config.realism.selection)
        xyz, component = xyz[near], component[near]
    return xyz, component


def _batch_size(config: MockConfig, remaining: int, acceptance: float) -> int:
    """Candidates to draw for ``remaining`` stars when a fraction ``acceptance`` of the drawn ones is kept."""
    if config.realism.selection.enabled:
        return int(np.clip(1.5 * remaining / max(acceptance, 1e-5), 100_000, 1_000_000))
    return int(min(400_000, max(20_000, 8 * remaining)))


def _selected(rng: np.random.Generator, config: MockConfig, props: dict[str, np.ndarray]) -> np.ndarray:
    """APOGEE-like selection: H window, (J−K)_0 ≥ 0.5, complete at low latitude, sparse above; or, with the
    realistic field selection on, (J−K)_0 ≥ 0.5 and :func:`zpdist.mock.fields.magnitude_limited`."""
    part = config.realism.selection
    if part.enabled:
        colour = props["j_k0"] >= MIN_DEREDDENED_J_K
        return colour & fields.magnitude_limited(rng, part, props["glon"], props["glat"], props["h"])
    h_lo, h_hi = config.h_mag_range
    in_window = (props["h"] >= h_lo) & (props["h"] <= h_hi) & (props["j_k0"] >= MIN_DEREDDENED_J_K)
    field = (np.abs(props["glat"]) < config.low_latitude_deg) | (
        rng.random(len(props["h"])) < config.high_latitude_keep
    )
    return in_window & field


def _draw_selected(rng: np.random.Generator, config: MockConfig, n: int, dwarf: bool, progress: bool) -> pd.DataFrame:
    """Draw candidates until ``n`` pass the selection."""
    kept: list[pd.DataFrame] = []
    total = drawn = 0
    label = "dwarfs" if dwarf else "giants"
    with tqdm(total=n, desc=f"mock {label}", unit="star", disable=not progress or n == 0) as bar:
        while total < n:
            m = _batch_size(config, n - total, total / drawn if total else 1e-3)
            xyz, component = _candidates(rng, config, m, dwarf)
            props = _describe_stars(rng, config, xyz, component, dwarf)
            chosen = pd.DataFrame(props)[_selected(rng, config, props)].iloc[: n - total]
            kept.append(chosen)
            total += len(chosen)
            drawn += m
            bar.update(len(chosen))
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def _apogee_id(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """2MASS-style identifiers 2Mhhmmssss±ddmmsss from ICRS coordinates (deg)."""
    ra_h = ra / 15.0
    hh = np.floor(ra_h).astype(int)
    mm = np.floor((ra_h - hh) * 60).astype(int)
    ss = (ra_h - hh - mm / 60.0) * 3600.0
    sign = np.where(dec < 0, "-", "+")
    ad = np.abs(dec)
    dd = np.floor(ad).astype(int)
    dm = np.floor((ad - dd) * 60).astype(int)
    ds = (ad - dd - dm / 60.0) * 3600.0
    return np.array(
        [
            f"2M{h:02d}{m:02d}{int(s * 100):04d}{sg}{d:02d}{dmi:02d}{int(dsec * 10):03d}"
            for h, m, s, sg, d, dmi, dsec in zip(hh, mm, ss, sign, dd, dm, ds, strict=True)
        ]
    )


def _snr(rng: np.random.Generator, config: MockConfig, h_mag: pd.Series) -> pd.Series:
    """Spectrum SNR tied to H: the easy mock's law, or :class:`zpdist.mock.realism.SnrLaw`'s when it is on."""
    n = len(h_mag)
    part = config.realism.snr
    if part.enabled:
        law = part.snr_at_ref * 10 ** (0.2 * (part.h_ref - h_mag)) * rng.lognormal(0, part.scatter, n)
        return np.clip(law, part.snr_min, part.snr_max)
    return np.clip(100.0 * 10 ** (0.2 * (config.h_mag_range[1] - h_mag)) * rng.lognormal(0, 0.3, n), 10, 2000)


def _observe(rng: np.random.Generator, config: MockConfig, truth: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Turn true properties into survey measurements (canonical names, NaN for missing).

    Returns the measurements (with the injected ``offset_mas``) and the truth columns the Gaia realism parts add.
    """
    n = len(truth)
    snr = _snr(rng, config, truth["h"])
    obs = pd.DataFrame({"apogee_id": _apogee_id(truth["ra"].to_numpy(), truth["dec"].to_numpy())})
    for name in ("ra", "dec", "glon", "glat"):
        obs[name] = truth[name]
    for band in ("j", "h", "k"):
        obs[band] = truth[band] + rng.normal(0, 0.02, n)
        obs[f"{band}_err"] = np.full(n, 0.02)
    ak = truth["a_k"] + rng.normal(0, 0.03, n)
    obs["ak"] = np.where(rng.random(n) < config.missing_ak_fraction, np.nan, ak)
    obs["snr"] = snr
    obs["starflag"] = np.where(rng.random(n) < 0.05, 2 ** rng.integers(0, 20, n), 0)
    binary = rng.random(n) < 0.04
    obs["vscatter"] = np.where(binary, rng.uniform(1.0, 10.0, n), np.abs(rng.normal(0, 0.15, n)) + 0.05)
    for name, floor, scale in (("teff", 30.0, 3000.0), ("logg", 0.03, 6.0), ("fe_h", 0.01, 2.0)):
        err = floor + scale / snr
        obs[name] = truth[name] + rng.normal(0, 1, n) * err
        obs[f"{name}_err"] = err
    obs["m_h"] = obs["fe_h"] + rng.normal(0, 0.01, n)
    alpha_err = 0.01 + 1.5 / snr
    obs["alpha_m"] = truth["alpha_fe"] + rng.normal(0, 1, n) * alpha_err
    obs["alpha_m_err"] = alpha_err
    ratios = chemistry.observe_element_ratios(rng, {c: truth[c].to_numpy() for c in truth}, snr, truth["teff"])
    for name, values in ratios.items():
        obs[name] = values
    extras = _observe_gaia(rng, config, truth, obs)
    return obs, extras


def _gaia_shift(config: MockConfig, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The injected Δϖ (mas; with the non-linear terms when on), everything added to the true parallax (mas) and
    the truth columns of the non-linear and sky-systematic parts."""
    realism = config.realism
    extras: dict[str, np.ndarray] = {}
    offset = injected_offset_mas(config.offset, truth["g"], truth["bp_rp"], truth["teff"])
    if realism.nonlinear_offset.enabled:
        extras["offset_nonlinear_mas"] = nonlinear_offset_mas(
            realism.nonlinear_offset, config.offset, truth["g"], truth["bp_rp"], truth["teff"]
        )
        offset = offset + extras["offset_nonlinear_mas"]
    if not realism.sky_systematics.enabled:
        return offset, offset, extras
    field = SkyField.draw(_stream(config, "sky_systematics"), realism.sky_systematics)
    extras["parallax_systematic_mas"] = uas_to_mas(field(truth["ra"].to_numpy(), truth["dec"].to_numpy()))
    return offset, offset + extras["parallax_systematic_mas"], extras


def _observe_gaia(rng: np.random.Generator, config: MockConfig, truth: pd.DataFrame, obs: pd.DataFrame) -> dict:
    """Add the Gaia columns and ``offset_mas`` to ``obs``; return the truth columns of the Gaia realism parts."""
    n = len(truth)
    realism = config.realism
    # the offset depends on the star's true G, BP−RP and Teff
    offset, shift, extras = _gaia_shift(config, truth)
    scale = 1.0 + realism.parallax_noise.fraction if realism.parallax_noise.enabled else 1.0
    parallax, parallax_error = observe_parallax(
        rng, truth["parallax_true"].to_numpy(), truth["g"].to_numpy(), shift, scale
    )
    if realism.parallax_noise.enabled:
        extras["parallax_noise_scale"] = np.full(n, scale)
    no_gaia = (rng.random(n) < config.missing_gaia_fraction) | (truth["g"].to_numpy() > config.gaia_g_limit)
    if realism.outliers.enabled:
        outlier, outlier_shift = draw_outliers(_stream(config, "outliers"), realism.outliers, parallax_error, ~no_gaia)
        parallax = parallax + outlier_shift
        extras["parallax_outlier"], extras["parallax_outlier_mas"] = outlier, outlier_shift
    g_obs = truth["g"] + rng.normal(0, 0.003, n)
    bp_rp_obs = truth["bp_rp"] + rng.normal(0, 0.005, n)
    rp = g_obs - (0.05 + 0.5 * bp_rp_obs)
    gaia = {
        "source_id": rng.integers(10**15, 6 * 10**18, n),
        "parallax": parallax,
        "parallax_error": parallax_error,
        "phot_g_mean_mag": g_obs,
        "phot_bp_mean_mag": rp + bp_rp_obs,
        "phot_rp_mean_mag": rp,
        "visibility_periods_used": 8 + rng.binomial(14, 0.75, n),
    }
    for name, values in gaia.items():
        values = np.asarray(values)
        obs[name] = np.where(no_gaia, int(MISSING_VALUE) if values.dtype.kind == "i" else np.nan, values)
    obs["offset_mas"] = offset
    return extras


def _realistic_truth(config: MockConfig, truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """Truth columns set before observation by the realism parts that are on (each from its own stream).

    The mass tracers replace ``c_fe`` and ``n_fe``; the field selection records each star's field and its
    selection probability; the radial-velocity and LSF parts draw each spectrum's shift and broadening (pixels).
    """
    realism, n = config.realism, len(truth)
    columns: dict[str, np.ndarray] = {}
    if realism.selection.enabled:
        part = realism.selection
        columns["field"] = fields.field_index(truth["glon"].to_numpy(), truth["glat"].to_numpy(), part)
        columns["selection_probability"] = fields.selection_probability(truth["h"].to_numpy(), part)
    if realism.mass_tracers.enabled:
        giant = (truth["state"] != "dwarf").to_numpy()
        c_fe, n_fe, delta = chemistry.scatter_mass_tracers(
            _stream(config, "mass_tracers"), truth["c_fe"].to_numpy(), truth["n_fe"].to_numpy(), giant,
            realism.mass_tracers.scatter_dex,
        )  # fmt: skip
        columns.update(c_fe=c_fe, n_fe=n_fe, cn_scatter_dex=delta)
    if realism.rv_shifts.enabled:
        columns["rv_shift_pix"] = _stream(config, "rv_shifts").normal(0.0, realism.rv_shifts.rms_pix, n)
    if realism.lsf.enabled:
        columns["lsf_sigma_pix"] = _stream(config, "lsf").uniform(0.0, realism.lsf.sigma_max_pix, n)
    return columns


#: Canonical name -> DR16 allStar column name, for the mock's table.
DR16_NAMES: dict[str, str] = {
    "apogee_id": "APOGEE_ID", "ra": "RA", "dec": "DEC", "glon": "GLON", "glat": "GLAT",
    "j": "J", "j_err": "J_ERR", "h": "H", "h_err": "H_ERR", "k": "K", "k_err": "K_ERR",
    "ak": "AK_TARG", "snr": "SNR", "starflag": "STARFLAG", "vscatter": "VSCATTER",
    "teff": "TEFF", "teff_err": "TEFF_ERR", "logg": "LOGG", "logg_err": "LOGG_ERR",
    "fe_h": "FE_H", "fe_h_err": "FE_H_ERR", "m_h": "M_H", "alpha_m": "ALPHA_M", "alpha_m_err": "ALPHA_M_ERR",
    "source_id": "GAIA_SOURCE_ID", "parallax": "GAIA_PARALLAX", "parallax_error": "GAIA_PARALLAX_ERROR",
    "phot_g_mean_mag": "GAIA_PHOT_G_MEAN_MAG", "phot_bp_mean_mag": "GAIA_PHOT_BP_MEAN_MAG",
    "phot_rp_mean_mag": "GAIA_PHOT_RP_MEAN_MAG", "visibility_periods_used": "GAIA_VISIBILITY_PERIODS_USED",
}  # fmt: skip
for _el in ELEMENTS:
    for _suffix in ("", "_err", "_flag"):
        DR16_NAMES[f"{_el.lower()}_fe{_suffix}"] = f"{_el}_FE{_suffix.upper()}"


def _allstar_table(obs: pd.DataFrame) -> Table:
    """The observations as a DR16-like allStar table: float32 labels, float64 positions, −9999 for missing."""
    columns = {}
    for canonical, name in DR16_NAMES.items():
        values = obs[canonical].to_numpy()
        if values.dtype.kind == "O":
            values = values.astype(str)
        elif values.dtype.kind == "f":
            dtype = np.float64 if canonical in ("ra", "dec", "glon", "glat") else np.float32
            values = np.where(np.isfinite(values), values, MISSING_VALUE).astype(dtype)
        columns[name] = values
    return Table(columns)


def generate_catalogues(config: MockConfig, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the mock stars (everything but the spectra).

    Returns
    -------
    observed : pandas.DataFrame
        Survey measurements with canonical names (NaN for missing) and the injected ``offset_mas``.
    truth : pandas.DataFrame
        True properties of the same stars, row-aligned.
    """
    rng = np.random.default_rng(config.seed)
    n_dwarf = round(config.dwarf_fraction * config.n_stars)
    giants = _draw_selected(rng, config, config.n_stars - n_dwarf, False, progress)
    dwarfs = _draw_selected(rng, config, n_dwarf, True, progress)
    truth = pd.concat([giants, dwarfs], ignore_index=True)
    truth = truth.iloc[rng.permutation(len(truth))].reset_index(drop=True)
    truth["fakemag"] = absmag_to_fakemag(truth["absmag_k"])
    truth["parallax_true"] = distance_to_parallax(truth["distance_pc"])
    truth["state"] = np.asarray(stars.EVOLUTIONARY_STATES)[truth["state"]]
    truth["component"] = np.asarray(chemistry.COMPONENTS)[truth["component"]]
    truth = truth.assign(**_realistic_truth(config, truth))
    observed, extras = _observe(rng, config, truth)
    truth.insert(0, "apogee_id", observed["apogee_id"])
    truth["offset_mas"] = observed.pop("offset_mas")
    truth = truth.assign(**extras)
    return observed, truth.drop(columns=["j_k0"])


def _write_spectra(config: MockConfig, observed: pd.DataFrame, truth: pd.DataFrame, path: Path, progress: bool) -> None:
    """Compute the spectra ``config.spectra_batch`` stars at a time (with the instrument nuisances that are on)
    and write them to ``path``."""
    model = spectrum_model()
    rng = _stream(config, "spectra_noise")
    continuum_rng, sky_rng = _stream(config, "continuum"), _stream(config, "sky_residuals")
    abundances = {"fe_h": truth["fe_h"].to_numpy()}
    for el in ELEMENTS:
        abundances[f"{el.lower()}_h"] = truth[f"{el.lower()}_fe"].to_numpy() + abundances["fe_h"]
    assert set(abundances) == set(FEATURES)
    n = len(truth)
    shift = truth["rv_shift_pix"].to_numpy() if config.realism.rv_shifts.enabled else None
    lsf = truth["lsf_sigma_pix"].to_numpy() if config.realism.lsf.enabled else np.zeros(n)
    with SpectraWriter(path, n) as writer:
        starts = range(0, n, config.spectra_batch)
        for start in tqdm(starts, desc="mock spectra", unit="batch", disable=not progress):
            rows = slice(start, start + config.spectra_batch)
            flux = model.noiseless(
                truth["teff"].to_numpy()[rows],
                truth["logg"].to_numpy()[rows],
                {k: v[rows] for k, v in abundances.items()},
                shift_pix=None if shift is None else shift[rows],
            )
            if config.realism.enabled:
                h_mag = truth["h"].to_numpy()[rows]
                flux = apply_instrument(config.realism, flux, h_mag, lsf[rows], continuum_rng, sky_rng)
            writer.write(start, model.observe(rng, flux, observed["snr"].to_numpy()[rows]))


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder that holds anything but a mock's files."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; give a new or empty folder for the mock")
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in MockFiles(folder).names)
        if foreign:
            raise OutputError(
                f"{folder} holds files that are not a mock's ({', '.join(foreign[:5])}); "
                "give a new or empty folder, or one that holds only a previous mock"
            )


def _sibling(target: Path, kind: str) -> Path:
    """A new hidden path beside ``target`` (made with the user's usual permissions when created)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.{kind}")


def _replace_folder(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` folder to ``target``, replacing a previous mock there."""
    if not target.exists():
        os.rename(staging, target)
        return
    previous = _sibling(target, "previous")
    os.rename(target, previous)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(previous, target)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def write_mock(config: MockConfig, out_dir: str | Path, progress: bool = True) -> MockFiles:
    """Generate a mock and write its files into the folder ``out_dir``, whole or not at all.

    The files are built in a hidden sibling folder renamed to ``out_dir`` at the end: a failed or
    interrupted run leaves a previous mock in ``out_dir`` as it was. Spectra are computed and written
    ``config.spectra_batch`` stars at a time, so memory does not grow with ``config.n_stars``.

    Raises
    ------
    OutputError
        If ``out_dir`` is a file, or a folder holding files other than a mock's.
    """
    target = Path(out_dir).resolve()
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(target, "tmp")
    staging.mkdir()
    try:
        files = MockFiles(staging)
        observed, truth = generate_catalogues(config, progress)
        if config.write_spectra:
            _write_spectra(config, observed, truth, files.spectra, progress)
        _allstar_table(observed).write(files.allstar, format="fits")
        truth.to_parquet(files.truth, index=False)
        summary = {
            "config": json.loads(config.to_json()),
            "zpdist_version": __version__,
            "n_stars": len(truth),
            "n_by_state": truth["state"].value_counts().to_dict(),
            "n_by_component": truth["component"].value_counts().to_dict(),
            "spectra": config.write_spectra,
        }
        files.config.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return MockFiles(Path(out_dir))
