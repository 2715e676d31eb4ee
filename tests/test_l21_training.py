"""`zpdist train --parallax-correction l21`: the offset left after Lindegren et al. (2021) on EDR3-like parallaxes."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from zpdist.cli import main
from zpdist.config import TrainConfig
from zpdist.errors import InputError
from zpdist.lindegren import ecliptic_latitude, l21_zero_point
from zpdist.nn.train import train
from zpdist.units import mas_to_uas

QUIET = {"progress": False, "log": lambda message: None}


@pytest.fixture(scope="module")
def edr3_mock(small_mock, tmp_path_factory):
    """The small mock (constant −52.3 µas injected) with DR17-style GAIAEDR3_* names, 5-parameter solutions,
    and an L21-shaped zero-point added to every parallax inside L21's range; also the L21 values."""
    table = Table.read(small_mock.allstar)
    for name in [c for c in table.colnames if c.startswith("GAIA_")]:
        table.rename_column(name, "GAIAEDR3_" + name.removeprefix("GAIA_"))
    n = len(table)
    table["GAIAEDR3_NU_EFF_USED_IN_ASTROMETRY"] = np.full(n, 1.55)
    table["GAIAEDR3_PSEUDOCOLOUR"] = np.full(n, -9999.0)
    table["GAIAEDR3_ASTROMETRIC_PARAMS_SOLVED"] = np.full(n, 31)
    g = np.where(table["GAIAEDR3_PHOT_G_MEAN_MAG"] > -9000, table["GAIAEDR3_PHOT_G_MEAN_MAG"], np.nan)
    beta = ecliptic_latitude(np.asarray(table["RA"], float), np.asarray(table["DEC"], float))
    l21, outside = l21_zero_point(g, np.full(n, 1.55), np.full(n, np.nan), beta, np.full(n, 31))
    parallax = np.asarray(table["GAIAEDR3_PARALLAX"], float)
    has = (parallax > -9000) & ~outside
    table["GAIAEDR3_PARALLAX"] = np.where(has, parallax + np.nan_to_num(l21), parallax)
    path = tmp_path_factory.mktemp("edr3") / "allstar-edr3.fits"
    table.write(path)
    return path, l21


def test_the_residual_offset_after_l21_is_the_injected_constant(edr3_mock, tmp_path):
    path, l21 = edr3_mock
    config = TrainConfig(mode="labels", epochs=4, batch_size=32, device="cpu", parallax_correction="l21")
    corrected = train(path, tmp_path / "l21", config, **QUIET)
    plain = train(path, tmp_path / "plain", TrainConfig(mode="labels", epochs=4, batch_size=32, device="cpu"), **QUIET)
    assert corrected["gaia_release"] == "EDR3"
    assert any(c["name"] == "inside L21's validity range" for c in corrected["cuts"])
    # with L21 subtracted, the fit finds the injected −52.3 µas; without, it also absorbs L21's mean (≈ −15 to −40 µas)
    mean_l21 = mas_to_uas(float(np.nanmean(l21)))
    assert mean_l21 < -10.0
    assert abs(corrected["offset_uas"] + 52.3) < 4 * corrected["offset_uas_err"] + 3.0
    shift = plain["offset_uas"] - corrected["offset_uas"]
    assert shift == pytest.approx(mean_l21, abs=0.35 * abs(mean_l21))


def test_l21_needs_edr3_parallaxes(small_mock, tmp_path):
    config = TrainConfig(mode="labels", epochs=1, device="cpu", parallax_correction="l21")
    with pytest.raises(InputError, match=r"needs Gaia \(E\)DR3 parallaxes \(this table's release: DR2\)"):
        train(small_mock.allstar, tmp_path / "run", config, **QUIET)


def test_the_option_reaches_the_config(edr3_mock, tmp_path, capsys):
    path, _ = edr3_mock
    argv = ["train", "--table", str(path), "--mode", "labels", "--epochs", "1", "--parallax-correction", "l21",
            "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert 'parallax_correction = "l21"' in (tmp_path / "run" / "zpdist.toml").read_text()
