"""``zpdist fetch``: download the real survey files the paper's method needs, resumably and verified.

The registry below names each file, where it is published and how it is checked. A file lands in
``DEST/NAME/FILENAME`` (``DEST`` is ``data/`` by default), keeping the survey's own file name so other tools
recognise it, and keeping each download's ``.part`` (unfinished) and ``.bad`` (failed verification) files in a
folder of their own. ``zpdist fetch --url URL`` downloads any other file to ``DEST/FILENAME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zpdist.errors import InputError
from zpdist.io.download import Checksum, Downloaded

DEFAULT_DEST = Path("data")

_ASTRONN_SOURCE = (
    "SHA-1 from astroNN's downloader (github.com/henrysky/astroNN, astroNN/apogee/downloader.py, allstar(dr={dr})), "
    "which checks every download of this SAS file against it"
)
_SDSS_CREDIT = (
    "SDSS-{phase} {release} ({paper}); public data: cite the release paper and acknowledge SDSS as asked on sdss.org"
)


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable input.

    Parameters
    ----------
    name : str
        Short name used on the command line (``zpdist fetch NAME``) and as the folder under the destination.
    url : str
        Where the file is published.
    filename : str
        The file's name on disk (the publisher's own name).
    size_bytes : int or None
        Size in bytes when a trustworthy value is known; None means only the server's ``Content-Length`` is checked.
    checksum : Checksum or None
        Expected digest when one is published; None means the content is not checked.
    checksum_source : str
        Where ``checksum`` (and ``size_bytes``) come from, or why there is none.
    description : str
        What the file holds and what zpdist uses it for.
    credit : str
        Whom to cite and the terms of use.
    """

    name: str
    url: str
    filename: str
    size_bytes: int | None
    checksum: Checksum | None
    checksum_source: str
    description: str
    credit: str


REGISTRY: tuple[RemoteFile, ...] = (
    RemoteFile(
        name="apogee-dr17-allstar",
        url="https://data.sdss.org/sas/dr17/apogee/spectro/aspcap/dr17/synspec_rev1/allStar-dr17-synspec_rev1.fits",
        filename="allStar-dr17-synspec_rev1.fits",
        size_bytes=None,
        checksum=Checksum("sha1", "7aa2f381de0e8e246f9833cc7da540ef45096702"),
        checksum_source=_ASTRONN_SOURCE.format(dr=17),
        description="APOGEE DR17 allStar (synspec_rev1, 733,901 rows): ASPCAP labels with Gaia EDR3 astrometry "
        "already joined (GAIAEDR3_* columns); input of `zpdist ingest allstar`",
        credit=_SDSS_CREDIT.format(phase="IV", release="DR17", paper="Abdurro'uf et al. 2022, ApJS 259, 35"),
    ),
    RemoteFile(
        name="apogee-dr17-allstarlite",
        url="https://data.sdss.org/sas/dr17/apogee/spectro/aspcap/dr17/synspec_rev1/allStarLite-dr17-synspec_rev1.fits",
        filename="allStarLite-dr17-synspec_rev1.fits",
        size_bytes=None,
        checksum=None,
        checksum_source="no published checksum found; only the server's Content-Length is checked",
        description="APOGEE DR17 allStarLite: the same stars with a subset of the allStar columns (a smaller "
        "download); check that the columns you need are there",
        credit=_SDSS_CREDIT.format(phase="IV", release="DR17", paper="Abdurro'uf et al. 2022, ApJS 259, 35"),
    ),
    RemoteFile(
        name="apogee-dr16-allstar",
        url="https://data.sdss.org/sas/dr16/apogee/spectro/aspcap/r12/l33/allStar-r12-l33.fits",
        filename="allStar-r12-l33.fits",
        size_bytes=None,
        checksum=Checksum("sha1", "66fe854bd000ca1c0a6b50a998877e4a3e41d184"),
        checksum_source=_ASTRONN_SOURCE.format(dr=16),
        description="APOGEE DR16 allStar (r12/l33): ASPCAP labels with Gaia DR2 astrometry joined (GAIA_* columns)",
        credit=_SDSS_CREDIT.format(phase="IV", release="DR16", paper="Ahumada et al. 2020, ApJS 249, 3"),
    ),
    RemoteFile(
        name="apogee-dr14-allstar",
        url="https://data.sdss.org/sas/dr14/apogee/spectro/redux/r8/stars/l31c/l31c.2/allStar-l31c.2.fits",
        filename="allStar-l31c.2.fits",
        size_bytes=None,
        checksum=Checksum("sha1", "a7e1801924661954da792e377ad54f412219b105"),
        checksum_source=_ASTRONN_SOURCE.format(dr=14),
        description="APOGEE DR14 allStar (l31c.2, 277,371 rows), the catalogue Leung & Bovy (2019) used; it has no "
        "Gaia columns: pair it with astroNN's row-matched Gaia DR2 parallaxes (see data/README.md)",
        credit=_SDSS_CREDIT.format(phase="IV", release="DR14", paper="Abolfathi et al. 2018, ApJS 235, 42"),
    ),
)


def registry_entry(name: str) -> RemoteFile:
    """The registry entry called ``name``; a :class:`ValueError` listing the known names otherwise."""
    for entry in REGISTRY:
        if entry.name == name:
            return entry
    raise InputError(
        f"unknown file {name!r}; known: {', '.join(e.name for e in REGISTRY)} (`zpdist fetch --list` describes them)"
    )


def target_path(entry: RemoteFile, dest: str | Path = DEFAULT_DEST) -> Path:
    """Where ``zpdist fetch NAME`` puts a registry file: ``DEST/NAME/FILENAME``."""
    return Path(dest) / entry.name / entry.filename


def format_size(n_bytes: int | None) -> str:
    """A size in binary units (``"3.2 GiB"``), or ``"unknown"``."""
    if n_bytes is None:
        return "unknown"
    if n_bytes < 1024:
        return f"{n_bytes} B"
    size = n_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_registry(dest: str | Path = DEFAULT_DEST) -> str:
    """The registry as text: one block per file with its size, check, destination, source and credit."""
    blocks = []
    for e in REGISTRY:
        size = format_size(e.size_bytes) + ("" if e.size_bytes else " (checked against the server's Content-Length)")
        check = f"{e.checksum}\n  checksum source: {e.checksum_source}" if e.checksum else f"none ({e.checksum_source})"
        blocks.append(
            f"{e.name}\n  {e.description}\n  size: {size}\n  checksum: {check}\n  url: {e.url}\n"
            f"  saved as: {target_path(e, dest)}\n  credit: {e.credit}"
        )
    return "\n\n".join(blocks)


def format_download_report(result: Downloaded, checksum: Checksum | None, no_verify: bool) -> str:
    """One line on what was fetched (``result``) and how far it can be trusted."""
    if result.checksum_verified:
        check = f"{checksum.algorithm} verified"
    elif no_verify:
        check = "not verified (--no-verify)"
    elif result.already_present:
        check = "not re-checked (no checksum known)"
    else:
        check = "no checksum known: only the size the server announced was checked"
    if result.already_present:
        state = "already present"
    elif result.resumed_from:
        state = f"downloaded (resumed from {format_size(result.resumed_from)})"
    else:
        state = "downloaded"
    return f"{result.path}: {state}, {format_size(result.n_bytes)} ({result.n_bytes:,} bytes), {check}"
