"""The ``zpdist`` command line: one module per built-in command, each defining a :class:`~zpdist.cli.command.Command`.

Run ``zpdist COMMAND --help`` for each command's options. The library modules hold no argparse: the
commands here turn options into configuration dataclasses and call the library.
"""

from __future__ import annotations

from zpdist.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
