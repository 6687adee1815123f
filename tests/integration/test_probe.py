"""Test connection against real servers: the rig's Dovecot and SMTP submission."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from salesinbox.adapters.mail.probe import MailServerEndpoint, probe_imap, probe_smtp
from salesinbox.domain.connection import FailureKind, explain
from salesinbox.domain.providers import get_preset
from tests.rig.dovecot import Dovecot
from tests.rig.plugin import Mailbox
from tests.rig.smtp import SubmissionServer, free_ports

# Short enough that the TLS-mismatch cases, which wait out a silent greeting,
# stay quick; far above what the local rig needs to answer.
SHORT = 2.0


@pytest.fixture
def tls_user(dovecot_tls: Dovecot, mailbox: Mailbox) -> Mailbox:
    """The ``mailbox`` user, also created on the TLS Dovecot."""
    dovecot_tls.add_user(mailbox.login, mailbox.password)
    return mailbox


def _imap(mailbox: Mailbox) -> MailServerEndpoint:
    return MailServerEndpoint(mailbox.imap_host, mailbox.imap_port, "none")


def _smtp(mailbox: Mailbox) -> MailServerEndpoint:
    return MailServerEndpoint(mailbox.smtp_host, mailbox.smtp_port, "none")


# -- the right password -------------------------------------------------------------


@pytest.mark.asyncio
async def test_imap_with_the_right_password_passes(mailbox: Mailbox) -> None:
    assert await probe_imap(_imap(mailbox), mailbox.login, mailbox.password) is None


@pytest.mark.asyncio
async def test_smtp_with_the_right_password_passes(mailbox: Mailbox) -> None:
    assert await probe_smtp(_smtp(mailbox), mailbox.login, mailbox.password) is None


@pytest.mark.asyncio
async def test_imaps_trusted_through_ca_path_passes(dovecot_tls: Dovecot, tls_user: Mailbox) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.imaps_port, "tls")

    assert await probe_imap(endpoint, tls_user.login, tls_user.password, ca_path=str(dovecot_tls.ca_path)) is None


@pytest.mark.asyncio
async def test_imap_starttls_trusted_through_ca_path_passes(dovecot_tls: Dovecot, tls_user: Mailbox) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.imap_port, "starttls")

    assert await probe_imap(endpoint, tls_user.login, tls_user.password, ca_path=str(dovecot_tls.ca_path)) is None


@pytest.mark.asyncio
async def test_smtps_trusted_through_ca_path_passes(dovecot_tls: Dovecot, tls_user: Mailbox) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.submissions_port, "tls")

    assert await probe_smtp(endpoint, tls_user.login, tls_user.password, ca_path=str(dovecot_tls.ca_path)) is None


@pytest.mark.asyncio
async def test_smtp_starttls_trusted_through_ca_path_passes(dovecot_tls: Dovecot, tls_user: Mailbox) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.submission_port, "starttls")

    assert await probe_smtp(endpoint, tls_user.login, tls_user.password, ca_path=str(dovecot_tls.ca_path)) is None


# -- the wrong password ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_imap_with_a_wrong_password_is_wrong_password_without_leaking_it(mailbox: Mailbox) -> None:
    failure = await probe_imap(_imap(mailbox), mailbox.login, "Wrong-Secret-1")

    assert failure is not None and (failure.kind, failure.protocol) == (FailureKind.WRONG_PASSWORD, "imap")
    assert "AUTHENTICATIONFAILED" in failure.detail and "Wrong-Secret-1" not in failure.detail
    assert "password" in explain(failure, get_preset("other"))


@pytest.mark.asyncio
async def test_smtp_with_a_wrong_password_is_wrong_password_without_leaking_it(mailbox: Mailbox) -> None:
    failure = await probe_smtp(_smtp(mailbox), mailbox.login, "Wrong-Secret-2")

    assert failure is not None and (failure.kind, failure.protocol) == (FailureKind.WRONG_PASSWORD, "smtp")
    assert failure.detail.startswith("535") and "Wrong-Secret-2" not in failure.detail
    assert "password" in explain(failure, get_preset("other"))


@pytest.mark.asyncio
async def test_a_plain_authentication_failure_at_icloud_means_an_app_password(mailbox: Mailbox) -> None:
    failure = await probe_imap(_imap(mailbox), mailbox.login, "my-apple-id-password", preset_key="icloud")

    assert failure is not None and failure.kind is FailureKind.APP_PASSWORD_REQUIRED


# -- where the server is not ----------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("probe", [probe_imap, probe_smtp])
async def test_a_closed_port_is_host_unreachable(probe: Callable[..., Awaitable[object]]) -> None:
    [closed_port] = free_ports(1)

    failure = await probe(MailServerEndpoint("127.0.0.1", closed_port, "tls"), "a@example.test", "pw")

    assert failure is not None and failure.kind is FailureKind.HOST_UNREACHABLE


@pytest.mark.asyncio
async def test_an_unknown_host_name_is_host_unreachable() -> None:
    # .invalid never resolves (RFC 2606), with or without a network.
    failure = await probe_imap(MailServerEndpoint("imap.example.invalid", 993, "tls"), "a@example.test", "pw")

    assert failure is not None and failure.kind is FailureKind.HOST_UNREACHABLE


# -- encryption mismatches ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_tls_client_on_the_plain_imap_port_is_a_tls_mismatch(dovecot_tls: Dovecot, tls_user: Mailbox) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.imap_port, "tls")

    failure = await probe_imap(endpoint, tls_user.login, tls_user.password, ca_path=str(dovecot_tls.ca_path))

    assert failure is not None and failure.kind is FailureKind.TLS_MISMATCH


@pytest.mark.asyncio
@pytest.mark.parametrize("security", ["none", "starttls"])
async def test_a_plain_client_on_the_imaps_port_is_a_tls_mismatch(
    dovecot_tls: Dovecot, tls_user: Mailbox, security: str
) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.imaps_port, security)

    failure = await probe_imap(endpoint, tls_user.login, tls_user.password, timeout=SHORT)

    assert failure is not None and failure.kind is FailureKind.TLS_MISMATCH


@pytest.mark.asyncio
async def test_a_tls_client_on_the_plain_submission_port_is_a_tls_mismatch(
    dovecot_tls: Dovecot, tls_user: Mailbox
) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.submission_port, "tls")

    failure = await probe_smtp(endpoint, tls_user.login, tls_user.password, ca_path=str(dovecot_tls.ca_path))

    assert failure is not None and failure.kind is FailureKind.TLS_MISMATCH


@pytest.mark.asyncio
async def test_a_plain_client_on_the_smtps_port_is_a_tls_mismatch(dovecot_tls: Dovecot, tls_user: Mailbox) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, dovecot_tls.submissions_port, "none")

    failure = await probe_smtp(endpoint, tls_user.login, tls_user.password, timeout=SHORT)

    assert failure is not None and failure.kind is FailureKind.TLS_MISMATCH


@pytest.mark.asyncio
@pytest.mark.parametrize("probe", [probe_imap, probe_smtp])
async def test_starttls_on_a_server_without_it_is_a_tls_mismatch(
    probe: Callable[..., Awaitable[object]], dovecot: Dovecot, mailbox: Mailbox
) -> None:
    port = dovecot.imap_port if probe is probe_imap else dovecot.submission_port

    failure = await probe(MailServerEndpoint(dovecot.host, port, "starttls"), mailbox.login, mailbox.password)

    assert failure is not None and failure.kind is FailureKind.TLS_MISMATCH


# -- certificates -----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("probe", "port_name", "security"),
    [
        (probe_imap, "imaps_port", "tls"),
        (probe_imap, "imap_port", "starttls"),
        (probe_smtp, "submissions_port", "tls"),
        (probe_smtp, "submission_port", "starttls"),
    ],
)
async def test_a_self_signed_certificate_without_its_ca_is_untrusted(
    dovecot_tls: Dovecot, tls_user: Mailbox, probe: Callable[..., Awaitable[object]], port_name: str, security: str
) -> None:
    endpoint = MailServerEndpoint(dovecot_tls.host, getattr(dovecot_tls, port_name), security)

    failure = await probe(endpoint, tls_user.login, tls_user.password)

    assert failure is not None and failure.kind is FailureKind.UNTRUSTED_CERTIFICATE


# -- servers that misbehave ----------------------------------------------------------------


@asynccontextmanager
async def _fake_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A one-off TCP server on 127.0.0.1; yields its port."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_a_bye_greeting_is_a_protocol_error_in_the_servers_words() -> None:
    async def bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* BYE Too many connections from your IP\r\n")
        await reader.read()  # keep the connection open until the client leaves

    async with _fake_server(bye) as port:
        failure = await probe_imap(MailServerEndpoint("127.0.0.1", port, "none"), "a@example.test", "pw", timeout=SHORT)

    assert failure is not None and failure.kind is FailureKind.PROTOCOL_ERROR
    assert "Too many connections" in failure.detail


@pytest.mark.asyncio
async def test_a_server_that_echoes_the_password_has_it_scrubbed_from_the_detail() -> None:
    async def echo_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        while line := await reader.readline():
            tag, _, command = line.decode().strip().partition(" ")
            if command.upper().startswith("CAPABILITY"):
                writer.write(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n".encode())
            else:
                writer.write(f"{tag} NO [AUTHENTICATIONFAILED] refused: {command}\r\n".encode())

    async with _fake_server(echo_login) as port:
        failure = await probe_imap(MailServerEndpoint("127.0.0.1", port, "none"), "a@example.test", 'Echoed"Secret')

    assert failure is not None and failure.kind is FailureKind.WRONG_PASSWORD
    # The server echoed the quoted form, Echoed\"Secret: masked too.
    assert "refused: LOGIN" in failure.detail and "Secret" not in failure.detail


@pytest.mark.asyncio
async def test_a_server_that_disables_login_before_tls_never_receives_the_password() -> None:
    commands: list[str] = []

    async def login_disabled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        while line := await reader.readline():
            commands.append(line.decode())
            tag = line.decode().split(" ", 1)[0]
            writer.write(f"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n{tag} OK done\r\n".encode())

    async with _fake_server(login_disabled) as port:
        failure = await probe_imap(MailServerEndpoint("127.0.0.1", port, "none"), "a@example.test", "Never-Sent")

    assert failure is not None and failure.kind is FailureKind.TLS_MISMATCH
    assert not any("Never-Sent" in command for command in commands)


@pytest.mark.asyncio
async def test_a_server_that_accepts_but_never_speaks_is_a_timeout() -> None:
    # Listening without accepting: the kernel completes the handshake, then
    # nothing is ever said, in plain text or TLS.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = MailServerEndpoint("127.0.0.1", silent.getsockname()[1], "none")

        failure = await probe_imap(endpoint, "a@example.test", "pw", timeout=1.0)

    assert failure is not None and failure.kind is FailureKind.TIMEOUT


@pytest.mark.asyncio
async def test_smtp_submission_records_nothing_for_a_probe(smtp_server: SubmissionServer, mailbox: Mailbox) -> None:
    await probe_smtp(_smtp(mailbox), mailbox.login, mailbox.password)

    assert smtp_server.envelopes_to(mailbox.address) == []
