"""MIME parsing over a whole mailbox: CPU with and without the fast part tree, and proof they agree.

    python -m bench.mime_parse MAILDIR [--crlf]

Reads every message file under MAILDIR (``cur/`` and ``new/`` of every
folder, e.g. one made by ``gen_mailbox.py --seed 42 MAILDIR 10000``), parses
each one with ``parse_message(fast=False)`` (the stdlib feedparser) and with
``parse_message()``, and reports the CPU time of each (``time.process_time``,
one fresh process per path, so the parse caches start cold), how many
messages the fast path took, and every message whose ParsedMessage differs
(there must be none). ``--crlf`` turns LF line ends into CRLF first, as an
IMAP server sends them. A one-off check, not part of ``make bench`` or the
test suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from salesinbox.mime.limits import measure
from salesinbox.mime.parse import _OpaqueMessage, parse_message
from salesinbox.mime.split import split_message


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    arguments.add_argument("maildir", type=Path)
    arguments.add_argument("--crlf", action="store_true", help="parse with CRLF line ends, as IMAP delivers mail")
    options = arguments.parse_args()
    files = sorted(path for path in options.maildir.rglob("*") if path.is_file() and path.parent.name in ("cur", "new"))
    raws = [path.read_bytes() for path in files]
    if options.crlf:
        raws = [raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for raw in raws]
    print(f"{len(raws):,} messages, {sum(map(len, raws)) / 1e6:,.1f} MB")

    # Each timing in a fresh process: the parse caches (addresses, subjects, parameters) start cold.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        feedparser_seconds = pool.submit(_cpu_seconds, raws, fast=False).result()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        fast_seconds = pool.submit(_cpu_seconds, raws, fast=True).result()
    reference = [parse_message(raw, fast=False) for raw in raws]
    parsed = [parse_message(raw) for raw in raws]
    fast = sum(1 for raw in raws if _takes_fast_path(raw))
    different = [path for path, old, new in zip(files, reference, parsed, strict=True) if old != new]
    print(f"CPU: feedparser only {feedparser_seconds:.2f} s, with the fast path {fast_seconds:.2f} s")
    print(f"fast path: {fast:,} of {len(raws):,} messages")
    print(f"different results: {len(different)}")
    for path in different[:20]:
        print(f"  {path}")
    return 1 if different else 0


def _cpu_seconds(raws: list[bytes], *, fast: bool) -> float:
    started = time.process_time()
    for raw in raws:
        parse_message(raw, fast=fast)
    return time.process_time() - started


def _takes_fast_path(raw: bytes) -> bool:
    return bool(raw.strip()) and not measure(raw).over_limit and split_message(raw, _OpaqueMessage) is not None


if __name__ == "__main__":
    sys.exit(main())
