"""pytest fixtures for the mail test rig: a real Dovecot and SMTP submission.

Register with ``pytest_plugins = ["tests.rig.plugin"]`` in tests/conftest.py.

- ``dovecot`` / ``dovecot_tls`` (session): one throwaway Dovecot each, plain
  and TLS; starting takes ~50 ms and stopping a few ms, but
  one per session is plenty: tests isolate themselves by user.
- ``smtp_server`` (session): a ``SubmissionServer`` with AUTH that delivers
  into ``dovecot``; its ``envelopes`` hold every accepted message.
- ``mailbox`` (function): a fresh user in both, so tests sharing the session
  servers never see each other's mail. ``mailbox_factory`` makes more.
- ``idp`` (session): a local OAuth 2.0 identity provider (tests.rig.idp), and
  ``dovecot_oauth`` (session): a Dovecot whose oauth2 passdb asks it about
  XOAUTH2 / OAUTHBEARER tokens.

Every fixture stops what it started in its teardown, which pytest runs on
failing tests too; ``Dovecot.start`` cleans up after itself if it fails.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest

from tests.rig.dovecot import Dovecot
from tests.rig.idp import IdentityProvider
from tests.rig.smtp import SubmissionServer
from tests.support.secrets_audit import seeded

T = TypeVar("T")


@dataclass(frozen=True)
class Mailbox:
    """A test user: one IMAP account on ``dovecot`` plus its SMTP login."""

    address: str
    login: str
    password: str
    imap_host: str
    imap_port: int
    smtp_host: str
    smtp_port: int


def new_mailbox(dovecot: Dovecot, smtp_server: SubmissionServer, *, domain: str = "example.test") -> Mailbox:
    """Create a user with a unique address and a random password in both servers."""
    address = f"u{uuid.uuid4().hex[:8]}@{domain}"
    password = seeded(secrets.token_urlsafe(12))
    dovecot.add_user(address, password)
    smtp_server.add_user(address, password)
    return Mailbox(
        address=address,
        login=address,
        password=password,
        imap_host=dovecot.host,
        imap_port=dovecot.imap_port,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )


def wait_until(probe: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.05, what: str = "condition") -> T:
    """Call ``probe`` until it returns something truthy; return that value.

    The polling interval is not a guess at how long the server needs: the
    deadline is. Raises AssertionError naming ``what`` when it passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot() as server:
        yield server


# What an older or simpler server offers: no CONDSTORE, no QRESYNC (so no MODSEQ, no VANISHED).
PLAIN_CAPABILITIES = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS MOVE SPECIAL-USE NAMESPACE"


@pytest.fixture(scope="session")
def dovecot_plain() -> Iterator[Dovecot]:
    with Dovecot(capabilities=PLAIN_CAPABILITIES) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[Dovecot]:
    with Dovecot(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_server(dovecot: Dovecot) -> Iterator[SubmissionServer]:
    with SubmissionServer(dovecot) as server:
        yield server


@pytest.fixture
def mailbox_factory(dovecot: Dovecot, smtp_server: SubmissionServer) -> Callable[[], Mailbox]:
    return lambda: new_mailbox(dovecot, smtp_server)


@pytest.fixture
def mailbox(mailbox_factory: Callable[[], Mailbox]) -> Mailbox:
    return mailbox_factory()


@pytest.fixture(scope="session")
def idp() -> Iterator[IdentityProvider]:
    """A local OAuth 2.0 identity provider (authorize, token with PKCE and rotation, introspection)."""
    with IdentityProvider(client_secret=seeded(secrets.token_urlsafe(16))) as provider:
        yield provider


@pytest.fixture(scope="session")
def dovecot_oauth(idp: IdentityProvider) -> Iterator[Dovecot]:
    """Dovecot that also accepts XOAUTH2 / OAUTHBEARER, asking ``idp`` about each token."""
    with Dovecot(oauth2_introspection_url=idp.introspection_url) as server:
        yield server
