"""Build a mock APOGEE × Gaia sample with known truth and write it in the survey formats (docs/method.md §9–§10).

Outputs in the chosen folder:

- ``allstar.fits``: an APOGEE DR16-like allStar table (DR16 column names, −9999 for missing);
- ``spectra.h5``: N × 7514 float32 continuum-normalised spectra, row-aligned with the table;
- ``truth.parquet``: the true distance, luminosity, parallax, offset, labels and abundances;
- ``mock.json``: the configuration and a few counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.galactocentric import galactocentric_to_icrs
from zpdist.io.atomic import atomic_path, write_text_atomic
from zpdist.io.columns import ELEMENTS, MISSING_VALUE
from zpdist.io.spectra import SpectraWriter
from zpdist.mock import chemistry, galaxy, stars
from zpdist.mock.config import MockConfig
from zpdist.mock.gaia import injected_offset_mas, observe_parallax
from zpdist.mock.spectra import FEATURES, spectrum_model
from zpdist.photometry import absmag_to_fakemag, distance_to_parallax
from zpdist.units import pc_to_kpc

#: APOGEE's dereddened colour cut for targets, (J − K_s)_0 ≥ 0.5 mag.
MIN_DEREDDENED_J_K = 0.5


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


def _describe_stars(
    rng: np.random.Generator, config: MockConfig, xyz: np.ndarray, component: np.ndarray, dwarf: bool
) -> dict[str, np.ndarray]:
    """True physical properties and noise-free photometry of stars at Galactocentric positions ``xyz``."""
    n = len(xyz)
    r0 = config.frame.r0_kpc
    sun = np.array([-r0, 0.0, pc_to_kpc(config.frame.z_sun_pc)])
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


def _selected(rng: np.random.Generator, config: MockConfig, props: dict[str, np.ndarray]) -> np.ndarray:
    """APOGEE-like selection: H window, (J−K)_0 ≥ 0.5, complete at low latitude, sparse above."""
    h_lo, h_hi = config.h_mag_range
    in_window = (props["h"] >= h_lo) & (props["h"] <= h_hi) & (props["j_k0"] >= MIN_DEREDDENED_J_K)
    field = (np.abs(props["glat"]) < config.low_latitude_deg) | (
        rng.random(len(props["h"])) < config.high_latitude_keep
    )
    return in_window & field


def _draw_selected(rng: np.random.Generator, config: MockConfig, n: int, dwarf: bool, progress: bool) -> pd.DataFrame:
    """Draw candidates until ``n`` pass the selection."""
    sun = np.array([-config.frame.r0_kpc, 0.0, pc_to_kpc(config.frame.z_sun_pc)])
    kept: list[pd.DataFrame] = []
    total = 0
    label = "dwarfs" if dwarf else "giants"
    with tqdm(total=n, desc=f"mock {label}", unit="star", disable=not progress or n == 0) as bar:
        while total < n:
            m = int(min(400_000, max(20_000, 8 * (n - total))))
            if dwarf:
                xyz, component = galaxy.draw_local_positions(rng, m, sun), np.zeros(m, dtype=int)
            else:
                xyz, component = galaxy.draw_galaxy_positions(rng, m)
            props = _describe_stars(rng, config, xyz, component, dwarf)
            chosen = pd.DataFrame(props)[_selected(rng, config, props)].iloc[: n - total]
            kept.append(chosen)
            total += len(chosen)
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


def _observe(rng: np.random.Generator, config: MockConfig, truth: pd.DataFrame) -> pd.DataFrame:
    """Turn true properties into survey measurements (canonical names, NaN for missing)."""
    n = len(truth)
    snr = np.clip(100.0 * 10 ** (0.2 * (config.h_mag_range[1] - truth["h"])) * rng.lognormal(0, 0.3, n), 10, 2000)
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
    # Gaia: the offset depends on the star's true G, BP−RP and Teff
    offset = injected_offset_mas(config.offset, truth["g"], truth["bp_rp"], truth["teff"])
    parallax, parallax_error = observe_parallax(rng, truth["parallax_true"].to_numpy(), truth["g"].to_numpy(), offset)
    no_gaia = (rng.random(n) < config.missing_gaia_fraction) | (truth["g"].to_numpy() > config.gaia_g_limit)
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
    return obs


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
    observed = _observe(rng, config, truth)
    truth.insert(0, "apogee_id", observed["apogee_id"])
    truth["offset_mas"] = observed.pop("offset_mas")
    return observed, truth.drop(columns=["j_k0"])


def write_mock(config: MockConfig, out_dir: str | Path, progress: bool = True) -> MockFiles:
    """Generate a mock and write its files (each atomically) into ``out_dir``.

    Spectra are computed and written ``config.spectra_batch`` stars at a time, so memory does not
    grow with ``config.n_stars``.
    """
    files = MockFiles(Path(out_dir))
    files.folder.mkdir(parents=True, exist_ok=True)
    observed, truth = generate_catalogues(config, progress)
    if config.write_spectra:
        model = spectrum_model()
        rng = np.random.default_rng([config.seed, 1])
        abundances = {"fe_h": truth["fe_h"].to_numpy()}
        for el in ELEMENTS:
            abundances[f"{el.lower()}_h"] = truth[f"{el.lower()}_fe"].to_numpy() + abundances["fe_h"]
        assert set(abundances) == set(FEATURES)
        with SpectraWriter(files.spectra, len(truth)) as writer:
            starts = range(0, len(truth), config.spectra_batch)
            for start in tqdm(starts, desc="mock spectra", unit="batch", disable=not progress):
                rows = slice(start, start + config.spectra_batch)
                flux = model.noiseless(
                    truth["teff"].to_numpy()[rows],
                    truth["logg"].to_numpy()[rows],
                    {k: v[rows] for k, v in abundances.items()},
                )
                writer.write(start, model.observe(rng, flux, observed["snr"].to_numpy()[rows]))
    with atomic_path(files.allstar) as tmp:
        _allstar_table(observed).write(tmp, format="fits")
    with atomic_path(files.truth) as tmp:
        truth.to_parquet(tmp, index=False)
    summary = {
        "config": json.loads(config.to_json()),
        "zpdist_version": __version__,
        "n_stars": len(truth),
        "n_by_state": truth["state"].value_counts().to_dict(),
        "n_by_component": truth["component"].value_counts().to_dict(),
        "spectra": config.write_spectra,
    }
    write_text_atomic(files.config, json.dumps(summary, indent=2))
    return files
