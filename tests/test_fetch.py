"""zpdist fetch and the downloader, against a local HTTP server started by the tests (no internet needed).

The server serves a few small files and can misbehave on purpose: drop the connection half way, ignore ``Range``,
send the wrong bytes, stall. It records every request's path and ``Range`` header.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zpdist.cli import main
from zpdist.fetch import REGISTRY, registry_entry, target_path
from zpdist.io.download import (
    Checksum,
    ChecksumError,
    DownloadConfig,
    DownloadError,
    OfflineError,
    download,
    partial_path,
    rejected_path,
)

PAYLOAD = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes
FAST = DownloadConfig(timeout_s=2.0, retries=2, backoff_s=0.0, chunk_bytes=512)


@dataclass
class Behaviour:
    """How the test server treats requests; ``requests`` logs ``(path, Range header)``."""

    files: dict[str, bytes]
    drop_first: int = 0  # this many responses send half their body, then close the connection
    ignore_range: bool = False
    corrupt: bool = False  # flip one byte of every body
    stall_first: int = 0  # this many responses send half their body, then stall past the client's timeout
    busy_first: int = 0  # this many requests get HTTP 503
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(behaviour: Behaviour) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            path, range_header = self.path, self.headers.get("Range")
            behaviour.requests.append((path, range_header))
            if path not in behaviour.files:
                self.send_error(404, "Not Found")
                return
            if len(behaviour.requests) <= behaviour.busy_first:
                self.send_error(503, "Service Unavailable")
                return
            data = behaviour.files[path]
            if behaviour.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            if range_header and not behaviour.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            n_responses = sum(1 for p, _ in behaviour.requests if p == path)
            if n_responses <= behaviour.drop_first:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            if n_responses <= behaviour.drop_first + behaviour.stall_first:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(1.0)
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server():
    """Start servers on 127.0.0.1 (port 0) on demand; yields ``serve(behaviour) -> base URL``."""
    started = []

    def serve(behaviour: Behaviour) -> str:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Talk to 127.0.0.1 directly even where a proxy is configured."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _sha256(data: bytes) -> Checksum:
    return Checksum("sha256", hashlib.sha256(data).hexdigest())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_full_download_verifies_checksum(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD})
    url = server(behaviour) + "/f.bin"
    target = tmp_path / "sub" / "f.bin"
    result = download(url, target, size=len(PAYLOAD), checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert result.checksum_verified and not result.already_present and result.resumed_from == 0
    assert result.n_bytes == len(PAYLOAD)
    assert not partial_path(target).exists()
    assert behaviour.requests == [("/f.bin", None)]


def test_md5_and_sha1_checksums(server, tmp_path):
    url = server(Behaviour({"/f.bin": PAYLOAD})) + "/f.bin"
    for algorithm in ("md5", "sha1"):
        checksum = Checksum(algorithm, hashlib.new(algorithm, PAYLOAD).hexdigest().upper())
        result = download(url, tmp_path / algorithm, checksum=checksum, config=FAST, progress=False)
        assert result.checksum_verified


def test_existing_file_is_checked_not_downloaded(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD})
    url = server(behaviour) + "/f.bin"
    target = tmp_path / "f.bin"
    download(url, target, checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    again = download(url, target, checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert again.already_present and again.checksum_verified
    assert len(behaviour.requests) == 1
    target.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="left untouched"):
        download(url, target, checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert target.read_bytes() == b"something else"


def test_interrupted_download_resumes_with_range(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD}, drop_first=1)
    url = server(behaviour) + "/f.bin"
    target = tmp_path / "f.bin"
    no_retry = DownloadConfig(timeout_s=2.0, retries=0, backoff_s=0.0, chunk_bytes=512)
    with pytest.raises(DownloadError, match=r"connection closed after 5122 of 10244 bytes") as info:
        download(url, target, checksum=_sha256(PAYLOAD), config=no_retry, progress=False, rerun="zpdist fetch x")
    assert "is kept and `zpdist fetch x` will resume" in str(info.value)
    half = len(PAYLOAD) // 2
    assert not target.exists()
    assert partial_path(target).read_bytes() == PAYLOAD[:half]

    result = download(url, target, checksum=_sha256(PAYLOAD), config=no_retry, progress=False)
    assert behaviour.requests[-1] == ("/f.bin", f"bytes={half}-")
    assert result.resumed_from == half and result.checksum_verified
    assert target.read_bytes() == PAYLOAD
    assert not partial_path(target).exists()


def test_dropped_connection_is_retried_within_one_call(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD}, drop_first=2)
    url = server(behaviour) + "/f.bin"
    result = download(url, tmp_path / "f.bin", checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert result.checksum_verified
    assert [r for _, r in behaviour.requests] == [None, "bytes=5122-", "bytes=7683-"]


def test_stalled_server_times_out_and_resumes(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD}, stall_first=1)
    url = server(behaviour) + "/f.bin"
    config = DownloadConfig(timeout_s=0.2, retries=1, backoff_s=0.0, chunk_bytes=512)
    download(url, tmp_path / "f.bin", checksum=_sha256(PAYLOAD), config=config, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    resumed_at = int(behaviour.requests[-1][1].removeprefix("bytes=").removesuffix("-"))
    assert len(behaviour.requests) == 2 and 0 < resumed_at <= len(PAYLOAD) // 2


def test_busy_server_is_retried_and_progress_shown(server, tmp_path, capsys):
    behaviour = Behaviour({"/f.bin": PAYLOAD}, busy_first=2)
    url = server(behaviour) + "/f.bin"
    download(url, tmp_path / "f.bin", checksum=_sha256(PAYLOAD), config=FAST, progress=True)
    assert len(behaviour.requests) == 3 and (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert "f.bin" in capsys.readouterr().err  # the progress bar, named after the file

    behaviour = Behaviour({"/f.bin": PAYLOAD}, busy_first=10)
    url = server(behaviour) + "/f.bin"
    with pytest.raises(DownloadError, match=r"gave up after 3 failed tries in a row \(last: HTTP 503"):
        download(url, tmp_path / "g.bin", config=FAST, progress=False)
    assert len(behaviour.requests) == 3


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD}, ignore_range=True)
    url = server(behaviour) + "/f.bin"
    target = tmp_path / "f.bin"
    partial_path(target).write_bytes(b"x" * 1000)  # stale bytes that must not survive
    result = download(url, target, checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert behaviour.requests == [("/f.bin", "bytes=1000-")]
    assert target.read_bytes() == PAYLOAD
    assert result.checksum_verified


def test_complete_partial_file_gets_416_and_is_finished(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD})
    url = server(behaviour) + "/f.bin"
    target = tmp_path / "f.bin"
    partial_path(target).write_bytes(PAYLOAD)  # interrupted just before the rename
    result = download(url, target, checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert behaviour.requests == [("/f.bin", f"bytes={len(PAYLOAD)}-")]
    assert target.read_bytes() == PAYLOAD and result.checksum_verified


def test_known_size_skips_request_for_complete_partial(server, tmp_path):
    behaviour = Behaviour({"/f.bin": PAYLOAD})
    url = server(behaviour) + "/f.bin"
    target = tmp_path / "f.bin"
    partial_path(target).write_bytes(PAYLOAD)
    download(url, target, size=len(PAYLOAD), checksum=_sha256(PAYLOAD), config=FAST, progress=False)
    assert behaviour.requests == [] and target.read_bytes() == PAYLOAD


def test_wrong_checksum_sets_bytes_aside(server, tmp_path):
    url = server(Behaviour({"/f.bin": PAYLOAD}, corrupt=True)) + "/f.bin"
    target = tmp_path / "f.bin"
    expected = _sha256(PAYLOAD)
    with pytest.raises(ChecksumError) as info:
        download(url, target, checksum=expected, config=FAST, progress=False)
    message = str(info.value)
    got = hashlib.sha256(bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]).hexdigest()
    assert f"expected {expected.hexdigest}, got {got}" in message
    assert url in message and str(rejected_path(target)) in message
    assert not target.exists() and not partial_path(target).exists()
    assert rejected_path(target).stat().st_size == len(PAYLOAD)


def test_wrong_size_is_refused_before_downloading(server, tmp_path):
    url = server(Behaviour({"/f.bin": PAYLOAD})) + "/f.bin"
    with pytest.raises(DownloadError, match=r"server says the file is 10244 bytes but 99 were expected"):
        download(url, tmp_path / "f.bin", size=99, config=FAST, progress=False)
    assert not (tmp_path / "f.bin").exists()


def test_404_names_the_url(server, tmp_path):
    behaviour = Behaviour({})
    url = server(behaviour) + "/missing.fits"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(url, tmp_path / "missing.fits", config=FAST, progress=False)
    assert url in str(info.value) and "nothing was written" in str(info.value)
    assert len(behaviour.requests) == 1  # not retried
    assert not list(tmp_path.iterdir())


def test_offline_keeps_partial_and_says_how_to_resume(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/f.bin"
    target = tmp_path / "f.bin"
    partial_path(target).write_bytes(PAYLOAD[:100])
    with pytest.raises(OfflineError) as info:
        download(url, target, config=FAST, progress=False, rerun="zpdist fetch demo")
    message = str(info.value)
    assert message.startswith("cannot reach 127.0.0.1:")
    assert "you appear to be offline" in message
    assert f"the partial file {partial_path(target)} (100 bytes) is kept and `zpdist fetch demo` will resume" in message
    assert isinstance(info.value, OSError)
    assert partial_path(target).read_bytes() == PAYLOAD[:100]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        Checksum("sha256", "abc")
    with pytest.raises(ValueError, match="unknown checksum algorithm"):
        Checksum("crc32", "00000000")
    with pytest.raises(ValueError, match="retries"):
        DownloadConfig(retries=-1)
    with pytest.raises(DownloadError, match="only http"):
        download("ftp://example.org/f", "f", progress=False)


def test_registry_is_well_formed():
    names = [e.name for e in REGISTRY]
    assert len(names) == len(set(names))
    for entry in REGISTRY:
        assert entry.url.startswith("https://") and entry.url.endswith("/" + entry.filename)
        assert entry.credit and entry.description and entry.checksum_source
    assert registry_entry("apogee-dr17-allstar").checksum == Checksum(
        "sha1", "7aa2f381de0e8e246f9833cc7da540ef45096702"
    )
    with pytest.raises(ValueError, match="known: apogee-dr17-allstar"):
        registry_entry("nope")


def test_cli_list(capsys):
    assert main(["fetch", "--list"]) == 0
    out = capsys.readouterr().out
    for entry in REGISTRY:
        assert entry.name in out and entry.url in out
    assert "size: unknown (checked against the server's Content-Length)" in out
    assert "checksum: sha1:7aa2f381de0e8e246f9833cc7da540ef45096702" in out


def test_cli_fetch_name_from_mirror(server, tmp_path, capsys):
    url = server(Behaviour({"/file": PAYLOAD})) + "/file"
    argv = ["fetch", "apogee-dr14-allstar", "--url", url, "--dest", str(tmp_path), "--quiet", "--retries", "0"]
    # the registry's SHA-1 still applies to a mirror: these test bytes fail it
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sha1 mismatch: expected a7e1801924661954da792e377ad54f412219b105" in err
    target = target_path(registry_entry("apogee-dr14-allstar"), tmp_path)
    assert not target.exists() and rejected_path(target).exists()

    assert main([*argv, "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert target == tmp_path / "apogee-dr14-allstar" / "allStar-l31c.2.fits"
    assert target.read_bytes() == PAYLOAD
    assert "not verified (--no-verify)" in out and "Abolfathi et al. 2018" in out


def test_cli_fetch_any_url_with_checksum(server, tmp_path, capsys):
    url = server(Behaviour({"/dir/table.fits": PAYLOAD})) + "/dir/table.fits"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert main(["fetch", "--url", url, "--sha256", sha, "--dest", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "table.fits").read_bytes() == PAYLOAD
    assert "sha256 verified" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["fetch", "no-such-file"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown file 'no-such-file'" in err
    for entry in REGISTRY:
        assert entry.name in err

    assert main(["fetch"]) == 2
    assert "name a file to fetch" in capsys.readouterr().err

    url = f"http://127.0.0.1:{_closed_port()}/f.bin"
    argv = ["fetch", "--url", url, "--dest", str(tmp_path), "--quiet", "--retries", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "you appear to be offline" in err
    assert f"`zpdist fetch --url {url} --dest {tmp_path}` will start again" in err


def test_help_mentions_verification(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fetch", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "Content-Length" in out and "--no-verify" in out and "apogee-dr17-allstar" in out


def test_partial_and_rejected_names():
    assert partial_path(Path("d/a.fits")) == Path("d/a.fits.part")
    assert rejected_path(Path("d/a.fits")) == Path("d/a.fits.bad")
