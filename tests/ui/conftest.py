"""Real-browser fixtures: Debian's Chromium for Playwright, a small catalog, and a `zpdist serve` subprocess."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.synthetic_catalog import write_synthetic_catalog

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: Seconds to wait for the server to answer.
SERVER_START_S = 90


def wait_until(predicate: Callable[[], object], timeout: float, page=None, interval: float = 0.25, what: str = ""):
    """Poll ``predicate`` until it returns a true value, and return that value; fail after ``timeout`` seconds.

    As ``panel.tests.util.wait_until``: between polls, a Playwright ``page`` (when given) keeps processing its
    events; without one the test sleeps ``interval`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what or 'the condition'} not met within {timeout} s")
        if page is None:
            time.sleep(interval)
        else:
            page.wait_for_timeout(interval * 1000)
    return value


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium (never a downloaded browser); skip when it is absent."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium package)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def ui_catalog(tmp_path_factory) -> Path:
    """A 3,000-star synthetic catalog (Parquet)."""
    return write_synthetic_catalog(tmp_path_factory.mktemp("ui-catalog") / "catalog.parquet")


@pytest.fixture(scope="session")
def downloads(tmp_path_factory) -> Path:
    """The server's download folder."""
    return tmp_path_factory.mktemp("downloads")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(arguments: list[str], log: Path, env: dict | None = None) -> Iterator[str]:
    """``zpdist serve ARGUMENTS --port <free port>`` in a subprocess, logging to ``log``; yields its URL."""
    port = _free_port()
    command = [sys.executable, "-m", "zpdist.cli", "serve", *arguments, "--port", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"zpdist serve exited with {process.returncode}:\n{log.read_text()}")
        try:  # a static file, not the page: each page request would start a session
            with urllib.request.urlopen(f"{url}static/js/bokeh.min.js", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(answers, SERVER_START_S, interval=0.5, what=f"zpdist serve answering at {url}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def server(ui_catalog: Path, downloads: Path, tmp_path_factory) -> Iterator[str]:
    """``zpdist serve --catalog <ui_catalog> --port <free port>`` in a subprocess; yields its URL."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "ZPDIST_DOWNLOADS": str(downloads)}
    with serving(["--catalog", str(ui_catalog)], log, env) as url:
        yield url


@pytest.fixture
def local_page(page, server: str):
    """A page that may only reach the test server (any other request is aborted: tests download nothing)."""
    page.set_viewport_size({"width": 1600, "height": 1200})
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(server) else route.abort(),
    )
    return page
