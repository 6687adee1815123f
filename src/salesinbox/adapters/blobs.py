"""Blob storage for raw MIME (and later attachments), through obstore.

Keys are content-addressed (``raw/ab/abcdef...``): the same message synced by
several accounts is stored once, and a retried write is harmless. Embedded:
a LocalStore under the data dir; scaled out: any obstore store (S3Store ...).
"""

from __future__ import annotations

from pathlib import Path

import obstore
from obstore.store import LocalStore


def raw_key(content_hash: str) -> str:
    return f"raw/{content_hash[:2]}/{content_hash}.eml"


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
        await obstore.put_async(self._store, key, data)

    async def get(self, key: str) -> bytes:
        result = await obstore.get_async(self._store, key)
        return bytes(await result.bytes_async())
