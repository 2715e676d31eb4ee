"""Reading single-star APOGEE spectrum files: apStar/asStar, aspcapStar, and npz spectra with their wavelengths.

Formats
-------
apStar / asStar (APOGEE DR13–DR17; asStar are LCO 2.5 m stars in DR16)
    HDU1 flux, HDU2 1σ error (both 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹), HDU3 the APOGEE_PIXMASK bitmask (integer), on the
    8,575-pixel log-linear grid (:func:`zpdist.io.spectra.apstar_wavelength`). With several visits the arrays
    are 2-D, row 0 the combined spectrum (row 1 the alternative combination, then the visits): row 0 is used.
    With one visit they are 1-D (DR17 keeps two rows, the second empty). Not normalised.
aspcapStar
    HDU1 the ASPCAP-normalised spectrum and HDU2 its error on the same 8,575-pixel grid, zeros in the chip gaps;
    no pixel bitmask (zero flux marks missing pixels). A FITS file is read as aspcapStar when its name starts
    with ``aspcapStar``, or when it is not named ``apStar-…``/``asStar-…`` and its HDU3 is not an integer image.
    An uncompressed FITS file whose size is not a whole number of 2,880-byte blocks is rejected as truncated.
npz (e.g. The Payne's training spectra)
    A continuum-normalised spectrum under ``spectrum`` (or ``flux``), optional errors under ``spec_err``
    (or ``error``), optional integer ``mask`` (APOGEE_PIXMASK), and wavelengths (Å, vacuum) under
    ``wavelength`` — in the file itself or in a separate npz given as ``wavelength``. Without wavelengths the
    spectrum must already be on the 8,575- or 7,514-pixel grid.

Identity
--------
APOGEE_ID is read from the primary header (``APOGEE_ID``, else ``OBJID``, else ``OBJECT``); TELESCOPE from
``TELESCOP``/``TELESCOPE``, else from the SDSS folder layout (``…/stars/TELESCOPE/FIELD/apStar-….fits``), else
``lco25m`` for an asStar file; FIELD from the header, else the folder layout. :func:`identify_file` gets them
from the path alone (no I/O), for matching thousands of files to a table.

Bad pixels
----------
APOGEE_PIXMASK bits (DR13–DR17): 0 BADPIX, 1 CRPIX, 2 SATPIX, 3 UNFIXABLE, 4 BADDARK, 5 BADFLAT, 6 BADERR,
7 NOSKY, 8 LITTROW_GHOST, 9 PERSIST_HIGH, 10 PERSIST_MED, 11 PERSIST_LOW, 12 SIG_SKYLINE, 13 SIG_TELLURIC,
14 NOT_ENOUGH_PSF. By default bits 0–7 and 12 count as bad (:data:`DEFAULT_BAD_BITS`): the default
``target_bit`` of astroNN's ``apogee_continuum``, which Leung & Bovy (2019) used. The ghost, persistence,
telluric and PSF bits only warn that a pixel *may* be affected and are kept; pass other bits to change that.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zpdist.errors import InputError
from zpdist.io.spectra import N_APSTAR_PIXELS, N_PIXELS, SpectraError

#: APOGEE_PIXMASK bit → name (DR13–DR17).
APOGEE_PIXMASK: dict[int, str] = {
    0: "BADPIX",
    1: "CRPIX",
    2: "SATPIX",
    3: "UNFIXABLE",
    4: "BADDARK",
    5: "BADFLAT",
    6: "BADERR",
    7: "NOSKY",
    8: "LITTROW_GHOST",
    9: "PERSIST_HIGH",
    10: "PERSIST_MED",
    11: "PERSIST_LOW",
    12: "SIG_SKYLINE",
    13: "SIG_TELLURIC",
    14: "NOT_ENOUGH_PSF",
}
#: Bits that make a pixel bad by default (astroNN's ``apogee_continuum`` default).
DEFAULT_BAD_BITS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 12)
#: APOGEE telescope names as they appear in the SDSS folder layout and in allStar's TELESCOPE column.
TELESCOPES: tuple[str, ...] = ("apo25m", "lco25m", "apo1m")
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit")
FITS_BLOCK = 2880
NPZ_SUFFIX = ".npz"
#: Data-release / reduction / ASPCAP version tokens between the prefix and the APOGEE_ID in file names
#: (``apStar-dr17-…``, ``apStar-r8-…``, ``aspcapStar-r8-l31c.2-…``).
_FILE_NAME = re.compile(r"^(?P<kind>apStar|asStar|aspcapStar)-(?:(?:dr|r|l|t)\d+[a-z0-9.]*-)*(?P<id>.+)$")


@dataclass(frozen=True)
class SpectrumIdentity:
    """Who a spectrum file belongs to (None where unknown)."""

    apogee_id: str
    telescope: str | None = None
    field: str | None = None


@dataclass(frozen=True, eq=False)
class StarSpectrum:
    """One star's spectrum as read from its file.

    Attributes
    ----------
    path : str
        The file.
    flux : ndarray, shape (n,)
        Flux (apStar units for apStar, dimensionless if ``normalised``), float64.
    error : ndarray, shape (n,), or None
        1σ error in the units of ``flux``; None when the file has none.
    mask : ndarray of int64, shape (n,)
        APOGEE_PIXMASK bitmask (zeros when the file has none).
    wavelength : ndarray, shape (n,), or None
        Vacuum wavelengths (Å) when the grid is not the apStar grid; None on the 8,575-pixel apStar grid
        or the 7,514-pixel grid (told apart by n).
    normalised : bool
        True if the flux is already continuum-normalised (aspcapStar, npz).
    identity : SpectrumIdentity
        APOGEE_ID, TELESCOPE, FIELD.
    """

    path: str
    flux: np.ndarray
    error: np.ndarray | None
    mask: np.ndarray
    wavelength: np.ndarray | None
    normalised: bool
    identity: SpectrumIdentity


def bad_pixel_mask(bitmask: np.ndarray, bits: Iterable[int] = DEFAULT_BAD_BITS) -> np.ndarray:
    """True where any of ``bits`` is set in an APOGEE_PIXMASK array.

    Raises
    ------
    ValueError
        If a bit is not an APOGEE_PIXMASK bit (0–14).
    """
    bits = tuple(bits)
    unknown = [b for b in bits if b not in APOGEE_PIXMASK]
    if unknown:
        raise InputError(f"unknown APOGEE_PIXMASK bit(s) {unknown}; known bits are 0-14 ({APOGEE_PIXMASK})")
    selected = np.int64(sum(1 << b for b in set(bits)))
    return (np.asarray(bitmask, dtype=np.int64) & selected) != 0


def _strip_suffix(name: str) -> str:
    for suffix in (*FITS_SUFFIXES, NPZ_SUFFIX):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def identify_file(path: str | os.PathLike) -> SpectrumIdentity:
    """APOGEE_ID, TELESCOPE and FIELD from a file's name and folders alone (no I/O).

    ``apStar-dr17-2M17335483-2753043.fits`` → ``2M17335483-2753043``; an npz name's last ``_``-separated
    token (``ThePayne_aspcap-grid_2M13012770+5754582.npz``); any other file, its name without suffix.
    TELESCOPE and FIELD come from an SDSS layout ``…/TELESCOPE/FIELD/file`` (TELESCOPE in :data:`TELESCOPES`);
    an asStar file is from ``lco25m``.
    """
    path = Path(path)
    stem = _strip_suffix(path.name)
    match = _FILE_NAME.match(stem)
    if match:
        apogee_id = match["id"]
    elif path.name.lower().endswith(NPZ_SUFFIX):
        apogee_id = stem.rsplit("_", 1)[-1]
    else:
        apogee_id = stem
    telescope = field = None
    if path.parent.parent.name in TELESCOPES:
        telescope, field = path.parent.parent.name, path.parent.name
    elif match and match["kind"] == "asStar":
        telescope = "lco25m"
    return SpectrumIdentity(apogee_id, telescope, field)


def _header_identity(header, path: Path) -> SpectrumIdentity:
    """The identity from a primary header, falling back on the path for what the header lacks."""
    from_path = identify_file(path)

    def text(*keys: str) -> str | None:
        for key in keys:
            value = header.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    return SpectrumIdentity(
        text("APOGEE_ID", "OBJID", "OBJECT") or from_path.apogee_id,
        text("TELESCOP", "TELESCOPE") or from_path.telescope,
        text("FIELD") or from_path.field,
    )


def _first_row(hdu, path: Path, what: str) -> np.ndarray:
    """Row 0 of a 2-D image HDU (apStar's combined spectrum), or its 1-D array; reads only that row.

    Raises
    ------
    SpectraError
        If the HDU is not an image of 8,575 pixels per row (the message names the file and both shapes).
    """
    shape = tuple(getattr(hdu, "shape", ()) or ())
    if len(shape) not in (1, 2) or shape[-1] != N_APSTAR_PIXELS or 0 in shape:
        raise SpectraError(
            f"{path}: {what} has shape {shape}, expected ({N_APSTAR_PIXELS},) or (n_rows, {N_APSTAR_PIXELS})"
        )
    return np.asarray(hdu.section[0] if len(shape) == 2 else hdu.data)


def read_fits_spectrum(path: str | os.PathLike) -> StarSpectrum:
    """Read an apStar/asStar or aspcapStar file (the format is told from the name and HDU3, see the module).

    Raises
    ------
    SpectraError
        If the file is missing, corrupt or truncated, lacks an HDU, or its arrays do not have 8,575 pixels
        (the message names the file and both shapes).
    """
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise SpectraError(f"{path}: no such file")
    size = path.stat().st_size
    if not path.name.lower().endswith(".gz") and size % FITS_BLOCK != 0:
        raise SpectraError(f"{path}: {size} bytes, not a whole number of {FITS_BLOCK}-byte FITS blocks (truncated?)")
    kind = _FILE_NAME.match(_strip_suffix(path.name))
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            header = hdul[0].header
            flux = _first_row(hdul[1], path, "flux (HDU1)")
            error = _first_row(hdul[2], path, "error (HDU2)")
            try:
                third_hdu = hdul[3]
            except IndexError:
                third_hdu = None
            has_bitmask = isinstance(third_hdu, fits.ImageHDU) and third_hdu.header.get("BITPIX", 0) > 0
            if kind and kind["kind"] in ("apStar", "asStar") and not has_bitmask:
                raise SpectraError(f"{path}: no integer pixel bitmask in HDU3, as an apStar file has (truncated?)")
            is_apstar = has_bitmask and not (kind and kind["kind"] == "aspcapStar")
            mask = _first_row(third_hdu, path, "bitmask (HDU3)") if is_apstar else None
    except SpectraError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
        raise SpectraError(f"{path}: not a readable apStar/aspcapStar FITS file ({type(exc).__name__}: {exc})") from exc
    return StarSpectrum(
        path=str(path),
        flux=flux.astype(float),
        error=error.astype(float),
        mask=np.zeros(N_APSTAR_PIXELS, np.int64) if mask is None else mask.astype(np.int64),
        wavelength=None,
        normalised=not is_apstar,
        identity=_header_identity(header, path),
    )


def read_wavelength(path: str | os.PathLike) -> np.ndarray:
    """The ``wavelength`` array (Å, vacuum) of an npz file.

    Raises
    ------
    SpectraError
        If the file cannot be read or holds no 1-D ``wavelength`` array.
    """
    path = Path(path)
    try:
        with np.load(path) as data:
            if "wavelength" not in data:
                raise SpectraError(f"{path}: no 'wavelength' array (found {list(data)})")
            wavelength = np.asarray(data["wavelength"], dtype=float)
    except (OSError, ValueError, EOFError) as exc:
        raise SpectraError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from exc
    if wavelength.ndim != 1:
        raise SpectraError(f"{path}: 'wavelength' has shape {wavelength.shape}, expected (n_pixels,)")
    return wavelength


def _first(data, keys: tuple[str, ...]) -> np.ndarray | None:
    for key in keys:
        if key in data:
            return np.asarray(data[key])
    return None


def read_npz_spectrum(path: str | os.PathLike, wavelength: np.ndarray | None = None) -> StarSpectrum:
    """Read a normalised spectrum from an npz file (see the module for the keys).

    Parameters
    ----------
    path : path-like
        The npz file.
    wavelength : ndarray, optional
        Wavelengths (Å, vacuum) of its pixels when the file has no ``wavelength`` array of its own.

    Raises
    ------
    SpectraError
        If the file cannot be read, has no spectrum, or its arrays' lengths disagree (the message names both
        shapes), or it has neither wavelengths nor 8,575 or 7,514 pixels.
    """
    path = Path(path)
    try:
        with np.load(path) as data:
            flux = _first(data, ("spectrum", "flux"))
            if flux is None:
                raise SpectraError(f"{path}: no 'spectrum' or 'flux' array (found {list(data)})")
            error = _first(data, ("spec_err", "error"))
            mask = _first(data, ("mask",))
            own_wavelength = _first(data, ("wavelength",))
            stored_id = _first(data, ("apogee_id", "APOGEE_ID"))
    except (OSError, ValueError, EOFError) as exc:
        raise SpectraError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from exc
    if own_wavelength is not None:
        wavelength = own_wavelength
    flux = np.asarray(flux, dtype=float)
    arrays = {"spectrum": flux, "error": error, "mask": mask, "wavelength": wavelength}
    for name, values in arrays.items():
        if values is not None and np.shape(values) != flux.shape:
            raise SpectraError(f"{path}: {name} has shape {np.shape(values)} but the spectrum has {flux.shape}")
    if flux.ndim != 1:
        raise SpectraError(f"{path}: spectrum has shape {flux.shape}, expected (n_pixels,)")
    if wavelength is None and len(flux) not in (N_APSTAR_PIXELS, N_PIXELS):
        raise SpectraError(
            f"{path}: spectrum has shape {flux.shape} and no wavelengths; expected ({N_APSTAR_PIXELS},) or "
            f"({N_PIXELS},), or give the wavelength grid (--wavelength)"
        )
    identity = identify_file(path)
    if stored_id is not None and stored_id.size == 1:
        identity = SpectrumIdentity(str(stored_id.item()).strip(), identity.telescope, identity.field)
    return StarSpectrum(
        path=str(path),
        flux=flux,
        error=None if error is None else np.asarray(error, dtype=float),
        mask=np.zeros(flux.shape, np.int64) if mask is None else np.asarray(mask, dtype=np.int64),
        wavelength=None if wavelength is None else np.asarray(wavelength, dtype=float),
        normalised=True,
        identity=identity,
    )


def read_spectrum(path: str | os.PathLike, wavelength: np.ndarray | None = None) -> StarSpectrum:
    """Read any supported spectrum file: FITS (apStar/asStar, aspcapStar) or npz.

    Parameters
    ----------
    path : path-like
        The file.
    wavelength : ndarray, optional
        Wavelengths (Å) for npz files that do not carry their own.

    Raises
    ------
    SpectraError
        On an unknown suffix, or any reading problem (the message names the file).
    """
    name = Path(path).name.lower()
    if name.endswith(NPZ_SUFFIX):
        return read_npz_spectrum(path, wavelength)
    if name.endswith(FITS_SUFFIXES):
        return read_fits_spectrum(path)
    raise SpectraError(f"{path}: unknown spectrum format; expected {', '.join((*FITS_SUFFIXES, NPZ_SUFFIX))}")
