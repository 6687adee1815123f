"""Handing one message to an SMTP server (aiosmtplib), with the outcome classified.

The outbox needs to know exactly how far a send got, because that decides
whether it may try again:

- ``SendRetry``: nothing was accepted (connect, login, MAIL, RCPT refused with
  4xx, or the connection dropped before DATA): try again later.
- ``SendRejected``: the server refused for good (5xx): the user sees its words.
- ``SendOutcomeUnknown``: the connection ended after the message text was
  handed over and before the server answered: it may have been delivered.
  Never retried blindly.

Every step runs under a timeout.
"""

from __future__ import annotations

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
        """Send; ``on_handover`` runs (and is awaited) just before the message text goes out."""
        context = ssl.create_default_context(cafile=self.ca_file) if server.security != "none" else None
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            use_tls=server.security == "tls",
            start_tls=server.security == "starttls",
            tls_context=context,
            timeout=self.timeout,
        )
        try:
            await self._before_data(smtp, server, sender, recipients)
            if on_handover is not None:
                await on_handover()
            try:
                code, text = await smtp.data(raw)
            except aiosmtplib.SMTPResponseException as refused:
                raise _by_code(refused.code, refused.message) from refused
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as lost:
                raise SendOutcomeUnknown(
                    f"The connection to {server.host} ended while the message was being handed over ({lost}). "
                    "It may have been delivered."
                ) from lost
            return SendReceipt(f"{code} {text}".strip())
        finally:
            try:
                if smtp.is_connected:
                    await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()

    async def _before_data(self, smtp, server: ServerLogin, sender: str, recipients: Sequence[str]) -> None:
        try:
            await smtp.connect()
            if server.password:
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


def _by_code(code: int, text: str) -> Exception:
    words = f"{code} {text}".strip()
    return SendRetry(words) if 400 <= code < 500 else SendRejected(words)
