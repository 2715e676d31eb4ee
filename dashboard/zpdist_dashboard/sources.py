"""Which catalog and which Gaia-scale table the dashboard shows: given by ``zpdist serve``'s options, or by
environment variables for ``panel serve dashboard/zpdist_dashboard/app.py``.

The dashboard only reads catalogs; it never makes one. Without any, it says how to make one.
"""

from __future__ import annotations

import os
from pathlib import Path

from zpdist.errors import InputError

#: Where ``zpdist demo --out data/demo`` writes its catalog; shown when no catalog is named and it exists.
DEMO_CATALOG = Path("data/demo/catalog.parquet")
#: Environment variable naming the catalog (for ``panel serve dashboard/zpdist_dashboard/app.py``).
CATALOG_ENV = "ZPDIST_CATALOG"
#: Environment variable naming a ``zpdist zeropoint`` output to add to the Zero-point tab (for ``panel serve``).
GAIA_ENV = "ZPDIST_GAIA"


def resolve_catalog_path(path: str | os.PathLike | None) -> Path:
    """The catalog to show: ``path``, else ``$ZPDIST_CATALOG``, else the demo catalog when it exists.

    Raises
    ------
    InputError
        When none is named and the demo catalog is absent; the message says how to make one.
    """
    if path is not None:
        return Path(path)
    if os.environ.get(CATALOG_ENV):
        return Path(os.environ[CATALOG_ENV])
    if DEMO_CATALOG.is_file():
        return DEMO_CATALOG
    raise InputError(
        f"no catalog given and {DEMO_CATALOG} is absent: make one with `zpdist demo --out data/demo` (the mock "
        "Galaxy, minutes on a CPU), or with `zpdist predict --run RUN_DIR --table TABLE --out CATALOG.parquet` and "
        f"name it with --catalog CATALOG.parquet (${CATALOG_ENV} for `panel serve`)"
    )


def gaia_path_from_env() -> str | None:
    """The ``zpdist zeropoint`` output named by ``$ZPDIST_GAIA``, None when unset."""
    return os.environ.get(GAIA_ENV) or None
