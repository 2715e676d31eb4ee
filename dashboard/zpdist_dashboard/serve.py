"""Running the dashboard on a Panel (Bokeh/tornado) server, one session per browser tab."""

from __future__ import annotations

import os
from pathlib import Path

import panel as pn

from zpdist.selection import MapCuts
from zpdist_dashboard.app import build_app
from zpdist_dashboard.routes import ROUTES
from zpdist_dashboard.state import shared_catalog
from zpdist_dashboard.views.gaia_scale import shared_gaia_histograms


def serve(
    catalog_path: str | os.PathLike,
    gaia: str | None = None,
    port: int = 5006,
    address: str = "127.0.0.1",
    allow_websocket_origin: tuple[str, ...] = (),
    show: bool = False,
    thresholds: MapCuts | None = None,
) -> None:
    """Load the catalog and the Gaia-scale histograms once (a bad file fails here, before serving), then serve
    until interrupted.

    Parameters
    ----------
    catalog_path : path-like
        A catalog written by ``zpdist predict`` or ``zpdist demo``.
    gaia : str, optional
        A ``zpdist zeropoint`` output (folder or glob) mapped in the Zero-point tab.
    port : int
    address : str
        Address to bind; the default accepts connections from this machine only.
    allow_websocket_origin : tuple of str
        Further ``HOST[:PORT]`` origins browsers may connect from (e.g. behind a proxy).
    show : bool
        Open a browser tab.
    thresholds : MapCuts, optional
        The quality toggles' thresholds (``[maps]`` of the configuration); default the paper's.

    Raises
    ------
    zpdist.errors.ZpdistError
        If the catalog or the Gaia-scale table cannot be read (naming the file).
    """
    catalog = shared_catalog(Path(catalog_path))
    if gaia:
        shared_gaia_histograms(gaia)
    origins = [f"{host}:{port}" for host in dict.fromkeys((address, "localhost", "127.0.0.1"))]
    print(f"zpdist serve: {catalog.path} ({len(catalog.frame):,} stars) at http://{address}:{port}/", flush=True)

    def session() -> pn.template.FastListTemplate:
        return build_app(shared_catalog(catalog.path), shared_gaia_histograms(gaia) if gaia else None, thresholds)

    pn.serve(
        session,
        port=port,
        address=address,
        websocket_origin=[*origins, *allow_websocket_origin],
        show=show,
        title="zpdist",
        extra_patterns=ROUTES,
    )
