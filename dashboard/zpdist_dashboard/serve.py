"""``zpdist serve``: which catalog (and optional Gaia-scale table) to show, and running the dashboard on a Panel
(Bokeh/tornado) server.

This module imports Panel only inside :func:`run_serve`, so registering the command costs nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: Where ``zpdist demo`` writes its catalog; the dashboard's default.
DEMO_CATALOG = Path("data/demo/catalog.parquet")
#: Environment variable naming the catalog (for ``panel serve dashboard/zpdist_dashboard/app.py``).
CATALOG_ENV = "ZPDIST_CATALOG"
#: Environment variable naming a `zpdist zeropoint` output to add to the Zero-point tab (for ``panel serve``).
GAIA_ENV = "ZPDIST_GAIA"


def resolve_catalog_path(path: str | os.PathLike | None) -> Path:
    """The catalog to show: ``path``, else ``$ZPDIST_CATALOG``, else the demo catalog.

    The demo catalog is built first with :func:`zpdist.pipeline.run_demo` (progress printed) when it is
    the one chosen and is absent.
    """
    if path is not None:
        return Path(path)
    if os.environ.get(CATALOG_ENV):
        return Path(os.environ[CATALOG_ENV])
    if not DEMO_CATALOG.exists():
        from zpdist.pipeline import run_demo

        print(f"zpdist: no catalog given and {DEMO_CATALOG} is absent; building the demo catalog first", flush=True)
        run_demo(DEMO_CATALOG.parent)
    return DEMO_CATALOG


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``zpdist serve``."""
    p.add_argument("--catalog", type=Path, help="catalog (.parquet or .fits) to show")
    p.add_argument(
        "--gaia", metavar="GLOB",
        help="also map the output of `zpdist zeropoint` (its folder, or a quoted glob of its Parquet files) in the "
        "Zero-point tab; its histograms are built once, with progress, and cached beside it",
    )  # fmt: skip
    p.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument(
        "--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
        help="also accept browser connections from this origin (repeatable), e.g. behind a proxy",
    )  # fmt: skip
    p.add_argument("--show", action="store_true", help="open a browser tab")


def run_serve(args: argparse.Namespace) -> None:
    """Load the catalog and the Gaia-scale histograms once (a bad file fails here, before serving), then serve until
    interrupted."""
    import panel as pn

    from zpdist_dashboard.app import build_app
    from zpdist_dashboard.routes import ROUTES
    from zpdist_dashboard.state import shared_catalog
    from zpdist_dashboard.views.gaia_scale import shared_gaia_histograms

    catalog_path = resolve_catalog_path(args.catalog)
    catalog = shared_catalog(catalog_path)
    if args.gaia:
        shared_gaia_histograms(args.gaia)
    origins = [f"{host}:{args.port}" for host in dict.fromkeys((args.address, "localhost", "127.0.0.1"))]
    print(
        f"zpdist serve: {catalog.path} ({len(catalog.frame):,} stars) at http://{args.address}:{args.port}/",
        flush=True,
    )

    def session() -> pn.template.FastListTemplate:
        return build_app(shared_catalog(catalog_path), shared_gaia_histograms(args.gaia) if args.gaia else None)

    pn.serve(
        session,
        port=args.port,
        address=args.address,
        websocket_origin=origins + args.allow_websocket_origin,
        show=args.show,
        title="zpdist",
        extra_patterns=ROUTES,
    )
