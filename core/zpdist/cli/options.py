"""Option types and option groups shared by several ``zpdist`` commands.

Every number a command takes is range-checked here, when the command line is parsed, so bad values fail
before any work starts, with argparse's one-line message naming the option and the value.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be positive")
    return value


def finite_float(text: str) -> float:
    """Any finite number."""
    return _number(text, float)


def port_number(text: str) -> int:
    """A TCP port, 1–65535."""
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def mc_samples(text: str) -> int:
    """Monte-Carlo passes: at least 2, so that a spread is defined."""
    value = _number(text, int)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value}: at least 2 Monte-Carlo passes are needed for a spread")
    return value


def add_config(parser: argparse.ArgumentParser, sections: str) -> None:
    """``--config FILE``: the TOML configuration tree (:mod:`zpdist.config`); options given on the line win."""
    parser.add_argument(
        "--config", type=Path, metavar="TOML",
        help=f"configuration file (sections {sections} are read here; see docs/cli.md); options given on the "
        "command line override it",
    )  # fmt: skip


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda``."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto (CUDA when present), cpu or cuda")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_dask(parser: argparse.ArgumentParser) -> None:
    """``--scheduler`` and ``--workers``, read by :func:`zpdist.parallel.dask_executor`."""
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler address (tcp://HOST:8786) of a running cluster, or 'threads' / 'synchronous' to run "
        "in this process (default: start a local cluster)",
    )
    parser.add_argument(
        "--workers", type=positive_int, metavar="N",
        help="worker processes of the local cluster (default: one per core)",
    )  # fmt: skip


def refuse_input_as_output(output: Path, *inputs: Path | None) -> None:
    """Raise :class:`zpdist.errors.OutputError` if ``output`` is one of the ``inputs`` (it would be overwritten)."""
    from zpdist.errors import OutputError

    target = output.resolve()
    for source in inputs:
        if source is not None and source.resolve() == target:
            raise OutputError(f"{output}: is also an input of this command; choose another output path")
