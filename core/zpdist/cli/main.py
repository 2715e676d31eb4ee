"""``zpdist``: the parser built from the commands, and the one place where user errors become exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from importlib.metadata import entry_points

from zpdist import __version__
from zpdist.cli.command import ENTRY_POINT_GROUP, Command
from zpdist.errors import ZpdistError

DESCRIPTION = """\
zpdist: spectro-photometric distances and the Gaia parallax zero-point, fitted together
(Leung & Bovy 2019, MNRAS 489, 2079). A PyTorch network learns each star's luminosity from its
APOGEE spectrum (or labels) while fitting the Gaia parallax offset Δϖ, constant or as a function
of G, BP-RP and Teff.

Typical session on the embedded mock Galaxy:
  zpdist mock --out data/mock --n-stars 30000
  zpdist train --table data/mock/allstar.fits --spectra data/mock/spectra.h5 --out runs/spec
  zpdist predict --run runs/spec --table data/mock/allstar.fits --spectra data/mock/spectra.h5 \\
                 --out runs/spec/catalog.parquet
or all of it at once: zpdist demo --out data/demo
"""

#: Built-in commands, in the order ``zpdist --help`` lists them: modules of this package defining ``COMMAND``.
BUILTIN_MODULES = ("mock", "train", "predict", "demo", "mock_gaia", "zeropoint", "ingest", "select", "fetch")


def commands() -> list[Command]:
    """The built-in commands, then those other installed packages add (entry-point group ``zpdist.commands``)."""
    found = [importlib.import_module(f"zpdist.cli.{name}").COMMAND for name in BUILTIN_MODULES]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        command = entry.load()
        if command.name not in {c.name for c in found}:
            found.append(command)
    return found


def build_parser(available: list[Command] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``zpdist``; each sub-parser carries its command's ``run`` as ``args.handler``."""
    parser = argparse.ArgumentParser(
        prog="zpdist", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"zpdist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in available if available is not None else commands():
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    A :class:`zpdist.errors.ZpdistError` (anything the user can fix: a file, a column, a value) is printed
    as one line, ``zpdist COMMAND: error: MESSAGE``, with status 2, as argparse does for bad options. An
    ``OSError`` from the machine (disk full, permission denied) is one line with status 1. Any other
    exception is a bug and keeps its traceback.
    """
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("default", category=UserWarning)
    try:
        args.handler(args)
    except ZpdistError as exc:
        print(f"zpdist {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine, not the input: a full disk, a permission, a lost connection
        print(f"zpdist {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"zpdist {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
