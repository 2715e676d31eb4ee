"""Tests of zpdist.selection: the paper's training cuts (docs/method.md §5), with per-cut counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal

from zpdist.photometry import absmag_to_log_solar_luminosity
from zpdist.selection import (
    OFFSET_INPUT_COLUMNS,
    Cut,
    CutResult,
    EmptySelectionError,
    TrainingCuts,
    apply_cuts,
    format_report,
    require_nonempty,
    training_cuts,
)

NAN = np.nan


def k_for(absmag: float, parallax: float) -> float:
    """Apparent K of a star of absolute magnitude ``absmag`` at ``parallax`` (mas): m = M − 5 log10(ϖ / 100)."""
    return absmag - 5.0 * np.log10(parallax / 100.0)


GIANT_K = k_for(-1.6, 1.0)  # = 8.4


def good(**changes) -> dict:
    """A giant (M_K = −1.6) passing every cut, with some fields changed."""
    row = {
        "parallax": 1.0,
        "parallax_error": 0.05,
        "snr": 300.0,
        "visibility_periods_used": 15,
        "starflag": 0,
        "vscatter": 0.2,
        "k_corr": GIANT_K,
    }
    row.update(changes)
    return row


# Each "fail_*" row fails exactly the cut named (and every earlier one passes).
ROWS = [
    ("keep_giant", good()),
    ("fail_parallax_present", good(parallax=NAN)),
    ("fail_parallax_present_err", good(parallax_error=NAN)),
    ("fail_parallax_error", good(parallax_error=0.15)),
    ("fail_snr", good(snr=150.0)),
    ("fail_snr_and_starflag", good(snr=199.0, starflag=1)),  # removed once, by the first cut it fails
    ("fail_snr_nan", good(snr=NAN)),
    ("fail_visibility", good(visibility_periods_used=10)),
    ("fail_starflag", good(starflag=4)),
    ("fail_vscatter", good(vscatter=1.0)),
    ("fail_vscatter_nan", good(vscatter=NAN)),
    ("fail_k_corr", good(k_corr=NAN)),
    ("fail_dwarf", good(parallax=10.0, k_corr=k_for(5.0, 10.0))),  # M_K = 5: log10(L/L_sun) = -0.69
    ("keep_negative_parallax", good(parallax=-0.05, k_corr=12.0)),
    ("keep_giant_far", good(parallax=0.2, k_corr=k_for(-1.6, 0.2), snr=201.0, visibility_periods_used=11)),
]
EXPECTED = [
    ("Gaia parallax present", 2),
    ("0 < parallax_error < 0.1 mas", 1),
    ("SNR > 200", 3),
    ("visibility_periods_used > 10", 1),
    ("STARFLAG == 0", 1),
    ("VSCATTER < 1 km/s", 2),
    ("valid K_corr", 1),
    ("log10(L_K/L_sun) > 0 or parallax < 0", 1),
]


@pytest.fixture
def table() -> pd.DataFrame:
    frame = pd.DataFrame([row for _, row in ROWS], index=[name for name, _ in ROWS])
    frame["starflag"] = frame["starflag"].astype(np.int64)
    frame["visibility_periods_used"] = frame["visibility_periods_used"].astype(np.int64)
    return frame


def test_fixture_stars_are_what_they_claim():
    assert absmag_to_log_solar_luminosity(-1.6) > 0
    assert absmag_to_log_solar_luminosity(5.0) < 0
    assert np.isclose(GIANT_K, 8.4)


def test_cut_names_and_order():
    cuts = training_cuts(TrainingCuts())
    assert [c.name for c in cuts] == [name for name, _ in EXPECTED]
    assert all(isinstance(c, Cut) for c in cuts)


def test_apply_cuts_counts(table):
    keep, report = apply_cuts(table, training_cuts(TrainingCuts()))
    assert keep.dtype == bool and keep.shape == (len(table),)
    assert list(table.index[keep]) == ["keep_giant", "keep_negative_parallax", "keep_giant_far"]
    assert [(r.name, r.removed) for r in report] == EXPECTED
    remaining = len(table) - np.cumsum([n for _, n in EXPECTED])
    assert [r.remaining for r in report] == list(remaining)
    assert report[-1].remaining == 3
    assert all(r.skipped is None for r in report)
    assert sum(r.removed for r in report) == len(table) - keep.sum()


def test_each_failing_row_is_removed_by_its_cut(table):
    cuts = training_cuts(TrainingCuts())
    for name, _ in ROWS:
        keep, _ = apply_cuts(table.loc[[name]], cuts)
        assert bool(keep[0]) == name.startswith("keep"), name


def test_bright_or_negative_cut(table):
    cut = training_cuts(TrainingCuts())[-1]
    assert cut.name == "log10(L_K/L_sun) > 0 or parallax < 0"
    assert cut.columns == ("parallax", "k_corr")
    stars = pd.DataFrame(
        {
            "parallax": [1.0, 10.0, -0.05, -2.0, 0.5, 0.5],
            "k_corr": [k_for(-1.6, 1.0), k_for(5.0, 10.0), 12.0, 3.0, k_for(3.5, 0.5), k_for(3.0, 0.5)],
        },
        index=["giant", "dwarf", "negative", "negative_bright_k", "fainter_than_sun", "brighter_than_sun"],
    )
    keep, report = apply_cuts(stars, [cut])
    assert_array_equal(keep, [True, False, True, True, False, True])
    assert report[0].removed == 2 and report[0].remaining == 4


def test_thresholds_are_configurable(table):
    cuts = TrainingCuts(max_parallax_error=0.2, min_snr=100.0, min_visibility_periods=5, max_vscatter=2.0)
    keep, report = apply_cuts(table, training_cuts(cuts))
    names = [r.name for r in report]
    assert "0 < parallax_error < 0.2 mas" in names and "SNR > 100" in names
    assert "visibility_periods_used > 5" in names and "VSCATTER < 2 km/s" in names
    removed = {r.name: r.removed for r in report}
    assert removed["0 < parallax_error < 0.2 mas"] == 0
    assert removed["SNR > 100"] == 1  # only the NaN SNR
    assert removed["visibility_periods_used > 5"] == 0
    assert removed["STARFLAG == 0"] == 2
    assert removed["VSCATTER < 2 km/s"] == 1  # only the NaN VSCATTER
    assert list(table.index[keep]) == [
        "keep_giant",
        "fail_parallax_error",
        "fail_snr",
        "fail_visibility",
        "fail_vscatter",
        "keep_negative_parallax",
        "keep_giant_far",
    ]


def test_optional_cuts_can_be_turned_off(table):
    cuts = training_cuts(TrainingCuts(require_starflag_zero=False, require_bright_or_negative=False))
    names = [c.name for c in cuts]
    assert "STARFLAG == 0" not in names
    assert "log10(L_K/L_sun) > 0 or parallax < 0" not in names
    keep, _ = apply_cuts(table, cuts)
    kept = {"keep_giant", "keep_negative_parallax", "keep_giant_far", "fail_starflag", "fail_dwarf"}
    assert set(table.index[keep]) == kept


def test_extra_required_cut(table):
    table = table.assign(phot_g_mean_mag=12.0, bp_rp=1.2, teff=4800.0)
    table.loc["keep_giant_far", "teff"] = NAN
    cuts = training_cuts(TrainingCuts(), extra_required=OFFSET_INPUT_COLUMNS, extra_name="offset inputs")
    assert cuts[-1].name == "offset inputs (phot_g_mean_mag, bp_rp, teff)"
    keep, report = apply_cuts(table, cuts)
    assert report[-1].removed == 1
    assert list(table.index[keep]) == ["keep_giant", "keep_negative_parallax"]


def test_absent_column_skips_cut_with_warning(table):
    no_snr = table.drop(columns=["snr"])
    with pytest.warns(UserWarning, match=r"SNR > 200.*skipped.*snr"):
        keep, report = apply_cuts(no_snr, training_cuts(TrainingCuts()))
    by_name = {r.name: r for r in report}
    snr = by_name["SNR > 200"]
    assert snr.removed == 0
    assert snr.skipped is not None and "snr" in snr.skipped
    assert snr.remaining == by_name["0 < parallax_error < 0.1 mas"].remaining == len(table) - 3
    # the three low-SNR stars are now kept (they pass every other cut except the SNR+STARFLAG one)
    assert keep.sum() == 3 + 2
    assert {"fail_snr", "fail_snr_nan"} <= set(no_snr.index[keep])
    assert [r.name for r in report if r.skipped] == ["SNR > 200"]


def test_several_absent_columns(table):
    minimal = table[["parallax", "parallax_error", "k_corr"]]
    with pytest.warns(UserWarning) as record:
        keep, report = apply_cuts(minimal, training_cuts(TrainingCuts()))
    skipped = [r.name for r in report if r.skipped]
    assert skipped == ["SNR > 200", "visibility_periods_used > 10", "STARFLAG == 0", "VSCATTER < 1 km/s"]
    assert len([w for w in record if "skipped" in str(w.message)]) == 4
    assert all(r.removed == 0 for r in report if r.skipped)
    # parallax present (2), error (1), K_corr (1), dwarf (1) removed
    assert keep.sum() == len(table) - 5


def test_cut_result_to_dict():
    result = CutResult("SNR > 200", 3, 10, None)
    assert result.to_dict() == {"name": "SNR > 200", "removed": 3, "remaining": 10, "skipped": None}
    assert TrainingCuts().to_dict()["min_snr"] == 200.0


def test_format_report_contains_every_cut(table):
    with pytest.warns(UserWarning):
        _, report = apply_cuts(table.drop(columns=["vscatter"]), training_cuts(TrainingCuts()))
    text = format_report(report, len(table))
    for r in report:
        assert r.name in text
    lines = text.splitlines()
    assert len(lines) == len(report) + 2
    assert "removed" in lines[0] and "remaining" in lines[0]
    assert lines[1].split()[-1] == str(len(table))
    snr_line = next(line for line in lines if line.startswith("SNR > 200"))
    assert snr_line.split()[-2:] == ["3", str(len(table) - 6)]
    vscatter_line = next(line for line in lines if line.startswith("VSCATTER"))
    assert "skipped: column vscatter absent" in vscatter_line


def test_require_nonempty(table):
    keep, report = apply_cuts(table, training_cuts(TrainingCuts()))
    require_nonempty(keep, report, "allStar.fits")  # something passed: no error
    strict = TrainingCuts(max_parallax_error=0.01)
    keep, report = apply_cuts(table, training_cuts(strict))
    assert not keep.any()
    with pytest.raises(EmptySelectionError) as info:
        require_nonempty(keep, report, "/data/allStar-dr17.fits")
    removed = next(r.removed for r in report if r.name == "0 < parallax_error < 0.01 mas")
    assert str(info.value) == (
        f"/data/allStar-dr17.fits: no star passes the cuts: of {len(table)} stars, '0 < parallax_error < 0.01 mas' "
        f"removed the most ({removed})"
    )  # one line (the command line prints one line per error); the whole table is the error's report
    assert info.value.report == format_report(report, len(table))
    assert isinstance(info.value, ValueError)
    # the cut that removed the most is not always the one that removed the last; skipped cuts removed none
    report = [CutResult("a", 6000, 4000), CutResult("b", 0, 4000, "column b absent"), CutResult("c", 4000, 0)]
    with pytest.raises(EmptySelectionError) as info:
        require_nonempty(np.zeros(10_000, bool), report, "t.csv")
    assert (
        str(info.value)
        == "t.csv: no star passes the cuts: of 10,000 stars, 'a' removed the most (6,000), and 'c' the last 4,000"
    )


def test_empty_table():
    empty = pd.DataFrame(
        {c: pd.Series(dtype=float) for c in ("parallax", "parallax_error", "snr", "vscatter", "k_corr")}
        | {c: pd.Series(dtype=np.int64) for c in ("starflag", "visibility_periods_used")}
    )
    keep, report = apply_cuts(empty, training_cuts(TrainingCuts()))
    assert keep.shape == (0,)
    assert all(r.removed == 0 and r.remaining == 0 for r in report)
    with pytest.raises(EmptySelectionError) as info:
        require_nonempty(keep, report, "empty.csv")
    assert str(info.value) == "empty.csv: no star passes the cuts: the table has no rows"
    assert info.value.report == format_report(report, 0)
