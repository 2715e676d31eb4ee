"""Atomic file writing: write next to the target, then rename, so a crash never leaves a partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    On any exception the temporary file is removed and ``target`` is left exactly as it was.

    Parameters
    ----------
    target : path-like
        Final location of the file. Its folder is created if needed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as astropy refuse to overwrite; let them create it
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path beside each target; rename them all onto their targets if the block succeeds.

    For outputs that belong together (a file and its sidecars): on any exception every temporary file is
    removed and every target is left as it was. After the block the renames happen one after the other
    (each atomic) in reverse order, so the first target, the main output, lands last.

    Parameters
    ----------
    *targets : path-like
        Final locations of the files.
    """
    with contextlib.ExitStack() as stack:
        yield tuple(stack.enter_context(atomic_path(target)) for target in targets)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
