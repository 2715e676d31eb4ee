"""`zpdist serve`: its options, the catalog it picks, and one clear error (exit 2) for a file that is not a catalog."""

from __future__ import annotations

import subprocess
import sys

from astropy.table import Table

from zpdist.cli import build_parser, main
from zpdist_dashboard.serve import CATALOG_ENV, DEMO_CATALOG, resolve_catalog_path


def test_serve_options_default_to_this_machine_only():
    args = build_parser().parse_args(["serve"])
    assert args.address == "127.0.0.1" and args.port == 5006 and args.catalog is None


def test_the_command_line_does_not_import_panel_until_serving():
    code = "import sys; from zpdist.cli import build_parser; build_parser(); print('panel' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_catalog_choice(tmp_path, monkeypatch):
    assert resolve_catalog_path(tmp_path / "a.parquet") == tmp_path / "a.parquet"
    monkeypatch.setenv(CATALOG_ENV, str(tmp_path / "b.fits"))
    assert resolve_catalog_path(None) == tmp_path / "b.fits"
    monkeypatch.delenv(CATALOG_ENV)
    monkeypatch.chdir(tmp_path)
    DEMO_CATALOG.parent.mkdir(parents=True)
    DEMO_CATALOG.write_bytes(b"")
    assert resolve_catalog_path(None) == DEMO_CATALOG


def test_a_file_that_is_not_a_catalog_exits_2_naming_it(tmp_path, capsys):
    allstar = tmp_path / "allstar.fits"
    Table({"APOGEE_ID": ["a"], "TEFF": [4500.0]}).write(allstar)
    garbage = tmp_path / "notes.parquet"
    garbage.write_text("hello")
    for path in (allstar, garbage, tmp_path / "absent.parquet"):
        assert main(["serve", "--catalog", str(path), "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("zpdist serve: error:") and str(path) in err and len(err.strip().splitlines()) == 1
