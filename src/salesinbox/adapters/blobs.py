"""Blob storage for raw MIME (and later attachments), through obstore.

Keys are content-addressed (``raw/ab/abcdef...``): the same message synced by
several accounts is stored once, and a retried write is harmless. Embedded:
a LocalStore under the data dir; scaled out: any obstore store (S3Store ...).

Packs: an initial sync writes the raw MIME of each fetched batch (up to 500
messages) as one object, ``packs/ab/<name>.pack``, and each message's key
says where it lies in it: ``packs/ab/<name>.pack@<offset>+<length>@<content
hash>``. A file per message cost the kernel about 0.4 ms each here (ext4
inode allocation: 4.4 s of system CPU for 10,000 messages), a pack a few
milliseconds. A pack's name is the hash of its messages' content hashes, so
a retried batch writes the same object again. Reading a packed key is a
ranged GET; should the pack be missing, the message's content-addressed key
is tried, and writing a packed key writes there (a message read again from
the mail server is kept under its own key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore

# What ``get`` raises for a missing key: LocalStore's FileNotFoundError, the object stores' NotFoundError.
MISSING_BLOB = (FileNotFoundError, NotFoundError)


def raw_key(content_hash: str) -> str:
    return f"raw/{content_hash[:2]}/{content_hash}.eml"


def pack_name(content_hashes: Iterable[str]) -> str:
    """The pack of these messages (in this order): named by their hashes, so a retry names it the same."""
    return hashlib.sha256("\n".join(content_hashes).encode()).hexdigest()


def pack_path(name: str) -> str:
    return f"packs/{name[:2]}/{name}.pack"


def packed_key(name: str, offset: int, length: int, content_hash: str) -> str:
    return f"{pack_path(name)}@{offset}+{length}@{content_hash}"


def _unpack_key(key: str) -> tuple[str, int, int, str] | None:
    """(pack path, offset, length, content hash) of a packed key; None for any other key."""
    if not key.startswith("packs/") or key.count("@") != 2:
        return None
    path, place, content_hash = key.split("@")
    offset, _, length = place.partition("+")
    return path, int(offset), int(length), content_hash


class ObjectBlobStore:
    def __init__(self, store) -> None:
        self._store = store

    @classmethod
    def local(cls, root: Path) -> ObjectBlobStore:
        root.mkdir(parents=True, exist_ok=True)
        return cls(LocalStore(str(root), mkdir=True))

    @property
    def store(self):
        """The obstore store itself (it pickles: worker processes write through it too)."""
        return self._store

    async def put(self, key: str, data: bytes) -> None:
        packed = _unpack_key(key)
        await obstore.put_async(self._store, raw_key(packed[3]) if packed else key, data)

    async def get(self, key: str) -> bytes:
        packed = _unpack_key(key)
        if packed is None:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        path, offset, length, content_hash = packed
        try:
            return bytes(await obstore.get_range_async(self._store, path, start=offset, length=length))
        except (FileNotFoundError, NotFoundError):
            result = await obstore.get_async(self._store, raw_key(content_hash))  # kept again after the pack was lost
            return bytes(await result.bytes_async())
