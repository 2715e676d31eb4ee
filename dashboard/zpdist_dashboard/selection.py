"""The selection controls: how many stars are selected, a preview of them, a link to download them, and a button
that sends them to TOPCAT over SAMP."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param

from zpdist.errors import ZpdistError
from zpdist_dashboard.export import DOWNLOAD_ROUTE, FORMATS, DownloadFolder, download_folder, export_metadata
from zpdist_dashboard.samp import send_votable
from zpdist_dashboard.state import DashboardState
from zpdist_dashboard.text import escape

#: Rows and columns of the preview table.
PREVIEW_ROWS = 100
PREVIEW_COLUMNS = ("apogee_id", "ra", "dec", "dist", "dist_error", "parallax", "nn_parallax", "zp_offset",
                   "teff", "logg", "fe_h")  # fmt: skip
#: The module whose import registers the download route (``zpdist serve``, or ``panel serve --plugins``).
ROUTE_MODULE = "zpdist_dashboard.routes"


def download_route_registered() -> bool:
    """Whether this server process exposes the download folder (the route module was loaded by the server)."""
    return ROUTE_MODULE in sys.modules


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.1f} kB"


class SelectionControls(pn.viewable.Viewer):
    """Count, clear button, format chooser, download link and "Send to TOPCAT" (sidebar), and the preview table
    (main area).

    A download is written server-side into the download folder and offered as a link to the route
    that serves it; an empty selection disables the button and says why, and a download that cannot be written
    (over the folder's cap, a full disk) says so in place of the link. "Send to TOPCAT" writes the selection as a
    VOTable into the same folder and sends it over SAMP (:func:`zpdist_dashboard.samp.send_votable`); without a
    hub, or with nothing on it that loads tables, :attr:`samp_message` says so.
    """

    state = param.ClassSelector(class_=DashboardState)
    fmt = param.Selector(default="CSV", objects=list(FORMATS), doc="Download format.")
    link = param.String(default="", doc="HTML link to the last prepared download, or why there is none.")
    samp_message = param.String(default="", doc='What became of the last "Send to TOPCAT" (HTML).')
    downloads = param.ClassSelector(
        class_=DownloadFolder, allow_None=True, doc="Where downloads are written; default this server's folder."
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._prepare = pn.widgets.Button(label="Prepare download", color="primary", disabled=True)
        self._prepare.on_click(self._write)
        self._clear = pn.widgets.Button(label="Clear selection", disabled=True)
        self._clear.on_click(self._reset)
        self._samp = pn.widgets.Button(label="Send to TOPCAT", disabled=True, description="SAMP: table.load.votable")
        self._samp.on_click(self._send)
        self._count = pn.pane.Markdown("", css_classes=["zpdist-count"])
        self._update()

    @property
    def selected_rows(self) -> pd.DataFrame:
        """The selected stars, all the catalog's own columns."""
        return self.state.catalog.frame.loc[self.state.selected, list(self.state.catalog.columns)]

    @param.depends("state.selected", watch=True)
    def _update(self) -> None:
        n = int(np.count_nonzero(self.state.selected))
        total = int(np.count_nonzero(self.state.mask))
        if self.state.selection is None:
            self._count.object = f"No selection ({total} stars pass the filters): drag a box or lasso on a map."
        else:
            self._count.object = f"**{n}** stars selected (of {total} passing the filters)"
        self._clear.disabled = self.state.selection is None
        self._prepare.disabled = n == 0 or not download_route_registered()
        self._samp.disabled = n == 0
        self.samp_message = ""
        if n == 0:
            self.link = "Select stars on a map to enable the download." if self.state.selection is None else (
                "The selection is empty: nothing to download."
            )  # fmt: skip
        elif not download_route_registered():
            self.link = (
                "Downloads need the server route: run `zpdist serve`, or add `--plugins zpdist_dashboard.routes`."
            )
        else:
            self.link = f"Choose a format and prepare the download of the {n} selected stars."

    def _reset(self, event: param.parameterized.Event | None = None) -> None:
        self.state.selection = None

    def _file(self, fmt: str) -> tuple[Path, int]:
        """The selected stars written in format ``fmt`` into the download folder, and how many they are.

        Raises
        ------
        zpdist.errors.ZpdistError, OSError
            When the file cannot be written (see :meth:`zpdist_dashboard.export.DownloadFolder.prepare`).
        """
        rows = self.selected_rows
        catalog = self.state.catalog
        filters, region = self.state.describe_filters(), self.state.selection.to_dict()
        metadata = export_metadata(catalog.path, catalog.metadata, filters, region, len(rows))
        request = {"catalog": str(catalog.path.resolve()), "filters": filters, "selection": region}
        return (self.downloads or download_folder()).prepare(rows, fmt, metadata, request), len(rows)

    def _write(self, event: param.parameterized.Event | None = None) -> None:
        if not self.state.selected.any():
            return
        try:
            path, n = self._file(self.fmt)
        except (ZpdistError, OSError) as exc:
            self.link = f'<span class="zpdist-download-error">{escape(f"The download failed: {exc}")}</span>'
            return
        url = f"{pn.state.base_url.rstrip('/')}/{DOWNLOAD_ROUTE}/{path.name}"
        self.link = (
            f'<a class="zpdist-download" href="{url}" download="{path.name}">Download {n} stars '
            f"({self.fmt}, {_size(path.stat().st_size)})</a>"
        )

    def _send(self, event: param.parameterized.Event | None = None) -> None:
        """Send the selected stars to TOPCAT (every SAMP application that loads tables) as a VOTable."""
        if not self.state.selected.any():
            return
        try:
            path, n = self._file("VOTable")
            receivers = send_votable(path, f"zpdist: {n} stars of {self.state.catalog.path.name}")
        except (ZpdistError, OSError) as exc:
            self.samp_message = f'<span class="zpdist-samp-error">{escape(f"Not sent: {exc}")}</span>'
            return
        sent = f"Sent {n} stars to {', '.join(receivers)} over SAMP."
        self.samp_message = f'<span class="zpdist-samp-sent">{escape(sent)}</span>'

    def preview(self) -> pn.viewable.Viewable:
        """A table of the first selected stars (a line of text while none is selected)."""

        def table(selected: np.ndarray) -> pn.viewable.Viewable:
            if not selected.any():
                return pn.pane.Markdown("No star selected.")
            frame = self.state.catalog.frame
            columns = list(dict.fromkeys(c for c in (*PREVIEW_COLUMNS, self.state.element) if c in frame))
            rows = frame.loc[selected, columns].head(PREVIEW_ROWS).reset_index(drop=True)
            return pn.widgets.Tabulator(rows, disabled=True, pagination=None, height=260,
                                        sizing_mode="stretch_width", show_index=False)  # fmt: skip

        return pn.Card(
            pn.panel(pn.bind(table, self.state.param.selected)), title=f"Selected stars (first {PREVIEW_ROWS})",
            collapsed=False, sizing_mode="stretch_width",
        )  # fmt: skip

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            "### Selection",
            self._count,
            self._clear,
            pn.widgets.RadioButtonGroup.from_param(self.param.fmt, name="Format"),
            pn.Row(self._prepare, self._samp),
            pn.pane.Markdown(self.param.link),
            pn.pane.Markdown(self.param.samp_message),
        )
