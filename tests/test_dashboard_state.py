"""Catalog loading, filters, quality cuts and selections of the dashboard, without a browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from tests.synthetic_catalog import synthetic_catalog, write_synthetic_catalog
from zpdist.catalog import UNITS
from zpdist.errors import MissingInputError
from zpdist.io.catalog import write_catalog
from zpdist.maps import BinnedMap
from zpdist.selection import MapCuts, apply_cuts, map_cuts
from zpdist_dashboard.state import (
    Catalog,
    CatalogError,
    DashboardState,
    Selection,
    SharedResults,
    filter_key,
    filter_mask,
    load_catalog,
    nbytes,
    points_in_polygon,
    quality_cuts,
    shared_catalog,
)


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory) -> Path:
    return write_synthetic_catalog(tmp_path_factory.mktemp("cat") / "catalog.parquet", n_stars=500)


def test_load_adds_derived_columns_and_remembers_the_files_own(catalog_file):
    catalog = load_catalog(catalog_file)
    rows, _ = synthetic_catalog(500)
    assert catalog.columns == tuple(rows.columns)
    f = catalog.frame
    np.testing.assert_allclose(f["frac_dist_error"], rows["dist_error"] / rows["dist"])
    np.testing.assert_allclose(f["parallax_residual_uas"], 1000 * (rows["parallax"] - rows["nn_parallax"]))
    gaia = np.where(
        rows["parallax_corrected"] > 0, rows["parallax_corrected_error"] / rows["parallax_corrected"], np.inf
    )
    np.testing.assert_allclose(f["gaia_frac_error"], gaia)
    assert catalog.offset_model == "constant" and catalog.r0_kpc == 8.125
    assert catalog.missing(["dist_kpc", "teff"]) == []


def test_fits_catalog_decodes_string_columns(tmp_path):
    catalog = load_catalog(write_synthetic_catalog(tmp_path / "c.fits", n_stars=50))
    assert catalog.frame["apogee_id"].iloc[0] == "2M00000000"


def test_missing_columns_are_traced_back_to_the_catalog(tmp_path):
    catalog = load_catalog(write_synthetic_catalog(tmp_path / "c.parquet", n_stars=50, drop=("teff", "zp_offset")))
    assert "zp_offset_uas" not in catalog.frame
    assert catalog.missing(["teff", "zp_offset_uas", "bp_rp"]) == ["teff", "zp_offset"]


def test_files_that_are_not_catalogs_are_refused_by_name(tmp_path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    with pytest.raises(CatalogError, match=r"garbage\.parquet"):
        load_catalog(garbage)
    allstar = tmp_path / "allstar.fits"
    Table({"APOGEE_ID": ["a"], "TEFF": [4500.0]}).write(allstar)
    with pytest.raises(CatalogError, match=r"allstar\.fits.*not a zpdist catalog"):
        load_catalog(allstar)
    with pytest.raises(CatalogError, match="csv"):
        (tmp_path / "c.csv").write_text("a\n1\n")
        load_catalog(tmp_path / "c.csv")
    with pytest.raises(MissingInputError, match=r"absent\.parquet"):
        load_catalog(tmp_path / "absent.parquet")


def test_metadata_from_the_file_is_read_through_type_checks(catalog_file):
    catalog = load_catalog(catalog_file)
    assert catalog.constant_offset_uas == (-51.0, 2.5) and catalog.model_mode == "labels"
    for metadata in (
        {"model": "constant", "frame": [8.0]},
        {"model": {"offset_model": "constant", "offset_uas": "-51", "mode": 3}, "frame": {"r0_kpc": "8"}},
        {"model": {"offset_model": ["constant"], "offset_uas": -51.0}, "frame": {"r0_kpc": -1.0}},
        {"model": {"offset_model": "constant", "offset_uas": float("nan")}, "frame": {"r0_kpc": True}},
    ):
        odd = Catalog(catalog.frame, metadata, catalog.path, catalog.columns)
        assert odd.constant_offset_uas is None and odd.model_mode is None and odd.r0_kpc == 8.125


def test_a_text_column_where_numbers_belong_is_refused_by_name(tmp_path):
    rows, metadata = synthetic_catalog(20)
    rows["teff"] = "hot"
    path = write_catalog(rows, tmp_path / "c.parquet", metadata, UNITS)
    with pytest.raises(CatalogError, match=r"c\.parquet: column 'teff' holds \w+ values, not numbers"):
        load_catalog(path)


def test_results_are_shared_by_what_they_depend_on():
    shared, calls = SharedResults(size=2), []
    for key in ("x", "x", "y", "z", "x"):
        shared.get(key, lambda key=key: calls.append(key) or key.upper())
    assert calls == ["x", "y", "z", "x"]  # "x" computed once, then dropped as the least recently used


def test_shared_results_hold_a_bounded_number_of_bytes_of_read_only_arrays():
    shared = SharedResults(size=10, max_bytes=250)
    kept = shared.get("kept", lambda: np.zeros(1000, np.uint8), keep=True)
    for key in "abc":
        shared.get(key, lambda: np.zeros(100, np.uint8))
    assert shared.bytes == 200 and len(shared) == 3  # "a" dropped for the third 100 bytes; "kept" never counts
    assert shared.get("kept", lambda: None) is kept and not kept.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        shared.get("c", lambda: None)[0] = 1
    table = pd.DataFrame({"x": np.zeros(10)})
    assert nbytes(
        {"t": table, "m": (np.zeros(3), BinnedMap(np.zeros(2), np.zeros(2), np.zeros((2, 2)), np.zeros(4)))}
    ) == (table.memory_usage(index=True).sum() + 24 + 16 + 16 + 32 + 32)


def test_sessions_with_the_same_filters_share_their_masks(catalog_file):
    catalog = load_catalog(catalog_file)
    a, b = DashboardState(catalog), DashboardState(catalog)
    assert a.mask is b.mask and a.selected is b.selected and a.filter_key == b.filter_key
    a.set_range("teff", (4000, 4500))
    b.set_range("teff", (4000.0, 4500.0))
    assert a.mask is b.mask and a.filter_key == b.filter_key == filter_key({"teff": (4000, 4500)}, [], "fe_h")
    b.element = "mg_fe"  # the element matters only with a quality cut
    assert b.mask is a.mask
    b.cuts = [4]
    assert b.mask is not a.mask and b.filter_key != a.filter_key


def test_shared_catalog_is_loaded_once_per_process(catalog_file):
    assert shared_catalog(catalog_file) is shared_catalog(str(catalog_file))


def test_filters(catalog_file):
    f = load_catalog(catalog_file).frame
    mask = filter_mask(f, {"teff": (4000, 4500), "dist_kpc": (1, 3), "absent": (0, 1)}, [], "fe_h")
    expected = f["teff"].between(4000, 4500) & f["dist"].between(1000, 3000)
    np.testing.assert_array_equal(mask, expected)
    # NaN never passes an applied range
    f = f.copy()
    f.loc[0, "teff"] = np.nan
    assert not filter_mask(f, {"teff": (0, 1e5)}, [], "fe_h")[0]


def test_the_quality_toggles_are_zpdist_selections_map_cuts(catalog_file):
    f = load_catalog(catalog_file).frame
    every = list(range(len(quality_cuts("mg_fe"))))
    cuts = filter_mask(f, {}, every, "mg_fe")
    by_hand = (
        (f["z_gc"].abs() < 0.3) & (f["dist"] / f["dist_error"] > 5) & (f["logg_err"] < 0.2) & (f["fe_h_err"] < 0.05)
        & (f["mg_fe_err"] < 0.1)
    )  # fmt: skip
    np.testing.assert_array_equal(cuts, by_hand)
    assert 0 < cuts.sum() < len(f)
    for element in ("fe_h", "mg_fe"):
        for chosen in ([0], [1, 4], every):
            listed = [c for i, c in enumerate(map_cuts(MapCuts(element=element))) if i in chosen]
            np.testing.assert_array_equal(filter_mask(f, {}, chosen, element), apply_cuts(f, listed)[0])
    assert [c.name for c in quality_cuts("mg_fe")] == [c.name for c in map_cuts(MapCuts(element="mg_fe"))]


def test_the_configured_map_thresholds_reach_the_toggles(catalog_file):
    catalog = load_catalog(catalog_file)
    wide = MapCuts(max_abs_z=1.0)  # as from `zpdist serve --config` with [maps] max_abs_z = 1.0
    state = DashboardState(catalog, thresholds=wide, cuts=[0])
    np.testing.assert_array_equal(state.mask, catalog.frame["z_gc"].abs() < 1.0)
    assert state.describe_filters()["quality_cuts"] == ["|z_gc| < 1 kpc"]
    assert DashboardState(catalog, cuts=[0]).mask.sum() < state.mask.sum()


def test_a_cut_on_an_absent_column_is_ignored(tmp_path):
    f = load_catalog(write_synthetic_catalog(tmp_path / "c.parquet", n_stars=200, drop=("logg_err",))).frame
    np.testing.assert_array_equal(filter_mask(f, {}, [2], "fe_h"), np.ones(len(f), bool))
    np.testing.assert_array_equal(filter_mask(f, {}, [2, 3], "fe_h"), f["fe_h_err"] < 0.05)


def test_box_and_lasso_selections():
    import pandas as pd

    frame = pd.DataFrame({"a": [0.5, 1.5, 0.5, 2.5], "b": [0.5, 0.5, 1.5, 2.5]})
    box = Selection("a", "b", bounds=(1.0, 0.0, 0.0, 1.0))  # reversed corners are fine
    assert box.mask(frame).tolist() == [True, False, False, False]
    triangle = Selection("a", "b", polygon=((0.0, 0.0), (3.0, 0.0), (0.0, 3.0)))
    assert triangle.mask(frame).tolist() == [True, True, True, False]
    assert triangle.to_dict()["kind"] == "lasso" and box.to_dict()["bounds"] == [1.0, 0.0, 0.0, 1.0]
    square = np.array([(0, 0), (1, 0), (1, 1), (0, 1)], float)
    assert points_in_polygon(np.array([0.5, 1.5]), np.array([0.5, 0.5]), square).tolist() == [True, False]


def test_state_masks_follow_filters_and_selection(catalog_file):
    state = DashboardState(load_catalog(catalog_file))
    assert state.mask.all() and not state.selected.any()
    state.set_range("teff", (4000, 4500))
    n_filtered = state.mask.sum()
    assert 0 < n_filtered < len(state.mask)
    state.selection = Selection("x_gc", "y_gc", bounds=(-20, -20, 20, 20))
    assert state.selected.sum() == n_filtered
    state.set_range("teff", None)
    assert state.selected.sum() == len(state.mask)
    assert state.describe_filters() == {"ranges": {}, "quality_cuts": [], "element": "fe_h"}
    state.element, state.cuts = "mg_fe", [0, 4]
    assert state.describe_filters()["quality_cuts"] == ["|z_gc| < 0.3 kpc", "[X/H] error < 0.1 dex (mg_fe_err)"]
    np.testing.assert_array_equal(state.mask, filter_mask(state.catalog.frame, {}, [0, 4], "mg_fe"))


def test_element_choices_are_the_catalogs(tmp_path):
    state = DashboardState(load_catalog(write_synthetic_catalog(tmp_path / "c.parquet", n_stars=50, drop=("fe_h",))))
    assert "fe_h" not in state.param.element.objects and state.element == "c_fe"
    assert len(state.param.element.objects) == 15
