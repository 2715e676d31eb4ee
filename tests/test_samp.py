"""SAMP: the selected stars reach a table-loading application through an astropy SAMP hub started by the test (on
localhost, its lockfile in a temporary folder named by $SAMP_HUB, never ~/.samp), whole (rows, columns, values,
metadata); without a hub, or with nothing on it that loads tables, one clear message, also in the page."""

from __future__ import annotations

import io
import json
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import pytest
from astropy.io.votable import parse
from astropy.utils.exceptions import AstropyDeprecationWarning

from tests.synthetic_catalog import page_html, shown, write_synthetic_catalog
from zpdist_dashboard.export import VOTABLE_INFO, DownloadFolder
from zpdist_dashboard.samp import MTYPE, SampError, send_votable
from zpdist_dashboard.selection import SelectionControls
from zpdist_dashboard.state import DashboardState, Selection, load_catalog

with warnings.catch_warnings():  # astropy 8 moved SAMP to pyvo.samp (same API)
    warnings.filterwarnings("ignore", "astropy.samp was deprecated", AstropyDeprecationWarning)
    from astropy.samp import SAMPHubServer, SAMPIntegratedClient

#: Seconds to wait for the hub to pass a message on (a wait for an event, never a timing).
DELIVERY_S = 30
#: The region selected in the tests (x_gc, y_gc in kpc).
REGION = Selection("x_gc", "y_gc", bounds=(-10, -3, -6, 3))


class Receiver:
    """A SAMP client subscribed to :data:`MTYPE` that keeps the table each notification points at."""

    def __init__(self) -> None:
        self.client = SAMPIntegratedClient(name="receiver", addr="127.0.0.1")
        self.client.connect()
        self.client.bind_receive_notification(MTYPE, self._receive)
        self.params: dict = {}
        self.arrived = threading.Event()

    def _receive(self, private_key: str, sender_id: str, mtype: str, params: dict, extra: dict) -> None:
        self.params = {"sender_id": sender_id, **params}
        self.arrived.set()

    def table(self) -> tuple[pd.DataFrame, dict]:
        """The rows and the zpdist metadata of the VOTable the notification's URL points at, read from that URL."""
        assert self.arrived.wait(DELIVERY_S), "the hub did not pass the table.load.votable notification on"
        with urllib.request.urlopen(self.params["url"]) as response:
            votable = parse(io.BytesIO(response.read()))
        (info,) = [i for i in votable.resources[0].infos if i.name == VOTABLE_INFO]
        return votable.get_first_table().to_table().to_pandas(), json.loads(info.value)

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def samp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$HOME and $SAMP_HUB in a temporary folder: no SAMP call of the test can see or touch the user's ~/.samp."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'samp-hub').as_uri()}")
    return tmp_path


@pytest.fixture
def hub(samp_home: Path) -> Iterator[SAMPHubServer]:
    """A SAMP hub on 127.0.0.1, standard profile only, whose lockfile is the one $SAMP_HUB names."""
    server = SAMPHubServer(addr="127.0.0.1", lockfile=str(samp_home / "samp-hub"), web_profile=False)
    server.start(wait=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver(hub: SAMPHubServer) -> Iterator[Receiver]:
    client = Receiver()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(write_synthetic_catalog(tmp_path_factory.mktemp("samp") / "catalog.parquet", 600))


def _controls(catalog, folder: Path) -> SelectionControls:
    state = DashboardState(catalog)
    state.selection = REGION
    return SelectionControls(state=state, downloads=DownloadFolder(folder))


def test_the_selection_reaches_the_receiver_whole(catalog, receiver, tmp_path):
    controls = _controls(catalog, tmp_path)
    expected = controls.selected_rows.reset_index(drop=True)
    assert 0 < len(expected) < len(catalog.frame) and not controls._samp.disabled
    controls._send()
    assert shown(pn.pane.Markdown(controls.samp_message)) == f"Sent {len(expected)} stars to receiver over SAMP."
    assert 'class="zpdist-samp-sent"' in controls.samp_message
    rows, metadata = receiver.table()
    assert receiver.params["name"] == f"zpdist: {len(expected)} stars of catalog.parquet"
    assert receiver.params["url"].startswith("file://") and receiver.params["url"].endswith(".vot")
    assert list(rows.columns) == list(catalog.columns) and len(rows) == len(expected)
    assert (rows["apogee_id"].astype(str).to_numpy() == expected["apogee_id"].to_numpy()).all()
    for column in ("dist", "zp_offset", "parallax", "mg_fe", "x_gc"):
        np.testing.assert_array_equal(rows[column].to_numpy(float), expected[column].to_numpy(float))
    assert metadata["export"]["n_rows"] == len(expected) and metadata["export"]["selection"] == REGION.to_dict()
    assert metadata["model"]["offset_uas"] == catalog.metadata["model"]["offset_uas"]


def test_send_votable_names_the_receivers(receiver, tmp_path, catalog):
    path = DownloadFolder(tmp_path).prepare(catalog.frame[list(catalog.columns)].head(7), "VOTable", {}, {"n": 7})
    assert send_votable(path, "seven stars") == ["receiver"]
    rows, _ = receiver.table()
    assert len(rows) == 7 and receiver.params["name"] == "seven stars"
    assert Path(urllib.request.url2pathname(receiver.params["url"].removeprefix("file://"))) == path.resolve()


def test_without_a_hub_one_message_says_to_start_topcat(samp_home, catalog, tmp_path):
    path = DownloadFolder(tmp_path).prepare(catalog.frame[list(catalog.columns)].head(3), "VOTable", {}, {})
    with pytest.raises(SampError, match=r"no SAMP hub answers on this machine: start TOPCAT \(it runs one\)"):
        send_votable(path, "three stars")
    controls = _controls(catalog, tmp_path)
    controls._send()  # in the page: the message in place of the result, no traceback
    message = pn.pane.Markdown(controls.samp_message)
    assert shown(message).startswith("Not sent: no SAMP hub answers on this machine: start TOPCAT")
    assert 'class="zpdist-samp-error"' in page_html(message) and "Traceback" not in page_html(message)
    assert not list(samp_home.glob(".samp*")) and not (samp_home / "samp-hub").exists()


def test_a_hub_without_a_table_loader_says_so(hub, catalog, tmp_path):
    path = DownloadFolder(tmp_path).prepare(catalog.frame[list(catalog.columns)].head(3), "VOTable", {}, {})
    with pytest.raises(SampError, match=r"the SAMP hub has no application that loads tables \(table\.load\.votable\)"):
        send_votable(path, "three stars")


def test_the_button_follows_the_selection(catalog, tmp_path):
    state = DashboardState(catalog)
    controls = SelectionControls(state=state, downloads=DownloadFolder(tmp_path))
    assert controls._samp.disabled  # nothing selected
    state.selection = Selection("x_gc", "y_gc", bounds=(100, 100, 101, 101))
    assert controls._samp.disabled  # an empty selection
    state.selection = REGION
    assert not controls._samp.disabled and controls.samp_message == ""
