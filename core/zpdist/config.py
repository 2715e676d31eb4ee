"""One configuration tree for ``zpdist select``, ``train``, ``predict`` and ``serve``: a TOML file and its dataclasses.

A file such as ::

    [training]            # the training-set cuts (zpdist.selection.TrainingCuts)
    min_snr = 100.0

    [maps]                # the abundance-map cuts (zpdist.selection.MapCuts)
    max_abs_z = 0.5

    [train]               # how to train (TrainConfig; its cuts come from [training])
    epochs = 20
    offset_model = "multivariate"

    [predict]             # Monte-Carlo inference (PredictConfig)
    mc_samples = 100

    [frame]               # the Galactocentric frame (zpdist.galactocentric.GalactocentricFrameConfig)
    r0_kpc = 8.2

is read by every command that takes ``--config``; options given on the command line override the
file, and the defaults are the dataclasses' own. Every section and key is optional; an unknown
section or key, or a value of the wrong type, is a :class:`zpdist.errors.ConfigError` naming the file
and the key. The configuration a command actually used is written next to its output
(:func:`write_config`), so any result can be reproduced from its own files.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zpdist.errors import ConfigError
from zpdist.galactocentric import GalactocentricFrameConfig
from zpdist.io.atomic import write_text_atomic
from zpdist.selection import MapCuts, TrainingCuts

#: File name of the configuration written next to an output.
CONFIG_FILE = "zpdist.toml"


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the ``[train]`` section of the configuration, saved as ``train_config.json`` in the run folder.

    Attributes
    ----------
    mode : {"spectra", "labels"}
        Luminosity branch input.
    offset_model : {"constant", "multivariate"}
        Zero-point model.
    epochs : int
        Maximum number of epochs (paper: 40).
    batch_size : int
        Stars per step (paper: 64).
    learning_rate : float
        Adam's initial learning rate (paper: 1e-3).
    validation_fraction : float
        Fraction of the selected stars held out for validation (paper: 10 %).
    lr_factor, lr_patience : float, int
        Learning rate multiplied by ``lr_factor`` after ``lr_patience`` epochs without improvement (paper: 0.5, 2).
    early_stopping_patience : int
        Stop after this many epochs without a better validation loss; the best weights are kept.
    l2 : float
        L2 penalty on the weights (paper: 5e-9).
    dropout : float
        Dropout rate (paper: 0.3).
    seed : int
        Seed for the split, the initialisation, the batches and dropout.
    device : str
        "auto", "cpu" or "cuda".
    label_columns : tuple of str, optional
        Labels-mode inputs; default Teff, log g, [Fe/H] and [α/M] or [Mg/Fe].
    offset_mc_passes : int
        Shared-mask Monte-Carlo passes for the offset's model uncertainty (paper: 1,000).
    fit_mc_samples : int
        Monte-Carlo samples per star for the σ_NN entering the statistical error.
    cuts : TrainingCuts
        The training-set cuts.
    luminosity_head : {"log_linear", "softplus"}
        L's output form (see :class:`zpdist.nn.model.ModelConfig`). "log_linear" (default): a
        dropout-free log-linear term (in the labels, or in the spectrum's leading whitened principal
        components and their products) times the network's correction. "softplus": the paper's head.
        How they compare on the mock is measured by ``benchmarks/recovery.py`` (docs/method.md §3).
    n_quadratic : int
        Spectra mode with the log-linear head: the products of the leading ``n_quadratic`` whitened
        principal components also enter the log-linear term, so ln L is a quadratic polynomial in the
        spectrum's leading components plus the network's correction (0: linear, as before).
    warm_start : bool
        Fit the log-linear term, the heads' biases and the offset's level by full-batch L-BFGS before
        Adam starts (:mod:`zpdist.nn.warm_start`); ignored by the softplus head and on ``--resume``.
        The warm-started model is epoch 0's candidate for early stopping.
    parallax_correction : {"none", "l21"}
        "l21": subtract the Lindegren et al. (2021) zero-point from every (E)DR3 parallax before training, so
        the fitted Δϖ is the offset that remains after L21 (the question people ask of DR3); stars outside
        L21's validity range are removed by a cut of their own. Needs an EDR3/DR3 table with L21's columns.
    max_memory_gb : float
        Spectra mode: the selected spectra are held in memory when they fit this budget (GB, 10⁹ bytes),
        else streamed from the HDF5 file in blocks that do. Streaming visits the stars in another order,
        so it is part of the configuration a run is reproduced from.
    likelihood : {"selection", "paper"}
        The training objective. "paper": Leung & Bovy's Gaussian in parallax. "selection": the
        selection-aware likelihood, which marginalises each star's luminosity scatter with a distance prior
        from a Galactic density model at the star's apparent magnitude (:mod:`zpdist.nn.loss`); under a
        magnitude limit the paper's objective biases Δϖ wherever the inputs leave luminosity scatter.
        Needs GLON/GLAT (or RA/DEC) per star; without them training falls back to the paper's, with a warning.
        The default: with ``outlier_fraction = 0.01`` and a lognormal scatter it is the calibrated choice on
        the realistic mock (labels mode, 20 realisations; spectra mode, 3), where the paper's objective is
        biased upwards by ≈ 5 µas in labels mode and 10–13 µas in spectra mode (docs/method.md §12, §13).
    outlier_fraction : float
        Either likelihood is mixed with a broad component (20× each star's total uncertainty) holding this
        fraction of the parallaxes (:func:`zpdist.nn.loss.with_outliers`): a few spurious Gaia parallaxes then
        cannot pull the offset. Default 0.01 (the realistic mock's 0.5 % of outliers biased the fit by up to
        −17 µas without it); 0: the likelihood alone, as in the paper.
    luminosity_scatter : {"gaussian", "lognormal"}
        Shape of each star's luminosity scatter about the network's L in the selection-aware likelihood:
        Gaussian in L (the paper's), or lognormal with median L (multiplicative, as from mass or log g errors;
        the default).
    network_draws : int
        Draws of the luminosity network (one dropout mask shared by every star) over which the offset's
        level is re-solved; their spread is the level's network error (0: not computed).
    half_samples : int
        After the fit, repeat it (cuts aside) this many times on random halves of the selected stars, each with
        its own seed; the spread of their Δϖ is the quoted error of the offset (and of the plane's coefficients),
        which then holds the network's fit to the same data and the training's randomness
        (:mod:`zpdist.nn.half_samples`). Costs about half a training each. 0 (the default): the error is the
        statistical and network errors in quadrature; 1 is refused (one half has no spread).
    warm_lr_factor : float
        With a warm start, the log-linear term and the constant offset learn at this fraction of the
        learning rate (Adam's step is ≈ the learning rate whatever the gradient: at 1e-3 the constant
        offset would move ≈ 1 µas per step).
    """

    mode: Literal["spectra", "labels"] = "spectra"
    offset_model: Literal["constant", "multivariate"] = "constant"
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    lr_factor: float = 0.5
    lr_patience: int = 2
    early_stopping_patience: int = 8
    l2: float = 5e-9
    dropout: float = 0.3
    seed: int = 0
    device: str = "auto"
    label_columns: tuple[str, ...] | None = None
    offset_mc_passes: int = 1000
    fit_mc_samples: int = 30
    cuts: TrainingCuts = field(default_factory=TrainingCuts)
    luminosity_head: Literal["log_linear", "softplus"] = "log_linear"
    n_quadratic: int = 16
    warm_start: bool = True
    warm_lr_factor: float = 0.1
    max_memory_gb: float = 8.0
    parallax_correction: Literal["none", "l21"] = "none"
    likelihood: Literal["selection", "paper"] = "selection"
    outlier_fraction: float = 0.01
    luminosity_scatter: Literal["gaussian", "lognormal"] = "lognormal"
    network_draws: int = 30
    half_samples: int = 0

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "learning_rate", "offset_mc_passes", "fit_mc_samples", "max_memory_gb"):
            _require_range(key, getattr(self, key), 0.0, math.inf, include_low=False)
        for key in ("validation_fraction", "lr_factor"):
            _require_range(key, getattr(self, key), 0.0, 1.0, include_low=False)
        if self.parallax_correction not in ("none", "l21"):
            raise ConfigError(f"parallax_correction = {self.parallax_correction!r}: choose none or l21")
        if self.likelihood not in ("selection", "paper"):
            raise ConfigError(f"likelihood = {self.likelihood!r}: choose selection or paper")
        for key in ("dropout", "warm_lr_factor"):
            _require_range(key, getattr(self, key), 0.0, 1.0)
        _require_range("outlier_fraction", self.outlier_fraction, 0.0, 0.5)
        if self.luminosity_scatter not in ("gaussian", "lognormal"):
            raise ConfigError(f"luminosity_scatter = {self.luminosity_scatter!r}: choose gaussian or lognormal")
        for key in ("lr_patience", "early_stopping_patience", "n_quadratic", "l2", "network_draws", "half_samples"):
            _require_range(key, getattr(self, key), 0.0, math.inf)
        if self.half_samples == 1:
            raise ConfigError("half_samples = 1: one half has no spread; use 0 (none) or at least 2 (10 recommended)")

    def to_dict(self) -> dict:
        return asdict(self)


def _require_range(key: str, value: float, low: float, high: float, include_low: bool = True) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``value`` is finite and in [low, high) (or (low, high))."""
    inside = math.isfinite(value) and (value >= low if include_low else value > low) and value < high
    if not inside:
        interval = f"{'[' if include_low else '('}{low:g}, {high:g})"
        raise ConfigError(f"{key} = {value!r}: must be a finite number in {interval}")


#: Arithmetic of the repeated Monte-Carlo dropout layers (see :func:`zpdist.nn.device.resolve_precision`).
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class PredictConfig:
    """How ``zpdist predict`` runs Monte-Carlo inference; the ``[predict]`` section.

    Attributes
    ----------
    mc_samples : int
        Monte-Carlo dropout passes per star (paper: 100; at least 2, so the model variance is defined).
    device : str
        "auto" (CUDA when present), "cpu" or "cuda".
    precision : {"auto", "float32", "bfloat16", "float16"}
        Arithmetic of the repeated dropout layers: "auto" is bfloat16 on CUDA and float32 on CPU.
    """

    mc_samples: int = 100
    device: str = "auto"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    def __post_init__(self) -> None:
        if self.mc_samples < 2:
            raise ConfigError(f"mc_samples = {self.mc_samples}: at least 2 Monte-Carlo passes are needed")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision = {self.precision!r}: choose one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class ZpdistConfig:
    """The whole configuration tree; each attribute is one TOML section of the same name.

    Attributes
    ----------
    training : TrainingCuts
    maps : MapCuts
    train : TrainConfig
        Its ``cuts`` always equal ``training``.
    predict : PredictConfig
    frame : GalactocentricFrameConfig
    """

    training: TrainingCuts = field(default_factory=TrainingCuts)
    maps: MapCuts = field(default_factory=MapCuts)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    frame: GalactocentricFrameConfig = field(default_factory=GalactocentricFrameConfig)

    def __post_init__(self) -> None:
        if self.train.cuts != self.training:
            object.__setattr__(self, "train", dataclasses.replace(self.train, cuts=self.training))

    def replace(self, section: str, **values: Any) -> ZpdistConfig:
        """A copy with the given keys of one section replaced; None values (options not given) are ignored."""
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            return self
        current = getattr(self, section)
        try:
            updated = dataclasses.replace(current, **given)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[{section}]: {exc}") from exc
        return dataclasses.replace(self, **{section: updated})

    def to_toml(self) -> str:
        """The tree as TOML text (None values, which TOML cannot hold, are left out)."""
        blocks = []
        for name in SECTIONS:
            values = asdict(getattr(self, name))
            values.pop("cuts", None)
            lines = [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
            blocks.append(f"[{name}]\n" + "\n".join(lines))
        return "\n\n".join(blocks) + "\n"


#: Section name -> the dataclass whose fields are its keys.
SECTIONS: dict[str, type] = {
    "training": TrainingCuts,
    "maps": MapCuts,
    "train": TrainConfig,
    "predict": PredictConfig,
    "frame": GalactocentricFrameConfig,
}


def _toml_value(value: object) -> str:
    """One TOML value: bool, int, float, string or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return (
            repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else f"{'-' if value < 0 else ''}inf")
        )
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _accepts(default: object, value: object) -> bool:
    """True if a TOML ``value`` may replace a field whose default is ``default`` (ints for floats, no bools)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, list)
    if default is None:
        return isinstance(value, str | list)
    return isinstance(value, type(default))


def section_from_toml(cls: type, values: object, path: Path, name: str) -> object:
    """Build ``cls`` from one TOML section, checking every key and value type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [{name}] must be a table of key = value pairs")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "cuts"}
    defaults = cls()
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{path}: unknown key {key!r} in [{name}]; known keys: {', '.join(fields)}")
        default = getattr(defaults, key)
        if not _accepts(default, value):
            raise ConfigError(
                f"{path}: [{name}] {key} = {value!r} must be a {type(default).__name__} (default {default!r})"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}: [{name}] {key} = {value!r} must be finite")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**converted)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: [{name}]: {exc}") from exc


def read_toml(path: Path, what: str) -> dict:
    """The content of a TOML file; a missing, unreadable or invalid file is a :class:`ConfigError` naming it and
    saying it is the ``what`` (e.g. "configuration file")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such {what}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def load_config(path: str | os.PathLike | None) -> ZpdistConfig:
    """The configuration tree of a TOML file (None: every default).

    Raises
    ------
    ConfigError
        On a missing or invalid file, an unknown section or key, or a value of the wrong type (the
        message names the file, the section and the key).
    """
    if path is None:
        return ZpdistConfig()
    path = Path(path)
    data = read_toml(path, "configuration file")
    unknown = [name for name in data if name not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; expected "
            + ", ".join(f"[{s}]" for s in SECTIONS)
        )
    return ZpdistConfig(
        **{name: section_from_toml(cls, data.get(name, {}), path, name) for name, cls in SECTIONS.items()}
    )


def write_config(config: ZpdistConfig, path: str | os.PathLike) -> Path:
    """Write the tree to ``path`` atomically (TOML); :func:`load_config` reads it back to an equal tree.

    Commands write it next to their output: ``RUN_DIR/zpdist.toml`` for a run, ``STEM.zpdist.toml``
    beside a catalog or a selected table.
    """
    path = Path(path)
    write_text_atomic(path, config.to_toml())
    return path


def config_path_beside(output: str | os.PathLike) -> Path:
    """Where the configuration of a single-file output goes: ``catalog.parquet`` → ``catalog.zpdist.toml``."""
    output = Path(output)
    return output.with_name(output.name.split(".")[0] + "." + CONFIG_FILE)
