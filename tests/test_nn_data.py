"""Choosing the labels-mode inputs and building the network's input arrays from a canonical table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
