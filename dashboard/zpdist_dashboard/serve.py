"""Running the dashboard on a Panel (Bokeh/tornado) server, one session per browser tab."""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path

import panel as pn

from zpdist.selection import MapCuts
from zpdist_dashboard.app import build_app, on_session_end
from zpdist_dashboard.export import download_folder
from zpdist_dashboard.routes import ROUTES
from zpdist_dashboard.state import shared_catalog
from zpdist_dashboard.views.gaia_scale import shared_gaia_histograms

#: How long a session may wait for its browser's websocket, and stay after its browser left (ms), and how often the
#: server looks for such sessions (ms). Bokeh's 15 s destroyed sessions still waiting their turn in a burst of
#: viewers, whose browsers then had them built again.
UNUSED_SESSION_LIFETIME_MS = 60_000
CHECK_UNUSED_SESSIONS_MS = 10_000


def serve(
    catalog_path: str | os.PathLike,
    gaia: str | None = None,
    port: int = 5006,
    address: str = "127.0.0.1",
    allow_websocket_origin: tuple[str, ...] = (),
    show: bool = False,
    thresholds: MapCuts | None = None,
) -> None:
    """Load the catalog and the Gaia-scale histograms once (a bad file fails here, before serving), build one page
    to warm up (imports, compiled aggregation code, cached ranges), then serve until interrupted (SIGINT or SIGTERM),
    and remove the server's download folder on the way out.

    What exists once warmed up (modules, the catalog) is moved out of the garbage collector's sight
    (``gc.freeze``): its passes then walk only the sessions' objects.

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
        on_session_end()
        return build_app(shared_catalog(catalog.path), shared_gaia_histograms(gaia) if gaia else None, thresholds)

    server = pn.serve(
        session,
        port=port,
        address=address,
        websocket_origin=[*origins, *allow_websocket_origin],
        show=show,
        start=False,
        title="zpdist",
        extra_patterns=ROUTES,
        warm=True,
        unused_session_lifetime_milliseconds=UNUSED_SESSION_LIFETIME_MS,
        check_unused_sessions_milliseconds=CHECK_UNUSED_SESSIONS_MS,
    )
    gc.collect()
    gc.freeze()

    def stop(signum: int, frame: object) -> None:
        server.io_loop.asyncio_loop.call_soon_threadsafe(server.io_loop.stop)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.start()
        server.io_loop.start()
    finally:
        download_folder().remove()
