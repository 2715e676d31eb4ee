"""Binned statistics of core/maps.py against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from zpdist.maps import bin_index, binned_median_map, color_limits, robust_edges, running_median


def test_bin_index_is_half_open_with_the_last_edge_included():
    edges = np.array([0.0, 1.0, 2.0])
    index = bin_index([-0.1, 0.0, 0.999, 1.0, 2.0, 2.01, np.nan], edges)
    assert index.tolist() == [-1, 0, 0, 1, 1, -1, -1]


def test_binned_median_map_by_hand():
    edges = np.array([0.0, 1.0, 2.0])
    # bin (x0, y0): values 1, 2, 9 -> median 2; bin (x1, y0): 4, 6 -> 5; bin (x0, y1): 7; outside and NaN dropped
    x = [0.5, 0.2, 0.7, 1.5, 1.2, 0.5, 3.0, 0.5]
    y = [0.5, 0.1, 0.9, 0.5, 0.2, 1.5, 0.5, 0.5]
    v = [1.0, 2.0, 9.0, 4.0, 6.0, 7.0, 5.0, np.nan]
    m = binned_median_map(x, y, v, edges, edges, min_count=1)
    assert m.count.tolist() == [[3, 2], [1, 0]]  # rows are y bins
    np.testing.assert_array_equal(m.statistic, [[2.0, 5.0], [7.0, np.nan]])
    np.testing.assert_array_equal(m.x_centres, [0.5, 1.5])
    masked = binned_median_map(x, y, v, edges, edges, min_count=2)
    np.testing.assert_array_equal(masked.statistic, [[2.0, 5.0], [np.nan, np.nan]])
    assert masked.count.tolist() == [[3, 2], [1, 0]]


def test_color_limits_are_the_10th_and_90th_percentiles_of_unmasked_bins():
    stat = np.array([[1.0, 2, 3, 4, 5], [6, 7, 8, 9, 10], [np.nan] * 5])
    assert color_limits(stat) == pytest.approx((1.9, 9.1))
    assert np.isnan(color_limits(np.full((2, 2), np.nan))).all()


def test_robust_edges():
    np.testing.assert_allclose(robust_edges(np.arange(101.0), 4, (0, 100)), [0, 25, 50, 75, 100])
    np.testing.assert_allclose(robust_edges([3.0, 3.0, np.nan], 4), [2.5, 3.5])


def test_running_median_by_hand():
    x = [0.1, 0.2, 0.3, 1.5, 1.6]
    y = [1.0, 2.0, 10.0, 5.0, 7.0]
    r = running_median(x, y, np.array([0.0, 1.0, 2.0, 3.0]))
    assert r["n"].tolist() == [3, 2, 0]
    np.testing.assert_allclose(r["median"], [2.0, 6.0, np.nan])
    # MAD of bin 0 = median(|1-2|, |2-2|, |10-2|) = 1
    assert r["median_error"][0] == pytest.approx(np.sqrt(np.pi / 2) * 1.4826 / np.sqrt(3))
    np.testing.assert_allclose(r["x_mid"], [0.5, 1.5, 2.5])
    cut = running_median(x, y, np.array([0.0, 1.0, 2.0]), min_count=3)
    assert np.isnan(cut["median"][1]) and cut["n"][1] == 2
