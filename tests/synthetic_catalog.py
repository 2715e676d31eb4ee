"""A synthetic zpdist catalog for the dashboard tests: every catalog column, plausible values, built in milliseconds;
and :func:`page_html` / :func:`shown`, what a page's Markdown pane sends to the browser and the text it shows."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist.catalog import UNITS
from zpdist.galactocentric import GalactocentricFrameConfig, radec_distance_to_galactocentric
from zpdist.io.catalog import write_catalog
from zpdist.io.columns import XFE_COLUMNS

#: The constant offset written into the synthetic catalog's metadata (µas).
OFFSET_UAS, OFFSET_UAS_ERR = -51.0, 2.5


def synthetic_catalog(n_stars: int = 3000, seed: int = 3) -> tuple[pd.DataFrame, dict]:
    """Rows and metadata of a catalog of ``n_stars`` giants: NN distances good to 8 %, Gaia σϖ 0.02–0.12 mas."""
    rng = np.random.default_rng(seed)
    dist = 10 ** rng.uniform(2.5, 4.0, n_stars)
    true_parallax = 1000.0 / dist
    offset = np.full(n_stars, OFFSET_UAS / 1000.0)
    parallax_error = rng.uniform(0.02, 0.12, n_stars)
    parallax = true_parallax + offset + rng.normal(0, parallax_error)
    nn_parallax = true_parallax * (1 + 0.08 * rng.normal(size=n_stars))
    ra, dec = rng.uniform(0, 360, n_stars), np.degrees(np.arcsin(rng.uniform(-1, 1, n_stars)))
    frame_config = GalactocentricFrameConfig()
    galcen = radec_distance_to_galactocentric(ra, dec, 1000.0 / nn_parallax, frame_config)
    teff = rng.uniform(3900, 5200, n_stars)
    fe_h = -0.06 * (galcen["r_gc"] - 8.0) + rng.normal(0, 0.15, n_stars)
    rows = {
        "apogee_id": np.array([f"2M{i:08d}" for i in range(n_stars)]),
        "ra": ra, "dec": dec,
        "phot_g_mean_mag": rng.uniform(9.0, 17.0, n_stars),
        "bp_rp": 1.0 + (5200 - teff) / 1000 + rng.normal(0, 0.1, n_stars),
        "teff": teff, "teff_err": rng.uniform(50, 100, n_stars),
        "logg": rng.uniform(1.0, 3.5, n_stars), "logg_err": rng.uniform(0.02, 0.3, n_stars),
        "fe_h": fe_h, "fe_h_err": rng.uniform(0.005, 0.08, n_stars),
        "fakemag": 10 ** rng.uniform(1, 3, n_stars),
        "dist": 1000.0 / nn_parallax,
        "dist_error": 0.08 * 1000.0 / nn_parallax,
        "dist_model_error": 0.03 * 1000.0 / nn_parallax,
        "nn_parallax": nn_parallax,
        "nn_parallax_error": 0.08 * nn_parallax,
        "zp_offset": offset,
        "zp_offset_error": np.full(n_stars, OFFSET_UAS_ERR / 1000.0),
        "parallax": parallax,
        "parallax_error": parallax_error,
        "parallax_corrected": parallax - offset,
        "parallax_corrected_error": np.hypot(parallax_error, OFFSET_UAS_ERR / 1000.0),
        **galcen,
    }  # fmt: skip
    for i, column in enumerate(XFE_COLUMNS):
        rows[column] = 0.1 * np.sin(i + galcen["r_gc"]) + rng.normal(0, 0.05, n_stars)
        rows[f"{column}_err"] = rng.uniform(0.01, 0.12, n_stars)
    metadata = {
        "model": {"mode": "labels", "offset_model": "constant", "offset_uas": OFFSET_UAS,
                  "offset_uas_err": OFFSET_UAS_ERR},
        "frame": frame_config.to_dict(),
        "zpdist_version": "test",
    }  # fmt: skip
    return pd.DataFrame(rows), metadata


def write_synthetic_catalog(path: Path, n_stars: int = 3000, seed: int = 3, drop: tuple[str, ...] = ()) -> Path:
    """Write :func:`synthetic_catalog` (without the columns ``drop``) to ``path`` (.parquet or .fits)."""
    rows, metadata = synthetic_catalog(n_stars, seed)
    return write_catalog(rows.drop(columns=list(drop)), path, metadata, UNITS)


def page_html(pane) -> str:
    """The HTML a Markdown pane (or an Alert) sends to the browser: Panel's own rendering of its Markdown."""
    return html.unescape(pane._transform_object(pane.object)["object"])


def shown(pane) -> str:
    """The text a Markdown pane shows in the page: :func:`page_html` without its tags."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html(pane))).strip()
