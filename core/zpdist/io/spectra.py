"""Spectra on the network's 7,514-pixel grid: the wavelength grid, and HDF5 storage streamed in chunks.

The grid is APOGEE's log-linear 8,575-pixel apStar grid (λ = 10^(4.179 + 6·10⁻⁶ i) Å, vacuum) with
the two chip gaps and the unused ends removed, as in ASPCAP and astroNN.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from zpdist.errors import FileFormatError

#: Number of pixels of the apStar grid and of the gap-free grid the network reads.
N_APSTAR_PIXELS = 8575
N_PIXELS = 7514
#: Slices of the apStar grid kept for the blue, green and red chips.
CHIP_SLICES: tuple[slice, slice, slice] = (slice(246, 3274), slice(3585, 6080), slice(6344, 8335))
SPECTRA_DATASET = "spectra"
#: Optional boolean dataset: False for rows without a measured spectrum (written as 1s).
HAS_SPECTRUM_DATASET = "has_spectrum"
#: A row with more than this fraction of non-finite pixels (NaN or ±inf) is a missing spectrum, never filled in.
MAX_NONFINITE_FRACTION = 0.2
#: The value a bad (non-finite) pixel of a usable spectrum takes: the continuum, as ``zpdist ingest spectra`` writes.
BAD_PIXEL_VALUE = 1.0


def nonfinite_rows(block: np.ndarray) -> np.ndarray:
    """True for the rows of ``block`` (n, n_pixels) with more than :data:`MAX_NONFINITE_FRACTION` of non-finite pixels.

    Such a row (all-NaN, typically) holds no spectrum: it is missing, as a row whose ``has_spectrum`` is False.
    """
    block = np.asarray(block)
    return (~np.isfinite(block)).sum(axis=1) > MAX_NONFINITE_FRACTION * block.shape[1]


def fill_bad_pixels(block: np.ndarray) -> np.ndarray:
    """Set the non-finite pixels (NaN, ±inf) of ``block`` to :data:`BAD_PIXEL_VALUE` in place; return it.

    Only for rows that hold a spectrum (see :func:`nonfinite_rows`): an isolated bad pixel becomes the
    continuum, as the bad pixels of ingested spectra are.
    """
    return np.nan_to_num(block, copy=False, nan=BAD_PIXEL_VALUE, posinf=BAD_PIXEL_VALUE, neginf=BAD_PIXEL_VALUE)


def apstar_wavelength() -> np.ndarray:
    """Vacuum wavelengths (Å) of the 8,575 apStar pixels."""
    return 10.0 ** (4.179 + 6e-6 * np.arange(N_APSTAR_PIXELS))


def wavelength_grid() -> np.ndarray:
    """Vacuum wavelengths (Å) of the 7,514 pixels the network reads (chip gaps removed)."""
    full = apstar_wavelength()
    return np.concatenate([full[s] for s in CHIP_SLICES])


class SpectraError(FileFormatError):
    """A spectra file is unreadable or has the wrong shape; the message names the file and both shapes."""


def apstar_to_grid(values: np.ndarray) -> np.ndarray:
    """Cut an array on the 8,575-pixel apStar grid (last axis) to the 7,514-pixel grid (chip gaps removed).

    Raises
    ------
    SpectraError
        If the last axis does not have 8,575 pixels.
    """
    values = np.asarray(values)
    if values.shape[-1] != N_APSTAR_PIXELS:
        raise SpectraError(f"array of shape {values.shape}, expected (..., {N_APSTAR_PIXELS}) on the apStar grid")
    return np.concatenate([values[..., s] for s in CHIP_SLICES], axis=-1)


def interpolate_to_grid(
    wavelength: np.ndarray, flux: np.ndarray, error: np.ndarray | None, bad: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Interpolate a spectrum on any increasing wavelength grid onto the 7,514-pixel grid, linearly in log λ.

    Parameters
    ----------
    wavelength : ndarray, shape (n,)
        Strictly increasing vacuum wavelengths (Å) of the input pixels.
    flux, error : ndarray, shape (n,)
        Flux and 1σ error (error may be None); errors are interpolated like the flux.
    bad : ndarray of bool, shape (n,)
        Bad input pixels.

    Returns
    -------
    flux, error : ndarray, shape (7514,)
        Interpolated values (float64; error None if not given).
    bad : ndarray of bool, shape (7514,)
        True where an input pixel with non-zero weight is bad, outside the input's wavelength range, or inside
        a gap of the input grid (two neighbouring input pixels more than 1.5 median steps apart in log λ).

    Raises
    ------
    SpectraError
        If the arrays' shapes differ or the wavelengths are not strictly increasing.
    """
    log_in = np.log10(np.asarray(wavelength, dtype=float))
    flux = np.asarray(flux, dtype=float)
    error = None if error is None else np.asarray(error, dtype=float)
    bad = np.asarray(bad, dtype=bool)
    shapes = {"wavelength": log_in.shape, "flux": flux.shape, "bad": bad.shape}
    if error is not None:
        shapes["error"] = error.shape
    if log_in.ndim != 1 or len(log_in) < 2 or len(set(shapes.values())) != 1:
        raise SpectraError(f"wavelength, flux, error and mask must be 1-D of one length (got {shapes})")
    steps = np.diff(log_in)
    if not np.all(steps > 0):
        raise SpectraError("the input wavelengths are not strictly increasing")
    bad = bad | ~np.isfinite(flux)
    if error is not None:
        bad |= ~np.isfinite(error)
    log_out = np.log10(wavelength_grid())
    right = np.clip(np.searchsorted(log_in, log_out), 1, len(log_in) - 1)
    left = right - 1
    frac = (log_out - log_in[left]) / steps[left]
    tolerance = 1e-6  # of a pixel: grids that share pixels (as ASPCAP's and apStar's) match exactly
    between = (frac > tolerance) & (frac < 1 - tolerance)
    outside = (frac < -tolerance) | (frac > 1 + tolerance) | (between & (steps[left] > 1.5 * np.median(steps)))
    frac = np.clip(frac, 0.0, 1.0)
    out_bad = outside | (bad[left] & (frac < 1 - tolerance)) | (bad[right] & (frac > tolerance))

    def interpolate(values: np.ndarray) -> np.ndarray:
        values = np.where(bad, 0.0, values)
        return np.where(out_bad, np.nan, (1 - frac) * values[left] + frac * values[right])

    return interpolate(flux), None if error is None else interpolate(error), out_bad


class SpectraWriter:
    """Write an N × 7514 float32 HDF5 array in row batches without holding it in memory.

    Parameters
    ----------
    path : path-like
        Destination ``.h5`` file (written to a temporary name and renamed on :meth:`close`).
    n_rows : int
        Total number of spectra.
    chunk_rows : int
        HDF5 chunk height (rows); reads stream chunk by chunk.
    presence : bool
        Also store a boolean dataset ``has_spectrum`` (one value per row, see :meth:`write`).
    attrs : dict, optional
        Attributes of the file (strings or numbers), e.g. how the spectra were made.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_rows: int,
        chunk_rows: int = 256,
        presence: bool = False,
        attrs: dict | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = h5py.File(self._tmp, "w")
        self._data = self._file.create_dataset(
            SPECTRA_DATASET,
            shape=(n_rows, N_PIXELS),
            dtype="float32",
            chunks=(max(1, min(chunk_rows, n_rows)), N_PIXELS),
        )
        self._data.attrs["grid"] = "APOGEE apStar log-lambda grid, chip gaps removed (7514 pixels)"
        self._file.create_dataset("wavelength", data=wavelength_grid())
        self._presence = None
        if presence:
            self._presence = self._file.create_dataset(HAS_SPECTRUM_DATASET, shape=(n_rows,), dtype=bool)
            self._presence.attrs["meaning"] = "False: no spectrum for this row (its pixels are 1)"
        self._file.attrs.update(attrs or {})
        self.n_rows = n_rows
        self._covered = np.zeros(n_rows, dtype=bool)

    def write(self, start: int, block: np.ndarray, has_spectrum: np.ndarray | None = None) -> None:
        """Write rows ``start : start + len(block)``.

        Parameters
        ----------
        start : int
            First row.
        block : ndarray, shape (n, 7514)
            The spectra.
        has_spectrum : ndarray of bool, shape (n,), optional
            Which rows hold a measured spectrum (file opened with ``presence=True`` only; default all).
        """
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != N_PIXELS:
            raise SpectraError(f"{self.path}: block of shape {block.shape}, expected (n, {N_PIXELS})")
        if start < 0 or start + len(block) > self.n_rows:
            raise SpectraError(f"{self.path}: rows {start}-{start + len(block) - 1} outside 0-{self.n_rows - 1}")
        if has_spectrum is not None and (self._presence is None or np.shape(has_spectrum) != (len(block),)):
            raise SpectraError(
                f"{self.path}: has_spectrum of shape {np.shape(has_spectrum)} for a block of {len(block)} rows "
                "(and the writer must be opened with presence=True)"
            )
        self._data[start : start + len(block)] = block
        if self._presence is not None:
            flags = np.ones(len(block), bool) if has_spectrum is None else np.asarray(has_spectrum, bool)
            self._presence[start : start + len(block)] = flags
        self._covered[start : start + len(block)] = True

    def close(self) -> None:
        """Finish the file and move it into place; raises if not every row was written."""
        self._file.close()
        n_written = int(self._covered.sum())
        if n_written != self.n_rows:
            self._tmp.unlink(missing_ok=True)
            raise SpectraError(f"{self.path}: wrote {n_written} of {self.n_rows} rows")
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discard the partial file."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SpectraWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SpectraReader:
    """Read-only access to an N × 7514 spectra file, streamed in chunks.

    Parameters
    ----------
    path : path-like
        HDF5 file with a 2-D dataset ``spectra``.
    expected_rows : int, optional
        Number of rows of the table the spectra must align with.
    """

    def __init__(self, path: str | os.PathLike, expected_rows: int | None = None):
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except (OSError, FileNotFoundError) as exc:
            raise SpectraError(f"{self.path}: cannot open spectra file ({exc})") from exc
        if SPECTRA_DATASET not in self._file:
            found = list(self._file)
            self._file.close()
            raise SpectraError(f"{self.path}: no dataset {SPECTRA_DATASET!r} (found {found})")
        self._data = self._file[SPECTRA_DATASET]
        shape = self._data.shape
        if len(shape) != 2 or shape[1] != N_PIXELS:
            self._file.close()
            raise SpectraError(f"{self.path}: spectra have shape {shape}, expected (n_stars, {N_PIXELS})")
        if expected_rows is not None and shape[0] != expected_rows:
            self._file.close()
            raise SpectraError(
                f"{self.path}: {shape[0]} spectra but the table has {expected_rows} rows; they must align row by row"
            )
        self.n_rows = shape[0]
        self.chunk_rows = self._data.chunks[0] if self._data.chunks else 1024

    @property
    def has_spectrum(self) -> np.ndarray:
        """Boolean (n_rows,): False for rows written without a spectrum (all True if the file does not say)."""
        if HAS_SPECTRUM_DATASET not in self._file:
            return np.ones(self.n_rows, dtype=bool)
        flags = np.asarray(self._file[HAS_SPECTRUM_DATASET], dtype=bool)
        if flags.shape != (self.n_rows,):
            raise SpectraError(
                f"{self.path}: {HAS_SPECTRUM_DATASET} has shape {flags.shape}, expected ({self.n_rows},)"
            )
        return flags

    def usable_rows(self, batch_rows: int = 4096) -> np.ndarray:
        """Boolean (n_rows,): True for the rows that hold a spectrum the network may read.

        A row is usable if ``has_spectrum`` says so (or the file does not say) and its pixels are not
        mostly NaN or ±inf (:func:`nonfinite_rows`), whatever ``has_spectrum`` says: the file is read once.
        """
        usable = self.has_spectrum
        for start, block in self.iter_chunks(batch_rows):
            usable[start : start + len(block)] &= ~nonfinite_rows(block)
        return usable

    @property
    def attrs(self) -> dict:
        """The file's attributes (how the spectra were made, when the writer recorded it)."""
        return dict(self._file.attrs)

    def read_rows(self, rows: np.ndarray, batch_rows: int = 4096) -> np.ndarray:
        """Return the spectra of sorted row indices ``rows`` as an (len(rows), 7514) float32 array.

        Reads contiguous chunk-sized blocks and keeps only the requested rows, so random
        access never turns into one HDF5 call per row.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.n_rows):
            raise SpectraError(f"{self.path}: row indices must lie in 0-{self.n_rows - 1} (got {rows[0]}-{rows[-1]})")
        out = np.empty((len(rows), N_PIXELS), dtype=np.float32)
        for start in range(0, self.n_rows, batch_rows):
            lo, hi = np.searchsorted(rows, [start, start + batch_rows])
            if hi > lo:
                block = self._data[start : start + batch_rows]
                out[lo:hi] = block[rows[lo:hi] - start]
        return out

    def iter_chunks(self, batch_rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_row, block)`` over the whole file in order."""
        for start in range(0, self.n_rows, batch_rows):
            yield start, np.asarray(self._data[start : start + batch_rows], dtype=np.float32)

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> SpectraReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
