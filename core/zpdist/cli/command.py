"""What a ``zpdist`` sub-command is: a name, its help, how it adds its options and how it runs.

The built-in commands live in this package, one module each. Other installed packages add commands
through the ``zpdist.commands`` entry-point group, each entry point naming a :class:`Command`; that is how
the dashboard package contributes ``zpdist serve`` without the science library importing it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

#: Entry-point group through which installed packages add sub-commands.
ENTRY_POINT_GROUP = "zpdist.commands"


@dataclass(frozen=True)
class Command:
    """One sub-command of ``zpdist``.

    Attributes
    ----------
    name : str
        What the user types (``zpdist NAME``).
    help : str
        One line for ``zpdist --help``.
    description : str
        The paragraph at the top of ``zpdist NAME --help``.
    add_arguments : callable
        Adds the command's options to its ``argparse.ArgumentParser``.
    run : callable
        Does the work from the parsed ``argparse.Namespace``; raises :class:`zpdist.errors.ZpdistError`
        for anything the user can fix (the CLI prints it on one line and exits with status 2).
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
