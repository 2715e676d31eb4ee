"""`zpdist serve` (the command the dashboard package adds): its options, the catalog it picks, one clear error (exit 2)
without a catalog or for a file that is not one, and the same message on the page of `panel serve` without one."""

from __future__ import annotations

import subprocess
import sys

import panel as pn
import pytest
from astropy.table import Table

from tests.synthetic_catalog import shown, write_synthetic_catalog
from zpdist.cli import build_parser, main
from zpdist.errors import InputError
from zpdist_dashboard import app
from zpdist_dashboard.app import MemoryRelease, served_app
from zpdist_dashboard.command import COMMAND
from zpdist_dashboard.sources import CATALOG_ENV, DEMO_CATALOG, GAIA_ENV, resolve_catalog_path

#: What the message without a catalog must tell the user to run.
HOW_TO_MAKE_ONE = ("zpdist demo --out data/demo", "zpdist predict")


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """A working folder without data/demo, and no catalog in the environment."""
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    monkeypatch.delenv(GAIA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_serve_is_the_dashboards_command_and_defaults_to_this_machine_only():
    assert COMMAND.name == "serve"
    args = build_parser().parse_args(["serve"])
    assert args.address == "127.0.0.1" and args.port == 5006 and args.catalog is None and args.gaia is None


def test_the_command_line_does_not_import_panel_until_serving():
    code = "import sys; from zpdist.cli import build_parser; build_parser(); print('panel' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_page_imports_neither_the_server_nor_the_command():
    code = (
        "import sys, zpdist_dashboard.app; "
        "print([m for m in ('zpdist_dashboard.serve', 'zpdist_dashboard.command') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_catalog_choice(nowhere, monkeypatch):
    assert resolve_catalog_path(nowhere / "a.parquet") == nowhere / "a.parquet"
    monkeypatch.setenv(CATALOG_ENV, str(nowhere / "b.fits"))
    assert resolve_catalog_path(None) == nowhere / "b.fits"
    monkeypatch.delenv(CATALOG_ENV)
    with pytest.raises(InputError, match="no catalog given"):
        resolve_catalog_path(None)
    DEMO_CATALOG.parent.mkdir(parents=True)
    DEMO_CATALOG.write_bytes(b"")
    assert resolve_catalog_path(None) == DEMO_CATALOG


def test_serve_without_a_catalog_says_how_to_make_one_and_makes_none(nowhere, capsys):
    assert main(["serve", "--port", "5999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zpdist serve: error: no catalog given") and len(err.strip().splitlines()) == 1
    assert all(command in err for command in HOW_TO_MAKE_ONE)
    assert list(nowhere.iterdir()) == []  # nothing trained, nothing written


def test_the_page_without_a_catalog_says_the_same(nowhere):
    page = served_app()
    (alert,) = page.main.objects
    assert isinstance(alert, pn.pane.Alert)
    assert "no catalog given" in shown(alert) and all(command in shown(alert) for command in HOW_TO_MAKE_ONE)
    assert list(nowhere.iterdir()) == []


def test_the_page_with_a_catalog_in_the_environment_is_the_dashboard(nowhere, monkeypatch):
    monkeypatch.setenv(CATALOG_ENV, str(write_synthetic_catalog(nowhere / "c.parquet", 300)))
    assert shown(served_app().sidebar[0]).startswith("c.parquet: 300 stars")


def test_a_file_that_is_not_a_catalog_exits_2_naming_it(tmp_path, capsys):
    allstar = tmp_path / "allstar.fits"
    Table({"APOGEE_ID": ["a"], "TEFF": [4500.0]}).write(allstar)
    garbage = tmp_path / "notes.parquet"
    garbage.write_text("hello")
    for path in (allstar, garbage, tmp_path / "absent.parquet"):
        assert main(["serve", "--catalog", str(path), "--port", "5999"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zpdist serve: error:") and str(path) in err and len(err.strip().splitlines()) == 1


def test_sessions_ending_together_release_memory_once(monkeypatch):
    scheduled: list[tuple[float, object]] = []

    class Loop:
        def call_later(self, delay: float, callback) -> None:
            scheduled.append((delay, callback))

    monkeypatch.setattr(app.IOLoop, "current", staticmethod(Loop))
    release = MemoryRelease(delay_s=5.0)
    for _ in range(20):  # twenty viewers leave within the delay: one collection for all
        release.session_ended(None)
    assert [delay for delay, _ in scheduled] == [5.0]
    scheduled[0][1]()  # the collection runs; the next session to end schedules another
    release.session_ended(None)
    assert len(scheduled) == 2
