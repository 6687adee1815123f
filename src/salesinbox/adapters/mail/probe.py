"""Test connection: log in once to an account's IMAP or SMTP server, say what failed.

The walk, per protocol:

- IMAP (RFC 9051 / 3501): connect, with TLS from the first byte for "tls"
  (RFC 8314); read the greeting; for "starttls" issue STARTTLS, upgrade, and
  re-read the capabilities (RFC 9051 6.2.1: what was learnt before TLS is
  discarded); LOGIN; LOGOUT.
- SMTP (RFC 5321, 6409, 4954): connect (TLS for "tls"); read the 220
  greeting; EHLO; for "starttls" STARTTLS and EHLO again (RFC 3207 4.2);
  AUTH; QUIT.

What each phase's failure means:

- Connecting: refused or unknown host is HOST_UNREACHABLE; a certificate that
  does not verify is UNTRUSTED_CERTIFICATE; any other TLS error is
  TLS_MISMATCH (a TLS client on a plain port reads the server's plain-text
  greeting as a broken TLS record).
- Greeting: servers greet at once, so the wait is short: at most 5 s and a
  third of the overall timeout. A plain client on a TLS port hears nothing,
  because a TLS server waits for the client's hello. So silence (or a hang-up)
  is checked with a TLS handshake on the same port, in a second such slice:
  if it succeeds the failure is TLS_MISMATCH, otherwise TIMEOUT. A first line
  that is not a greeting (e.g. "* BYE Too many connections") is
  PROTOCOL_ERROR with that line as the detail, without waiting.
- STARTTLS not offered or refused: TLS_MISMATCH.
- Login refused: ``classify_login_error`` on the server's reply.
- Anything past the overall ``timeout``: TIMEOUT.

Invariants:

- Every await runs under ``asyncio.timeout``: aioimaplib has open issues where
  a TLS mismatch or an unexpected BYE waits forever, and the timeout is the
  guard.
- The password never reaches a detail, a log record or an exception: server
  text is scrubbed (a broken server may echo the command it refused), and
  aioimaplib's debug line for LOGIN is dropped while logging in (its own
  masking misses passwords that need quoting).
- The connection is closed on every path, and the probe waits for asyncio to
  release the socket, so no ResourceWarning escapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aioimaplib
import aiosmtplib

from salesinbox.domain.connection import FailureKind, ProbeFailure, Protocol, classify_login_error
from salesinbox.domain.providers import Security

GREETING_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 1.0
_DETAIL_LIMIT = 500
_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


@dataclass(frozen=True)
class MailServerEndpoint:
    """Where a mail server listens and how the connection is secured."""

    host: str
    port: int
    security: Security


class _Failed(Exception):  # noqa: N818 - a control-flow signal, not an error type
    """Raised inside a probe to stop at the first failure."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


# -- IMAP ---------------------------------------------------------------------------


async def probe_imap(
    endpoint: MailServerEndpoint,
    login: str,
    password: str,
    *,
    timeout: float = 15.0,  # noqa: ASYNC109 - the probe's overall deadline, enforced inside
    ca_path: str | os.PathLike[str] | None = None,
    preset_key: str = "other",
    mechanism: str = "password",
) -> ProbeFailure | None:
    """Log in to an IMAP server and log out; None when that worked."""
    context = _tls_context(ca_path)
    client = _imap_client(endpoint, timeout, context)
    gate, watch = _GreetingGate(client.protocol), _LostWatch(client.protocol)
    try:
        async with asyncio.timeout(timeout):
            await _imap_greeting(client, endpoint, gate, watch, _greeting_budget(timeout))
            if endpoint.security == "starttls":
                await _imap_starttls(client, endpoint, context)
            await _imap_login(client, login, password, preset_key, mechanism)
    except Exception as exc:  # every failure becomes a ProbeFailure
        return _failure("imap", exc, password, timeout)
    finally:
        await _imap_close(client, watch)
    return None


def _imap_client(endpoint: MailServerEndpoint, timeout: float, context: ssl.SSLContext) -> aioimaplib.IMAP4:
    # The constructor starts connecting at once, in a task of its own.
    if endpoint.security == "tls":
        return aioimaplib.IMAP4_SSL(endpoint.host, endpoint.port, timeout=timeout, ssl_context=context)
    return aioimaplib.IMAP4(endpoint.host, endpoint.port, timeout=timeout)


async def _imap_greeting(
    client: aioimaplib.IMAP4, endpoint: MailServerEndpoint, gate: _GreetingGate, watch: _LostWatch, budget: float
) -> None:
    hello = asyncio.ensure_future(client.wait_hello_from_server())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(budget):
            await asyncio.wait({hello, gate.refused, watch.lost}, return_when=asyncio.FIRST_COMPLETED)
    if hello.done():
        hello.result()  # raises what connecting raised: refused, TLS errors ...
        return
    await _finish_task(hello)
    await _explain_no_greeting(endpoint, gate.received, budget, hung_up=watch.lost.done())


async def _imap_starttls(client: aioimaplib.IMAP4, endpoint: MailServerEndpoint, context: ssl.SSLContext) -> None:
    protocol = client.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise _Failed(FailureKind.TLS_MISMATCH, "the server does not offer STARTTLS on this port")
    # aioimaplib 2.0 has no STARTTLS of its own: send the command, then
    # upgrade its transport in place.
    response = await protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop))
    if response.result != "OK":
        raise _Failed(FailureKind.TLS_MISMATCH, _imap_text(response))
    # Anything buffered before the handshake could be injected plain text
    # (the STARTTLS injection attack): drop it.
    protocol.incomplete_line = b""
    protocol.transport = await asyncio.get_running_loop().start_tls(
        protocol.transport, protocol, context, server_hostname=endpoint.host
    )
    await protocol.capability()


async def _imap_login(
    client: aioimaplib.IMAP4, login: str, password: str, preset_key: str, mechanism: str = "password"
) -> None:
    if mechanism == "xoauth2":  # password holds an OAuth access token (AUTHENTICATE XOAUTH2)
        response = await client.xoauth2(login, password)
        if response.result != "OK":
            text = _imap_text(response)
            raise _Failed(classify_login_error("imap", text, preset_key), text)
        return
    if "LOGINDISABLED" in client.protocol.capabilities:
        # RFC 9051 6.2.3: the server refuses LOGIN on this connection, and
        # sending the password anyway would expose it in plain text.
        raise _Failed(FailureKind.TLS_MISMATCH, "the server disables LOGIN until the connection is encrypted")
    with _aioimaplib_login_line_hidden():
        # LOGIN takes astrings (RFC 9051 6.2.3): aioimaplib quotes the password
        # only, so quote the user name too, or one with a space breaks.
        response = await client.login(aioimaplib.quoted(login), password)
    if response.result != "OK":
        text = _imap_text(response)
        raise _Failed(classify_login_error("imap", text, preset_key), text)


async def _imap_close(client: aioimaplib.IMAP4, watch: _LostWatch) -> None:
    with contextlib.suppress(Exception):
        if client.protocol.state in (aioimaplib.AUTH, aioimaplib.SELECTED):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await client.logout()
    # aioimaplib's connect task, which nobody awaits once the greeting fails.
    await _finish_task(client._client_task)
    await watch.close(client.protocol.transport)


def _imap_text(response: Any) -> str:
    """The server's words from an aioimaplib Response, e.g. "NO [AUTHENTICATIONFAILED] ..."."""
    lines = [line.decode("utf-8", "replace") for line in response.lines if isinstance(line, bytes)]
    return " ".join([response.result, *lines]).strip()


class _DropLoginLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return " LOGIN " not in record.getMessage()


@contextlib.contextmanager
def _aioimaplib_login_line_hidden() -> Iterator[None]:
    logger = logging.getLogger(aioimaplib.aioimaplib.__name__)
    drop = _DropLoginLines()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


# -- SMTP ---------------------------------------------------------------------------


async def probe_smtp(
    endpoint: MailServerEndpoint,
    login: str,
    password: str,
    *,
    timeout: float = 15.0,  # noqa: ASYNC109 - the probe's overall deadline, enforced inside
    ca_path: str | os.PathLike[str] | None = None,
    preset_key: str = "other",
    mechanism: str = "password",
) -> ProbeFailure | None:
    """Log in to an SMTP submission server and quit; None when that worked."""
    smtp = aiosmtplib.SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        use_tls=endpoint.security == "tls",
        start_tls=False,  # done by hand below, so a missing STARTTLS is reported, not skipped
        tls_context=_tls_context(ca_path),
        local_hostname=socket.gethostname(),  # getfqdn() can stall on reverse DNS
        timeout=timeout,
    )
    watch = _LostWatch(None)
    try:
        async with asyncio.timeout(timeout):
            await _smtp_greeting(smtp, endpoint, watch, _greeting_budget(timeout))
            await smtp.ehlo()
            if endpoint.security == "starttls":
                await _smtp_starttls(smtp)
            await _smtp_login(smtp, login, password, preset_key, mechanism)
    except Exception as exc:  # every failure becomes a ProbeFailure
        return _failure("smtp", exc, password, timeout)
    finally:
        await _smtp_close(smtp, watch)
    return None


async def _smtp_greeting(smtp: aiosmtplib.SMTP, endpoint: MailServerEndpoint, watch: _LostWatch, budget: float) -> None:
    try:
        async with asyncio.timeout(budget):
            await smtp.connect(timeout=budget)
    except (TimeoutError, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected) as exc:
        causes = list(_causes(exc))
        if any(isinstance(cause, OSError) and cause.errno is not None for cause in causes):
            raise  # a real socket or TLS error (refused, unreachable ...): classified as such
        hung_up = any(isinstance(cause, aiosmtplib.SMTPServerDisconnected) for cause in causes)
        await _explain_no_greeting(endpoint, b"", budget, hung_up=hung_up)
    watch.watch(smtp.protocol)


async def _smtp_starttls(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.supports_extension("starttls"):
        raise _Failed(FailureKind.TLS_MISMATCH, "the server does not offer STARTTLS on this port")
    try:
        await smtp.starttls()
    except aiosmtplib.SMTPResponseException as refused:
        raise _Failed(FailureKind.TLS_MISMATCH, f"{refused.code} {refused.message}") from None
    await smtp.ehlo()  # RFC 3207 4.2: the extensions offered before TLS no longer count


async def _smtp_login(
    smtp: aiosmtplib.SMTP, login: str, password: str, preset_key: str, mechanism: str = "password"
) -> None:
    if not smtp.supports_extension("auth"):
        # Servers often offer AUTH only once the connection is encrypted.
        kind = FailureKind.TLS_MISMATCH if smtp.supports_extension("starttls") else FailureKind.PROTOCOL_ERROR
        raise _Failed(kind, "the server does not offer AUTH on this connection")
    try:
        if mechanism == "xoauth2":
            await smtp.auth_xoauth2(login, password)
        else:
            await smtp.login(login, password)
    except aiosmtplib.SMTPResponseException as refused:
        text = f"{refused.code} {refused.message}"
        raise _Failed(classify_login_error("smtp", text, preset_key), text) from None


async def _smtp_close(smtp: aiosmtplib.SMTP, watch: _LostWatch) -> None:
    transport = smtp.transport
    with contextlib.suppress(Exception):
        if smtp.is_connected:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await smtp.quit()
    await watch.close(transport)
    smtp.close()


# -- shared -------------------------------------------------------------------------


def _tls_context(ca_path: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """Verify against ``ca_path`` alone when given, else the system trust store."""
    return ssl.create_default_context(cafile=ca_path)


def _greeting_budget(timeout: float) -> float:
    return min(GREETING_TIMEOUT, timeout / 3)


async def _explain_no_greeting(endpoint: MailServerEndpoint, received: bytes, budget: float, *, hung_up: bool) -> None:
    """Raise the failure for a greeting that did not come; see the module docstring."""
    if received:
        raise _Failed(FailureKind.PROTOCOL_ERROR, received.decode("utf-8", "replace").strip())
    if endpoint.security != "tls" and await _speaks_tls(endpoint, budget):
        raise _Failed(FailureKind.TLS_MISMATCH, "the port expects TLS from the first byte; the client spoke plain text")
    if hung_up:
        raise _Failed(FailureKind.PROTOCOL_ERROR, "the server closed the connection without a greeting")
    raise _Failed(FailureKind.TIMEOUT, f"no greeting within {budget:g} s")


async def _speaks_tls(endpoint: MailServerEndpoint, within: float) -> bool:
    """Whether a TLS handshake succeeds on the endpoint's port.

    The certificate is deliberately not checked and nothing is sent: the only
    question is whether the port speaks TLS.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=context)
    except (OSError, TimeoutError):
        return False
    writer.transport.abort()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


def _failure(protocol: Protocol, exc: Exception, password: str, timeout: float) -> ProbeFailure:
    """Turn what stopped a probe into a ProbeFailure, password scrubbed.

    CancelledError never gets here: a cancelled probe has no result.
    """
    if isinstance(exc, _Failed):
        kind, detail = exc.kind, exc.detail
    else:
        kind, detail = _exception_kind(exc), _describe(exc) or f"no answer within {timeout:g} s"
    return ProbeFailure(kind, protocol, _scrub(detail, password)[:_DETAIL_LIMIT])


def _scrub(text: str, password: str) -> str:
    """Mask the password, as sent and as IMAP quoting escapes it."""
    for form in {password, aioimaplib.quoted(password)[1:-1]} - {""}:
        text = text.replace(form, "********")
    return text


def _exception_kind(exc: BaseException) -> FailureKind:
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FailureKind.UNTRUSTED_CERTIFICATE
        if isinstance(cause, ssl.SSLError):
            return FailureKind.TLS_MISMATCH
        if isinstance(cause, socket.gaierror | ConnectionRefusedError):
            return FailureKind.HOST_UNREACHABLE
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS:
            return FailureKind.HOST_UNREACHABLE
    if any(isinstance(cause, TimeoutError) for cause in causes):
        return FailureKind.TIMEOUT
    return FailureKind.PROTOCOL_ERROR


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: aiosmtplib wraps socket errors in its own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(exc: BaseException) -> str:
    texts: list[str] = []
    for cause in _causes(exc):
        text = str(cause)
        # aiosmtplib repeats the wrapped error's text in its own: keep it once.
        if text and not any(text in kept for kept in texts):
            texts.append(text)
    return "; ".join(texts)


async def _finish_task(task: asyncio.Future[Any]) -> None:
    """Cancel a task if still running and collect its outcome, so nothing is logged as lost."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


class _GreetingGate:
    """Holds an IMAP server's first line back from aioimaplib until it is a greeting.

    A greeting is "* OK" or "* PREAUTH" (RFC 9051 7.1.1, 7.1.4). Anything else,
    "* BYE" included, sets ``refused`` and is kept in ``received``: aioimaplib
    would otherwise fail in a background task and keep the caller waiting.
    """

    _MAX_LINE = 4096

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.received = b""
        self.refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._protocol = protocol
        protocol.data_received = self._data_received  # type: ignore[method-assign]

    def _data_received(self, data: bytes) -> None:
        self.received += data
        line, crlf, _ = self.received.partition(b"\r\n")
        if line.startswith((b"* OK", b"* PREAUTH")):
            del self._protocol.data_received  # the class's own method again
            self._protocol.data_received(self.received)
        elif crlf or len(self.received) > self._MAX_LINE:
            self.received = line[:_DETAIL_LIMIT]
            if not self.refused.done():
                self.refused.set_result(None)


class _LostWatch:
    """Knows when asyncio has released a connection's socket.

    asyncio closes a socket a loop turn or more after ``transport.close()``;
    waiting for ``connection_lost`` means the probe returns with its socket
    released instead of leaving that to a loop that may be closing.
    """

    def __init__(self, protocol: asyncio.BaseProtocol | None) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.watch(protocol)

    def watch(self, protocol: asyncio.BaseProtocol | None) -> None:
        if protocol is None:
            return
        original = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            original(exc)
            if not self.lost.done():
                self.lost.set_result(None)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]

    async def close(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is None or self.lost.done():
            return
        transport.close()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.shield(self.lost)
        except TimeoutError:
            transport.abort()
