"""Turning a selection of catalog rows into a CSV, FITS, Parquet or VOTable file that records how it was made.

Files are written atomically into the server's private download folder (:class:`DownloadFolder`), which the server
exposes at :data:`DOWNLOAD_ROUTE` (see :mod:`zpdist_dashboard.routes`), so large selections never travel over the
websocket. The folder is made afresh for each server process (``tempfile.mkdtemp``: mode 0700, owned by this user,
never a predictable shared path), holds one file per distinct request (the same selection, filters and format give
back the same file), is capped in bytes and files (the least recently requested go first), and is removed when the
server stops. The VOTable is also what :mod:`zpdist_dashboard.samp` sends to TOPCAT.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from zpdist import __version__
from zpdist.catalog import UNITS
from zpdist.errors import OutputError
from zpdist.io.atomic import atomic_path
from zpdist.io.catalog import write_catalog

#: Download formats: name shown to the user -> file suffix.
FORMATS: dict[str, str] = {"CSV": ".csv", "FITS": ".fits", "Parquet": ".parquet", "VOTable": ".vot"}
#: Name of the VOTable INFO element that holds the metadata (JSON).
VOTABLE_INFO = "zpdist"
#: URL path (below the server root) under which the download folder is served.
DOWNLOAD_ROUTE = "zpdist-downloads"
#: Environment variable naming the folder in which each server makes its private download folder (default: the
#: system's temporary directory).
DOWNLOADS_ENV = "ZPDIST_DOWNLOADS"
#: Caps of a server's download folder: total size (bytes) and number of files.
MAX_DOWNLOAD_BYTES = 500 * 1024**2
MAX_DOWNLOAD_FILES = 20
#: Prefix of the prepared files' names.
FILE_PREFIX = "zpdist-selection-"


def _megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1024**2:.1f} MB"


def check_private(folder: Path) -> None:
    """Refuse ``folder`` unless it is a real directory (not a symbolic link) owned by this user and closed to others.

    Raises
    ------
    OutputError
        Naming the folder and what is wrong with it.
    """
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise OutputError(f"download folder {folder}: {exc.strerror}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"download folder {folder} is a symbolic link: refused")
    if not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"download folder {folder} is not a directory: refused")
    if info.st_uid != os.getuid():
        raise OutputError(f"download folder {folder} belongs to user id {info.st_uid}, not to this user: refused")
    if info.st_mode & 0o077:
        raise OutputError(f"download folder {folder} is open to other users (mode {info.st_mode & 0o777:o}): refused")


class DownloadFolder:
    """A server's private folder of prepared downloads, capped in bytes and files.

    Parameters
    ----------
    parent : path-like, optional
        Where to make the folder: default ``$ZPDIST_DOWNLOADS``, else the system's temporary directory.
    max_bytes : int
        Total size (bytes) the folder may hold; a single file over it is refused.
    max_files : int
        Number of files the folder may hold.

    Raises
    ------
    OutputError
        When the folder cannot be made in ``parent``.
    """

    def __init__(
        self,
        parent: str | os.PathLike | None = None,
        max_bytes: int = MAX_DOWNLOAD_BYTES,
        max_files: int = MAX_DOWNLOAD_FILES,
    ) -> None:
        parent = Path(parent or os.environ.get(DOWNLOADS_ENV) or tempfile.gettempdir())
        try:
            self.path = Path(tempfile.mkdtemp(prefix="zpdist-downloads-", dir=parent))
        except OSError as exc:
            raise OutputError(f"cannot make a download folder in {parent}: {exc.strerror}") from exc
        check_private(self.path)
        self.max_bytes, self.max_files = max_bytes, max_files

    def prepare(self, rows: pd.DataFrame, fmt: str, metadata: dict, request: dict) -> Path:
        """The file of ``rows`` in format ``fmt``: written once per distinct ``request``, then given back as is.

        Parameters
        ----------
        rows : pandas.DataFrame
            The rows to write (all their columns).
        fmt : str
            A key of :data:`FORMATS`.
        metadata : dict
            From :func:`export_metadata`; written into the file.
        request : dict
            JSON-safe description of what was asked (catalog, filters, selection): the same request in the same
            format gives the same file.

        Returns
        -------
        Path
            The file, in this folder.

        Raises
        ------
        OutputError
            When the folder is no longer private, the file would exceed the folder's cap, or it cannot be written
            (a full disk among others); no partial file is left.
        """
        check_private(self.path)
        digest = hashlib.sha256(json.dumps([request, fmt], sort_keys=True, default=str).encode()).hexdigest()
        path = self.path / f"{FILE_PREFIX}{digest[:20]}{FORMATS[fmt]}"
        if path.is_file():
            os.utime(path)  # requested again: the most recent, the last to go
            return path
        in_memory = int(rows.memory_usage(index=False).sum())
        if in_memory > self.max_bytes:
            raise OutputError(self._too_large(len(rows), in_memory))
        try:
            write_selection(rows, path, metadata)
        except OSError as exc:
            raise OutputError(f"could not write the download into {self.path}: {exc.strerror or exc}") from exc
        size = path.stat().st_size
        if size > self.max_bytes:
            path.unlink()
            raise OutputError(self._too_large(len(rows), size))
        self._prune(keep=path)
        return path

    def _too_large(self, n_rows: int, n_bytes: int) -> str:
        return (
            f"the download of {n_rows:,} stars is {_megabytes(n_bytes)}, over this server's cap of "
            f"{_megabytes(self.max_bytes)}: select fewer stars"
        )

    def _prune(self, keep: Path) -> None:
        """Remove the least recently requested files until the folder is within its caps (``keep`` stays)."""
        files = sorted(
            (p for p in self.path.glob(f"{FILE_PREFIX}*") if p != keep), key=lambda p: p.stat().st_mtime, reverse=True
        )
        total, count = keep.stat().st_size, 1
        for old in files:
            size = old.stat().st_size
            if count + 1 > self.max_files or total + size > self.max_bytes:
                old.unlink(missing_ok=True)
            else:
                total, count = total + size, count + 1

    def remove(self) -> None:
        """Delete the folder and every download in it."""
        shutil.rmtree(self.path, ignore_errors=True)


_FOLDER: DownloadFolder | None = None
_FOLDER_LOCK = threading.Lock()


def download_folder() -> DownloadFolder:
    """This server process's download folder: made on first use, removed when the process exits."""
    global _FOLDER
    with _FOLDER_LOCK:
        if _FOLDER is None:
            _FOLDER = DownloadFolder()
            atexit.register(_FOLDER.remove)
        return _FOLDER


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
    """Write ``rows`` atomically as CSV, FITS, Parquet or VOTable (by suffix), with ``metadata`` and the units.

    FITS and Parquet use :func:`zpdist.io.catalog.write_catalog` (metadata in ``ZPMETA`` / schema key
    ``zpdist``, headline offset keywords, units). CSV starts with ``#`` comment lines holding the
    metadata and the units as JSON, then a header row and the rows. A VOTable (``.vot``, BINARY2 serialisation) has
    the units on its FIELDs and the metadata as JSON in an INFO named :data:`VOTABLE_INFO`.

    Parameters
    ----------
    rows : pandas.DataFrame
        The catalog columns of the selected stars.
    path : path-like
        ``.csv``, ``.fits``, ``.parquet`` or ``.vot``.
    metadata : dict
        From :func:`export_metadata`.
    """
    path = Path(path)
    units = {k: v for k, v in UNITS.items() if k in rows.columns}
    suffix = path.suffix.lower()
    if suffix == ".vot":
        return _write_votable(rows, path, metadata, units)
    if suffix != ".csv":
        return write_catalog(rows.reset_index(drop=True), path, metadata, units)
    import pyarrow as pa
    import pyarrow.csv

    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(f"# zpdist selection: {json.dumps(metadata)}\n# units: {json.dumps(units)}\n".encode())
        pyarrow.csv.write_csv(pa.Table.from_pandas(rows, preserve_index=False), out)
    return path


def _write_votable(rows: pd.DataFrame, path: Path, metadata: dict, units: dict[str, str]) -> Path:
    """``rows`` as a BINARY2 VOTable at ``path`` (atomically): units on the FIELDs, ``metadata`` in an INFO."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.table import Table

    table = Table.from_pandas(rows.reset_index(drop=True))
    votable = from_table(table)
    for field in votable.get_first_table().fields:
        if field.name in units:
            field.unit = units[field.name]
    votable.resources[0].infos.append(Info(name=VOTABLE_INFO, value=json.dumps(metadata)))
    with atomic_path(path) as tmp:
        votable.to_xml(str(tmp), tabledata_format="binary2")
    return path
