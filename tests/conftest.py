"""Shared fixtures: a small mock Galaxy built once per test session, and the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zpdist.mock.config import MockConfig
from zpdist.mock.generate import MockFiles, write_mock

REALDATA = Path(os.environ.get("ZPDIST_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))


@pytest.fixture(scope="session")
def small_mock(tmp_path_factory) -> MockFiles:
    """3,000 mock stars with spectra and a constant −52.3 µas offset (seed 7)."""
    return write_mock(MockConfig(n_stars=3000, seed=7), tmp_path_factory.mktemp("mock"), progress=False)


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real APOGEE/Gaia files (../shared/realdata or $ZPDIST_REALDATA); skips when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (set ZPDIST_REALDATA to point at it)")
    return REALDATA
