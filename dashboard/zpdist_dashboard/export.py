"""Turning a selection of catalog rows into a CSV, FITS or Parquet file that records how it was made.

Files are written atomically into a download folder that the server exposes at :data:`DOWNLOAD_ROUTE`
(see :mod:`zpdist_dashboard.routes`), so large selections never travel over the websocket.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from zpdist import __version__
from zpdist.catalog import UNITS
from zpdist.io.atomic import atomic_path
from zpdist.io.catalog import write_catalog

#: Download formats: name shown to the user -> file suffix.
FORMATS: dict[str, str] = {"CSV": ".csv", "FITS": ".fits", "Parquet": ".parquet"}
#: URL path (below the server root) under which the download folder is served.
DOWNLOAD_ROUTE = "zpdist-downloads"
#: Environment variable overriding the download folder.
DOWNLOADS_ENV = "ZPDIST_DOWNLOADS"
#: Downloads older than this (s) are deleted when a new one is written.
MAX_AGE_S = 24 * 3600


def download_dir() -> Path:
    """The folder of prepared downloads: ``$ZPDIST_DOWNLOADS``, else a per-user folder in the temp directory."""
    default = Path(tempfile.gettempdir()) / f"zpdist-downloads-{os.getuid()}"
    folder = Path(os.environ.get(DOWNLOADS_ENV, default))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def export_metadata(catalog_path: Path, catalog_metadata: dict, filters: dict, selection: dict, n_rows: int) -> dict:
    """The metadata block of an export: its source, filters, selection and the catalog's model.

    Parameters
    ----------
    catalog_path : Path
        The catalog the rows come from.
    catalog_metadata : dict
        That catalog's metadata block (model, offset, frame, code version).
    filters : dict
        The dashboard's filters (:meth:`zpdist_dashboard.state.DashboardState.describe_filters`).
    selection : dict
        The drawn region (:meth:`zpdist_dashboard.state.Selection.to_dict`).
    n_rows : int
        Rows exported.
    """
    return {
        "export": {
            "source_catalog": str(catalog_path.resolve()),
            "n_rows": n_rows,
            "filters": filters,
            "selection": selection,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "zpdist_version": __version__,
        },
        "model": catalog_metadata.get("model", {}),
        "catalog": catalog_metadata,
    }


def write_selection(rows: pd.DataFrame, path: str | os.PathLike, metadata: dict) -> Path:
    """Write ``rows`` atomically as CSV, FITS or Parquet (by suffix), with ``metadata`` and the units.

    FITS and Parquet use :func:`zpdist.io.catalog.write_catalog` (metadata in ``ZPMETA`` / schema key
    ``zpdist``, headline offset keywords, units). CSV starts with ``#`` comment lines holding the
    metadata and the units as JSON, then a header row and the rows.

    Parameters
    ----------
    rows : pandas.DataFrame
        The catalog columns of the selected stars.
    path : path-like
        ``.csv``, ``.fits`` or ``.parquet``.
    metadata : dict
        From :func:`export_metadata`.
    """
    path = Path(path)
    units = {k: v for k, v in UNITS.items() if k in rows.columns}
    if path.suffix.lower() != ".csv":
        return write_catalog(rows.reset_index(drop=True), path, metadata, units)
    import pyarrow as pa
    import pyarrow.csv

    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(f"# zpdist selection: {json.dumps(metadata)}\n# units: {json.dumps(units)}\n".encode())
        pyarrow.csv.write_csv(pa.Table.from_pandas(rows, preserve_index=False), out)
    return path


def prepare_download(rows: pd.DataFrame, fmt: str, metadata: dict, folder: Path | None = None) -> Path:
    """Write a new download file (unique name) for ``rows`` in ``folder``, pruning downloads older than a day.

    Parameters
    ----------
    rows : pandas.DataFrame
    fmt : str
        A key of :data:`FORMATS`.
    metadata : dict
    folder : Path, optional
        Defaults to :func:`download_dir`.

    Returns
    -------
    Path
        The written file.
    """
    folder = folder or download_dir()
    now = time.time()
    for old in folder.glob("zpdist-selection-*"):
        if now - old.stat().st_mtime > MAX_AGE_S:
            old.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return write_selection(rows, folder / f"zpdist-selection-{stamp}-{uuid.uuid4().hex[:8]}{FORMATS[fmt]}", metadata)
