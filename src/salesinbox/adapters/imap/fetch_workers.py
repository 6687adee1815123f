"""Whole messages fetched, kept and parsed in worker processes, so the syncing process only stores them.

The process that runs a sync is busy writing to the database; reading 345 MB
of FETCH answers and parsing them there as well made it the bottleneck, and
shipping every raw message to a parse worker doubled the copying. Here a
worker process does the lot for one batch of UIDs:

1. an IMAP connection of its own for the batch (logged out when the batch is
   fetched: a pass leaves nothing open behind it), EXAMINE of the folder, and
   a check that the folder's UIDVALIDITY is still the one the UIDs were read
   under: otherwise the batch fails and the next pass resyncs the folder;
2. ``UID FETCH`` of the batch (``ImapSession.fetch_mail``: a message over
   100 KB as a skeleton whose large attachments stay on the server);
3. the raw MIME written to the blob store, the batch's messages as one pack
   (``adapters/blobs.py``: a file per message cost more kernel time than the
   parse; the pack is named by its content: a retry is harmless);
4. parsing and the row fields computed beside it (``mime.batch.prepare``).

Only the prepared rows travel back. Errors come back as ``ImapError`` (the pass
fails, the supervisor retries later), exactly as when the syncing process
fetched itself. Workers are spawned, never forked (a process running database
and IMAP threads must not fork), and end with the process that started them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading
import types
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import obstore

from salesinbox.adapters.blobs import ObjectBlobStore, pack_name, pack_path, packed_key
from salesinbox.adapters.imap.session import ImapSession
from salesinbox.mime.batch import Prepared, die_with_parent, prepare


@dataclass(frozen=True)
class FetchedPrepared:
    """One message of a batch, its raw bytes already in the blob store (the batch's pack) under ``raw_key``."""

    uid: int
    flags: tuple[str, ...]
    modseq: int | None
    gm_thrid: str | None
    size: int
    prepared: Prepared
    raw_key: str  # where the raw MIME was kept: in the batch's pack


@dataclass(frozen=True)
class _Job:
    server: tuple  # host, port, security, login, password, ca_file, mechanism
    folder: str
    uidvalidity: int
    uids: list[int]
    blobs: object  # an obstore store (they pickle)


class ProcessFetcher:
    """The ``BatchFetcher`` port: batches of UIDs fetched, stored raw and parsed by worker processes."""

    def __init__(self, blobs: ObjectBlobStore, *, ca_file: str | None = None, workers: int = 0) -> None:
        self._store = blobs.store
        self._ca_file = ca_file
        self._workers = workers or (os.cpu_count() or 2)

    def warm_up(self) -> None:
        """Start the worker processes now (they take a moment to import), so the first batch does not wait."""
        _workers(self._workers)

    async def fetch(self, server, folder: str, uidvalidity: int, uids: list[int]) -> list[FetchedPrepared]:
        job = _Job(
            (server.host, server.port, server.security, server.login, server.password, self._ca_file, server.mechanism),
            folder,
            uidvalidity,
            list(uids),
            self._store,
        )
        return await asyncio.get_running_loop().run_in_executor(_workers(self._workers), _run, job)


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _workers(workers: int) -> ProcessPoolExecutor:
    """One pool per process, started on first use (its size then stays), and again if it broke."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL._broken:  # a worker died (killed by hand, out of memory): start afresh
            _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        if _POOL is None:
            _POOL = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
            )
            with _without_main_module():
                for _ in range(workers):
                    _POOL.submit(int)  # spawn them now (each submit starts one): importing takes a moment
        return _POOL


@contextmanager
def _without_main_module():
    """Workers spawned meanwhile do not run the program's main module again.

    A spawned child re-imports the parent's ``__main__`` first (for functions
    defined there); for ``salesinbox`` that is the CLI, which imports the
    whole app: about a second of CPU per worker, spent while the sync
    starts and competing with it. A worker needs only this module (the job's
    functions live here), so it is spawned while ``__main__`` is a bare
    module, which multiprocessing leaves alone.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


# ---- in the worker process ---------------------------------------------------------------


def _run(job: _Job) -> list[FetchedPrepared]:
    host, port, security, login, password, ca_file, mechanism = job.server
    with ImapSession(host, port, security, login, password, ca_file=ca_file, mechanism=mechanism) as session:
        session.examine_numbered(job.folder, job.uidvalidity)
        fetched = list(session.fetch_mail(job.uids))
    if not fetched:
        return []
    prepared = [prepare(item.raw, item.lean) for item in fetched]
    name = pack_name(p.parsed.content_hash for p in prepared)
    done, offset = [], 0
    for item, p in zip(fetched, prepared, strict=True):
        key = packed_key(name, offset, len(item.raw), p.parsed.content_hash)
        size = item.size or len(item.raw)
        done.append(FetchedPrepared(item.uid, item.flags, item.modseq, item.gm_thrid, size, p, key))
        offset += len(item.raw)
    obstore.put(job.blobs, pack_path(name), b"".join(item.raw for item in fetched))  # one object per batch
    return done
