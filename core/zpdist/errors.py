"""The one family of errors a user can act on.

Every problem caused by the user's input (a file, a column, a value, an option) is raised as a
:class:`ZpdistError` subclass whose message names the culprit: the file, the column, the value and
what was expected. The command line turns exactly this family into exit status 2 and one line on
standard error; anything else is a bug and keeps its traceback. Subclasses also derive from the
built-in exception a Python caller would expect (``ValueError`` for bad values, ``OSError`` for
files and downloads), so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations


class ZpdistError(Exception):
    """Base class: a problem with the user's input, explained in the message."""


class InputError(ZpdistError, ValueError):
    """A bad value: an option out of range, a column with no usable values, inconsistent inputs."""


class ConfigError(InputError):
    """A configuration file or value that cannot be used (unknown key, wrong type, out of range)."""


class FileFormatError(ZpdistError, ValueError):
    """A file that exists but cannot be read as what it should be (format, shape, columns)."""


class OutputError(ZpdistError, OSError):
    """An output that cannot be written where asked (e.g. it would overwrite an input)."""


class MissingInputError(ZpdistError, FileNotFoundError):
    """An input file or folder that does not exist, or a pattern that matches nothing."""
