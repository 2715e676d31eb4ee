"""zpdist: spectro-photometric distances and the Gaia parallax zero-point, after Leung & Bovy (2019)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zpdist")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
