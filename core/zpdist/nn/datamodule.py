"""The training data: the split, the standardisation statistics and the batches of the selected stars.

:func:`star_data` builds, from the table and the rows that pass the cuts, one of two sources behind
the interface of :class:`StarData`:

- :class:`InMemoryStars` holds one copy of every selected star's inputs as a float32 tensor on the
  training device (labels mode always; spectra mode when they fit ``max_memory_gb``);
- :class:`StreamedStars` reads the spectra from the HDF5 file in blocks of rows when they do not, so
  memory holds one block, whatever the number of stars.

Both give the same split, the same statistics (bit for bit) and the same stars in every epoch;
only the order of the training batches differs (see :meth:`StreamedStars.train_batches`).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zpdist.config import TrainConfig
from zpdist.errors import InputError
from zpdist.io.spectra import N_PIXELS
from zpdist.nn import data
from zpdist.nn.batch import Batch
from zpdist.photometry import mag_parallax_to_fakemag

#: Training spectra used to fit the principal components of a spectra-mode log-linear term.
PCA_SAMPLE_ROWS = 8000
#: Stars per forward pass when evaluating the validation loss.
VALIDATION_ROWS = 4096
#: Default memory budget (GB, 10⁹ bytes) for the selected spectra: 8 GB hold ≈ 266,000 spectra of 7,514 pixels.
DEFAULT_MEMORY_GB = TrainConfig().max_memory_gb
#: Rows added up at a time by the block-wise statistics (bounds their float64 temporaries).
_MOMENT_ROWS = 256
#: Inputs per star from which the in-memory statistics are computed block-wise (spectra) rather than by numpy at once.
_WIDE = 64


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation positions (sorted) among ``n`` selected stars.

    Parameters
    ----------
    n : int
        Number of selected stars.
    fraction : float
        Fraction held out for validation (at least 1 star, and at least 1 left for training).
    seed : int
        Seed of the permutation (``numpy.random.default_rng``).

    Raises
    ------
    InputError
        If fewer than 2 stars pass the cuts.
    """
    if n < 2:
        raise InputError(f"only {n} star(s) pass the cuts: at least 2 are needed for a training/validation split")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass(frozen=True)
class Standardisation:
    """The training stars' statistics the model standardises with.

    Attributes
    ----------
    input_mean, input_std : ndarray, shape (n_inputs,)
        Float64 mean and standard deviation of each input (flux or label) over the training stars.
    fakemag_scale : float
        Median of the training stars' positive L = ϖ·10^(0.2 K_corr) (ϖ in mas); 1 if none is positive.
    offset_mean, offset_std : ndarray, shape (3,), or None
        Float64 mean and standard deviation of G (mag), BP−RP (mag), Teff (K) (multivariate offset only).
    """

    input_mean: np.ndarray
    input_std: np.ndarray
    fakemag_scale: float
    offset_mean: np.ndarray | None
    offset_std: np.ndarray | None


@dataclass
class _Columns:
    """The selected stars' per-star values other than the network inputs, float32 tensors on one device."""

    offset_inputs: torch.Tensor | None
    k_corr: torch.Tensor
    parallax: torch.Tensor
    parallax_error: torch.Tensor
    sightline: torch.Tensor | None

    def batch(self, positions: torch.Tensor | slice, inputs: torch.Tensor) -> Batch:
        """The :class:`Batch` of the stars at ``positions`` whose network inputs are ``inputs``."""
        z = None if self.offset_inputs is None else self.offset_inputs[positions]
        line = None if self.sightline is None else self.sightline[positions]
        return Batch(inputs, z, self.k_corr[positions], self.parallax[positions], self.parallax_error[positions], line)


def _tensor(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(values), dtype=torch.float32, device=device)


class StarData(ABC):
    """The selected stars, split into training and validation stars, served as :class:`Batch` objects.

    Use :func:`star_data` to build one. Positions are indices into the selected stars (0 … n_stars − 1,
    in table-row order).

    Attributes
    ----------
    train_positions, val_positions : ndarray of int
        Sorted positions of the training and validation stars (:func:`split`).
    statistics : Standardisation
        The training stars' statistics.
    k_corr, parallax, parallax_error : ndarray, shape (n_stars,)
        K_corr (mag), Gaia parallax and error (mas) of the selected stars, with the table's dtype.
    n_inputs : int
        Length of a star's network input (pixels or labels).
    max_rows : int
        Most stars whose inputs the source holds at once.
    """

    n_inputs: int
    max_rows: int

    def __init__(self, table: pd.DataFrame, rows: np.ndarray, config: TrainConfig, device: torch.device):
        self.device = device
        self.batch_size = config.batch_size
        self.train_positions, self.val_positions = split(len(rows), config.validation_fraction, config.seed)
        self.k_corr = table["k_corr"].to_numpy()[rows]
        self.parallax = table["parallax"].to_numpy()[rows]
        self.parallax_error = table["parallax_error"].to_numpy()[rows]
        offsets = data.offset_inputs(table, rows) if config.offset_model == "multivariate" else None
        lines = data.sightlines_of(table, rows)
        self._columns = _Columns(
            None if offsets is None else _tensor(offsets, device),
            _tensor(self.k_corr, device),
            _tensor(self.parallax, device),
            _tensor(self.parallax_error, device),
            None if lines is None else _tensor(lines, device),
        )
        train = self.train_positions
        fakemag = mag_parallax_to_fakemag(self.k_corr[train], self.parallax[train])
        positive = fakemag[fakemag > 0]
        self._fakemag_scale = float(np.median(positive)) if len(positive) else 1.0
        self._offset_moments = None if offsets is None else _rows_moments(offsets, train)
        self._pca_order = np.random.default_rng(config.seed).permutation(train)

    @property
    def has_sightlines(self) -> bool:
        """Whether the batches carry each star's sightline (GLON/GLAT or RA/DEC were in the table)."""
        return self._columns.sightline is not None

    def sightlines(self) -> np.ndarray | None:
        """The selected stars' sightlines (N, 3), or None when the table gave none."""
        line = self._columns.sightline
        return None if line is None else line.cpu().numpy()

    @property
    def n_stars(self) -> int:
        return len(self.k_corr)

    @property
    def n_train(self) -> int:
        return len(self.train_positions)

    @property
    def n_val(self) -> int:
        return len(self.val_positions)

    @property
    def n_train_batches(self) -> int:
        """Training steps per epoch."""
        return -(-self.n_train // self.batch_size)

    def _set_statistics(self, input_mean: np.ndarray, input_std: np.ndarray) -> None:
        offset_mean, offset_std = (None, None) if self._offset_moments is None else self._offset_moments
        self.statistics = Standardisation(input_mean, input_std, self._fakemag_scale, offset_mean, offset_std)

    def pca_sample(self) -> np.ndarray:
        """Inputs (float32, not standardised) of up to :data:`PCA_SAMPLE_ROWS` random training stars, in row order.

        The sample is the first rows of a permutation of the training stars seeded by the
        configuration's seed, capped by what the source may hold at once.
        """
        return self._read(np.sort(self._pca_order[: min(PCA_SAMPLE_ROWS, self.max_rows)]))

    def val_batches(self) -> Iterator[Batch]:
        """The validation stars in order, :data:`VALIDATION_ROWS` (or fewer) at a time."""
        return self._chunks(self.val_positions, VALIDATION_ROWS)

    def train_stars(self) -> Iterator[Batch]:
        """The training stars in order, in as few batches as the source holds (one in memory)."""
        return self._chunks(self.train_positions, self.max_rows)

    def all_stars(self) -> Iterator[Batch]:
        """Every selected star in order, in as few batches as the source holds (one in memory)."""
        return self._chunks(np.arange(self.n_stars), self.max_rows)

    def offset_input_range(self) -> list[list[float]] | None:
        """Per offset input (G, BP−RP, Teff), the training stars' [min, max]; None for a constant offset."""
        z = self._columns.offset_inputs
        if z is None:
            return None
        z = z[torch.as_tensor(self.train_positions, device=self.device)]
        return torch.stack([z.min(0).values, z.max(0).values], 1).double().cpu().tolist()

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch of shuffled training batches of ``batch_size`` stars, every training star once."""

    @abstractmethod
    def _chunks(self, positions: np.ndarray, rows: int) -> Iterator[Batch]:
        """The stars at ``positions`` (increasing), in order, ``rows`` at a time."""

    @abstractmethod
    def _read(self, positions: np.ndarray) -> np.ndarray:
        """Float32 inputs of the stars at ``positions`` (increasing), on the host."""


class InMemoryStars(StarData):
    """Every selected star's inputs as one float32 tensor on the training device.

    Parameters
    ----------
    table : DataFrame
        Canonical table with ``k_corr`` (:func:`zpdist.nn.data.add_corrected_k`).
    rows : ndarray of int
        Increasing table rows of the selected stars.
    config : TrainConfig
    device : torch.device
    inputs : ndarray, shape (len(rows), n_inputs)
        Their spectra or labels (float32); the tensor shares its memory on the CPU.
    """

    def __init__(
        self, table: pd.DataFrame, rows: np.ndarray, config: TrainConfig, device: torch.device, inputs: np.ndarray
    ):
        super().__init__(table, rows, config, device)
        self._set_statistics(*_rows_moments(inputs, self.train_positions))
        self._inputs = _tensor(inputs, device)
        self.n_inputs = inputs.shape[1]
        self.max_rows = len(inputs)
        self._train = torch.as_tensor(self.train_positions, device=device)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch of training batches in the order of ``torch.randperm(n_train, generator=generator)``."""
        order = torch.randperm(self.n_train, generator=generator).to(self.device)
        for start in range(0, self.n_train, self.batch_size):
            positions = self._train[order[start : start + self.batch_size]]
            yield self._columns.batch(positions, self._inputs[positions])

    def all_stars(self) -> Iterator[Batch]:
        """Every selected star in one batch: the stored tensors themselves."""
        yield self._columns.batch(slice(None), self._inputs)

    def _chunks(self, positions: np.ndarray, rows: int) -> Iterator[Batch]:
        index = torch.as_tensor(positions, device=self.device)
        for start in range(0, len(index), rows):
            chunk = index[start : start + rows]
            yield self._columns.batch(chunk, self._inputs[chunk])

    def _read(self, positions: np.ndarray) -> np.ndarray:
        return self._inputs[torch.as_tensor(positions, device=self.device)].cpu().numpy()


class StreamedStars(StarData):
    """Spectra read from the HDF5 file in blocks of table rows; memory holds one block at a time.

    The training stars (in row order) are cut into blocks of ``block_rows`` consecutive stars, a
    multiple of the batch size. Each epoch visits the blocks in a random order and shuffles the stars
    within each block (both drawn from the trainer's generator), so every training star is seen once
    per epoch, but the batch order differs from :class:`InMemoryStars`' full shuffle and a run gives
    different (statistically equivalent) weights than an in-memory run of the same seed. Non-finite pixels
    become 1 as in :func:`zpdist.nn.data.spectra_inputs`. The statistics are computed in two streaming
    passes over the training stars and equal the in-memory ones bit for bit; the PCA sample is capped at
    one block. Besides the block, :class:`zpdist.io.spectra.SpectraReader` holds one read buffer of
    4,096 file rows.

    Parameters
    ----------
    table, rows, config, device
        As for :class:`InMemoryStars`.
    spectra_path : path-like
        HDF5 spectra row-aligned with ``table``.
    block_rows : int
        Stars per block (a multiple of ``config.batch_size``).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        rows: np.ndarray,
        config: TrainConfig,
        device: torch.device,
        spectra_path: str | os.PathLike,
        block_rows: int,
    ):
        super().__init__(table, rows, config, device)
        self._rows, self._n_table_rows, self._path = rows, len(table), Path(spectra_path)
        self.n_inputs = N_PIXELS
        self.max_rows = block_rows
        self._set_statistics(*_moments(lambda: self._blocks(self.train_positions), self.n_train))

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch: the blocks in the order of ``torch.randperm(n_blocks, generator=generator)`` (drawn only
        when there are several), the stars of each in the order of ``torch.randperm(block size, generator=...)``."""
        starts = range(0, self.n_train, self.max_rows)
        visit = torch.randperm(len(starts), generator=generator).tolist() if len(starts) > 1 else [0]
        for b in visit:
            positions = self.train_positions[starts[b] : starts[b] + self.max_rows]
            inputs = _tensor(self._read(positions), self.device)
            index = torch.as_tensor(positions, device=self.device)
            order = torch.randperm(len(positions), generator=generator).to(self.device)
            for start in range(0, len(positions), self.batch_size):
                chunk = order[start : start + self.batch_size]
                yield self._columns.batch(index[chunk], inputs[chunk])

    def _chunks(self, positions: np.ndarray, rows: int) -> Iterator[Batch]:
        step = min(rows, self.max_rows)
        for start in range(0, len(positions), step):
            chunk = positions[start : start + step]
            inputs = _tensor(self._read(chunk), self.device)
            yield self._columns.batch(torch.as_tensor(chunk, device=self.device), inputs)

    def _blocks(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, len(positions), self.max_rows):
            yield self._read(positions[start : start + self.max_rows])

    def _read(self, positions: np.ndarray) -> np.ndarray:
        return data.spectra_inputs(self._path, self._n_table_rows, self._rows[positions])


def _rows_moments(values: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's float64 mean and standard deviation over the rows ``positions`` of ``values`` (n, k).

    Wide arrays (spectra, k ≥ :data:`_WIDE`) are added up block-wise by :func:`_moments`, which gives
    numpy's numbers without its float64 copy of the whole array; narrow ones (labels, offset inputs) go to
    numpy as they are, since numpy may add a narrow array's rows pairwise.
    """
    if values.shape[1] >= _WIDE:
        blocks = range(0, len(positions), _MOMENT_ROWS)
        return _moments(lambda: (values[positions[i : i + _MOMENT_ROWS]] for i in blocks), len(positions))
    picked = values[positions]
    return picked.mean(0, dtype=np.float64), picked.std(0, dtype=np.float64)


def _add_rows(total: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """``total`` plus the rows of ``rows``, added one after the other in float64 (as numpy does along axis 0)."""
    stacked = rows if total is None else np.concatenate([total[None], rows])
    return np.add.reduce(stacked, axis=0, dtype=np.float64)


def _moments(blocks: Callable[[], Iterator[np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and standard deviation over the rows of the blocks ``blocks()`` yields, in two passes.

    numpy's ``mean(0, dtype=float64)`` and ``std(0, dtype=float64)`` of a C-ordered array add the rows in
    order; adding them in the same order, block after block, gives the same numbers bit for bit, with
    float64 temporaries of :data:`_MOMENT_ROWS` rows instead of the whole array's.
    """
    total = None
    for block in blocks():
        for start in range(0, len(block), _MOMENT_ROWS):
            total = _add_rows(total, block[start : start + _MOMENT_ROWS].astype(np.float64))
    mean = total / n
    squares = None
    for block in blocks():
        for start in range(0, len(block), _MOMENT_ROWS):
            deviation = block[start : start + _MOMENT_ROWS] - mean
            squares = _add_rows(squares, deviation * deviation)
    return mean, np.sqrt(squares / n)


def star_data(
    table: pd.DataFrame,
    rows: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    label_columns: tuple[str, ...] = (),
    spectra_path: str | os.PathLike | None = None,
    max_memory_gb: float = DEFAULT_MEMORY_GB,
    log: Callable[[str], None] = print,
) -> StarData:
    """The training data of the selected stars, in memory or streamed from the spectra file.

    Parameters
    ----------
    table : DataFrame
        Canonical table with ``k_corr`` (and the offset inputs for a multivariate offset model).
    rows : ndarray of int
        Increasing table rows of the stars that pass the cuts.
    config : TrainConfig
        Its mode, offset model, validation fraction, seed and batch size are used.
    device : torch.device
        Where the batches live.
    label_columns : tuple of str
        Labels-mode inputs.
    spectra_path : path-like, optional
        HDF5 spectra row-aligned with ``table`` (spectra mode).
    max_memory_gb : float
        Spectra-mode memory budget (GB, 10⁹ bytes): the selected spectra are held in memory if they fit,
        else streamed in blocks that fit.
    log : callable
        Where the message saying how the spectra are read goes.

    Raises
    ------
    InputError
        If the budget cannot hold one batch of spectra.
    """
    if config.mode == "labels":
        return InMemoryStars(table, rows, config, device, data.label_inputs(table, label_columns, rows))
    bytes_per_star = N_PIXELS * np.dtype(np.float32).itemsize
    budget_rows = math.floor(max_memory_gb * 1e9 / bytes_per_star) if max_memory_gb > 0 else 0
    if len(rows) <= budget_rows:
        log(f"reading {len(rows)} spectra from {spectra_path}")
        return InMemoryStars(table, rows, config, device, data.spectra_inputs(spectra_path, len(table), rows))
    block_rows = budget_rows // config.batch_size * config.batch_size
    if block_rows == 0:
        needed = config.batch_size * bytes_per_star / 1e9
        raise InputError(
            f"max_memory_gb = {max_memory_gb:g}: one batch of {config.batch_size} spectra needs {needed:.3g} GB"
        )
    log(
        f"streaming {len(rows)} spectra ({len(rows) * bytes_per_star / 1e9:.1f} GB, over the {max_memory_gb:g} GB "
        f"memory budget) from {spectra_path} in blocks of {block_rows}"
    )
    return StreamedStars(table, rows, config, device, spectra_path, block_rows)
