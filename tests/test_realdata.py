"""Real data: a labels-mode constant fit on APOKASC-2 x Gaia DR2 (Kepler giants), read from ../shared/realdata."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from zpdist.nn.train import TrainConfig, train

pytestmark = pytest.mark.realdata


def test_apokasc_labels_mode_constant_offset(realdata, tmp_path):
    table = realdata / "merged_APOKASC2_x_GaiaDR2_6676.fits"
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train(table, tmp_path, TrainConfig(mode="labels", device="cpu"), progress=False, log=messages.append)
    # no extinction column: A_K = 0 for every star, flagged, and said so
    assert summary["n_ak_flagged"] == 6676
    assert any("AK_TARG" in str(w.message) for w in caught)
    # cuts whose columns the file lacks are skipped, not fatal
    skipped = {c["name"] for c in summary["cuts"] if c["skipped"]}
    assert {"SNR > 200", "STARFLAG == 0", "VSCATTER < 1 km/s"} <= skipped
    assert summary["label_columns"] == ["teff", "logg", "fe_h", "mg_fe"]
    # converged: the validation loss improved and the offset is a finite measurement with error < 10 µas
    history = summary["history"]
    assert min(h["val_loss"] for h in history) < history[0]["val_loss"]
    assert np.isfinite(summary["offset_uas"])
    assert 0 < summary["offset_uas_err"] < 10.0
    assert summary["n_train"] > 5000
