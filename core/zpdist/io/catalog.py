"""Writing and reading the output catalog (FITS or Parquet) with its metadata block."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from zpdist.errors import InputError
from zpdist.io.atomic import atomic_path

METADATA_KEY = "zpdist"
CATALOG_SUFFIXES = (".parquet", ".fits")


def write_catalog(catalog: pd.DataFrame, path: str | os.PathLike, metadata: dict, units: dict[str, str]) -> Path:
    """Write the catalog atomically as Parquet or FITS, with a metadata block.

    Parquet: the metadata JSON under the schema key ``zpdist``, units in each field's metadata.
    FITS: one binary table; the metadata JSON in the header keyword ``ZPMETA`` (long-string
    CONTINUE cards), headline numbers as their own keywords, units as TUNITn.

    Parameters
    ----------
    catalog : pandas.DataFrame
    path : path-like
        ``.parquet`` or ``.fits``.
    metadata : dict
        JSON-serialisable description: model, offset, frame parameters, code version.
    units : dict
        Column name -> unit string.
    """
    path = Path(path)
    if path.suffix.lower() not in CATALOG_SUFFIXES:
        raise InputError(f"{path}: catalog must end in .parquet or .fits")
    text = json.dumps(metadata)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(catalog, preserve_index=False)
        fields = [f.with_metadata({"unit": units[f.name]}) if f.name in units else f for f in table.schema]
        schema = pa.schema(fields, metadata={**(table.schema.metadata or {}), METADATA_KEY.encode(): text.encode()})
        with atomic_path(path) as tmp:
            pq.write_table(table.cast(schema), tmp)
        return path
    from astropy.io import fits
    from astropy.table import Table

    columns = {}
    for name in catalog.columns:
        values = catalog[name].to_numpy()
        columns[name] = values.astype(str) if values.dtype.kind == "O" else values
    hdu = fits.table_to_hdu(Table(columns))
    hdu.name = "CATALOG"
    for number, name in enumerate(hdu.columns.names, start=1):
        if name in units:  # written as text: FITS has no "dex", and astropy warns about what it cannot parse
            hdu.header[f"TUNIT{number}"] = units[name]
    hdu.header["ZPMETA"] = text
    for key, field in (("ZPOFFSET", "offset_uas"), ("ZPOFFERR", "offset_uas_err")):
        if field in metadata.get("model", {}):
            hdu.header[key] = (metadata["model"][field], f"{field} (uas)")
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp)
    return path


def read_catalog(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read a catalog written by :func:`write_catalog`; returns the rows and the metadata dict."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(METADATA_KEY.encode(), b"{}")
        return table.to_pandas(), json.loads(raw)
    from astropy.io import fits

    with fits.open(path) as hdul:
        hdu = hdul["CATALOG"] if "CATALOG" in hdul else hdul[1]
        data = {}
        for name in hdu.columns.names:
            values = np.asarray(hdu.data[name])
            data[name] = values.astype(values.dtype.newbyteorder("="))
        return pd.DataFrame(data), json.loads(hdu.header.get("ZPMETA", "{}"))


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The ``zpdist`` metadata block of a Parquet or FITS file without reading its rows; None if it has none
    (or is not a file zpdist can read this way)."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())
            return None if raw is None else json.loads(raw)
        if name.endswith((".fits", ".fit")):
            from astropy.io import fits

            with fits.open(path) as hdul:
                text = next((h.header["ZPMETA"] for h in hdul if "ZPMETA" in h.header), None)
            return None if text is None else json.loads(text)
    except (OSError, ValueError):
        return None
    return None
