"""Many viewers at once: N concurrent viewers against a ``zpdist serve`` this script starts, in waves.

Prints, per viewer, the seconds from its request to a usable page, and the server's memory (RSS of the server
process) before the first wave, at its peak during each wave, and after each wave once its sessions have ended; the
table is also written under benchmarks/results/.

Viewers are, with ``--client websocket`` (the default), real websocket clients speaking Bokeh's protocol as a browser
does: fetch the page (the server builds the session), open its websocket, pull the document; usable = the whole
document received. With ``--client browser``, real Chromium pages (Playwright, Debian's ``/usr/bin/chromium``, all in
one browser): usable = every plot of the first tab drawn and the document idle; the browsers then run on the same
cores as the server, so their own drawing is in the times. Sessions end when their viewers have left for the
server's unused-session lifetime; each wave's "after" is read once that has passed.

Never run by the tests. Usage: ``python -m benchmarks.load [--viewers 20] [--waves 3] [--stars 30000]
[--catalog FILE] [--client websocket|browser] [--settle-s 80]`` (from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RESULTS = Path(__file__).parent / "results"
#: Seconds to wait for the server to answer, and for one viewer's usable page.
SERVER_START_S = 180
VIEWER_TIMEOUT_S = 300
#: Seconds between memory samples.
SAMPLE_S = 0.25
CHROMIUM = "/usr/bin/chromium"
#: The page's documents are idle (every view drawn) and hold figures (those of the first tab): checked in the page.
PAGE_DRAWN = """() => window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents.every(d => d.is_idle)
  && Bokeh.documents.flatMap(d => [...d.all_models]).some(m => m.type === "Figure")"""


@dataclass
class Memory:
    """RSS samples (MB) of the server process."""

    pid: int
    samples: list[float] = field(default_factory=list)

    def now(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 1e6

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (user and system)."""
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append(self.now())
            await asyncio.sleep(SAMPLE_S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(catalog: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``zpdist serve --catalog CATALOG`` on a free port; returns the process and its URL once it answers."""
    import urllib.request

    port = _free_port()
    with open(log, "w") as out:
        command = [sys.executable, "-m", "zpdist.cli", "serve", "--catalog", str(catalog), "--port", str(port)]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"zpdist serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}static/js/bokeh.min.js", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"zpdist serve did not answer within {SERVER_START_S} s:\n{log.read_text()}")


async def websocket_viewer(url: str, leave: asyncio.Event, usable: list[float]) -> None:
    """Fetch the page, open its websocket and pull the document; appends to ``usable`` the seconds until it is
    received, then stays connected until ``leave`` is set."""
    from bokeh.protocol import Protocol
    from bokeh.protocol.receiver import Receiver
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    start = time.perf_counter()
    page = (await AsyncHTTPClient().fetch(url, request_timeout=VIEWER_TIMEOUT_S)).body.decode()
    token = re.search(r'"token":\s*"([^"]+)"', page).group(1)
    ws_url = url.replace("http://", "ws://") + "ws"
    connection = await websocket_connect(
        HTTPRequest(ws_url, request_timeout=VIEWER_TIMEOUT_S), subprotocols=["bokeh", token]
    )
    protocol = Protocol()
    receiver = Receiver(protocol)

    async def receive(msgtype: str) -> None:
        while True:
            fragment = await connection.read_message()
            if fragment is None:
                raise ConnectionError(f"the server closed the websocket before {msgtype}")
            message = await receiver.consume(fragment)
            if message is not None and message.msgtype == msgtype:
                return

    await receive("ACK")
    request = protocol.create("PULL-DOC-REQ")
    for part in (request.header_json, request.metadata_json, request.content_json):
        await connection.write_message(part)
    await receive("PULL-DOC-REPLY")
    usable.append(time.perf_counter() - start)
    await leave.wait()
    connection.close()


async def browser_viewer(browser, url: str, leave: asyncio.Event, usable: list[float], outside: list[str]) -> None:
    """Open the page in a fresh browser context; appends to ``usable`` the seconds until every plot of its first tab
    is drawn, then stays until ``leave`` is set. Requests to any other host are recorded in ``outside`` and
    aborted."""
    context = await browser.new_context(viewport={"width": 1600, "height": 1200})
    page = await context.new_page()

    async def route(r) -> None:
        if r.request.url.startswith(url):
            await r.continue_()
        else:
            outside.append(r.request.url)
            await r.abort()

    await page.route("**/*", route)
    start = time.perf_counter()
    await page.goto(url, timeout=VIEWER_TIMEOUT_S * 1000)
    await page.wait_for_function(PAGE_DRAWN, polling=100, timeout=VIEWER_TIMEOUT_S * 1000)
    usable.append(time.perf_counter() - start)
    await leave.wait()
    await context.close()


async def wave(args: argparse.Namespace, url: str, memory: Memory, browser, outside: list[str]) -> dict:
    """One wave of ``args.viewers`` concurrent viewers: their times to a usable page (in the order they got it), the
    server's peak RSS while they were there, and its RSS once their sessions have ended."""
    leave, stop, usable = asyncio.Event(), asyncio.Event(), []
    memory.samples, cpu_start = [], memory.cpu_s()
    sampler = asyncio.create_task(memory.sample(stop))
    if args.client == "browser":
        viewers = [browser_viewer(browser, url, leave, usable, outside) for _ in range(args.viewers)]
    else:
        viewers = [websocket_viewer(url, leave, usable) for _ in range(args.viewers)]
    tasks = [asyncio.create_task(v) for v in viewers]
    while len(usable) < len(tasks) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    cpu_s = memory.cpu_s() - cpu_start
    leave.set()
    await asyncio.gather(*tasks)  # raises a viewer's error
    stop.set()
    await sampler
    peak = max(memory.samples)
    await asyncio.sleep(args.settle_s)  # sessions end once unused for the server's session lifetime
    return {"times": sorted(usable), "cpu_s": cpu_s, "peak_mb": peak, "after_mb": memory.now()}


def markdown(args: argparse.Namespace, before_mb: float, waves: list[dict], outside: list[str]) -> str:
    """The results as Markdown: one row per viewer (seconds to a usable page per wave), then the memory."""
    lines = [
        f"# `zpdist serve` under load: {args.viewers} concurrent {args.client} viewers, {len(waves)} wave(s)",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
        f"catalog {args.catalog_name} ({args.stars_label}); usable = "
        + ("the whole document received" if args.client == "websocket" else "every first-tab plot drawn, idle"),
        "",
        "| viewer (in order of arrival) | " + " | ".join(f"wave {i + 1} (s)" for i in range(len(waves))) + " |",
        "|---:|" + "---:|" * len(waves),
    ]
    for i in range(args.viewers):
        lines.append(f"| {i + 1} | " + " | ".join(f"{w['times'][i]:.2f}" for w in waves) + " |")
    for name, fn in (("median", lambda t: sorted(t)[len(t) // 2]), ("slowest", max)):
        lines.append(f"| **{name}** | " + " | ".join(f"**{fn(w['times']):.2f}**" for w in waves) + " |")
    lines.append(
        "| server CPU until the last was usable (s) | " + " | ".join(f"{w['cpu_s']:.1f}" for w in waves) + " |"
    )
    lines += ["", "| server RSS (MB) | " + " | ".join(f"wave {i + 1}" for i in range(len(waves))) + " |"]
    lines.append("|---|" + "---:|" * len(waves))
    lines.append("| before | " + " | ".join(f"{before_mb:.0f}" if i == 0 else "" for i in range(len(waves))) + " |")
    lines.append("| peak during | " + " | ".join(f"{w['peak_mb']:.0f}" for w in waves) + " |")
    lines.append("| after (sessions ended) | " + " | ".join(f"{w['after_mb']:.0f}" for w in waves) + " |")
    if args.client == "browser":
        lines += ["", f"Requests to other hosts than the server: {len(outside)} {sorted(set(outside))[:5]}"]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace, url: str, memory: Memory) -> tuple[float, list[dict], list[str]]:
    """The waves, one after the other; returns the RSS before the first, the waves' results and the outside
    requests."""
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=args.viewers)
    outside: list[str] = []
    before = memory.now()
    if args.client == "websocket":
        return before, [await wave(args, url, memory, None, outside) for _ in range(args.waves)], outside
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
        )
        waves = [await wave(args, url, memory, browser, outside) for _ in range(args.waves)]
        await browser.close()
    return before, waves, outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=20, help="concurrent viewers per wave (default 20)")
    parser.add_argument("--waves", type=int, default=3, help="waves, one after the other (default 3)")
    parser.add_argument("--client", choices=("websocket", "browser"), default="websocket", help="kind of viewer")
    parser.add_argument("--catalog", type=Path, help="catalog to serve (default: a synthetic one of --stars)")
    parser.add_argument("--stars", type=int, default=30_000, help="stars of the synthetic catalog (default 30000)")
    parser.add_argument("--settle-s", type=float, default=80.0,
                        help="seconds after a wave before reading the memory: `zpdist serve` ends a session 60–70 s "
                        "after its viewer left (default 80)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.catalog is None:
            from tests.synthetic_catalog import write_synthetic_catalog

            args.catalog = write_synthetic_catalog(Path(tmp) / "catalog.parquet", args.stars)
            args.catalog_name, args.stars_label = "synthetic", f"{args.stars:,} stars"
        else:
            args.catalog_name, args.stars_label = args.catalog.name, "its stars"
        process, url = start_server(args.catalog, Path(tmp) / "serve.log")
        try:
            before, waves, outside = asyncio.run(run(args, url, Memory(process.pid)))
        finally:
            process.terminate()
            process.wait(timeout=60)
    text = markdown(args, before, waves, outside)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"load-{args.client}-{args.viewers}.md"
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps({"before_mb": before, "waves": waves}, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
