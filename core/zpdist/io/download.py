"""Robust HTTP(S) downloads with the standard library: resume, retries, progress, verification, atomic rename.

A download is written to ``TARGET.part``. An interrupted one (a dropped connection, a timeout, Ctrl-C) leaves that
file in place, and the next call asks the server for the rest with an HTTP ``Range`` request. Servers that ignore
``Range`` (answering ``200`` with the whole file) are handled by starting the file again; ``416`` on a resume means
the partial file already holds everything. Once the bytes are complete they are checked against the expected size
and checksum (``md5``, ``sha1``, ``sha256`` or ``sha512``) and only then renamed onto ``TARGET``, so ``TARGET``
never holds a partial or unverified file. Bytes that fail the check are set aside as ``TARGET.bad`` for inspection.

Every failure raises a :class:`DownloadError` (an :class:`OSError`), whose message says what happened, what was kept
and what to run next.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from zpdist import __version__
from zpdist.errors import InputError, ZpdistError

#: HTTP statuses worth retrying: the server is busy, restarting or rate-limiting.
TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

#: Checksum algorithms accepted in a :class:`Checksum`.
CHECKSUM_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")

_BYTES = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
_OFFLINE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN})


class DownloadError(ZpdistError, OSError):
    """A download failed; the message names the URL, says what was kept on disk and what to run next."""


class OfflineError(DownloadError):
    """The server could not be reached at all (no network, DNS failure, connection refused)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected size or checksum; the message gives both values."""


@dataclass(frozen=True)
class Checksum:
    """An expected digest of a file.

    Parameters
    ----------
    algorithm : str
        One of :data:`CHECKSUM_ALGORITHMS`.
    hexdigest : str
        The digest as hexadecimal text (case-insensitive; stored lower-case).
    """

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        if self.algorithm not in CHECKSUM_ALGORITHMS:
            raise InputError(
                f"unknown checksum algorithm {self.algorithm!r}; use one of {', '.join(CHECKSUM_ALGORITHMS)}"
            )
        digest = self.hexdigest.strip().lower()
        n_hex = 2 * hashlib.new(self.algorithm).digest_size
        if len(digest) != n_hex or not re.fullmatch(r"[0-9a-f]+", digest):
            raise InputError(f"a {self.algorithm} checksum is {n_hex} hexadecimal digits; got {self.hexdigest!r}")
        object.__setattr__(self, "hexdigest", digest)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


@dataclass(frozen=True)
class DownloadConfig:
    """How patiently to download.

    Parameters
    ----------
    timeout_s : float
        Seconds to wait for the server to connect or to send the next bytes (default 60).
    retries : int
        Further tries after a transient failure (timeout, dropped connection, HTTP 5xx/429, unreachable host);
        the count is of failures in a row, and a failed try that still brought new bytes starts it again, so a
        long download over a flaky line keeps going as long as it progresses (default 5).
    backoff_s : float
        Wait before the first retry, doubled for each further one (default 2 s; 0 in tests).
    chunk_bytes : int
        Bytes read and written at a time (default 1 MiB).
    """

    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 2.0
    chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise InputError(f"timeout must be positive, got {self.timeout_s} s")
        if self.retries < 0:
            raise InputError(f"retries must be zero or more, got {self.retries}")
        if self.backoff_s < 0:
            raise InputError(f"backoff must be zero or more, got {self.backoff_s} s")
        if self.chunk_bytes <= 0:
            raise InputError(f"chunk size must be positive, got {self.chunk_bytes} bytes")


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download` did.

    Attributes
    ----------
    path : Path
        The final file.
    n_bytes : int
        Its size in bytes.
    checksum_verified : bool
        Whether its checksum was computed and matched the expected one.
    resumed_from : int
        Bytes that were already in the partial file when this call started (0 for a fresh download).
    already_present : bool
        True when the final file existed and nothing was downloaded.
    """

    path: Path
    n_bytes: int
    checksum_verified: bool
    resumed_from: int
    already_present: bool


class _Transient(Exception):
    """A failure worth retrying; ``reached`` is False when no server answered at all."""

    def __init__(self, reason: str, reached: bool, offline: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reached = reached
        self.offline = offline


def partial_path(target: str | os.PathLike) -> Path:
    """The ``TARGET.part`` file an unfinished download of ``target`` is written to."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def rejected_path(target: str | os.PathLike) -> Path:
    """The ``TARGET.bad`` file that bytes failing verification are moved to."""
    target = Path(target)
    return target.with_name(target.name + ".bad")


def file_checksum(path: str | os.PathLike, algorithm: str, progress: bool = False, chunk_bytes: int = 1 << 20) -> str:
    """Hexadecimal digest of a file, read in chunks.

    Parameters
    ----------
    path : path-like
        The file.
    algorithm : str
        A :mod:`hashlib` algorithm name, e.g. ``"sha256"``.
    progress : bool
        Show a progress bar (useful for multi-GB files).
    chunk_bytes : int
        Bytes read at a time.
    """
    path = Path(path)
    digest = hashlib.new(algorithm)
    with (
        open(path, "rb") as f,
        tqdm(
            total=path.stat().st_size, desc=f"{algorithm} {path.name}", disable=not progress, leave=False, **_BYTES
        ) as bar,
    ):
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def download(
    url: str,
    target: str | os.PathLike,
    *,
    size: int | None = None,
    checksum: Checksum | None = None,
    verify: bool = True,
    config: DownloadConfig | None = None,
    progress: bool = True,
    rerun: str | None = None,
) -> Downloaded:
    """Download ``url`` to ``target``, resuming a previous partial download and verifying the result.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` address of the file.
    target : path-like
        Final location; its folder is created. The bytes go to ``TARGET.part`` until they are verified.
    size : int, optional
        Expected size in bytes. Without it the server's ``Content-Length`` is the only size check.
    checksum : Checksum, optional
        Expected digest of the whole file.
    verify : bool
        Check ``size`` and ``checksum`` (default). False skips both; a transfer cut short of the server's
        ``Content-Length`` is still detected and resumed.
    config : DownloadConfig, optional
        Timeouts and retries.
    progress : bool
        Show a progress bar (bytes, rate, time left) on stderr.
    rerun : str, optional
        The command a user runs to resume, quoted in error messages (default: a generic phrase).

    Returns
    -------
    Downloaded
        The final path, its size, whether the checksum was verified, and whether it was resumed or already there.

    Raises
    ------
    OfflineError
        The host could not be reached; the partial file, if any, is kept.
    ChecksumError
        The bytes have the wrong size or checksum; they are moved to ``TARGET.bad`` and ``TARGET`` is not written.
    DownloadError
        Any other failure (HTTP 404, TLS error, retries exhausted), with what was kept on disk.
    """
    config = config or DownloadConfig()
    target = Path(target)
    part = partial_path(target)
    rerun = f"`{rerun}`" if rerun else "running the same download again"
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: only http:// and https:// addresses can be downloaded (got {scheme or 'none'!r})")
    expected_size = size if verify else None
    expected_checksum = checksum if verify else None
    if target.exists():
        return _existing(target, expected_size, expected_checksum, progress, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    resumed_from = part.stat().st_size if part.exists() else 0
    most_bytes = resumed_from
    failures = 0
    while True:
        try:
            total = _attempt(url, part, expected_size, config, progress)
            break
        except _Transient as exc:
            have = part.stat().st_size if part.exists() else 0
            failures = 1 if have > most_bytes else failures + 1
            most_bytes = max(most_bytes, have)
            if failures > config.retries:
                raise _give_up(url, part, exc, failures, rerun) from None
            time.sleep(config.backoff_s * 2 ** (failures - 1))
        except DownloadError as exc:
            raise DownloadError(f"{exc}; {_kept(part, rerun)}") from None
    known_size = expected_size if expected_size is not None else total
    verified = _verify(part, url, known_size, expected_checksum, progress, config)
    n_bytes = part.stat().st_size
    os.replace(part, target)
    return Downloaded(target, n_bytes, verified, resumed_from, already_present=False)


def _existing(
    target: Path, size: int | None, checksum: Checksum | None, progress: bool, config: DownloadConfig
) -> Downloaded:
    """Check a final file that is already there; raise without touching it when it does not match."""
    n_bytes = target.stat().st_size
    if size is not None and n_bytes != size:
        raise ChecksumError(
            f"{target} exists but holds {n_bytes} bytes, not the expected {size}; it was left untouched: "
            "move it away (or delete it) and run again to download a fresh copy"
        )
    if checksum is not None:
        got = file_checksum(target, checksum.algorithm, progress, config.chunk_bytes)
        if got != checksum.hexdigest:
            raise ChecksumError(
                f"{target} exists but its {checksum.algorithm} is {got}, not the expected {checksum.hexdigest}; "
                "it was left untouched: move it away (or delete it) and run again to download a fresh copy"
            )
    return Downloaded(target, n_bytes, checksum is not None, resumed_from=0, already_present=True)


def _attempt(url: str, part: Path, expected_size: int | None, config: DownloadConfig, progress: bool) -> int | None:
    """One request: append the missing bytes to ``part``; return the file's total size when the server gave it."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset == expected_size:
        return expected_size
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    headers = {"User-Agent": f"zpdist/{__version__} (Python urllib)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=config.timeout_s)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and offset:
                total = _content_range(exc.headers.get("Content-Range", ""))[2]
                if total is None or total == offset:
                    return offset
                part.unlink()
                message = f"the partial file ({offset} bytes) is longer than the file ({total} bytes)"
                raise _Transient(message, reached=True) from None
            if exc.code in TRANSIENT_HTTP_STATUSES:
                raise _Transient(f"HTTP {exc.code} {exc.reason}", reached=True) from None
            raise DownloadError(_http_message(url, exc.code, exc.reason)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            raise DownloadError(f"{url}: TLS failure talking to {_host(url)}: {reason}") from None
        raise _Transient(str(reason), reached=False, offline=_looks_offline(reason)) from None
    except (TimeoutError, ConnectionError, HTTPException) as exc:
        raise _Transient(_describe(exc), reached=True) from None
    with response:
        if response.status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(
                    f"{url}: asked for bytes from {offset} but the server sent a range starting at {start}"
                )
        elif response.status == 200:
            offset = 0
            total = _int_header(response.headers.get("Content-Length"))
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status} {response.reason}")
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"{url}: the server says the file is {total} bytes but {expected_size} were expected; "
                "the file on the server may have changed (pass --no-verify to take it as it is)"
            )
        _stream(response, part, offset, total, config, progress)
    return total


def _stream(response, part: Path, offset: int, total: int | None, config: DownloadConfig, progress: bool) -> None:
    """Copy the response body onto ``part`` (appending at ``offset``, or from scratch when 0)."""
    length = _int_header(response.headers.get("Content-Length"))
    received = 0
    with (
        open(part, "ab" if offset else "wb") as f,
        tqdm(total=total, initial=offset, desc=part.name.removesuffix(".part"), disable=not progress, **_BYTES) as bar,
    ):
        try:
            while chunk := response.read(config.chunk_bytes):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (TimeoutError, ConnectionError, HTTPException) as exc:
            raise _Transient(f"{_describe(exc)} after {offset + received} bytes", reached=True) from None
        finally:
            f.flush()
            os.fsync(f.fileno())
    if length is not None and received < length:
        raise _Transient(f"the connection closed after {offset + received} of {offset + length} bytes", reached=True)


def _verify(
    part: Path, url: str, size: int | None, checksum: Checksum | None, progress: bool, config: DownloadConfig
) -> bool:
    """Check the complete ``part``; on a mismatch move it to ``.bad`` and raise :class:`ChecksumError`."""
    target = part.with_name(part.name.removesuffix(".part"))
    n_bytes = part.stat().st_size
    if size is not None and n_bytes != size:
        bad = _set_aside(part, target)
        raise ChecksumError(
            f"{url}: expected {size} bytes, got {n_bytes}; the bytes were kept as {bad} for inspection and "
            f"{target} was not written; run again to download afresh"
        )
    if checksum is None:
        return False
    got = file_checksum(part, checksum.algorithm, progress, config.chunk_bytes)
    if got != checksum.hexdigest:
        bad = _set_aside(part, target)
        raise ChecksumError(
            f"{url}: {checksum.algorithm} mismatch: expected {checksum.hexdigest}, got {got}; the bytes were kept "
            f"as {bad} for inspection and {target} was not written; run again to download afresh "
            "(or check the mirror given with --url)"
        )
    return True


def _set_aside(part: Path, target: Path) -> Path:
    """Move rejected bytes to ``TARGET.bad`` (replacing an older one) so the next try starts clean."""
    bad = rejected_path(target)
    os.replace(part, bad)
    return bad


def _give_up(url: str, part: Path, exc: _Transient, tries: int, rerun: str) -> DownloadError:
    """The error raised once the retries are spent."""
    host = _host(url)
    if not exc.reached:
        why = "you appear to be offline" if exc.offline else "you may be offline"
        return OfflineError(f"cannot reach {host}: {exc.reason}; {why} (or {host} is down); {_kept(part, rerun)}")
    tries_text = "1 failed try" if tries == 1 else f"{tries} failed tries in a row"
    return DownloadError(f"{url}: gave up after {tries_text} (last: {exc.reason}); {_kept(part, rerun)}")


def _kept(part: Path, rerun: str) -> str:
    """What was left on disk and how to continue."""
    if part.exists() and part.stat().st_size:
        return f"the partial file {part} ({part.stat().st_size} bytes) is kept and {rerun} will resume"
    return f"nothing was written; {rerun} will start again"


def _http_message(url: str, code: int, reason: str) -> str:
    """A user-facing line for an HTTP error status."""
    hints = {
        404: "the file is not at this address (check the URL, or give a mirror with --url)",
        401: "the server wants a login: the file may be proprietary",
        403: "the server refuses access: the file may be proprietary or the address wrong",
    }
    hint = hints.get(code, "the server refused the request")
    return f"{url}: HTTP {code} {reason}: {hint}"


def _looks_offline(reason: object) -> bool:
    """Whether a connection failure means the network (or the host name) is unreachable."""
    if isinstance(reason, socket.gaierror | ConnectionRefusedError):
        return True
    return isinstance(reason, OSError) and reason.errno in _OFFLINE_ERRNOS


def _describe(exc: BaseException) -> str:
    """A short text for a network exception (some have an empty ``str``)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _int_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """``(start, end, total)`` from a ``Content-Range`` header (``bytes S-E/T`` or ``bytes */T``); None if absent."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None, None
    start, end, total = (int(g) if g is not None and g != "*" else None for g in match.groups())
    return start, end, total
