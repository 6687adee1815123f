"""The small interfaces the use cases need from the edge; bootstrap wires them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from salesinbox.domain.connection import ProbeFailure
from salesinbox.domain.oauth import TokenGrant
from salesinbox.domain.provider_profiles import ProviderProfile

if TYPE_CHECKING:
    from salesinbox.adapters.http.image_fetch import FetchedImage


class SecretBox(Protocol):
    def encrypt(self, plaintext: str) -> str: ...
    def decrypt(self, token: str) -> str: ...
    def rotate(self, token: str) -> str: ...
    def sign(self, data: bytes) -> str: ...  # an HMAC of ``data`` with a key derived from the newest secret key
    def verify(self, data: bytes, signature: str) -> bool: ...  # made by ``sign`` with any configured key


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
    password: str  # with mechanism "xoauth2": the OAuth access token
    mechanism: str = "password"  # "password" (LOGIN / AUTH PLAIN) or "xoauth2"

    def __repr__(self) -> str:  # never print the password
        return f"ServerLogin({self.host}:{self.port}, {self.security}, {self.login}, {self.mechanism})"


class MailProbe(Protocol):
    """Logs in to IMAP and SMTP and reports what went wrong, if anything."""

    async def probe_imap(self, server: ServerLogin, provider: str) -> ProbeFailure | None: ...
    async def probe_smtp(self, server: ServerLogin, provider: str) -> ProbeFailure | None: ...


class OAuthClient(Protocol):
    """OAuth 2.0 with the providers whose clients the self-hoster registered (adapters.oauth).

    ``provider`` is a preset key ("gmail", "microsoft"). The token calls raise
    ``domain.oauth.OAuthTokenError`` (kind revoked / transient / refused).
    """

    def configured(self, provider: str) -> bool: ...
    def authorization_url(
        self, provider: str, redirect_uri: str, state: str, code_verifier: str, login_hint: str = ""
    ) -> str: ...
    async def exchange_code(self, provider: str, code: str, redirect_uri: str, code_verifier: str) -> TokenGrant: ...
    async def refresh(self, provider: str, refresh_token: str) -> TokenGrant: ...


class BlobStore(Protocol):
    """Raw MIME and attachment bytes, by content-addressed key."""

    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...


class MailboxSession(Protocol):
    """A blocking IMAP session (see adapters.imap.session); the sync runs it in a thread."""

    profile: ProviderProfile  # what the server showed itself to be (CAPABILITY, greeting), once connected

    def connect(self) -> MailboxSession: ...
    def close(self) -> None: ...


class BatchFetcher(Protocol):
    """Whole messages of one folder fetched by UID, their raw MIME put in the blob store, parsed.

    Answers ``adapters.imap.fetch_workers.FetchedPrepared`` items (uid, flags,
    modseq, gm_thrid, size, prepared, raw_key: where the raw MIME was kept), without the UIDs the server no longer
    has; raises ``ImapError`` when the server fails or the folder's
    UIDVALIDITY is no longer ``uidvalidity``.
    """

    def warm_up(self) -> None: ...
    async def fetch(self, server: ServerLogin, folder: str, uidvalidity: int, uids: list[int]) -> list: ...


class ImageSource(Protocol):
    """Remote images for the image proxy, fetched without reaching inside our network (SSRF-safe).

    ``fetch`` raises ``adapters.http.image_fetch.ImageRefused`` when it will not or cannot.
    """

    async def fetch(self, url: str) -> FetchedImage: ...
    async def aclose(self) -> None: ...
