"""The oracle floor of ``benchmarks/calibration.py`` (docs/method.md §13): exact on noise-free parallaxes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zpdist.mock.config import InjectedOffset
from zpdist.mock.gaia import injected_offset_mas, nonlinear_offset_mas
from zpdist.mock.realism import NonlinearOffset


def _calibration():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"
    spec = importlib.util.spec_from_file_location("calibration_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stars(n: int = 4000, outlier_mas: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Giants with the mock's multivariate and non-linear Δϖ, their Gaia parallax = true + Δϖ (no noise), and
    one star in 100 an outlier shifted by ``outlier_mas``."""
    rng = np.random.default_rng(7)
    inputs = np.column_stack([rng.uniform(9, 16, n), rng.uniform(1.0, 3.5, n), rng.uniform(3900, 5100, n)])
    offset = InjectedOffset(offset_uas=-40.0, model="multivariate")
    delta = injected_offset_mas(offset, *inputs.T) + nonlinear_offset_mas(NonlinearOffset(), offset, *inputs.T)
    true = rng.uniform(0.1, 2.0, n)
    outlier = np.arange(n) % 100 == 0
    truth = pd.DataFrame({"parallax_true": true, "parallax": true + delta + outlier * outlier_mas,
                          "parallax_error": rng.uniform(0.02, 0.06, n), "parallax_outlier": outlier})  # fmt: skip
    return truth, 1000.0 * delta, inputs


def test_oracle_recovers_noise_free_offsets_with_the_injected_form_and_leaves_the_plane_its_misfit():
    calibration = _calibration()
    truth, injected, inputs = _stars(outlier_mas=5.0)  # the outliers are dropped: they change nothing
    floor = calibration._oracle_floor(truth, injected, inputs)
    assert floor["oracle_form_rms_uas"] < 1e-6 and abs(floor["oracle_form_variance_explained"] - 1.0) < 1e-9
    basis = calibration._oracle_basis(inputs)[:, :4]
    weight = 1.0 / truth["parallax_error"].to_numpy() ** 2
    clean = ~truth["parallax_outlier"].to_numpy()
    coefficients = np.linalg.lstsq((basis * np.sqrt(weight)[:, None])[clean], (injected * np.sqrt(weight))[clean])[0]
    misfit = basis @ coefficients - injected
    assert floor["oracle_plane_rms_uas"] == pytest.approx(np.sqrt(np.mean(misfit**2)), rel=1e-9)
    assert floor["oracle_plane_rms_uas"] > 1.0  # a plane cannot follow the step
    assert 0.0 < floor["oracle_plane_variance_explained"] < 1.0
