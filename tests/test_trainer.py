"""The data module (in memory and streamed from HDF5), the trainer's loop and its callbacks, and resuming a run."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from zpdist.config import TrainConfig
from zpdist.errors import ConfigError, InputError
from zpdist.io.spectra import N_PIXELS, SpectraWriter
from zpdist.nn import data
from zpdist.nn.batch import Batch
from zpdist.nn.callbacks import Callback, EarlyStopping, LearningRateSchedule
from zpdist.nn.datamodule import InMemoryStars, StreamedStars, star_data
from zpdist.nn.model import ModelConfig, ZeroPointNet
from zpdist.nn.train import train
from zpdist.nn.trainer import Trainer, validation_loss

CPU = torch.device("cpu")
N_ROWS = 300
BATCH = 32
#: A budget of 100 spectra: the streamed source reads blocks of 96 (three batches).
BUDGET_ROWS = 100
BUDGET_GB = BUDGET_ROWS * N_PIXELS * 4 / 1e9
LABELS = ("teff", "logg", "fe_h")


@pytest.fixture(scope="module")
def stars_files(tmp_path_factory):
    """A 300-row table and its spectra; pixel 0 of each spectrum is its table row, some pixels are NaN."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "k_corr": rng.uniform(8.0, 11.0, N_ROWS),
            "parallax": rng.uniform(0.2, 2.0, N_ROWS),
            "parallax_error": np.full(N_ROWS, 0.02),
            "phot_g_mean_mag": rng.uniform(10.0, 14.0, N_ROWS),
            "bp_rp": rng.uniform(1.0, 2.0, N_ROWS),
            **{name: rng.normal(0.0, 1.0, N_ROWS) for name in LABELS},
        }
    )
    spectra = rng.normal(1.0, 0.05, (N_ROWS, N_PIXELS)).astype(np.float32)
    spectra[:, 0] = np.arange(N_ROWS)
    spectra[5::17, 100] = np.nan
    path = tmp_path_factory.mktemp("stars") / "spectra.h5"
    with SpectraWriter(path, N_ROWS, chunk_rows=32) as writer:
        writer.write(0, spectra)
    rows = np.flatnonzero(rng.random(N_ROWS) < 0.8)
    return table, spectra, path, rows


def _config(**changes) -> TrainConfig:
    return TrainConfig(**{"batch_size": BATCH, "device": "cpu", "seed": 3, **changes})


def _both(stars_files, offset_model="multivariate") -> tuple[InMemoryStars, StreamedStars]:
    table, _, path, rows = stars_files
    config = _config(offset_model=offset_model)
    memory = star_data(table, rows, config, CPU, spectra_path=path, log=lambda m: None)
    streamed = star_data(table, rows, config, CPU, spectra_path=path, max_memory_gb=BUDGET_GB, log=lambda m: None)
    return memory, streamed


def _stack(batches) -> Batch:
    parts = list(batches)

    def joined(name: str) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    return Batch(*(joined(f.name) for f in dataclasses.fields(Batch)))


def test_streamed_and_in_memory_sources_give_the_same_split_statistics_and_stars(stars_files):
    _, spectra, _, rows = stars_files
    memory, streamed = _both(stars_files)
    assert isinstance(memory, InMemoryStars) and isinstance(streamed, StreamedStars)
    assert streamed.max_rows == 96 and memory.max_rows == len(rows)
    np.testing.assert_array_equal(memory.train_positions, streamed.train_positions)
    np.testing.assert_array_equal(memory.val_positions, streamed.val_positions)
    # the statistics, bit for bit, and as numpy computes them on the spectra with NaN pixels set to 1
    for field in dataclasses.fields(memory.statistics):
        np.testing.assert_array_equal(getattr(memory.statistics, field.name), getattr(streamed.statistics, field.name))
    training = np.nan_to_num(spectra[rows[memory.train_positions]], nan=1.0)
    np.testing.assert_array_equal(streamed.statistics.input_mean, training.mean(0, dtype=np.float64))
    np.testing.assert_array_equal(streamed.statistics.input_std, training.std(0, dtype=np.float64))
    assert np.isfinite(streamed.statistics.input_mean).all() and streamed.statistics.offset_mean.shape == (3,)
    # validation, training and all stars: the same stars in the same order, with the same values
    for batches in ("val_batches", "train_stars", "all_stars"):
        a, b = _stack(getattr(memory, batches)()), _stack(getattr(streamed, batches)())
        for field in dataclasses.fields(Batch):
            x, y = getattr(a, field.name), getattr(b, field.name)
            assert (x is None and y is None) or torch.equal(x, y), (batches, field.name)
    assert len(list(streamed.all_stars())) == -(-len(rows) // 96) and len(list(memory.all_stars())) == 1
    everyone = _stack(streamed.all_stars())
    assert torch.equal(everyone.inputs[:, 0], torch.as_tensor(rows, dtype=torch.float32))
    assert not torch.isnan(everyone.inputs).any()


@pytest.mark.parametrize("source", [0, 1], ids=["in_memory", "streamed"])
def test_every_training_star_is_in_each_epoch_once_with_its_own_values(stars_files, source):
    table, _, _, rows = stars_files
    stars = _both(stars_files)[source]
    generator = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(2):
        batches = list(stars.train_batches(generator))
        assert len(batches) == stars.n_train_batches == -(-stars.n_train // BATCH)
        assert sorted(len(b) for b in batches)[1:] == [BATCH] * (len(batches) - 1)
        star_rows = torch.cat([b.inputs[:, 0] for b in batches]).long().numpy()
        assert sorted(star_rows) == sorted(rows[stars.train_positions])
        parallax = torch.cat([b.parallax for b in batches])
        assert torch.equal(parallax, torch.as_tensor(table["parallax"].to_numpy()[star_rows], dtype=torch.float32))
        orders.append(star_rows)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled each epoch


def test_streamed_source_never_holds_more_than_its_budget(stars_files, monkeypatch):
    table, _, path, rows = stars_files
    read = data.spectra_inputs
    sizes = []

    def recording(*args):
        block = read(*args)
        sizes.append(block.nbytes)
        return block

    monkeypatch.setattr(data, "spectra_inputs", recording)
    config = _config(luminosity_head="log_linear")
    stars = star_data(table, rows, config, CPU, spectra_path=path, max_memory_gb=BUDGET_GB, log=lambda m: None)
    list(stars.train_batches(torch.Generator().manual_seed(0)))
    list(stars.val_batches()), list(stars.all_stars()), list(stars.train_stars())
    assert len(stars.pca_sample()) == 96  # capped at one block
    assert len(sizes) > 10 and max(sizes) == 96 * N_PIXELS * 4 <= BUDGET_GB * 1e9
    with pytest.raises(InputError, match="max_memory_gb"):
        star_data(table, rows, config, CPU, spectra_path=path, max_memory_gb=BUDGET_GB / 10, log=lambda m: None)


def test_in_memory_source_holds_one_copy_of_the_inputs(stars_files):
    table, _, _, rows = stars_files
    inputs = data.label_inputs(table, LABELS, rows)
    stars = InMemoryStars(table, rows, _config(mode="labels"), CPU, inputs)
    (everyone,) = stars.all_stars()
    assert np.shares_memory(everyone.inputs.numpy(), inputs)
    np.testing.assert_array_equal(stars.statistics.input_mean, inputs[stars.train_positions].mean(0, dtype=np.float64))


class _Snapshots(Callback):
    """The model's state after each epoch."""

    def __init__(self):
        self.states: dict[int, dict] = {}

    def on_epoch_end(self, trainer, record):
        self.states[record["epoch"]] = copy.deepcopy(trainer.model.state_dict())


def _scripted_trainer(stars_files, val_losses, patience=2, lr_patience=2, epochs=6):
    """A labels-mode trainer whose validation losses are ``val_losses`` in turn."""
    table, _, _, rows = stars_files
    stars = star_data(table, rows, _config(mode="labels"), CPU, label_columns=LABELS)
    torch.manual_seed(0)
    model = ZeroPointNet(ModelConfig(mode="labels", n_inputs=len(LABELS)))
    slow = model.offset.slow_parameters()
    fast = [p for p in model.parameters() if all(p is not q for q in slow)]
    optimiser = torch.optim.Adam([{"params": fast}, {"params": slow, "lr": 1e-4}], lr=1e-3)
    snapshots = _Snapshots()
    callbacks = [LearningRateSchedule(optimiser, 0.5, lr_patience), EarlyStopping(patience), snapshots]
    trainer = Trainer(model, optimiser, stars, callbacks, epochs, 0.0, seed=0)
    losses = iter(val_losses)
    trainer.validation_loss = lambda: next(losses)
    return trainer, snapshots


def _same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_stops_after_patience_bad_epochs_and_restores_the_best(stars_files):
    trainer, snapshots = _scripted_trainer(stars_files, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    state = trainer.fit()
    assert state.epoch == 4 and len(state.history) == 4  # epochs 3 and 4 were bad: no 5th
    assert (state.best_epoch, state.best_val, state.bad_epochs) == (2, 0.5, 2)
    assert _same_state(trainer.model.state_dict(), snapshots.states[2])
    assert not _same_state(snapshots.states[4], snapshots.states[2])


def test_warm_start_is_epoch_0s_candidate(stars_files):
    trainer, _ = _scripted_trainer(stars_files, [0.4, 1.0, 0.9, 0.8])
    warm = copy.deepcopy(trainer.model.state_dict())
    assert trainer.set_warm_start({"iterations": 3}) == 0.4
    state = trainer.fit()
    assert state.epoch == 2 and state.best_epoch == 0 and state.warm_start == {"iterations": 3, "val_loss": 0.4}
    assert _same_state(trainer.model.state_dict(), warm)


def test_learning_rate_halves_after_patience_epochs_on_a_plateau(stars_files):
    trainer, _ = _scripted_trainer(stars_files, [1.0] * 6, patience=10, lr_patience=2)
    state = trainer.fit()
    assert [h["lr"] for h in state.history] == [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4]
    assert [g["lr"] for g in trainer.optimiser.param_groups] == [5e-4, 5e-5]


def test_validation_loss_is_the_training_objective_with_dropout_on():
    """The loss that drives the schedule and early stopping is stochastic (dropout on), like the model in use."""
    model = ZeroPointNet(ModelConfig(mode="labels", n_inputs=4, dropout=0.5))
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        torch.randn(256, 4, generator=g), None, torch.full((256,), 10.0),
        torch.rand(256, generator=g) + 0.1, torch.full((256,), 0.05),
    )  # fmt: skip
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(validation_loss(model, [batch.select(torch.arange(i, i + 64)) for i in (0, 64, 128, 192)], 0.0))
    assert np.isfinite(losses).all()
    assert losses[0] == losses[1] and losses[0] != losses[2]


class _Interrupted(Exception):
    pass


def _without_timings(summary: dict) -> dict:
    summary = copy.deepcopy(summary)
    summary.pop("train_seconds")
    for record in summary["history"]:
        record.pop("seconds")
    return summary


def test_resuming_an_interrupted_run_gives_the_uninterrupted_summary(small_mock, tmp_path):
    config = TrainConfig(mode="labels", epochs=4, device="cpu", fit_mc_samples=5, offset_mc_passes=20)
    full = train(small_mock.allstar, tmp_path / "full", config, progress=False, log=lambda m: None)

    def crash_in_epoch_3(message: str) -> None:  # after epoch 3's training, before its checkpoint
        if message.startswith("epoch 3:"):
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train(small_mock.allstar, tmp_path / "cut", config, progress=False, log=crash_in_epoch_3)
    assert not (tmp_path / "cut").exists()  # the interrupted run is kept aside, marked incomplete
    assert torch.load(tmp_path / "cut.incomplete" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    resumed = train(small_mock.allstar, tmp_path / "cut", config, resume=True, progress=False, log=lambda m: None)
    assert len(resumed["history"]) == 4 and resumed["warm_start"] == full["warm_start"]
    assert _without_timings(resumed) == _without_timings(full)
    assert not (tmp_path / "cut.incomplete").exists() and (tmp_path / "cut" / "checkpoint.pt").exists()
    other = dataclasses.replace(config, batch_size=32)
    with pytest.raises(ConfigError, match="batch_size"):
        train(small_mock.allstar, tmp_path / "cut", other, resume=True, progress=False, log=lambda m: None)


def test_spectra_training_streams_beyond_the_memory_budget(small_mock, tmp_path):
    messages: list[str] = []
    config = TrainConfig(
        mode="spectra",
        epochs=1,
        device="cpu",
        n_quadratic=0,
        warm_start=False,
        fit_mc_samples=2,
        offset_mc_passes=10,
        max_memory_gb=200 * N_PIXELS * 4 / 1e9,
    )
    summary = train(
        small_mock.allstar, tmp_path, config, spectra_path=small_mock.spectra, progress=False, log=messages.append
    )
    assert any(m.startswith("streaming 656 spectra") and m.endswith("in blocks of 192") for m in messages)
    assert summary["n_train"] + summary["n_val"] == 656 and np.isfinite(summary["offset_uas"])
    assert len(summary["history"]) == 1 and np.isfinite(summary["history"][0]["val_loss"])
