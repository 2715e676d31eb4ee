"""What happens around the training loop, as callbacks of :class:`zpdist.nn.trainer.Trainer`.

The trainer calls each hook on every callback, in the order given; :class:`Checkpoint` should come
last, so that the state it saves includes what the other callbacks did at the end of the epoch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from zpdist.config import TrainConfig
from zpdist.errors import ConfigError, FileFormatError, InputError
from zpdist.io.atomic import atomic_path
from zpdist.nn.infer import read_torch_file, summarise_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from zpdist.nn.trainer import Trainer


class Callback:
    """Hooks of the training loop; each does nothing unless a subclass overrides it."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of :meth:`Trainer.fit` (also after a resume)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the training steps of epoch ``epoch + 1``."""

    def on_batch_end(self, trainer: Trainer) -> None:
        """After each optimiser step."""

    def on_validation_end(self, trainer: Trainer, val_loss: float) -> None:
        """After the epoch's validation loss, before its record is written."""

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """After the epoch's record has been appended to ``trainer.state.history``."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch."""

    def state_dict(self) -> dict:
        """What a checkpoint must save for this callback (merged into the trainer's state)."""
        return {}

    def load_state_dict(self, saved: dict) -> None:
        """Restore from a checkpoint's content."""


class LearningRateSchedule(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without a better validation loss.

    Parameters
    ----------
    optimiser : torch.optim.Optimizer
    factor : float
        Multiplier (paper: 0.5).
    patience : int
        Epochs without improvement tolerated (paper: 2); see ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    def __init__(self, optimiser: torch.optim.Optimizer, factor: float, patience: int):
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="min", factor=factor, patience=patience
        )

    def on_validation_end(self, trainer: Trainer, val_loss: float) -> None:
        self.scheduler.step(val_loss)

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, saved: dict) -> None:
        self.scheduler.load_state_dict(saved["scheduler"])


class EarlyStopping(Callback):
    """Keep the weights of the best validation loss; stop after ``patience`` epochs without a better one.

    The best so far lives in ``trainer.state`` (``best_val``, ``best_epoch``, ``best_state``,
    ``bad_epochs``); a warm-started model is already there as epoch 0's candidate
    (:meth:`Trainer.set_warm_start`). At the end the best weights are loaded into the model.

    Parameters
    ----------
    patience : int
        Epochs without a better validation loss after which training stops.
    """

    def __init__(self, patience: int):
        self.patience = patience

    def on_fit_start(self, trainer: Trainer) -> None:
        trainer.should_stop = trainer.state.bad_epochs >= self.patience

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        state = trainer.state
        if record["val_loss"] < state.best_val:
            state.best_val, state.best_epoch, state.bad_epochs = record["val_loss"], record["epoch"], 0
            state.best_state = copy.deepcopy(trainer.model.state_dict())
        else:
            state.bad_epochs += 1
        trainer.should_stop = state.bad_epochs >= self.patience

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.state.best_state is not None:
            trainer.model.load_state_dict(trainer.state.best_state)


class Progress(Callback):
    """tqdm bars for the epochs and the steps of each epoch, or one logged line per epoch without them.

    Parameters
    ----------
    bars : bool
        Show the bars; if False, log one line per epoch instead.
    log : callable
        Where the lines go.
    """

    def __init__(self, bars: bool, log: Callable[[str], None] = print):
        self.bars, self.log = bars, log

    def on_fit_start(self, trainer: Trainer) -> None:
        self._epochs = tqdm(
            total=trainer.epochs, desc="training", initial=trainer.state.epoch, unit="epoch", disable=not self.bars
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        total = trainer.data.n_train_batches
        self._steps = tqdm(total=total, desc=f"epoch {epoch + 1}", leave=False, unit="batch", disable=not self.bars)

    def on_batch_end(self, trainer: Trainer) -> None:
        self._steps.update()

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        self._steps.close()
        self._epochs.update()
        train, val, offset = record["train_loss"], record["val_loss"], record["offset_uas"]
        self._epochs.set_postfix(train=f"{train:.4f}", val=f"{val:.4f}", offset_uas=f"{offset:.1f}")
        if not self.bars:
            self.log(
                f"epoch {record['epoch']}: train {train:.4f}  val {val:.4f}  lr {record['lr']:.2g}"
                f"  offset {offset:.1f} µas  ({record['seconds']:.1f} s)"
            )

    def on_fit_end(self, trainer: Trainer) -> None:
        self._epochs.close()


#: Whole files up to this size are hashed; larger ones by :data:`FINGERPRINT_BLOCKS` evenly spaced blocks of it.
FINGERPRINT_BLOCK_BYTES = 1 << 20
FINGERPRINT_BLOCKS = 16


def file_fingerprint(path: str | os.PathLike) -> dict:
    """What identifies an input file's content for ``--resume``: its size and a SHA-256 of (a sample of) its bytes.

    Files up to ``FINGERPRINT_BLOCKS × FINGERPRINT_BLOCK_BYTES`` (16 MiB) are hashed whole; larger ones by
    that many blocks of 1 MiB spread evenly from the first byte to the last (headers, FITS and HDF5 at the
    start, Parquet's footer with its column statistics at the end), so a 20 GB spectra file costs 16 MiB of
    reading. The modification time is left out on purpose: a copied or touched file with the same bytes is
    the same input.

    Returns
    -------
    dict
        ``path`` (absolute, for messages only), ``size`` (bytes) and ``sha256`` (hex).
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= FINGERPRINT_BLOCKS * FINGERPRINT_BLOCK_BYTES:
            digest.update(handle.read())
        else:
            last = size - FINGERPRINT_BLOCK_BYTES
            for k in range(FINGERPRINT_BLOCKS):
                handle.seek(last * k // (FINGERPRINT_BLOCKS - 1))
                digest.update(handle.read(FINGERPRINT_BLOCK_BYTES))
    return {"path": str(path.absolute()), "size": size, "sha256": digest.hexdigest()}


class Checkpoint(Callback):
    """Write everything ``--resume`` needs to ``path`` after every epoch, atomically (temporary file, rename).

    The file holds the model, optimiser, scheduler and generator states, the global torch RNG state,
    the :class:`zpdist.nn.trainer.TrainState`, the configuration and the input files' fingerprints
    (:func:`file_fingerprint`) as JSON; ``torch.load(path, weights_only=True)`` reads it.

    Parameters
    ----------
    path : Path
        The checkpoint file written.
    config : TrainConfig
        The run's configuration; a checkpoint resumes only under the same configuration (``epochs`` aside).
    inputs : dict
        :func:`file_fingerprint` of each input file the run reads (``table``, and ``spectra`` in spectra mode);
        a checkpoint resumes only on the same files.
    """

    def __init__(self, path: Path, config: TrainConfig, inputs: dict[str, dict]):
        self.path = Path(path)
        self.config = config
        self.inputs = inputs

    def state_dict(self) -> dict:
        return {"config_json": json.dumps(self.config.to_dict()), "inputs_json": json.dumps(self.inputs)}

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(trainer.state_dict(), tmp)

    def restore(self, trainer: Trainer, source: Path) -> None:
        """Load the checkpoint ``source`` into ``trainer`` (model, optimiser, callbacks, generators, state).

        Raises
        ------
        FileFormatError
            If ``source`` is not a zpdist checkpoint, or one whose states do not fit this run's model.
        ConfigError
            If it was written with another configuration (``epochs`` may differ).
        InputError
            If it was written for another table or spectra file.
        """
        saved = read_torch_file(source, "zpdist checkpoint")
        written, inputs = _json_record(saved, "config_json"), _json_record(saved, "inputs_json")
        if not isinstance(written, dict):
            raise FileFormatError(f"{source}: not a zpdist training checkpoint (no record of its configuration)")
        if not isinstance(inputs, dict):
            raise FileFormatError(
                f"{source}: written by an earlier zpdist without a record of its table and spectra, so resuming on "
                "the same data cannot be checked; train afresh without --resume"
            )
        written |= {"epochs": self.config.epochs}
        current = json.loads(json.dumps(self.config.to_dict()))  # tuples as lists, as in the saved JSON
        changed = sorted(key for key in written.keys() | current.keys() if written.get(key) != current.get(key))
        if changed:
            raise ConfigError(
                f"{source}: was written with a different configuration ({', '.join(changed)}); cannot resume"
            )
        for name, now in self.inputs.items():
            _require_same_input(source, name, inputs.get(name), now)
        try:
            trainer.load_state_dict(saved)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise FileFormatError(
                f"{source}: a checkpoint that does not fit this run: {summarise_error(exc)}"
            ) from None


def _json_record(saved: object, key: str) -> object:
    """The JSON text under ``key`` of a loaded checkpoint, parsed; None if absent or not JSON."""
    try:
        return json.loads(saved[key])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _describe_input(fingerprint: object) -> str:
    if not isinstance(fingerprint, dict):
        return "(no record)"
    digest = str(fingerprint.get("sha256"))[:12]
    return f"{fingerprint.get('path')} ({fingerprint.get('size')} bytes, SHA-256 {digest}…)"


def _require_same_input(source: Path, name: str, written: object, now: dict) -> None:
    """Raise :class:`InputError` if input ``name`` differs from the one the checkpoint ``source`` was written for."""
    same = isinstance(written, dict) and (written.get("size"), written.get("sha256")) == (now["size"], now["sha256"])
    if not same:
        raise InputError(
            f"{source}: was written for the {name} {_describe_input(written)}, but this run reads "
            f"{_describe_input(now)}; cannot resume onto other data (give the same file, or train afresh without "
            "--resume)"
        )
