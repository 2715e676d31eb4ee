"""Tests of ``zpdist select`` and of the abundance-map cuts (docs/method.md §7) in zpdist.selection."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_array_equal

from zpdist.cli import main
from zpdist.io.catalog import METADATA_KEY, write_catalog
from zpdist.io.tables import read_table
from zpdist.selection import MAP_ELEMENTS, MapCuts, apply_cuts, map_cuts, x_h_error

TWOFACE = "merged_TwoFace_DR14allStar_x_GaiaDR2_532.fits"
APOKASC = "merged_APOKASC2_x_GaiaDR2_6676.fits"
ROW = re.compile(r"^(?P<name>.+?)\s+(?P<removed>\d+)\s+(?P<remaining>\d+)(?:\s+skipped: (?P<skipped>.*))?$")


def parse_report(text: str) -> dict[str, tuple[int, list[tuple[str, int, int, str | None]]]]:
    """The printed sections: title -> (stars at the start, [(cut, removed, remaining, skipped reason)])."""
    sections: dict = {}
    title = None
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith("cut "):
            title = line[:-1]
            sections[title] = [None, []]
        elif title and line.startswith("(input)"):
            sections[title][0] = int(line.split()[-1])
        elif title and (match := ROW.match(line)) and not line.startswith("cut "):
            sections[title][1].append((match["name"], int(match["removed"]), int(match["remaining"]), match["skipped"]))
    return {k: (v[0], v[1]) for k, v in sections.items()}


def assert_consistent(sections: dict, n_total: int) -> int:
    """remaining = previous remaining − removed, section after section; returns the last remaining."""
    remaining = n_total
    for n_start, rows in sections.values():
        assert n_start == remaining
        for _name, removed, left, skipped in rows:
            assert left == remaining - removed
            assert removed == 0 or skipped is None
            remaining = left
    return remaining


def run_report(capsys, *argv: str) -> tuple[str, dict]:
    assert main(["select", *argv]) == 0
    out = capsys.readouterr().out
    return out, parse_report(out)


def _counts(sections: dict, title_start: str) -> dict[str, tuple[int, int, str | None]]:
    (rows,) = [rows for title, (_, rows) in sections.items() if title.startswith(title_start)]
    return {name: (removed, remaining, skipped) for name, removed, remaining, skipped in rows}


# --- map cuts --------------------------------------------------------------------------------------------------


def _catalog_rows() -> pd.DataFrame:
    """Six catalog stars; each "bad" one fails exactly the map cut named."""
    table = pd.DataFrame(
        {
            "name": ["good", "high_z", "far_error", "bad_logg", "bad_feh", "bad_mg"],
            "z_gc": [0.1, -0.5, 0.0, 0.2, 0.0, 0.0],
            "dist": [2000.0, 2000.0, 2000.0, 2000.0, 2000.0, 2000.0],
            "dist_error": [100.0, 100.0, 500.0, 100.0, 100.0, 100.0],
            "logg_err": [0.05, 0.05, 0.05, 0.3, 0.05, 0.05],
            "fe_h_err": [0.01, 0.01, 0.01, 0.01, 0.07, 0.01],
            "mg_fe_err": [0.02, 0.02, 0.02, 0.02, 0.02, 0.15],
        }
    )
    table.attrs["source"] = "catalog.parquet"
    return table


def test_map_cuts_each_removes_its_star():
    table = _catalog_rows()
    keep, report = apply_cuts(table, map_cuts(MapCuts(element="mg_fe")))
    assert list(table["name"][keep]) == ["good"]
    assert [r.removed for r in report] == [1, 1, 1, 1, 1]
    assert report[-1].name == "[X/H] error < 0.1 dex (mg_fe_err)"
    keep, report = apply_cuts(table, map_cuts(MapCuts(max_abs_z=1.0, min_dist_over_error=3.0)))
    assert list(table["name"][keep]) == ["good", "high_z", "far_error", "bad_mg"]


def test_map_cuts_skip_without_catalog_columns():
    table = _catalog_rows().drop(columns=["z_gc", "dist", "dist_error"])
    with pytest.warns(UserWarning, match="skipped"):
        keep, report = apply_cuts(table, map_cuts(MapCuts()))
    assert [r.skipped is not None for r in report] == [True, True, False, False, False]
    assert keep.sum() == 4


def test_map_cuts_element_and_x_h_error():
    assert MAP_ELEMENTS[0] == "fe_h" and "tiii_fe" in MAP_ELEMENTS and len(MAP_ELEMENTS) == 16
    with pytest.raises(ValueError, match="unknown map element 'fe'"):
        MapCuts(element="fe")
    table = _catalog_rows()
    assert_array_equal(x_h_error(table, "mg_fe"), table["mg_fe_err"])
    assert_array_equal(x_h_error(table, "fe_h"), table["fe_h_err"])
    assert MapCuts().to_dict()["max_fe_h_err"] == 0.05


# --- the command on the mock -----------------------------------------------------------------------------------


def test_select_report_on_mock(small_mock, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, sections = run_report(capsys, "--table", str(small_mock.allstar), "--report")
    n = len(read_table(small_mock.allstar))
    assert f"{small_mock.allstar}: {n} stars" in out
    remaining = assert_consistent(sections, n)
    assert f"selected: {remaining} of {n} stars" in out
    training = _counts(sections, "training cuts")
    assert training["SNR > 200"][0] > 0 and training["0 < parallax_error < 0.1 mas"][0] > 0
    maps = _counts(sections, "abundance-map cuts")
    assert maps["|z_gc| < 0.3 kpc"][2] == "column z_gc absent"
    assert maps["dist/dist_error > 5"][2] == "column dist, dist_error absent"
    assert maps["logg_err < 0.2 dex"][2] is None
    assert list(tmp_path.iterdir()) == []  # --report alone writes nothing

    config = tmp_path / "cuts.toml"
    config.write_text("[training]\nmin_snr = 100.0\n")
    _, relaxed = run_report(capsys, "--table", str(small_mock.allstar), "--report", "--mode", "train",
                            "--config", str(config))  # fmt: skip
    assert "abundance-map cuts" not in " ".join(relaxed)
    assert_consistent(relaxed, n)
    assert _counts(relaxed, "training cuts")["SNR > 100"][0] < training["SNR > 200"][0]


def test_select_writes_the_selection(small_mock, tmp_path, capsys):
    out_path = tmp_path / "selected.parquet"
    out, sections = run_report(capsys, "--table", str(small_mock.allstar), "--mode", "train", "--out", str(out_path))
    assert sections == {} and "selected: " in out  # without --report: the summary line only
    n_selected = int(re.search(r"selected: (\d+) of", out)[1])
    selected = read_table(out_path, require_gaia=True)
    assert len(selected) == n_selected
    assert (selected["snr"] > 200).all() and (selected["parallax_error"] < 0.1).all()
    block = json.loads(pq.read_schema(out_path).metadata[METADATA_KEY.encode()])["selection"]
    assert block["mode"] == "train" and block["n_selected"] == n_selected
    assert block["training_cuts"]["min_snr"] == 200.0
    # selecting the selection again removes nothing
    _, again = run_report(capsys, "--table", str(out_path), "--mode", "train", "--report")
    assert all(removed == 0 for _, rows in again.values() for _, removed, _, _ in rows)


def test_select_maps_on_a_catalog(tmp_path, capsys):
    """A zpdist catalog is read whole: the distance and z cuts apply and its columns survive."""
    path = tmp_path / "catalog.parquet"
    write_catalog(_catalog_rows(), path, {"model": {"offset_uas": -50.0}}, {"dist": "pc"})
    out_path = tmp_path / "maps.parquet"
    _, sections = run_report(capsys, "--table", str(path), "--mode", "maps", "--element", "mg_fe", "--report",
                             "--out", str(out_path))  # fmt: skip
    assert list(sections) == ["abundance-map cuts (docs/method.md §7), element mg_fe"]
    assert [row[1:3] for row in sections["abundance-map cuts (docs/method.md §7), element mg_fe"][1]] == [
        (1, 5), (1, 4), (1, 3), (1, 2), (1, 1)
    ]  # fmt: skip
    written = pd.read_parquet(out_path)
    assert list(written["name"]) == ["good"] and "dist" in written and "z_gc" in written
    metadata = json.loads(pq.read_schema(out_path).metadata[METADATA_KEY.encode()])
    assert metadata["model"]["offset_uas"] == -50.0 and metadata["selection"]["map_cuts"]["element"] == "mg_fe"


def test_select_bad_input(small_mock, tmp_path, capsys):
    def fail(*argv: str) -> str:
        assert main(["select", *argv]) == 2
        return capsys.readouterr().err

    table = str(small_mock.allstar)
    assert "nothing to do" in fail("--table", table)
    assert "must end in .parquet or .fits" in fail("--table", table, "--out", str(tmp_path / "x.csv"))
    config = tmp_path / "cuts.toml"
    config.write_text("[maps]\nmax_abs_z = 0.3\nmin_sn = 3\n")
    err = fail("--table", table, "--config", str(config), "--report")
    assert "unknown key 'min_sn'" in err and str(config) in err and err.count("\n") == 1
    assert "no such file" in fail("--table", str(tmp_path / "absent.fits"), "--report")
    config.write_text("[training]\nmin_snr = 1e9\n")
    err = fail("--table", table, "--config", str(config), "--out", str(tmp_path / "none.parquet"))
    assert "no star passes the cuts" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cuts.toml"]


# --- real data -------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_select_report_on_twoface(realdata, capsys):
    out, sections = run_report(capsys, "--table", str(realdata / TWOFACE), "--report")
    assert "A_K missing or negative for 40 stars" in out
    assert assert_consistent(sections, 532) == 14
    training = _counts(sections, "training cuts")
    assert training["Gaia parallax present"][:2] == (11, 521)
    assert training["SNR > 200"][:2] == (336, 142)
    assert training["visibility_periods_used > 10"][2] == "column visibility_periods_used absent"
    assert training["VSCATTER < 1 km/s"][:2] == (56, 15)
    maps = _counts(sections, "abundance-map cuts")
    assert maps["fe_h_err < 0.05 dex"][:2] == (1, 14)


@pytest.mark.realdata
def test_select_report_on_apokasc(realdata, capsys, tmp_path):
    _, sections = run_report(capsys, "--table", str(realdata / APOKASC), "--report")
    assert assert_consistent(sections, 6676) == 6337
    config = tmp_path / "cuts.toml"
    config.write_text("[maps]\nmax_fe_h_err = 0.1\n")
    _, relaxed = run_report(capsys, "--table", str(realdata / APOKASC), "--report", "--config", str(config))
    assert _counts(relaxed, "abundance-map cuts")["fe_h_err < 0.1 dex"][0] < 209
    assert assert_consistent(relaxed, 6676) > 6337
