"""Test mailboxes as the product sees them: connected accounts, synced, and mail to put in them."""

from __future__ import annotations

import datetime as dt
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, sync
from salesinbox.services.accounts import AccountInput


def account_input(box, **overrides: Any) -> AccountInput:
    """A rig mailbox (tests.rig.plugin.Mailbox) as a plain-text IMAP/SMTP account importing everything."""
    values: dict[str, Any] = {
        "address": box.address, "login": box.login, "password": box.password,
        "imap_host": box.imap_host, "imap_port": box.imap_port, "imap_security": Security.NONE,
        "smtp_host": box.smtp_host, "smtp_port": box.smtp_port, "smtp_security": Security.NONE,
        "sync_start": SyncStart.EVERYTHING,
    }
    return AccountInput(**{**values, **overrides})


async def connect_mailbox(deps, actor, box, *, synced: bool = True, **overrides: Any) -> uuid.UUID:
    """Connect ``box`` for ``actor`` (without a login test) and, unless told otherwise, run one sync pass."""
    view = await accounts.connect_account(deps, actor, account_input(box, **overrides), verify=False)
    if synced:
        await sync.sync_account_once(deps, view.id)
    return view.id


def mail_with_attachments(to: str, files: dict[str, tuple[str, bytes]], subject: str) -> bytes:
    """A message from a customer carrying ``files`` (name -> (content type, bytes))."""
    message = EmailMessage()
    message["From"] = "buyer@customer.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"{len(files)} files attached.")
    for name, (content_type, content) in files.items():
        maintype, subtype = content_type.split("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return bytes(message)


def letter(to: str, subject: str, text: str | None = None, *, dated: bool = False) -> bytes:
    """A small plain-text mail from a customer, with a Message-ID of its own (and a Date: now, if ``dated``)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "buyer@customer.example", to, subject
    if dated:
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain="customer.example")
    message.set_content(f"{subject}: body" if text is None else text)
    return bytes(message)
