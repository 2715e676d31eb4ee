"""Downloads: the files (CSV, FITS, Parquet, VOTable) round-trip through pyarrow/astropy to the same rows, with the
filters, selection and model;
the server's download folder is private (0700, fresh, never through a symbolic link), gives back the same file for
the same request, keeps within its caps, and turns a full disk or an oversized download into one clear error."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse
from astropy.table import Table

from tests.synthetic_catalog import synthetic_catalog
from zpdist.errors import OutputError
from zpdist_dashboard import export
from zpdist_dashboard.export import (
    FILE_PREFIX,
    VOTABLE_INFO,
    DownloadFolder,
    check_private,
    export_metadata,
    write_selection,
)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame, _ = synthetic_catalog(300)
    return frame.iloc[10:130]


@pytest.fixture(scope="module")
def metadata() -> dict:
    _, catalog_metadata = synthetic_catalog(1)
    filters = {"ranges": {"teff": [4000.0, 4500.0]}, "quality_cuts": ["|z| < 0.3 kpc"], "element": "mg_fe"}
    selection = {"kind": "box", "x": "x_gc", "y": "y_gc", "bounds": [-9.0, -1.0, -7.0, 1.0]}
    return export_metadata(Path("catalog.parquet"), catalog_metadata, filters, selection, 120)


def _check(frame: pd.DataFrame, rows: pd.DataFrame) -> None:
    assert list(frame.columns) == list(rows.columns) and len(frame) == len(rows)
    assert (frame["apogee_id"].astype(str).to_numpy() == rows["apogee_id"].to_numpy()).all()
    for column in ("dist", "zp_offset", "mg_fe", "x_gc"):
        np.testing.assert_allclose(frame[column].to_numpy(float), rows[column].to_numpy(float), rtol=1e-12)


def test_parquet_round_trip(tmp_path, rows, metadata):
    table = pq.read_table(write_selection(rows, tmp_path / "s.parquet", metadata))
    _check(table.to_pandas(), rows)
    stored = json.loads(table.schema.metadata[b"zpdist"])
    assert stored["export"]["filters"]["element"] == "mg_fe" and stored["export"]["selection"]["kind"] == "box"
    assert stored["model"]["offset_model"] == "constant" and stored["export"]["n_rows"] == 120
    assert table.schema.field("dist").metadata[b"unit"] == b"pc"


@pytest.mark.filterwarnings("ignore:'dex' did not parse as fits unit")  # astropy reads our TUNIT = 'dex'
def test_fits_round_trip(tmp_path, rows, metadata):
    path = write_selection(rows, tmp_path / "s.fits", metadata)
    _check(Table.read(path, hdu="CATALOG").to_pandas(), rows)
    header = fits.getheader(path, "CATALOG")
    assert json.loads(header["ZPMETA"])["export"]["selection"]["bounds"] == [-9.0, -1.0, -7.0, 1.0]
    assert header["ZPOFFSET"] == pytest.approx(metadata["model"]["offset_uas"])


def test_csv_round_trip(tmp_path, rows, metadata):
    path = write_selection(rows, tmp_path / "s.csv", metadata)
    _check(Table.read(path, format="ascii.csv", comment="#").to_pandas(), rows)
    _check(pd.read_csv(path, comment="#"), rows)
    first = path.read_text().splitlines()[0]
    assert json.loads(first.removeprefix("# zpdist selection: ")) == json.loads(json.dumps(metadata))


def test_votable_round_trip(tmp_path, rows, metadata):
    path = write_selection(rows, tmp_path / "s.vot", metadata)
    votable = parse(path)
    _check(votable.get_first_table().to_table().to_pandas(), rows)
    fields = {f.name: f for f in votable.get_first_table().fields}
    assert (fields["dist"].unit, fields["teff"].unit, fields["zp_offset"].unit) == ("pc", "K", "mas")
    assert fields["apogee_id"].unit is None
    (info,) = [i for i in votable.resources[0].infos if i.name == VOTABLE_INFO]
    assert json.loads(info.value) == json.loads(json.dumps(metadata))
    assert b"<BINARY2>" in path.read_bytes()  # binary, not one XML element per value
    folder = DownloadFolder(tmp_path)
    prepared = folder.prepare(rows, "VOTable", metadata, _request(1))
    assert prepared.suffix == ".vot" and len(parse(prepared).get_first_table().array) == len(rows)


def _request(i: int) -> dict:
    return {"catalog": "/data/catalog.parquet", "filters": {"ranges": {}}, "selection": {"bounds": [0, 0, i, 1]}}


def _files(folder: DownloadFolder) -> list[Path]:
    return sorted(folder.path.glob(f"{FILE_PREFIX}*"))


def test_the_download_folder_is_private_fresh_and_removed(tmp_path):
    first, second = DownloadFolder(tmp_path), DownloadFolder(tmp_path)
    assert first.path != second.path and first.path.parent == tmp_path == second.path.parent
    info = os.lstat(first.path)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    first.remove()
    assert not first.path.exists() and second.path.is_dir()


def test_a_folder_open_to_others_or_replaced_by_a_link_is_refused(tmp_path, rows, metadata):
    folder = DownloadFolder(tmp_path)
    folder.path.chmod(0o755)
    with pytest.raises(OutputError, match=r"open to other users \(mode 755\)"):
        folder.prepare(rows, "CSV", metadata, _request(1))
    folder.path.chmod(0o700)
    # someone swaps the folder for a link to a place of their choosing: nothing is written through it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder.path.rename(tmp_path / "moved")
    folder.path.symlink_to(elsewhere)
    with pytest.raises(OutputError, match="is a symbolic link: refused"):
        folder.prepare(rows, "CSV", metadata, _request(1))
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(OutputError, match="absent"):
        check_private(tmp_path / "absent")


def test_a_parent_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(OutputError, match=r"cannot make a download folder in .*absent"):
        DownloadFolder(tmp_path / "absent")


def test_the_same_request_gives_back_the_same_file(tmp_path, rows, metadata):
    folder = DownloadFolder(tmp_path)
    first = folder.prepare(rows, "Parquet", metadata, _request(1))
    written = first.stat().st_mtime_ns, first.stat().st_ino
    os.utime(first, ns=(written[0] - 10**9, written[0] - 10**9))
    again = folder.prepare(rows, "Parquet", metadata, _request(1))
    assert again == first and again.stat().st_ino == written[1]  # not rewritten
    assert again.stat().st_mtime_ns > written[0] - 10**9  # but marked as just requested
    other_format = folder.prepare(rows, "CSV", metadata, _request(1))
    other_request = folder.prepare(rows, "Parquet", metadata, _request(2))
    assert len({first, other_format, other_request}) == 3 and len(_files(folder)) == 3
    assert pq.read_table(first).num_rows == len(rows)


def test_the_folder_keeps_within_its_count_and_size(tmp_path, rows, metadata):
    folder = DownloadFolder(tmp_path, max_files=3)
    paths = [folder.prepare(rows, "CSV", metadata, _request(i)) for i in range(3)]
    folder.prepare(rows, "CSV", metadata, _request(0))  # asked again: now the most recent
    paths += [folder.prepare(rows, "CSV", metadata, _request(i)) for i in (3, 4)]
    assert _files(folder) == sorted([paths[0], paths[3], paths[4]])  # the two least recently asked went
    size = paths[0].stat().st_size
    small = DownloadFolder(tmp_path, max_bytes=int(2.5 * size))
    kept = [small.prepare(rows, "CSV", metadata, _request(i)) for i in range(4)]
    assert _files(small) == sorted(kept[2:]) and sum(p.stat().st_size for p in _files(small)) <= 2.5 * size


def test_a_download_over_the_cap_is_refused_and_leaves_nothing(tmp_path, rows, metadata):
    folder = DownloadFolder(tmp_path, max_bytes=int(rows.memory_usage(index=False).sum()) - 1)
    with pytest.raises(OutputError, match=f"download of {len(rows)} stars is .* over this server's cap"):
        folder.prepare(rows, "Parquet", metadata, _request(1))
    size = DownloadFolder(tmp_path).prepare(rows, "CSV", metadata, _request(1)).stat().st_size
    folder = DownloadFolder(tmp_path, max_bytes=size - 1)  # the rows fit in memory, the written CSV does not
    with pytest.raises(OutputError, match="over this server's cap"):
        folder.prepare(rows, "CSV", metadata, _request(1))
    assert list(folder.path.iterdir()) == []


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path, rows, metadata, monkeypatch):
    def full(*args) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export, "write_selection", full)
    folder = DownloadFolder(tmp_path)
    with pytest.raises(OutputError, match=f"could not write the download into {folder.path}: No space left on device"):
        folder.prepare(rows, "FITS", metadata, _request(1))
    assert list(folder.path.iterdir()) == []


def test_the_route_serves_attachments_and_nothing_once_the_folder_is_swapped(tmp_path, rows, metadata):
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port
    from tornado.web import Application

    from zpdist_dashboard.routes import DownloadHandler  # (importing it makes this process's own folder too)

    folder = DownloadFolder(tmp_path)
    name = folder.prepare(rows, "CSV", metadata, _request(1)).name

    async def fetch() -> tuple[int, str]:
        sock, port = bind_unused_port()
        server = HTTPServer(Application([(r"/d/(.*)", DownloadHandler, {"path": str(folder.path)})]))
        server.add_sockets([sock])
        try:
            response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/d/{name}", raise_error=False)
            return response.code, response.headers.get("Content-Disposition", "")
        finally:
            server.stop()

    assert asyncio.run(fetch()) == (200, f'attachment; filename="{name}"')
    elsewhere = tmp_path / "elsewhere"
    folder.path.rename(elsewhere)
    folder.path.symlink_to(elsewhere)  # the same file, now behind a link
    assert asyncio.run(fetch())[0] == 403
