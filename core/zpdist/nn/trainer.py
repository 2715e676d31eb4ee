"""The training loop, separated as in Lightning (without the dependency).

:class:`Trainer` runs epochs of Adam steps on shuffled training batches from a
:class:`zpdist.nn.datamodule.StarData`, evaluates the validation loss after each, and calls its
callbacks (:mod:`zpdist.nn.callbacks`: learning-rate schedule, early stopping, progress, checkpoints)
around that; where training stands is a :class:`TrainState`.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from zpdist.errors import InputError
from zpdist.nn.batch import Batch
from zpdist.nn.callbacks import Callback
from zpdist.nn.datamodule import StarData
from zpdist.nn.loss import PAPER_LIKELIHOOD, ParallaxLikelihood
from zpdist.nn.model import ZeroPointNet, enable_mc_dropout
from zpdist.units import mas_to_uas


class NonFiniteLossError(InputError):
    """The training or validation loss became NaN or ±inf: training stops, the message says where and why."""


#: What usually makes the loss non-finite, for the message of :class:`NonFiniteLossError`.
_LIKELY_CAUSES = (
    "likely causes: a learning rate too high for these data, inputs with extreme values (check the table's and the "
    "spectra's ranges), or a checkpoint resumed onto other data"
)


@dataclass
class TrainState:
    """Where training stands; what a checkpoint saves and ``--resume`` restores.

    Attributes
    ----------
    epoch : int
        Epochs completed.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss`` and ``val_loss`` (mean parallax NLL plus the L2
        term), ``lr`` (after the schedule's step), ``seconds`` and ``offset_uas`` (the constant offset, µas;
        NaN for the multivariate model).
    best_val : float
        Best validation loss so far (inf before any).
    best_epoch : int
        Epoch of ``best_val`` (0: the warm start).
    bad_epochs : int
        Epochs since the validation loss last improved.
    best_state : dict of Tensor, optional
        The model's ``state_dict`` at ``best_epoch``.
    warm_start : dict, optional
        What the warm start fitted (:class:`zpdist.nn.warm_start.WarmStart`) and its validation loss.
    """

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    warm_start: dict | None = None


def batch_loss(model: ZeroPointNet, batch: Batch, likelihood: ParallaxLikelihood = PAPER_LIKELIHOOD) -> torch.Tensor:
    """Mean parallax negative log-likelihood of ``batch`` under ``model`` (dropout as the model's mode says)."""
    out = model(batch.inputs, batch.offset_inputs)
    return likelihood.mean(batch, out["fakemag"], out["log_var"], out["offset"])


def train_step(
    model: ZeroPointNet,
    optimiser: torch.optim.Optimizer,
    batch: Batch,
    l2: float,
    likelihood: ParallaxLikelihood = PAPER_LIKELIHOOD,
) -> torch.Tensor:
    """One optimiser step on ``batch``; the objective before it: mean NLL plus ``l2`` times the squared weights.

    The penalty's gradient, 2·l2·w, is added to the weights' gradients directly rather than through autograd
    (which would square, sum and differentiate ≈ 1.2 million weights through temporaries at every step).

    Returns
    -------
    Tensor
        The objective, a detached scalar on the batch's device.
    """
    _retain_freed_memory(batch.inputs.device)
    optimiser.zero_grad(set_to_none=True)
    nll = batch_loss(model, batch, likelihood)
    nll.backward()
    with torch.no_grad():
        weights = model.penalised_weights()
        for weight in weights:
            if weight.grad is None:
                weight.grad = torch.zeros_like(weight)
            weight.grad.add_(weight, alpha=2.0 * l2)
        penalty = sum(torch.dot(w.flatten(), w.flatten()) for w in weights)
    optimiser.step()
    return nll.detach() + l2 * penalty


#: glibc's mallopt parameters (malloc.h) and the values :func:`_retain_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_BYTES, _MMAP_BYTES = 1 << 30, 32 << 20


@functools.cache
def _retain_freed_memory(device: torch.device) -> None:
    """On a CPU with glibc, let the C allocator keep up to 1 GB of freed memory for reuse (once per process).

    A training step allocates and frees tens of MB of activations; by default glibc hands them back to the
    system at every step and the next step faults every page in again (≈ 2,000 page faults, 10-15 % of a
    step at batch 64). Elsewhere (no glibc, or a GPU) nothing changes.
    """
    if device.type != "cpu":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)
    mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)


def validation_loss(
    model: ZeroPointNet, batches: Iterable[Batch], l2: float, likelihood: ParallaxLikelihood = PAPER_LIKELIHOOD
) -> float:
    """The training objective on held-out stars, with dropout on as in training and in Monte-Carlo inference.

    Dropout stays on because the network is never used without it: with dropout off, the spectra
    network's L is a few per cent away from its Monte-Carlo mean and that loss grows while the real one
    falls, which would drive the learning-rate schedule and early stopping on a model nobody uses.

    Parameters
    ----------
    model : ZeroPointNet
    batches : iterable of Batch
        The held-out stars.
    l2 : float
        Weight of the L2 penalty (added once).
    likelihood : ParallaxLikelihood
        The objective (default: the paper's).

    Returns
    -------
    float
        Star-weighted mean NLL plus ``l2`` times the squared weights.
    """
    enable_mc_dropout(model)
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            total += float(batch_loss(model, batch, likelihood)) * len(batch)
            count += len(batch)
        return total / max(count, 1) + l2 * float(model.weight_penalty())


class Trainer:
    """Fit a :class:`ZeroPointNet` with an optimiser on the batches of a :class:`StarData`.

    Parameters
    ----------
    model : ZeroPointNet
        On the data's device, statistics set.
    optimiser : torch.optim.Optimizer
    data : StarData
    callbacks : sequence of Callback
        Called in this order at every hook.
    epochs : int
        Last epoch to run (training may resume from a later start, or stop earlier).
    l2 : float
        Weight of the L2 penalty on the weights.
    seed : int
        Seed of the generator that orders the training batches.
    likelihood : ParallaxLikelihood
        The objective (default: the paper's).

    Attributes
    ----------
    state : TrainState
    should_stop : bool
        Set by a callback to end :meth:`fit` before the next epoch.
    """

    def __init__(
        self,
        model: ZeroPointNet,
        optimiser: torch.optim.Optimizer,
        data: StarData,
        callbacks: Sequence[Callback],
        epochs: int,
        l2: float,
        seed: int,
        likelihood: ParallaxLikelihood = PAPER_LIKELIHOOD,
    ):
        self.model, self.optimiser, self.data = model, optimiser, data
        self.likelihood = likelihood
        self.callbacks, self.epochs, self.l2 = list(callbacks), epochs, l2
        self.generator = torch.Generator().manual_seed(seed)
        self.state = TrainState()
        self.should_stop = False

    def fit(self) -> TrainState:
        """Run the epochs from ``state.epoch`` to ``epochs`` unless a callback stops earlier; return the state."""
        self._call("on_fit_start")
        for epoch in range(self.state.epoch, self.epochs):
            if self.should_stop:
                break
            self._call("on_epoch_start", epoch)
            started = time.perf_counter()
            train_loss = self._train_epoch()
            val_loss = self._finite_validation_loss(f"after epoch {epoch + 1}")
            self._call("on_validation_end", val_loss)
            record = {
                "epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                "lr": self.optimiser.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
                "offset_uas": mas_to_uas(self.model.offset.uniform_value()),
            }  # fmt: skip
            self.state.history.append(record)
            self.state.epoch = epoch + 1
            self._call("on_epoch_end", record)
        self._call("on_fit_end")
        return self.state

    def _train_epoch(self) -> float:
        """One pass of Adam steps over the training batches; the star-weighted mean training loss.

        Raises
        ------
        NonFiniteLossError
            If a step's loss is NaN or ±inf (checked on the value the running mean needs anyway, so no
            extra device synchronisation): the epoch is abandoned and no checkpoint written for it.
        """
        self.model.train()
        running = 0.0
        for step, batch in enumerate(self.data.train_batches(self.generator), start=1):
            value = float(train_step(self.model, self.optimiser, batch, self.l2, self.likelihood))
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"training stopped: the training loss is {value} at epoch {self.state.epoch + 1}, step {step} "
                    f"of {self.data.n_train_batches} (learning rate {self.optimiser.param_groups[0]['lr']:g}); "
                    f"{_LIKELY_CAUSES}"
                )
            running += value * len(batch)
            self._call("on_batch_end")
        return running / self.data.n_train

    def validation_loss(self) -> float:
        """:func:`validation_loss` of the data's validation stars."""
        return validation_loss(self.model, self.data.val_batches(), self.l2, self.likelihood)

    def _finite_validation_loss(self, when: str) -> float:
        """:meth:`validation_loss`, refused if NaN or ±inf (:class:`NonFiniteLossError`, saying ``when``)."""
        value = self.validation_loss()
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"training stopped: the validation loss of the {self.data.n_val} validation stars is {value} {when}; "
                f"{_LIKELY_CAUSES}"
            )
        return value

    def set_warm_start(self, warm_start: dict) -> float:
        """Make the current (warm-started) model epoch 0's candidate for early stopping; return its validation loss.

        Parameters
        ----------
        warm_start : dict
            What the warm start fitted; stored in ``state.warm_start`` with the validation loss added.
        """
        val_loss = self._finite_validation_loss("after the warm start")
        self.state.best_val, self.state.best_epoch = val_loss, 0
        self.state.best_state = copy.deepcopy(self.model.state_dict())
        self.state.warm_start = {**warm_start, "val_loss": val_loss}
        return val_loss

    def state_dict(self) -> dict:
        """Everything needed to continue: model, optimiser, generators, state, and each callback's part."""
        state = self.state
        saved = {
            "model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "history_json": json.dumps(state.history), "warm_start_json": json.dumps(state.warm_start),
            "epoch": state.epoch, "best_val": state.best_val, "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs, "best_state": state.best_state,
        }  # fmt: skip
        for callback in self.callbacks:
            saved |= callback.state_dict()
        return saved

    def load_state_dict(self, saved: dict) -> None:
        """Continue from :meth:`state_dict`'s content (tensors may be on the CPU)."""
        self.model.load_state_dict(saved["model"])
        self.optimiser.load_state_dict(saved["optimiser"])
        for callback in self.callbacks:
            callback.load_state_dict(saved)
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        self.state = TrainState(
            epoch=saved["epoch"], history=json.loads(saved["history_json"]), best_val=saved["best_val"],
            best_epoch=saved["best_epoch"], bad_epochs=saved["bad_epochs"], best_state=saved["best_state"],
            warm_start=json.loads(saved.get("warm_start_json", "null")),
        )  # fmt: skip

    def _call(self, hook: str, *args: object) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)
