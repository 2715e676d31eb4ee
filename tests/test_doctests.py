"""The documentation stays true: docstring ``Examples`` run as doctests, and docs/ names only code that exists."""

from __future__ import annotations

import doctest
import importlib
import re
import types
from pathlib import Path

import numpy as np
import pytest

from zpdist import galactocentric, photometry

#: Modules whose docstring examples are checked, with the least number of examples each must hold.
MODULES: dict[types.ModuleType, int] = {photometry: 20, galactocentric: 10}


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__)
def test_docstring_examples_pass(module: types.ModuleType):
    with np.printoptions(legacy=False):  # numpy's default reprs, whatever another test may have set
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {module.__name__} failed"
    # the examples are there: a module that lost them would pass with nothing to run
    assert result.attempted >= MODULES[module]


DOCS = Path(__file__).resolve().parents[1] / "docs"
#: A dotted name under zpdist, e.g. ``zpdist.nn.offset_fit.offset_summary`` (file names such as zpdist.toml excluded).
DOTTED = re.compile(r"\bzpdist(?:\.[A-Za-z_]\w*)+")


def _resolve(dotted: str) -> object:
    """Import the longest importable module prefix of ``dotted``, then follow the attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for name in parts[end:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def test_docs_cite_names_that_exist():
    names = {m for page in DOCS.glob("*.md") for m in DOTTED.findall(page.read_text(encoding="utf-8"))}
    names -= {"zpdist.toml"}
    assert len(names) >= 10
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert missing == []
