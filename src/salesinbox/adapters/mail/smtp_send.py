"""Handing one message to an SMTP server (aiosmtplib), with the outcome classified.

The outbox needs to know exactly how far a send got, because that decides
whether it may try again:

- ``SendRetry``: nothing was accepted (connect, login, MAIL, RCPT, DATA
  refused with 4xx, or the connection dropped before the final dot): try
  again later.
- ``SendRejected``: the server refused for good (5xx): the user sees its words.
- ``SendOutcomeUnknown``: the connection ended after the final dot and before
  the server answered: it may have been delivered. Never retried blindly.

The message text goes out in two writes: everything but the final
``CRLF.CRLF``, then, once ``on_handover`` has returned, the dot. A server
delivers only a transaction ended by the dot (RFC 5321, 4.1.1.4 and 3.3), so
until that moment a lost connection delivered nothing and a retry is safe;
``on_handover`` is where the caller records that this is no longer so (and
may raise to stop before the dot: the connection is then dropped, since a
QUIT in the middle of DATA would be read as message text).

Every step runs under a timeout.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from salesinbox.services.ports import ServerLogin


class SendRetry(Exception):
    """Not delivered; safe to try again."""


class SendRejected(Exception):
    """The server refused the message for good."""


class SendOutcomeUnknown(Exception):
    """The message text was sent but no answer came: it may have been delivered."""


@dataclass(frozen=True)
class SendReceipt:
    reply: str  # the server's answer to the end of DATA, e.g. "250 2.0.0 Ok: queued as ..."


class SmtpSender:
    def __init__(self, *, timeout: float = 60.0, ca_file: str | None = None) -> None:
        self.timeout, self.ca_file = timeout, ca_file

    async def send(
        self,
        server: ServerLogin,
        sender: str,
        recipients: Sequence[str],
        raw: bytes,
        on_handover: Callable[[], Awaitable[None]] | None = None,
    ) -> SendReceipt:
        """Send; ``on_handover`` runs (and is awaited) after the message text, just before the final dot."""
        context = ssl.create_default_context(cafile=self.ca_file) if server.security != "none" else None
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            use_tls=server.security == "tls",
            start_tls=server.security == "starttls",
            tls_context=context,
            timeout=self.timeout,
        )
        in_data = False
        try:
            await self._before_data(smtp, server, sender, recipients)
            in_data = True
            await self._text(smtp, server, raw)
            if on_handover is not None:
                await on_handover()
            receipt = await self._final_dot(smtp, server)
            in_data = False
        finally:
            await _leave(smtp, politely=not in_data)
        return receipt

    async def _text(self, smtp: aiosmtplib.SMTP, server: ServerLogin, raw: bytes) -> None:
        """DATA, and the message text without the final dot: nothing can be delivered yet."""
        try:
            response = await smtp.execute_command(b"DATA")
            if response.code != 354:
                raise _by_code(response.code, response.message)
            _protocol(smtp).write(_dot_stuffed(raw))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as failed:
            raise _cut_short(server, failed) from failed

    async def _final_dot(self, smtp: aiosmtplib.SMTP, server: ServerLogin) -> SendReceipt:
        try:
            protocol = _protocol(smtp)
            protocol.write(b".\r\n")
        except (aiosmtplib.SMTPException, OSError) as failed:  # the dot never left: nothing was delivered
            raise _cut_short(server, failed) from failed
        try:
            response = await protocol.read_response(timeout=self.timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as lost:
            raise SendOutcomeUnknown(
                f"The connection to {server.host} ended while the message was being handed over ({lost}). "
                "It may have been delivered."
            ) from lost
        if response.code != 250:
            raise _by_code(response.code, response.message)
        return SendReceipt(f"{response.code} {response.message}".strip())

    async def _before_data(self, smtp, server: ServerLogin, sender: str, recipients: Sequence[str]) -> None:
        try:
            await smtp.connect()
            if server.mechanism == "xoauth2":
                await smtp.auth_xoauth2(server.login, server.password)
            elif server.password:
                await smtp.login(server.login, server.password)
            await smtp.mail(sender)
            for recipient in recipients:
                await smtp.rcpt(recipient)
        except aiosmtplib.SMTPAuthenticationError as refused:
            raise SendRejected(f"The server refused the user name or password: {refused.message}") from refused
        except aiosmtplib.SMTPResponseException as refused:
            raise _by_code(refused.code, refused.message) from refused
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as failed:
            raise SendRetry(f"Could not talk to the SMTP server {server.host}:{server.port}: {failed}") from failed


def _cut_short(server: ServerLogin, failed: Exception) -> SendRetry:
    return SendRetry(f"The connection to {server.host} ended before the message was complete: {failed}")


def _protocol(smtp: aiosmtplib.SMTP):
    if smtp.protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    return smtp.protocol


def _dot_stuffed(raw: bytes) -> bytes:
    """The text as DATA carries it (RFC 5321, 4.5.2): CRLF line ends, a leading dot doubled, a final CRLF."""
    text = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", text)


async def _leave(smtp: aiosmtplib.SMTP, *, politely: bool) -> None:
    """QUIT where the dialogue allows it; else, or when that fails, just hang up."""
    try:
        if politely and smtp.is_connected:
            await smtp.quit()
            return
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    smtp.close()


def _by_code(code: int, text: str) -> Exception:
    words = f"{code} {text}".strip()
    return SendRetry(words) if 400 <= code < 500 else SendRejected(words)
