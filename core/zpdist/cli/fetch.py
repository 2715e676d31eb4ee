"""``zpdist fetch``: download the real survey files into data/ (resumable, verified)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit

from zpdist.cli.command import Command
from zpdist.cli.options import add_quiet, nonnegative_int, positive_float
from zpdist.errors import InputError
from zpdist.fetch import DEFAULT_DEST, REGISTRY, format_download_report, format_registry, registry_entry, target_path
from zpdist.io.download import Checksum, DownloadConfig, download

_NAMES = ", ".join(e.name for e in REGISTRY)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        "Examples:\n  zpdist fetch --list\n  zpdist fetch apogee-dr17-allstar\n"
        "  zpdist fetch apogee-dr14-allstar --dest /big/disk\n"
        "  zpdist fetch --url https://example.org/table.fits --sha256 HEX --dest data/extra"
    )
    names = _NAMES
    p.add_argument("name", nargs="?", metavar="NAME", help=f"registered file to download: {names}")
    p.add_argument("--list", action="store_true", help="print the registry (sizes, checksums, sources) and exit")
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="destination folder (default data/)")
    p.add_argument(
        "--url",
        help="download from this address instead: a mirror for NAME (whose checksum still applies) or, without "
        "NAME, any file",
    )
    digest = p.add_mutually_exclusive_group()
    for algorithm in ("sha256", "sha1", "md5"):
        digest.add_argument(
            f"--{algorithm}", metavar="HEX", help=f"expected {algorithm} of the file (overrides the registry's)"
        )
    p.add_argument("--no-verify", action="store_true", help="skip the size and checksum checks")
    p.add_argument("--retries", type=nonnegative_int, default=5, help="retries after a transient failure (default 5)")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds to wait for the server (default 60)")
    add_quiet(p)


def run(args: argparse.Namespace) -> None:
    """List the registry, or download one file and report how it was checked."""
    if args.list:
        print(format_registry(args.dest))
        return
    override = next(
        (Checksum(a, getattr(args, a)) for a in ("sha256", "sha1", "md5") if getattr(args, a) is not None), None
    )
    options = [] if args.dest == DEFAULT_DEST else ["--dest", str(args.dest)]
    options += [f"--{override.algorithm}", override.hexdigest] if override else []
    options += ["--no-verify"] if args.no_verify else []
    if args.name is not None:
        entry = registry_entry(args.name)
        url = args.url or entry.url
        target = target_path(entry, args.dest)
        size, checksum = entry.size_bytes, override or entry.checksum
        rerun = shlex.join(["zpdist", "fetch", entry.name, *(["--url", args.url] if args.url else []), *options])
    elif args.url is not None:
        entry = None
        filename = Path(unquote(urlsplit(args.url).path)).name
        if filename in ("", ".", ".."):
            raise InputError(f"{args.url}: the address names no file; give one ending in a file name")
        url, target, size, checksum = args.url, args.dest / filename, None, override
        rerun = shlex.join(["zpdist", "fetch", "--url", args.url, *options])
    else:
        raise InputError(
            f"name a file to fetch ({', '.join(e.name for e in REGISTRY)}) or give --url; "
            "`zpdist fetch --list` describes them"
        )
    config = DownloadConfig(timeout_s=args.timeout, retries=args.retries)
    result = download(
        url,
        target,
        size=size,
        checksum=checksum,
        verify=not args.no_verify,
        config=config,
        progress=not args.quiet,
        rerun=rerun,
    )
    print(format_download_report(result, checksum, args.no_verify))
    if entry is not None:
        print(f"credit: {entry.credit}")


COMMAND = Command(
    name="fetch",
    help="download the real survey files into data/ (resumable, verified)",
    description="Download a registered survey file to DEST/NAME/FILENAME, or any file with --url to "
    "DEST/FILENAME. Bytes go to FILENAME.part first: an interrupted download resumes where it stopped (HTTP "
    "Range), and the file is renamed into place only once its size and checksum match. Files with a known "
    "checksum are verified against it; the others only against the server's Content-Length (the registry "
    "has no trustworthy sizes yet). Bytes that fail verification are kept as FILENAME.bad. "
    f"Registered files: {_NAMES}. `zpdist fetch --list` shows their sizes, checks, sources and credits.",
    add_arguments=add_arguments,
    run=run,
)
