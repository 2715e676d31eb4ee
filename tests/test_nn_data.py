"""Choosing the labels-mode inputs and building the network's input arrays from a canonical table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zpdist.io.spectra import N_PIXELS, SpectraWriter
from zpdist.nn import data


def _table(**columns) -> pd.DataFrame:
    base = {"teff": [4800.0, 4500.0], "logg": [2.4, 1.9], "fe_h": [0.0, -0.3]}
    table = pd.DataFrame(base | columns)
    table.attrs["source"] = "stars.fits"
    return table


def test_default_labels_prefer_alpha_m_and_add_the_mass_tracers():
    table = _table(alpha_m=[0.1, 0.2], mg_fe=[0.1, 0.2], c_fe=[0.0, -0.1], n_fe=[0.2, 0.4])
    assert data.choose_label_columns(table) == ("teff", "logg", "fe_h", "alpha_m", "c_fe", "n_fe")


def test_default_labels_fall_back_to_mg_fe_and_skip_absent_or_empty_mass_tracers():
    assert data.choose_label_columns(_table(mg_fe=[0.1, 0.2])) == ("teff", "logg", "fe_h", "mg_fe")
    # an all-missing column counts as absent, and both tracers are needed
    empty_alpha = _table(alpha_m=[np.nan, np.nan], mg_fe=[0.1, 0.2], c_fe=[0.0, 0.1])
    assert data.choose_label_columns(empty_alpha) == ("teff", "logg", "fe_h", "mg_fe")


def test_requested_labels_are_used_as_given_and_missing_ones_named():
    table = _table(mg_fe=[0.1, 0.2])
    assert data.choose_label_columns(table, ["teff", "logg"]) == ("teff", "logg")
    with pytest.raises(ValueError, match=r"stars\.fits.*ni_fe"):
        data.choose_label_columns(table, ["teff", "ni_fe"])


def test_corrected_k_flags_missing_and_negative_extinction():
    table = _table(k=[10.0, 11.0], ak=[np.nan, -0.02])
    out = data.add_corrected_k(table)
    np.testing.assert_allclose(out["k_corr"], [10.0, 11.0])
    assert out["ak_flag"].tolist() == [True, True]
    out = data.add_corrected_k(_table(k=[10.0, 11.0], ak=[0.1, 0.0]))
    np.testing.assert_allclose(out["k_corr"], [9.9, 11.0])
    assert out["ak_flag"].tolist() == [False, False]


def test_spectra_inputs_reads_increasing_rows_and_sets_nan_pixels_to_one(tmp_path):
    spectra = np.random.default_rng(0).normal(1.0, 0.05, (10, N_PIXELS)).astype(np.float32)
    spectra[3, 7] = np.nan
    path = tmp_path / "s.h5"
    with SpectraWriter(path, 10, chunk_rows=4) as writer:
        writer.write(0, spectra)
    block = data.spectra_inputs(path, 10, np.array([1, 3, 8]))
    expected = spectra[[1, 3, 8]].copy()
    expected[1, 7] = 1.0
    assert block.dtype == np.float32 and block.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(block, expected)
    with pytest.raises(ValueError, match="increasing"):
        data.spectra_inputs(path, 10, np.array([3, 1]))


def test_label_inputs_are_one_float32_row_per_star():
    table = _table(mg_fe=[0.1, 0.2])
    inputs = data.label_inputs(table, ("teff", "mg_fe"), np.array([1]))
    assert inputs.dtype == np.float32 and inputs.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(inputs, np.array([[4500.0, 0.2]], np.float32))
