"""The mail test rig works: Dovecot, SMTP submission, TLS and clean shutdown."""

from __future__ import annotations

import email
import os
import smtplib
import ssl
import uuid
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient

from tests.rig.dovecot import Dovecot
from tests.rig.plugin import Mailbox, wait_until
from tests.rig.smtp import SubmissionServer

SPECIAL_USE = {
    b"\\Drafts": "Drafts",
    b"\\Sent": "Sent",
    b"\\Trash": "Trash",
    b"\\Junk": "Junk",
    b"\\Archive": "Archive",
}


def _imap(mailbox: Mailbox) -> IMAPClient:
    client = IMAPClient(mailbox.imap_host, mailbox.imap_port, ssl=False, timeout=10)
    client.login(mailbox.login, mailbox.password)
    return client


def _inbox_subjects(mailbox: Mailbox) -> list[str]:
    with _imap(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    headers = (email.message_from_bytes(data[b"BODY[HEADER.FIELDS (SUBJECT)]"]) for data in fetched.values())
    return [header["Subject"] for header in headers]


def _message(sender: str, to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Hello from the rig.")
    return message


def test_a_fresh_mailbox_logs_in_over_imap_and_lists_the_special_use_folders(mailbox: Mailbox) -> None:
    with _imap(mailbox) as client:
        folders = client.list_folders()
        subscribed = {name for _, _, name in client.list_sub_folders()}

    by_flag = {flag: name for flags, _, name in folders for flag in flags if flag in SPECIAL_USE}
    assert by_flag == SPECIAL_USE
    assert set(SPECIAL_USE.values()) <= subscribed


def test_users_added_back_to_back_can_log_in_at_once(mailbox_factory: Callable[[], Mailbox]) -> None:
    # Dovecot stats a shared passwd-file once a second; the rig's one file per
    # user must make every new user visible immediately, even several a second.
    for mailbox in [mailbox_factory() for _ in range(3)]:
        with _imap(mailbox) as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_a_message_submitted_with_smtp_auth_lands_in_the_recipients_inbox(
    mailbox_factory: Callable[[], Mailbox], smtp_server: SubmissionServer
) -> None:
    sender, recipient, blind = mailbox_factory(), mailbox_factory(), mailbox_factory()

    with smtplib.SMTP(sender.smtp_host, sender.smtp_port, timeout=10) as client:
        client.login(sender.login, sender.password)
        client.send_message(
            _message(sender.address, recipient.address, "Rig check"), to_addrs=[recipient.address, blind.address]
        )

    assert wait_until(lambda: _inbox_subjects(recipient), what="the message in the INBOX") == ["Rig check"]
    assert wait_until(lambda: _inbox_subjects(blind), what="the Bcc copy") == ["Rig check"]
    [envelope] = smtp_server.envelopes_to(blind.address)
    assert (envelope.login, envelope.mail_from) == (sender.login, sender.address)
    assert envelope.rcpt_tos == (recipient.address, blind.address)


def test_a_bad_smtp_password_is_refused_with_535(mailbox: Mailbox) -> None:
    with (
        smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=10) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login(mailbox.login, "not-the-password")

    assert refused.value.smtp_code == 535


def test_mail_without_smtp_auth_is_refused(mailbox: Mailbox) -> None:
    with (
        smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=10) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.sendmail(mailbox.address, [mailbox.address], b"Subject: x\r\n\r\nx\r\n")

    assert refused.value.smtp_code == 530


def test_a_short_smtp_login_that_is_not_an_address_works(
    dovecot: Dovecot, smtp_server: SubmissionServer, mailbox: Mailbox
) -> None:
    smtp_server.add_user("shortname", "its-password")

    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.login("shortname", "its-password")
        client.send_message(_message("shortname@example.test", mailbox.address, "From a short login"))

    assert wait_until(lambda: _inbox_subjects(mailbox), what="the message") == ["From a short login"]


def test_lmtp_delivery_lands_in_the_inbox(dovecot: Dovecot, mailbox: Mailbox) -> None:
    dovecot.deliver(mailbox.address, _message("a@example.test", mailbox.address, "Delivered").as_bytes())

    assert _inbox_subjects(mailbox) == ["Delivered"]


def test_dovecot_submission_relays_into_the_inbox(dovecot: Dovecot, mailbox: Mailbox) -> None:
    with smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        client.send_message(_message(mailbox.address, mailbox.address, "Via Dovecot submission"))

    assert wait_until(lambda: _inbox_subjects(mailbox), what="the message") == ["Via Dovecot submission"]


def _tls_user(dovecot_tls: Dovecot) -> tuple[str, str]:
    address = f"tls-{uuid.uuid4().hex[:8]}@example.test"
    dovecot_tls.add_user(address, "tls-password")
    return address, "tls-password"


def test_imaps_with_the_rig_ca_is_trusted(dovecot_tls: Dovecot) -> None:
    login, password = _tls_user(dovecot_tls)
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_path))

    with IMAPClient(dovecot_tls.host, dovecot_tls.imaps_port, ssl=True, ssl_context=context, timeout=10) as client:
        assert client.login(login, password) == b"Logged in"


def test_imap_starttls_with_the_rig_ca_is_trusted(dovecot_tls: Dovecot) -> None:
    login, password = _tls_user(dovecot_tls)
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_path))

    with IMAPClient(dovecot_tls.host, dovecot_tls.imap_port, ssl=False, timeout=10) as client:
        client.starttls(context)
        assert client.login(login, password) == b"Logged in"


def test_imaps_without_the_rig_ca_fails_certificate_verification(dovecot_tls: Dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(
            dovecot_tls.host, dovecot_tls.imaps_port, ssl=True, ssl_context=ssl.create_default_context(), timeout=10
        )


def test_submission_over_implicit_tls_with_the_rig_ca_is_trusted(dovecot_tls: Dovecot) -> None:
    login, password = _tls_user(dovecot_tls)
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_path))

    with smtplib.SMTP_SSL(dovecot_tls.host, dovecot_tls.submissions_port, context=context, timeout=10) as client:
        assert client.login(login, password)[0] == 235


def test_stop_reaps_dovecot_and_removes_its_directory() -> None:
    server = Dovecot()
    server.start()
    process, directory = server._process, server.directory

    server.stop()

    assert process is not None and process.returncode is not None
    assert directory is not None and not directory.exists()
    with pytest.raises(ProcessLookupError):  # nothing left in Dovecot's process group
        os.killpg(process.pid, 0)
