"""The small interfaces the use cases need from the edge; bootstrap wires them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from salesinbox.domain.connection import ProbeFailure


class SecretBox(Protocol):
    def encrypt(self, plaintext: str) -> str: ...
    def decrypt(self, token: str) -> str: ...
    def rotate(self, token: str) -> str: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, password_hash: str | None, password: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ServerLogin:
    """Where and how to log in to one mail server (IMAP or SMTP)."""

    host: str
    port: int
    security: str
    login: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"ServerLogin({self.host}:{self.port}, {self.security}, {self.login})"


class MailProbe(Protocol):
    """Logs in to IMAP and SMTP and reports what went wrong, if anything."""

    async def probe_imap(self, server: ServerLogin, provider: str) -> ProbeFailure | None: ...
    async def probe_smtp(self, server: ServerLogin, provider: str) -> ProbeFailure | None: ...


class BlobStore(Protocol):
    """Raw MIME and attachment bytes, by content-addressed key."""

    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...


class MailboxSession(Protocol):
    """A blocking IMAP session (see adapters.imap.session); the sync runs it in a thread."""

    def connect(self) -> MailboxSession: ...
    def close(self) -> None: ...
