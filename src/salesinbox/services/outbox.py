"""Sending mail through a trustworthy outbox: never lost, never sent twice.

1. ``enqueue`` builds the message with the email library (headers only from
   checked values), fixes its Message-ID, writes the bytes to blob storage and
   commits the row — before any network call. An ``Idempotency-Key`` already
   used for the account returns the first row instead of a second message.
2. ``deliver`` claims a due row (queued → sending, a conditional UPDATE that
   only one process wins; ``attempts`` counts the claims), hands the message
   to SMTP and records the outcome: sent; queued again with backoff after a
   temporary refusal or a connection lost before the final dot; failed (the
   server's words) after a permanent refusal; outcome_unknown when the
   connection ended after the final dot — never retried blindly. "Handed over"
   is committed just before the final dot, and only while the claim is still
   this attempt's: a sender that stalled until ``recover`` gave the message to
   another attempt hangs up without the dot, so nothing is delivered twice.
3. After "sent" is committed, exactly one copy is filed in Sent: nothing where
   the provider files it itself (Gmail, Microsoft 365), else an APPEND, after
   checking that no copy with this Message-ID is there already (a crash
   between APPEND and its commit must not file a second one).

A process that died in the middle leaves a row "sending": ``recover`` makes it
queued again if the message was not handed over, else outcome_unknown. It
does so at once when the claiming process (``sending_owner``, ``host:pid``)
no longer exists on this host, else once the row has been still for
``STALE_SENDING`` (another host, or a live but stuck process).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from salesinbox.adapters.blobs import MISSING_BLOB
from salesinbox.adapters.db.tables import EmailAccount, MailFolder, Message, MessageLocation, OutboundMessage
from salesinbox.adapters.mail.smtp_send import SendOutcomeUnknown, SendRejected, SendRetry, SmtpSender
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.oauth import OAuthTokenError, ReauthorisationNeeded
from salesinbox.domain.provider_profiles import files_sent_copy_itself
from salesinbox.domain.providers import get_preset
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.domain.threading import strip_prefixes
from salesinbox.mime.compose_html import as_email_document, clean_compose_html, compose_text
from salesinbox.mime.parse import referred_ids
from salesinbox.services.access import usable_account_ids
from salesinbox.services.accounts import imap_login, require_email_sync, smtp_login
from salesinbox.services.process_claims import holder_is_gone, this_process
from salesinbox.services.unit_of_work import Deps

log = logging.getLogger(__name__)

TERMINAL = ("sent", "failed", "outcome_unknown")
# CRLF, and folding only past RFC 5322's hard limit: the stdlib's folding at 78 can encode the comma
# between two addresses as "=?utf-8?q?=2C?=", which hides the second recipient from every reader.
WIRE = SMTP.clone(max_line_length=998)
MAX_ATTEMPTS = 8
STALE_SENDING = dt.timedelta(minutes=5)
# Characters that end a header line somewhere: CR, LF, NUL, NEL, LINE / PARAGRAPH SEPARATOR.
_LINE_BREAKS = re.compile("[\r\n\x00\x85\u2028\u2029]")
# A reply's References: the thread's first id and the latest ones, so the header stays bounded (~5 KB).
MAX_REFERENCES = 21
MAX_REFERENCE_ID = 250
_MAX_PARENT_ID = 998  # the stored Message-ID's own bound
_MESSAGE_ID = re.compile("[!-;=?-~]+")  # printable ASCII but < and >


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class OutgoingMessage:
    account_id: uuid.UUID
    to: list[str]
    subject: str = ""
    text: str = ""
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    in_reply_to: uuid.UUID | None = None  # a stored message this answers
    send_at: dt.datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(frozen=True)
class OutboundView:
    id: uuid.UUID
    message_id: str
    conversation_id: uuid.UUID | None
    status: str
    account_id: uuid.UUID
    subject: str
    last_error: str | None
    sent_at: dt.datetime | None
    send_at: dt.datetime | None


# ---- enqueue ------------------------------------------------------------------------------


async def enqueue(
    deps: Deps, actor: Actor, outgoing: OutgoingMessage, *, idempotency_key: str | None = None
) -> OutboundView:
    require_email_sync(actor)
    key = (idempotency_key or "").strip()[:200] or None
    async with deps.reading() as db:
        if outgoing.account_id not in await usable_account_ids(db, actor):
            raise NotFound(Text("No such email account."))
        account = await db.get(EmailAccount, (actor.company_id, outgoing.account_id))
        if key is not None:
            earlier = await _by_key(db, actor.company_id, outgoing.account_id, key)
            if earlier is not None:
                return await _view(db, earlier)
        parent = await _parent(db, actor, outgoing.in_reply_to) if outgoing.in_reply_to else None
    attached = sum(len(a.content) for a in outgoing.attachments)
    if attached > account.attachment_limit_bytes:  # the files as the user sees them, as providers document it
        limit = account.attachment_limit_bytes // (1024 * 1024)
        raise ValidationFailed({"attachments": Text(
            "The attachments add up to %(size)s MB, over this account's limit of %(limit)s MB.",
            size=f"{attached / (1024 * 1024):.1f}", limit=limit,
        )})
    chain = await reply_chain(deps, parent) if parent is not None else ()
    message, recipients = _build(account, outgoing, parent, chain)
    raw = message.as_bytes(policy=WIRE)
    raw_key = f"outbox/{hashlib.sha256(raw).hexdigest()}"
    await deps.blobs.put(raw_key, raw)  # before the commit: a rolled-back row leaves only an orphan blob
    now = dt.datetime.now(dt.UTC)
    scheduled = outgoing.send_at is not None and outgoing.send_at > now
    row = OutboundMessage(
        company_id=actor.company_id,
        account_id=account.id,
        user_id=actor.user_id,
        idempotency_key=key,
        message_id_header=message["Message-ID"],
        in_reply_to_id=parent.id if parent else None,
        subject=str(message["Subject"] or ""),
        sender=account.address,
        recipients=json.dumps(recipients),
        raw_key=raw_key,
        size=len(raw),
        status="scheduled" if scheduled else "queued",
        send_at=outgoing.send_at,
        next_attempt_at=outgoing.send_at if scheduled else now,
        attempts=0,
        sent_copy="pending",
        handed_over=False,
    )
    try:
        async with deps.writing() as db:
            db.add(row)
    except IntegrityError:  # the same key, committed by a concurrent request first
        async with deps.reading() as db:
            earlier = await _by_key(db, actor.company_id, outgoing.account_id, key)
            if earlier is None:
                raise
            return await _view(db, earlier)
    async with deps.reading() as db:
        return await _view(db, row)


async def _by_key(db, company_id, account_id, key) -> OutboundMessage | None:
    return await db.scalar(
        select(OutboundMessage).where(
            OutboundMessage.company_id == company_id,
            OutboundMessage.account_id == account_id,
            OutboundMessage.idempotency_key == key,
        )
    )


async def _parent(db, actor: Actor, message_id: uuid.UUID) -> Message:
    accounts = await usable_account_ids(db, actor)
    found = await db.scalar(
        select(Message).where(
            Message.company_id == actor.company_id,
            Message.id == message_id,
            select(MessageLocation.uid)
            .where(
                MessageLocation.company_id == Message.company_id,
                MessageLocation.message_id == Message.id,
                MessageLocation.account_id.in_(accounts),
            )
            .exists(),
        )
    )
    if found is None:
        raise ValidationFailed({"in_reply_to": Text("No such message to reply to.")})
    return found


def one_line(text: str) -> str:
    """A header value typed by a user or taken from a synced message: never more than one line.

    Line breaks go, and so do RFC 2047 encoded words: the stdlib decodes
    "=?utf-8?q?=0D=0ABcc:_x@evil.test?=" back into a raw CR LF when it folds a
    header (subject, display name, filename parameter) and so writes an extra
    header line. The words are decoded here, their line breaks removed, and any
    "=?" left is split with an invisible WORD JOINER so nothing decodes again.
    """
    for _ in range(3):
        if "=?" not in text:
            break
        decoded = _decode_words(text)
        if decoded == text:
            break
        text = decoded
    text = _LINE_BREAKS.sub(" ", text).replace("=?", "=\u2060?")
    # Control and unpaired surrogate characters have no business in a header; some confuse the folder.
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return " ".join(text.split())


def _decode_words(text: str) -> str:
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text


def recipient(raw: str, field_name: str) -> Address:
    """One typed address as a header value, or ValidationFailed in words (a line break is never an address)."""
    text = raw.strip()
    if not text or _LINE_BREAKS.search(raw):
        raise _not_an_address(raw, field_name)
    try:
        display, _, rest = text.rpartition("<")
        addr_spec = rest.rstrip(">").strip() if "<" in text else text
        local, at, domain = addr_spec.rpartition("@")
        if not (at and local and domain) or any(c in addr_spec for c in ' ,;<>()"\\'):
            raise ValueError(addr_spec)
        return Address(display_name=one_line(display.strip().strip('"')), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise _not_an_address(raw, field_name) from exc


def _not_an_address(raw: str, field_name: str) -> ValidationFailed:
    return ValidationFailed({field_name: Text("“%(address)s” is not an email address.", address=one_line(raw)[:80])})


def _build(
    account: EmailAccount, outgoing: OutgoingMessage, parent: Message | None, parent_chain: Sequence[str] = ()
) -> tuple[EmailMessage, list[str]]:
    """The message and its envelope's recipients; ``parent_chain``: the ids the parent referred to (``reply_chain``)."""
    to = [recipient(a, "to") for a in outgoing.to]
    cc = [recipient(a, "cc") for a in outgoing.cc]
    bcc = [recipient(a, "bcc") for a in outgoing.bcc]
    if not (to or cc or bcc):
        raise ValidationFailed({"to": Text("Add at least one recipient.")})
    message = EmailMessage()
    message["From"] = Address(display_name=one_line(account.display_name or ""), addr_spec=account.address)
    if to:
        message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = one_line(outgoing.subject)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=account.address.rpartition("@")[2] or "salesinbox.invalid")
    if parent is not None:
        set_reply_headers(message, parent.message_id_header, parent_chain)
    set_body(message, outgoing.text, outgoing.html)
    for item in outgoing.attachments:
        maintype, _, subtype = (item.content_type or "application/octet-stream").partition("/")
        message.add_attachment(
            item.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=one_line(item.filename) or "attachment",
        )
    recipients = list(dict.fromkeys(a.addr_spec for a in (*to, *cc, *bcc)))
    return message, recipients


def set_reply_headers(message: EmailMessage, parent_id: str | None, parent_chain: Sequence[str]) -> None:
    """In-Reply-To: the parent; References: the ids the parent referred to, then the parent (RFC 5322 3.6.4).

    Every id is a synced value, so each goes through ``one_line`` and is kept
    only if it is then one id: printable ASCII without spaces, angle brackets or
    "=?" (an encoded word, which the email library would decode), an earlier id
    also at most ``MAX_REFERENCE_ID`` characters; anything else is left out,
    never rewritten into another id. A long chain keeps its first id (the thread's
    start) and the latest ones, as mail clients do: at most ``MAX_REFERENCES``.
    """
    parent = _reference_id(parent_id or "", _MAX_PARENT_ID)
    if parent is None:
        return
    earlier = (_reference_id(i, MAX_REFERENCE_ID) for i in parent_chain)
    ids = [*dict.fromkeys(i for i in earlier if i is not None and i != parent), parent]
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    message["In-Reply-To"] = parent
    message["References"] = " ".join(ids)


def _reference_id(raw: str, limit: int) -> str | None:
    if "=?" in raw:  # the email library would decode it as an encoded word: not an id to repeat
        return None
    text = one_line(raw).strip("<>")
    return f"<{text}>" if len(text) <= limit and _MESSAGE_ID.fullmatch(text) else None


async def reply_chain(deps: Deps, parent: Message) -> tuple[str, ...]:
    """The ids the stored parent referred to, read from its raw MIME in blob storage (``referred_ids``).

    No column keeps them in order (the thread keys are a set). Should the raw
    message be gone, the reply names the parent alone, and still threads.
    """
    try:
        raw = await deps.blobs.get(parent.raw_key)
    except MISSING_BLOB:
        log.warning("The raw message %s is missing: the reply's References name its parent only", parent.id)
        return ()
    return await asyncio.to_thread(referred_ids, raw)


def set_body(message: EmailMessage, text: str, html: str | None) -> None:
    """Plain text, or multipart/alternative: the HTML cleaned (nh3), the text given or derived from it."""
    clean = clean_compose_html(html) if html else ""
    message.set_content(text or (compose_text(clean) if clean else ""))
    if clean:
        message.add_alternative(as_email_document(clean), subtype="html")


# ---- deliver ------------------------------------------------------------------------------


async def deliver(deps: Deps, company_id: uuid.UUID, outbound_id: uuid.UUID, sender: SmtpSender | None = None) -> str:
    """Send one due message if this process wins it; returns the row's status afterwards."""
    now = dt.datetime.now(dt.UTC)
    async with deps.writing() as db:
        won = await db.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.company_id == company_id,
                OutboundMessage.id == outbound_id,
                OutboundMessage.status.in_(("queued", "scheduled")),
                (OutboundMessage.next_attempt_at.is_(None)) | (OutboundMessage.next_attempt_at <= now),
            )
            .values(status="sending", attempts=OutboundMessage.attempts + 1, handed_over=False,
                    sending_owner=this_process())
        )
        row = await db.get(OutboundMessage, (company_id, outbound_id))
        account = await db.get(EmailAccount, (company_id, row.account_id)) if row else None
    if row is None:
        raise NotFound(Text("No such outgoing message."))
    if won.rowcount != 1:
        return row.status
    raw = await deps.blobs.get(row.raw_key)

    async def handover() -> None:
        """Committed before the final dot goes out, and only while the claim is still this attempt's."""
        async with deps.writing() as db:
            ours = await db.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.company_id == company_id,
                    OutboundMessage.id == outbound_id,
                    OutboundMessage.status == "sending",
                    OutboundMessage.attempts == row.attempts,
                )
                .values(handed_over=True)
            )
        if ours.rowcount != 1:
            raise _ClaimLost

    try:
        server = await _smtp_server(deps, account)
        await (sender or SmtpSender()).send(
            server, row.sender, json.loads(row.recipients), raw, on_handover=handover
        )
    except _ClaimLost:  # stalled so long that recover() gave the message to another attempt: leave it to that one
        async with deps.reading() as db:
            return await db.scalar(select(OutboundMessage.status).where(
                OutboundMessage.company_id == company_id, OutboundMessage.id == outbound_id))
    except SendRetry as exc:
        if row.attempts + 1 >= MAX_ATTEMPTS:
            await _set(deps, row, status="failed", last_error=str(exc))
        else:
            delay = dt.timedelta(seconds=min(30 * 2**row.attempts, 3600))
            await _set(deps, row, status="queued", last_error=str(exc), next_attempt_at=now + delay)
        return "queued"
    except SendRejected as exc:
        await _set(deps, row, status="failed", last_error=str(exc))
        return "failed"
    except SendOutcomeUnknown as exc:
        await _set(deps, row, status="outcome_unknown", last_error=str(exc))
        return "outcome_unknown"
    await _set(deps, row, status="sent", sent_at=dt.datetime.now(dt.UTC), last_error=None)
    await file_sent_copy(deps, company_id, outbound_id)
    return "sent"


async def _smtp_server(deps: Deps, account: EmailAccount):
    """The SMTP login; an OAuth sign-in that is refused for good fails the message, a transient one retries it."""
    try:
        return await smtp_login(deps, account)
    except ReauthorisationNeeded as exc:
        raise SendRejected(str(exc)) from exc
    except OAuthTokenError as exc:
        raise SendRetry(exc.detail) from exc


class _ClaimLost(Exception):
    """This attempt no longer holds the message: the final dot must not go out."""


async def _set(deps: Deps, row: OutboundMessage, **values) -> None:
    async with deps.writing() as db:
        await db.execute(
            update(OutboundMessage)
            .where(OutboundMessage.company_id == row.company_id, OutboundMessage.id == row.id)
            .values(**values)
        )


async def file_sent_copy(deps: Deps, company_id: uuid.UUID, outbound_id: uuid.UUID) -> str:
    """Exactly one copy in Sent: none where the provider files it, else one APPEND (checked first).

    Whether the provider files it is the server's profile's call (Gmail and
    Microsoft 365 do, whatever preset the account was connected with: a
    company domain on Google Workspace is "other" here); the preset decides
    only where the profile does not know.
    """
    async with deps.reading() as db:
        row = await db.get(OutboundMessage, (company_id, outbound_id))
        account = await db.get(EmailAccount, (company_id, row.account_id))
        sent_folder = await db.scalar(
            select(MailFolder.name).where(
                MailFolder.company_id == company_id, MailFolder.account_id == account.id, MailFolder.role == "sent"
            )
        )
    if row.status != "sent" or row.sent_copy != "pending":
        return row.sent_copy
    preset_says = get_preset(account.provider).saves_sent_copy
    if preset_says:  # no profile says "does not file it": a connection would not change the answer
        await _set(deps, row, sent_copy="by_provider")
        return "by_provider"
    raw = await deps.blobs.get(row.raw_key)
    login = await imap_login(deps, account)

    def append() -> str:
        session = deps.open_mailbox(login).connect()
        try:
            if files_sent_copy_itself(session.profile, preset_says):
                return "by_provider"
            folder = sent_folder or next((f.name for f in session.folders() if f.role == "sent"), None)
            if folder is not None and not session.has_message_id(folder, row.message_id_header):
                session.append(folder, raw)
            return "appended"
        finally:
            session.close()

    try:
        outcome = await asyncio.to_thread(append)
    except Exception as exc:  # the message is sent; filing the copy is retried by recover()
        await _set(deps, row, last_error=f"Sent, but the copy in Sent could not be filed yet: {exc}")
        return "pending"
    await _set(deps, row, sent_copy=outcome)
    return outcome


def _of_account(account_id: uuid.UUID | None) -> tuple:
    return () if account_id is None else (OutboundMessage.account_id == account_id,)


async def deliver_due(deps: Deps, *, limit: int = 20, account_id: uuid.UUID | None = None) -> int:
    """Send what is due (the outbox worker's loop body), of one account or all; returns how many were attempted."""
    now = dt.datetime.now(dt.UTC)
    async with deps.reading() as db:
        due = (
            await db.execute(
                select(OutboundMessage.company_id, OutboundMessage.id)
                .where(
                    OutboundMessage.status.in_(("queued", "scheduled")),
                    (OutboundMessage.next_attempt_at.is_(None)) | (OutboundMessage.next_attempt_at <= now),
                    *_of_account(account_id),
                )
                .order_by(OutboundMessage.next_attempt_at)
                .limit(limit)
            )
        ).all()
    for company_id, outbound_id in due:
        await deliver(deps, company_id, outbound_id)
    return len(due)


async def recover(deps: Deps, *, account_id: uuid.UUID | None = None) -> None:
    """Rows a dead process left "sending": queued again unless handed over, else outcome_unknown;
    sent rows whose Sent copy is still pending get it filed. Of one account, or all."""
    stale = dt.datetime.now(dt.UTC) - STALE_SENDING
    async with deps.writing() as db:
        owners = await db.scalars(
            select(OutboundMessage.sending_owner)
            .where(OutboundMessage.status == "sending", *_of_account(account_id))
            .distinct()
        )
        gone = [owner for owner in owners if holder_is_gone(owner)]  # killed: no need to wait until stale
        abandoned = (OutboundMessage.updated_at < stale) | OutboundMessage.sending_owner.in_(gone)
        base = (OutboundMessage.status == "sending", abandoned, *_of_account(account_id))
        await db.execute(
            update(OutboundMessage).where(*base, OutboundMessage.handed_over.is_(False)).values(status="queued")
        )
        await db.execute(
            update(OutboundMessage)
            .where(*base, OutboundMessage.handed_over.is_(True))
            .values(
                status="outcome_unknown",
                last_error="The sending process stopped while handing the message over; it may have been delivered.",
            )
        )
    async with deps.reading() as db:
        pending = (
            await db.execute(
                select(OutboundMessage.company_id, OutboundMessage.id).where(
                    OutboundMessage.status == "sent", OutboundMessage.sent_copy == "pending", *_of_account(account_id)
                )
            )
        ).all()
    for company_id, outbound_id in pending:
        await file_sent_copy(deps, company_id, outbound_id)


async def cancel(deps: Deps, actor: Actor, outbound_id: uuid.UUID) -> bool:
    """Undo send: a message still held (scheduled) is not sent; True when it was stopped in time."""
    await get_outbound(deps, actor, outbound_id)  # visibility
    async with deps.writing() as db:
        stopped = await db.execute(
            delete(OutboundMessage).where(
                OutboundMessage.company_id == actor.company_id,
                OutboundMessage.id == outbound_id,
                OutboundMessage.status == "scheduled",
            )
        )
    return stopped.rowcount == 1


# ---- composing replies --------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    account_id: uuid.UUID | None
    to: str
    cc: str
    subject: str
    text: str
    in_reply_to: uuid.UUID | None


async def draft_for(deps: Deps, actor: Actor, message_id: uuid.UUID, mode: str) -> Draft:
    """Reply, reply all or forward a stored message: recipients, subject and quoted text filled in."""
    require_email_sync(actor)
    async with deps.reading() as db:
        original = await _parent(db, actor, message_id)
        accounts = await usable_account_ids(db, actor)
        account_id = await db.scalar(
            select(MessageLocation.account_id).where(
                MessageLocation.company_id == actor.company_id,
                MessageLocation.message_id == original.id,
                MessageLocation.account_id.in_(accounts),
            )
        )
        own = await db.scalar(select(EmailAccount.address).where(
            EmailAccount.company_id == actor.company_id, EmailAccount.id == account_id))
    core = strip_prefixes(original.subject or "")[0]
    sender = f"{original.from_name} <{original.from_email}>" if original.from_name else original.from_email
    when = original.sent_at.strftime("%Y-%m-%d %H:%M") if original.sent_at else ""
    if mode == "forward":
        text = (
            f"\n\n---------- Forwarded message ----------\nFrom: {sender}\nDate: {when}\n"
            f"Subject: {original.subject}\n\n{original.body_text}"
        )
        return Draft(account_id, "", "", f"Fwd: {core}", text, None)
    quoted = "\n".join(f"> {line}" for line in (original.body_text or "").splitlines())
    text = f"\n\nOn {when}, {sender} wrote:\n{quoted}\n"
    to, cc = [original.from_email], []
    if mode == "reply_all":
        def emails(encoded: str) -> list[str]:
            return [email for _name, email in json.loads(encoded or "[]") if email]

        to += emails(original.to_list)
        cc = emails(original.cc_list)
    mine = {(own or "").lower()}
    to = [a for a in dict.fromkeys(to) if a and a.lower() not in mine]
    cc = [a for a in dict.fromkeys(cc) if a and a.lower() not in mine and a not in to]
    return Draft(account_id, ", ".join(to), ", ".join(cc), f"Re: {core}", text, original.id)


# ---- reading ------------------------------------------------------------------------------


async def get_outbound(deps: Deps, actor: Actor, outbound_id: uuid.UUID) -> OutboundView:
    require_email_sync(actor)
    async with deps.reading() as db:
        row = await db.get(OutboundMessage, (actor.company_id, outbound_id))
        if row is None or row.account_id not in await usable_account_ids(db, actor):
            raise NotFound(Text("No such outgoing message."))
        return await _view(db, row)


async def list_outbox(deps: Deps, actor: Actor) -> list[OutboundView]:
    """What has not gone yet, or went wrong: held, scheduled, queued, sending, failed, outcome unknown."""
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        rows = await db.scalars(
            select(OutboundMessage)
            .where(
                OutboundMessage.company_id == actor.company_id,
                OutboundMessage.account_id.in_(accounts),
                OutboundMessage.status != "sent",
            )
            .order_by(OutboundMessage.created_at.desc())
            .limit(200)
        )
        return [await _view(db, row) for row in rows]


async def wait_for_outcome(deps: Deps, actor: Actor, outbound_id: uuid.UUID, seconds: float) -> OutboundView:
    """Poll until the message is sent, failed or of unknown outcome (or the time is up)."""
    view = await get_outbound(deps, actor, outbound_id)
    try:
        async with asyncio.timeout(seconds):
            while view.status not in TERMINAL:
                await asyncio.sleep(0.2)
                view = await get_outbound(deps, actor, outbound_id)
    except TimeoutError:
        pass
    return view


async def _view(db, row: OutboundMessage) -> OutboundView:
    conversation_id = None
    if row.in_reply_to_id is not None:
        conversation_id = await db.scalar(
            select(Message.conversation_id).where(
                Message.company_id == row.company_id, Message.id == row.in_reply_to_id
            )
        )
    if conversation_id is None:
        conversation_id = await db.scalar(
            select(Message.conversation_id).where(
                Message.company_id == row.company_id, Message.dedupe_key == f"mid:{row.message_id_header.strip('<>')}"
            )
        )
    return OutboundView(
        id=row.id,
        message_id=row.message_id_header,
        conversation_id=conversation_id,
        status=row.status,
        account_id=row.account_id,
        subject=row.subject,
        last_error=row.last_error,
        sent_at=row.sent_at,
        send_at=row.send_at,
    )
