"""SMTP servers for the test rig, each delivering into Dovecot over LMTP.

``SubmissionServer`` plays a provider's submission port (RFC 6409): it wants
AUTH PLAIN or LOGIN (RFC 4954) before MAIL FROM, checks credentials against a
dict, delivers each accepted message into Dovecot, and keeps every envelope
(Bcc recipients included, since they exist only in the envelope) for tests to
assert on. ``LmtpRelay`` is the same delivery without AUTH, used as the relay
behind Dovecot's own submission service.

aiosmtpd quirks encoded here:

- The authenticator must return ``AuthResult(success=False, handled=False)``
  on a bad password; with ``handled=True`` no 535 is sent and the client hangs
  until its timeout.
- ``auth_required=True`` without TLS makes aiosmtpd call ``warnings.warn`` in
  its server thread, which ``filterwarnings = error`` turns into a failed
  start. So AUTH is offered (``auth_require_tls=False``) but required by the
  handler at MAIL FROM with the standard 530 reply instead.
- Delivery is one LMTP transaction per recipient: LMTP answers DATA once per
  recipient and ``smtplib.LMTP`` reads only the first answer.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    from tests.rig.dovecot import Dovecot


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel says are free right now (from its high ephemeral range).

    All sockets are held open together so the same port is not handed out
    twice; another process could still grab one before the server binds it
    (``Dovecot.start`` retries with fresh ports when that happens).
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


class _DropLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation warning of its own on every successful AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNotice())


@dataclass(frozen=True)
class ReceivedEnvelope:
    """One message as the server accepted it."""

    login: str | None
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


def deliver_over_lmtp(host: str, lmtp_port: int, mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
    """Deliver ``content`` to each recipient, one LMTP transaction each (RFC 2033)."""
    for rcpt in rcpt_tos:
        with smtplib.LMTP(host, lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(mail_from, [rcpt], content)


class _DeliveringHandler:
    """aiosmtpd handler: deliver each message over LMTP, then record its envelope."""

    def __init__(self, host: str, lmtp_port: int, *, require_auth: bool) -> None:
        self.host = host
        self.lmtp_port = lmtp_port
        self.require_auth = require_auth
        self.envelopes: list[ReceivedEnvelope] = []
        self._lock = threading.Lock()

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        received = _received(session, envelope)
        try:
            # smtplib is blocking: run it off the server's event loop thread.
            await server.loop.run_in_executor(None, self._deliver, received)
        except (OSError, smtplib.SMTPException) as error:
            return f"451 4.3.0 Delivery into Dovecot failed: {error}"
        with self._lock:
            self.envelopes.append(received)
        return "250 Message accepted for delivery"

    def _deliver(self, received: ReceivedEnvelope) -> None:
        deliver_over_lmtp(self.host, self.lmtp_port, received.mail_from, list(received.rcpt_tos), received.content)


def _received(session: Session, envelope: Envelope) -> ReceivedEnvelope:
    login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
    content = envelope.original_content or envelope.content or b""
    if isinstance(content, str):
        content = content.encode()
    return ReceivedEnvelope(login, envelope.mail_from or "", tuple(envelope.rcpt_tos), content)


class _DictAuthenticator:
    """aiosmtpd authenticator over a login -> password dict (AUTH PLAIN / LOGIN)."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self._matches(auth_data):
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False makes aiosmtpd send "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=False, handled=False)

    def _matches(self, auth_data: LoginPassword) -> bool:
        login = auth_data.login.decode("utf-8", "replace")
        expected = self.passwords.get(login)
        return expected is not None and expected.encode() == auth_data.password


class _ThreadedServer:
    """An aiosmtpd ``Controller`` on a free port of 127.0.0.1."""

    def __init__(self, host: str, port: int, handler: _DeliveringHandler, **smtp_kwargs: object) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self._controller = Controller(
            handler, hostname=host, port=port, server_hostname="rig.example.test", **smtp_kwargs
        )
        self._running = False

    def start(self) -> None:
        try:
            self._controller.start()
        except BaseException:
            self._controller.stop(no_assert=True)  # joins the thread if it got going
            self._close_unused_loop()
            raise
        self._running = True

    def stop(self) -> None:
        """Stop the server thread; safe to call twice or without ``start``."""
        if self._running:
            self._controller.stop()
            self._running = False
        self._close_unused_loop()

    def _close_unused_loop(self) -> None:
        # The controller creates its loop up front and closes it only when its
        # thread ran to the end; otherwise it leaks as a ResourceWarning.
        if not self._controller.loop.is_closed():
            self._controller.loop.close()

    @property
    def envelopes(self) -> list[ReceivedEnvelope]:
        return self.handler.envelopes


class LmtpRelay(_ThreadedServer):
    """An SMTP relay without AUTH that delivers into Dovecot's LMTP port."""

    def __init__(self, host: str, port: int, lmtp_port: int) -> None:
        super().__init__(host, port, _DeliveringHandler(host, lmtp_port, require_auth=False))


class SubmissionServer(_ThreadedServer):
    """A submission server with AUTH PLAIN/LOGIN that delivers into ``dovecot``.

    Logins are any strings (full address or short name); ``add_user`` before
    the client authenticates. ``envelopes`` lists every accepted message.
    """

    def __init__(self, dovecot: Dovecot, port: int | None = None) -> None:
        self._authenticator = _DictAuthenticator()
        super().__init__(
            dovecot.host,
            port or free_ports(1)[0],
            _DeliveringHandler(dovecot.host, dovecot.lmtp_port, require_auth=True),
            authenticator=self._authenticator,
            auth_require_tls=False,
        )

    def add_user(self, login: str, password: str) -> None:
        """Accept ``login`` / ``password`` for AUTH from now on."""
        self._authenticator.passwords[login] = password

    def envelopes_to(self, rcpt: str) -> list[ReceivedEnvelope]:
        """Accepted envelopes with ``rcpt`` among their recipients."""
        return [envelope for envelope in list(self.envelopes) if rcpt in envelope.rcpt_tos]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
