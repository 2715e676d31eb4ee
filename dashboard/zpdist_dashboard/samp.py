"""Sending a table to TOPCAT (or any SAMP application that loads tables) through a running SAMP hub.

The table is a VOTable already written into the server's download folder (:mod:`zpdist_dashboard.export`); the
server connects to the hub as a SAMP client and sends the mtype :data:`MTYPE` with the file's ``file://`` URL to
every client subscribed to it. The hub is the one this server process finds through its SAMP lockfile
(``$SAMP_HUB``, else ``~/.samp``): it runs on this machine, and so do the applications it reaches, which read the
file where it lies.
"""

from __future__ import annotations

import contextlib
import warnings
import xmlrpc.client
from pathlib import Path

from astropy.utils.exceptions import AstropyDeprecationWarning

from zpdist.errors import ZpdistError

with warnings.catch_warnings():  # astropy 8 moved SAMP to pyvo.samp (same API); pyvo is not a dependency
    warnings.filterwarnings("ignore", "astropy.samp was deprecated", AstropyDeprecationWarning)
    from astropy.samp import SAMPClientError, SAMPHubError, SAMPIntegratedClient, SAMPProxyError

#: The SAMP message type that asks an application to load a VOTable from a URL.
MTYPE = "table.load.votable"
#: How the dashboard names itself to the hub.
CLIENT_NAME = "zpdist"
#: What a hub that is absent, gone or misbehaving raises.
HUB_ERRORS = (SAMPHubError, SAMPClientError, SAMPProxyError, OSError, xmlrpc.client.Error)


class SampError(ZpdistError):
    """No table can be sent: no SAMP hub is running, or none of its applications loads tables."""


def send_votable(path: str | Path, name: str) -> list[str]:
    """Ask every SAMP application that loads tables to load the VOTable at ``path``.

    Parameters
    ----------
    path : path-like
        A VOTable on this machine (e.g. :meth:`zpdist_dashboard.export.DownloadFolder.prepare` in format
        ``"VOTable"``).
    name : str
        The table's name in the receiving application.

    Returns
    -------
    list of str
        The names the receiving applications gave the hub (e.g. ``["topcat"]``).

    Raises
    ------
    SampError
        When no hub is running (or it does not answer), or no application on it loads tables; the message says
        what to start.
    """
    client = SAMPIntegratedClient(name=CLIENT_NAME, description="zpdist dashboard: selected stars", callable=False)
    try:
        client.connect()
    except HUB_ERRORS as exc:
        raise SampError(
            f"no SAMP hub answers on this machine: start TOPCAT (it runs one), then send again ({exc})"
        ) from exc
    try:
        receivers = list(client.get_subscribed_clients(MTYPE))
        if not receivers:
            raise SampError(f"the SAMP hub has no application that loads tables ({MTYPE}): start TOPCAT")
        message = {"samp.mtype": MTYPE, "samp.params": {"url": Path(path).resolve().as_uri(), "name": name}}
        for receiver in receivers:
            client.notify(receiver, message)
        return [str(client.get_metadata(receiver).get("samp.name", receiver)) for receiver in receivers]
    except HUB_ERRORS as exc:
        raise SampError(f"the SAMP hub stopped answering ({exc}): send again") from exc
    finally:
        with contextlib.suppress(*HUB_ERRORS):  # a hub that went away has nothing to unregister
            client.disconnect()
