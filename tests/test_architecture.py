"""The structure the project promises, checked on the source: layering, sizes, where argparse lives, citations.

Data flows files → core → catalog → dashboard: the science package ``zpdist`` (core/zpdist) never imports the
dashboard or a UI library, and the dashboard (dashboard/zpdist_dashboard) never trains.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "zpdist"
DASHBOARD = ROOT / "dashboard" / "zpdist_dashboard"

#: What the science package must never import.
CORE_FORBIDDEN = ("zpdist_dashboard", "panel", "holoviews", "bokeh", "datashader", "param")
#: What the dashboard must never import: training, the demo pipeline that trains, the network library.
DASHBOARD_FORBIDDEN = ("zpdist.nn", "zpdist.pipeline", "zpdist.mock.generate", "torch")
#: Longest function allowed anywhere in core/ and dashboard/ (lines, decorators and docstring included).
MAX_FUNCTION_LINES = 100
#: Longest module allowed under dashboard/zpdist_dashboard/views/ (lines).
MAX_VIEW_LINES = 300


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_core_never_imports_the_dashboard_or_a_ui_library():
    assert _offending(_sources(CORE), CORE_FORBIDDEN) == []


def test_dashboard_never_trains():
    assert _offending(_sources(DASHBOARD), DASHBOARD_FORBIDDEN) == []


def test_the_layering_check_would_catch_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from zpdist_dashboard.app import build_app\n    import torch.nn\n")
    assert _imports(bad) == {"zpdist_dashboard.app", "torch.nn"}
    assert [name for name in _imports(bad) if name.startswith(CORE_FORBIDDEN)] == ["zpdist_dashboard.app"]
    assert [name for name in _imports(bad) if name.startswith(DASHBOARD_FORBIDDEN)] == ["torch.nn"]


@pytest.mark.parametrize("folder", [CORE, DASHBOARD], ids=["core", "dashboard"])
def test_no_function_over_the_limit(folder):
    long = []
    for path in _sources(folder):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - start + 1})")
    assert long == []


def test_no_view_module_over_the_limit():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in _sources(DASHBOARD / "views")}
    assert {name: n for name, n in sizes.items() if n > MAX_VIEW_LINES} == {}


def test_argparse_only_in_the_command_line_modules():
    allowed = {*(_sources(CORE / "cli")), DASHBOARD / "command.py"}
    users = [p.relative_to(ROOT) for p in [*_sources(CORE), *_sources(DASHBOARD)] if "argparse" in _imports(p)]
    assert [str(p) for p in users if ROOT / p not in allowed] == []


def test_docstrings_cite_the_repository_docs_not_an_outside_file():
    citing = [str(p.relative_to(ROOT)) for p in [*_sources(CORE), *_sources(DASHBOARD)] if "METHOD §" in p.read_text()]
    assert citing == []
