"""A large synthetic Gaia-like catalog (source_id, ra, dec, G, BP−RP, Teff) as partitioned Parquet.

The catalog feeds ``zpdist zeropoint`` and its benchmark; it is not the APOGEE-like mock Galaxy (no
spectra, no parallaxes). Distributions are plausible for a magnitude-limited Gaia sample:

- G: exponential number counts, dN/dG ∝ 10^(0.3 G), between G = 3 and 21 mag;
- a Galactic mix of dwarfs and giants, giants more common among bright stars (≈ 45 % at G = 8, ≈ 15 % at
  G = 20); giants from :func:`zpdist.mock.stars.draw_giants` (RGB and red clump), dwarfs with Teff spread
  around 5,600 K between 3,200 and 9,500 K;
- BP−RP from Teff (:func:`zpdist.mock.stars.intrinsic_colours`) plus reddening E(BP−RP) growing towards faint
  magnitudes (farther stars) and a photometric error growing with G;
- Teff as a catalog would quote it (150 K scatter), missing for a small fraction of stars;
- source_id: a HEALPix level-12 index × 2³⁵ plus the row number (unique, int64, as in Gaia).

Each partition is drawn from its own generator seeded by (seed, partition index), so a catalog is
reproducible and independent of the order or parallelism of the partitions, and memory is bounded by
one partition.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zpdist.errors import InputError
from zpdist.io.atomic import atomic_path, write_text_atomic
from zpdist.mock.stars import draw_giant_masses, draw_giants, intrinsic_colours

CATALOG_CONFIG_FILE = "mock_gaia.json"
_HEALPIX_LEVEL12 = 12 * 4**12  # number of level-12 HEALPix pixels
_SOURCE_ID_SHIFT = 2**35


@dataclass(frozen=True)
class GaiaCatalogConfig:
    """A synthetic Gaia-like catalog; saved as ``mock_gaia.json`` beside its partitions.

    Attributes
    ----------
    n_rows : int
        Total number of stars.
    partition_rows : int
        Rows per Parquet file (the last may have fewer).
    seed : int
        Random seed.
    g_min, g_max : float
        Magnitude range (mag).
    g_slope : float
        Number-count slope d log10 N / dG (dex per mag).
    teff_missing_fraction : float
        Fraction of stars with no Teff (NaN).
    teff_column : str
        Name of the Teff column (Gaia DR2: ``teff_val``).
    """

    n_rows: int
    partition_rows: int = 1_000_000
    seed: int = 0
    g_min: float = 3.0
    g_max: float = 21.0
    g_slope: float = 0.3
    teff_missing_fraction: float = 0.02
    teff_column: str = "teff_val"

    def __post_init__(self):
        if self.n_rows < 0 or self.partition_rows < 1:
            raise InputError(f"n_rows must be >= 0 and partition_rows >= 1 (got {self.n_rows}, {self.partition_rows})")

    @property
    def n_partitions(self) -> int:
        return max(1, -(-self.n_rows // self.partition_rows))

    def partition_size(self, index: int) -> int:
        """Rows in partition ``index``."""
        return max(0, min(self.partition_rows, self.n_rows - index * self.partition_rows))

    def to_dict(self) -> dict:
        return asdict(self)


def partition_name(index: int) -> str:
    """File name of partition ``index``."""
    return f"part-{index:05d}.parquet"


def draw_g_magnitudes(rng: np.random.Generator, n: int, g_min: float, g_max: float, slope: float) -> np.ndarray:
    """G (mag) with dN/dG ∝ 10^(slope · G) on [g_min, g_max], by inverse CDF."""
    k = slope * np.log(10.0)
    u = rng.random(n)
    return np.log(np.exp(k * g_min) + u * (np.exp(k * g_max) - np.exp(k * g_min))) / k


def giant_fraction(g_mag: np.ndarray) -> np.ndarray:
    """Probability that a star of magnitude G (mag) is a giant: ≈ 0.45 at G = 8 falling to 0.15 at G = 20."""
    return np.clip(0.45 - 0.025 * (np.asarray(g_mag) - 8.0), 0.15, 0.5)


def draw_partition(config: GaiaCatalogConfig, index: int) -> pa.Table:
    """Partition ``index`` of the catalog, as an Arrow table.

    Columns: ``source_id`` (int64), ``ra``, ``dec`` (deg), ``phot_g_mean_mag``, ``bp_rp`` (mag) and
    ``config.teff_column`` (K, NaN where missing), all float64 but source_id.
    """
    n = config.partition_size(index)
    rng = np.random.default_rng([config.seed, index])
    g_mag = draw_g_magnitudes(rng, n, config.g_min, config.g_max, config.g_slope)
    giant = rng.random(n) < giant_fraction(g_mag)
    teff = np.clip(rng.normal(5600.0, 900.0, n), 3200.0, 9500.0)
    n_giants = int(giant.sum())
    fe_h = rng.normal(-0.1, 0.3, n_giants)
    mass = draw_giant_masses(rng, rng.integers(0, 2, n_giants))
    teff[giant] = draw_giants(rng, fe_h, mass, red_clump_fraction=0.3)["teff"]
    reddening = rng.exponential(np.clip(0.05 + 0.035 * (g_mag - 10.0), 0.02, None))
    colour_error = 0.003 + 0.05 * 10.0 ** (0.4 * (g_mag - 20.0))
    bp_rp = intrinsic_colours(teff)["bp_rp"] + reddening + rng.normal(0.0, colour_error)
    quoted_teff = teff + rng.normal(0.0, 150.0, n)
    quoted_teff[rng.random(n) < config.teff_missing_fraction] = np.nan
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    row = index * config.partition_rows + np.arange(n, dtype=np.int64)
    source_id = rng.integers(0, _HEALPIX_LEVEL12, n, dtype=np.int64) * _SOURCE_ID_SHIFT + row
    return pa.table({
        "source_id": source_id,
        "ra": ra,
        "dec": dec,
        "phot_g_mean_mag": g_mag,
        "bp_rp": bp_rp,
        config.teff_column: quoted_teff,
    })  # fmt: skip


def write_partition(config: GaiaCatalogConfig, index: int, out_dir: str | os.PathLike) -> Path:
    """Draw partition ``index`` and write it atomically to ``out_dir``; return its path."""
    path = Path(out_dir) / partition_name(index)
    with atomic_path(path) as tmp:
        pq.write_table(draw_partition(config, index), tmp, row_group_size=min(config.partition_rows, 262_144))
    return path


def write_gaia_catalog(
    config: GaiaCatalogConfig, out_dir: str | os.PathLike, workers: int = 1, progress: bool = True
) -> list[Path]:
    """Write every partition (with ``workers`` dask threads) and ``mock_gaia.json``; return the partition paths."""
    import dask
    from dask.diagnostics import ProgressBar

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [dask.delayed(write_partition)(config, i, out_dir) for i in range(config.n_partitions)]
    with ProgressBar() if progress else contextlib.nullcontext():
        paths = list(dask.compute(*tasks, scheduler="threads" if workers > 1 else "synchronous", num_workers=workers))
    write_text_atomic(out_dir / CATALOG_CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
    return paths
