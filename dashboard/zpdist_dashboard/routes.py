"""The download route: tornado serving this server's private download folder under ``/zpdist-downloads/``.

``zpdist serve`` adds :data:`ROUTES` to its server; with Panel's own command, load this module as a
plugin: ``panel serve dashboard/zpdist_dashboard/app.py --plugins zpdist_dashboard.routes``. The dashboard offers
downloads only in a process where this module was loaded. Importing it makes the process's download folder
(:func:`zpdist_dashboard.export.download_folder`), removed when the process exits.
"""

from __future__ import annotations

from pathlib import Path

from tornado.web import HTTPError, StaticFileHandler

from zpdist.errors import OutputError
from zpdist_dashboard.export import DOWNLOAD_ROUTE, check_private, download_folder


class DownloadHandler(StaticFileHandler):
    """Serves prepared downloads as attachments, never cached by the browser, and nothing once the folder is no
    longer this server's private one (403)."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        try:
            check_private(Path(root))
        except OutputError as exc:
            raise HTTPError(403) from exc
        return super().validate_absolute_path(root, absolute_path)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Content-Disposition", f'attachment; filename="{Path(path).name}"')
        self.set_header("Cache-Control", "no-store")


#: Tornado routes to add to the server.
ROUTES = [(rf"/{DOWNLOAD_ROUTE}/(.*)", DownloadHandler, {"path": str(download_folder().path)})]
