"""Tables. Every tenant-owned row carries ``company_id`` as the first column of
its primary key, and every reference to another tenant row is a composite
foreign key that includes ``company_id``: a row can never point into another
company, whatever the code above does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
    func,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from salesinbox.adapters.db.ids import new_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC on the way in and out (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class FastUuid(Uuid):
    """SQLAlchemy's ``Uuid``, whose text results (SQLite) become ``uuid.UUID`` without the constructor's parsing.

    ``uuid.UUID(hex)`` costs about 8 µs (string clean-up, checks); linking and
    threading read tens of thousands of ids per synced mailbox, and that was a
    quarter of linking's time. A value in the 32 hex digits this type writes
    is built straight from its integer; anything else goes the usual way.
    PostgreSQL's driver returns ``uuid.UUID`` itself (no processor).
    """

    cache_ok = True

    def result_processor(self, dialect, coltype):
        processor = super().result_processor(dialect, coltype)
        return _uuid_from_text if processor is not None and self.as_uuid else processor


_new_object = object.__new__
_set_slot = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def _uuid_from_text(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    if len(value) == 32 and value.isascii() and value.isalnum():
        made = _new_object(uuid.UUID)
        _set_slot(made, "int", int(value, 16))
        _set_slot(made, "is_safe", _UNKNOWN)
        return made
    return uuid.UUID(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UtcDateTime(), uuid.UUID: FastUuid()}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(default=_now, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        default=_now, onupdate=_now, server_default=func.now()
    )


class TenantRow(Timestamps):
    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


def tenant_fk(column: str, table: str, *, ondelete: str = "RESTRICT") -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["company_id", column], [f"{table}.company_id", f"{table}.id"], ondelete=ondelete
    )


def nullable_tenant_fk(column: str, table: str) -> ForeignKeyConstraint:
    # SET NULL on a composite key would also null company_id; the services
    # clear references themselves before deleting the parent instead.
    return ForeignKeyConstraint(["company_id", column], [f"{table}.company_id", f"{table}.id"])


class Company(Timestamps, Base):
    __tablename__ = "companies"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20))


class User(TenantRow, Base):
    __tablename__ = "users"
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(10), default="en")


class ApiToken(TenantRow, Base):
    __tablename__ = "api_tokens"
    __table_args__ = (tenant_fk("user_id", "users", ondelete="CASCADE"),)
    user_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the secret part: tokens are random 256-bit values, so a fast
    # hash is enough (no dictionary to attack) and lookups stay O(1).
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class WebSession(Base):
    """Server-side web sessions (the browser holds only a random key)."""

    __tablename__ = "web_sessions"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[dt.datetime | None] = mapped_column(index=True)


class Organization(TenantRow, Base):
    __tablename__ = "organizations"
    __table_args__ = (nullable_tenant_fk("owner_id", "users"),)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500), default="")
    owner_id: Mapped[uuid.UUID | None]


class OrganizationDomain(TenantRow, Base):
    __tablename__ = "organization_domains"
    __table_args__ = (
        tenant_fk("organization_id", "organizations", ondelete="CASCADE"),
        UniqueConstraint("company_id", "domain"),
    )
    organization_id: Mapped[uuid.UUID]
    domain: Mapped[str] = mapped_column(String(253))


class Person(TenantRow, Base):
    __tablename__ = "persons"
    __table_args__ = (
        nullable_tenant_fk("organization_id", "organizations"),
        nullable_tenant_fk("owner_id", "users"),
    )
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(50), default="")
    organization_id: Mapped[uuid.UUID | None]
    owner_id: Mapped[uuid.UUID | None]


class PersonEmail(TenantRow, Base):
    __tablename__ = "person_emails"
    __table_args__ = (
        tenant_fk("person_id", "persons", ondelete="CASCADE"),
        UniqueConstraint("company_id", "email"),
    )
    person_id: Mapped[uuid.UUID]
    email: Mapped[str] = mapped_column(String(320))
    position: Mapped[int] = mapped_column(Integer, default=0)


class _LinkedItem(TenantRow):
    title: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[uuid.UUID | None]
    organization_id: Mapped[uuid.UUID | None]
    owner_id: Mapped[uuid.UUID | None]


def _item_fks() -> tuple[ForeignKeyConstraint, ...]:
    return (
        nullable_tenant_fk("person_id", "persons"),
        nullable_tenant_fk("organization_id", "organizations"),
        nullable_tenant_fk("owner_id", "users"),
    )


class Deal(_LinkedItem, Base):
    __tablename__ = "deals"
    __table_args__ = (*_item_fks(), Index("ix_deals_company_status", "company_id", "status"))
    value: Mapped[Decimal] = mapped_column(Numeric(17, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3))
    pipeline: Mapped[str] = mapped_column(String(100), default="Sales")
    stage: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))
    expected_close_date: Mapped[dt.date | None]
    closed_at: Mapped[dt.datetime | None]


class Lead(_LinkedItem, Base):
    __tablename__ = "leads"
    __table_args__ = (*_item_fks(), Index("ix_leads_company_status", "company_id", "status"))
    value: Mapped[Decimal] = mapped_column(Numeric(17, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))


class Project(_LinkedItem, Base):
    __tablename__ = "projects"
    __table_args__ = (*_item_fks(), Index("ix_projects_company_status", "company_id", "status"))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10))
    start_date: Mapped[dt.date | None]
    end_date: Mapped[dt.date | None]


class EmailAccount(TenantRow, Base):
    __tablename__ = "email_accounts"
    __table_args__ = (
        tenant_fk("owner_id", "users"),
        UniqueConstraint("company_id", "address"),
    )
    kind: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[uuid.UUID]
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    provider: Mapped[str] = mapped_column(String(20))
    imap_host: Mapped[str] = mapped_column(String(253))
    imap_port: Mapped[int]
    imap_security: Mapped[str] = mapped_column(String(10))
    smtp_host: Mapped[str] = mapped_column(String(253))
    smtp_port: Mapped[int]
    smtp_security: Mapped[str] = mapped_column(String(10))
    login: Mapped[str] = mapped_column(String(320))
    auth_method: Mapped[str] = mapped_column(String(10), default="password")
    # MultiFernet token of the password / app password; never stored in clear.
    secret: Mapped[str] = mapped_column(Text)
    attachment_limit_bytes: Mapped[int]
    sync_start: Mapped[str] = mapped_column(String(4))
    default_visibility: Mapped[str] = mapped_column(String(10))
    contact_policy: Mapped[str] = mapped_column(String(20))
    last_test_at: Mapped[dt.datetime | None]
    last_test_error: Mapped[str | None] = mapped_column(Text)
    # Sync health, changed only through services.sync_state transitions.
    sync_state: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    sync_error: Mapped[str | None] = mapped_column(Text)
    last_sync_at: Mapped[dt.datetime | None]
    sync_started_at: Mapped[dt.datetime | None]
    # Who runs the pass ("host:pid") and when it last showed progress: a claim,
    # so two processes never sync one account at once.
    sync_heartbeat_at: Mapped[dt.datetime | None]
    sync_owner: Mapped[str | None] = mapped_column(String(200))


class SyncLease(Base):
    """Which sync process holds an account (``services/sync_leases.py``).

    ``epoch`` goes up by one at every claim: the fencing token. A process's
    write transactions check that the lease still carries the epoch it
    claimed, so a process that lost its lease (expired, taken over) cannot
    write. A free lease has no ``holder``.
    """

    __tablename__ = "sync_leases"
    __table_args__ = (
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
        Index("ix_sync_leases_expires_at", "expires_at"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[dt.datetime | None]


class SyncWorker(Base):
    """A live sync process (not tenant data): how many share the accounts decides each one's share."""

    __tablename__ = "sync_workers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class EmailAccountMember(Base):
    __tablename__ = "email_account_members"
    __table_args__ = (
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
        tenant_fk("user_id", "users", ondelete="CASCADE"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


# ---- mail ------------------------------------------------------------------------------


class MailFolder(TenantRow, Base):
    """One synced IMAP mailbox of an account, with its sync cursor and health."""

    __tablename__ = "mail_folders"
    __table_args__ = (
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
        UniqueConstraint("company_id", "account_id", "name"),
    )
    account_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(20))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    server_total: Mapped[int] = mapped_column(Integer, default=0)
    synced: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_resets: Mapped[int] = mapped_column(Integer, default=0)
    held_deletions: Mapped[int] = mapped_column(Integer, default=0)
    # A person confirmed that the held mass deletion was intended: the next pass applies it.
    deletions_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)


class Conversation(TenantRow, Base):
    __tablename__ = "conversations"
    subject: Mapped[str] = mapped_column(Text, default="")
    snippet: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[dt.datetime | None]
    last_message_at: Mapped[dt.datetime | None]
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    has_attachments: Mapped[bool] = mapped_column(Boolean, default=False)


# In the lists' order (newest first, nulls last, then id): a page is read off the start of the index
# instead of sorting every conversation of the company (bench/README.md, capacity).
Index(
    "ix_conversations_company_last",
    Conversation.company_id,
    Conversation.last_message_at.desc().nulls_last(),
    Conversation.id.desc(),
)


class Message(TenantRow, Base):
    """One stored message per company, wherever (account, folder, UID) it lives."""

    __tablename__ = "messages"
    __table_args__ = (
        tenant_fk("conversation_id", "conversations"),
        UniqueConstraint("company_id", "dedupe_key"),
        Index("ix_messages_company_conversation", "company_id", "conversation_id", "id"),
        # A message's conversation read off the index (unread counts: from a location to its conversation).
        Index("ix_messages_company_id_conversation", "company_id", "id", "conversation_id"),
        Index("ix_messages_company_subject_key", "company_id", "subject_key"),
    )
    conversation_id: Mapped[uuid.UUID]
    dedupe_key: Mapped[str] = mapped_column(String(1000))
    message_id_header: Mapped[str | None] = mapped_column(String(998))
    content_hash: Mapped[str] = mapped_column(String(64))
    raw_key: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_key: Mapped[str] = mapped_column(String(500), default="")
    orphan_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    from_email: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(300), default="")
    to_list: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[name, email], ...]
    cc_list: Mapped[str] = mapped_column(Text, default="[]")
    bcc_list: Mapped[str] = mapped_column(Text, default="[]")
    participants: Mapped[str] = mapped_column(Text, default="")  # space-separated addresses
    sent_at: Mapped[dt.datetime | None]
    snippet: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    has_attachments: Mapped[bool] = mapped_column(Boolean, default=False)
    is_calendar: Mapped[bool] = mapped_column(Boolean, default=False)
    is_bulk: Mapped[bool] = mapped_column(Boolean, default=False)
    parse_status: Mapped[str] = mapped_column(String(20), default="ok")
    parse_problems: Mapped[str] = mapped_column(Text, default="")
    gm_thrid: Mapped[str | None] = mapped_column(String(40))


class MessageThreadKey(Base):
    """A message's thread keys (its Message-ID, referenced ids, Gmail thread): the threading index."""

    __tablename__ = "message_thread_keys"
    __table_args__ = (tenant_fk("message_id", "messages", ondelete="CASCADE"),)
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class MessageLocation(Base):
    """Where a message lives on a server: (folder, UID) under one UIDVALIDITY."""

    __tablename__ = "message_locations"
    __table_args__ = (
        tenant_fk("folder_id", "mail_folders", ondelete="CASCADE"),
        tenant_fk("message_id", "messages", ondelete="CASCADE"),
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
        # With the account and folder: which of the actor's folders a message is in, read off the index.
        Index("ix_message_locations_message", "company_id", "message_id", "account_id", "folder_id"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    folder_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[uuid.UUID]
    message_id: Mapped[uuid.UUID]
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    flags: Mapped[str] = mapped_column(String(1000), default="")
    modseq: Mapped[int | None] = mapped_column(BigInteger)
    gm_msgid: Mapped[str | None] = mapped_column(String(20))  # Gmail's X-GM-MSGID (decimal): one id in every folder


Index(
    "ix_message_locations_gm_msgid",
    MessageLocation.company_id,
    MessageLocation.account_id,
    MessageLocation.gm_msgid,
    postgresql_where=MessageLocation.gm_msgid.is_not(None),
    sqlite_where=MessageLocation.gm_msgid.is_not(None),
)


def unseen(flags=MessageLocation.__table__.c.flags):
    """SQL: the location's flags lack ``\\Seen`` (unread), with the pattern as a literal, not a parameter.

    The partial index ``ix_message_locations_unseen`` holds only such rows (a few percent of a
    mailbox); the planner uses it only for a query stating this same predicate with a constant.
    """
    return flags.not_like(literal_column("'%\\Seen%'"), escape="/")


Index(
    "ix_message_locations_unseen",
    MessageLocation.company_id,
    MessageLocation.account_id,
    MessageLocation.folder_id,
    MessageLocation.message_id,
    postgresql_where=unseen(),
    sqlite_where=unseen(),
)


class Attachment(TenantRow, Base):
    __tablename__ = "attachments"
    __table_args__ = (tenant_fk("message_id", "messages", ondelete="CASCADE"),)
    message_id: Mapped[uuid.UUID]
    part_id: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(500), default="")
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    content_id: Mapped[str | None] = mapped_column(String(500))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    # Its bytes were left on the mail server at sync (a large message, mime.lean): fetched when opened.
    on_server: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class OutboundMessage(TenantRow, Base):
    """A message being sent: committed, with its Message-ID fixed, before any network call.

    States (services/outbox.py): scheduled → queued → sending → sent, or failed,
    or outcome_unknown (the connection ended between the final dot of DATA and
    the server's reply: it may have been delivered; never retried blindly).
    The MIME bytes live in blob storage under ``raw_key``.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
        tenant_fk("user_id", "users", ondelete="CASCADE"),
        UniqueConstraint("company_id", "account_id", "idempotency_key"),
        Index("ix_outbound_messages_due", "status", "next_attempt_at"),
    )
    account_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    message_id_header: Mapped[str] = mapped_column(String(998))
    in_reply_to_id: Mapped[uuid.UUID | None]
    subject: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[str] = mapped_column(Text)  # JSON list of envelope recipients (to, cc, bcc)
    raw_key: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    send_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    sent_copy: Mapped[str] = mapped_column(String(20), default="pending")  # pending | appended | by_provider
    handed_over: Mapped[bool] = mapped_column(Boolean, default=False)  # the final dot may be out: never retry
    sending_owner: Mapped[str | None] = mapped_column(String(200))  # host:pid of the claim; meaningful while sending


# ---- linking and visibility ----------------------------------------------------------------


class ConversationLink(TenantRow, Base):
    """A conversation linked to a deal, lead or project: automatically (with the rule's reason) or by hand.

    One row per (conversation, item) ever: unlinking sets ``removed_at``, so
    the automatic rules never link that item again; linking by hand clears it.
    """

    __tablename__ = "conversation_links"
    __table_args__ = (
        tenant_fk("conversation_id", "conversations", ondelete="CASCADE"),
        UniqueConstraint("company_id", "conversation_id", "item_type", "item_id"),
        Index("ix_conversation_links_item", "company_id", "item_type", "item_id"),
    )
    conversation_id: Mapped[uuid.UUID]
    item_type: Mapped[str] = mapped_column(String(10))  # deal | lead | project
    item_id: Mapped[uuid.UUID]
    origin: Mapped[str] = mapped_column(String(10))  # auto | manual
    reason: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the rule and its facts
    created_by: Mapped[uuid.UUID | None]
    removed_at: Mapped[dt.datetime | None]
    removed_by: Mapped[uuid.UUID | None]


class ConversationLinkState(Base):
    """The last verdict of the linking rules on a conversation: why it is, or is not, linked."""

    __tablename__ = "conversation_link_states"
    __table_args__ = (
        tenant_fk("conversation_id", "conversations", ondelete="CASCADE"),
        Index("ix_conversation_link_states_outcome", "company_id", "outcome"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON: candidates and notes
    evaluated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class ConversationParticipant(Base):
    """Every address on a conversation's messages: how persons and organizations find their mail."""

    __tablename__ = "conversation_participants"
    __table_args__ = (
        tenant_fk("conversation_id", "conversations", ondelete="CASCADE"),
        Index("ix_conversation_participants_email", "company_id", "email"),
        Index("ix_conversation_participants_domain", "company_id", "domain"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253))


class ConversationVisibility(Base):
    """A conversation's visibility in one account, where it differs from the account's default."""

    __tablename__ = "conversation_visibility"
    __table_args__ = (
        tenant_fk("conversation_id", "conversations", ondelete="CASCADE"),
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    visibility: Mapped[str] = mapped_column(String(10))
    changed_by: Mapped[uuid.UUID | None]
    changed_at: Mapped[dt.datetime] = mapped_column(default=_now)


class BlockedAddress(TenantRow, Base):
    """An address or a whole domain whose mail is never linked: the company's list, or one user's."""

    __tablename__ = "blocked_addresses"
    __table_args__ = (
        tenant_fk("user_id", "users", ondelete="CASCADE"),
        Index("ix_blocked_addresses_value", "company_id", "value"),
    )
    user_id: Mapped[uuid.UUID | None]  # None: the whole company's list
    value: Mapped[str] = mapped_column(String(320))  # "someone@example.com" or "example.com"


# ---- labels --------------------------------------------------------------------------------


class Label(TenantRow, Base):
    """A company-wide label, stored on the mail server as one IMAP keyword (domain/labels.py).

    The keyword is chosen when the label is made and kept across renames.
    A deleted label stays as a tombstone (``deleted_at``), so its keyword,
    still on messages, is not made into a label again by the next sync pass.
    """

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("company_id", "name_key"),
        UniqueConstraint("company_id", "keyword_key"),
    )
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))  # casefolded name: unique per company
    keyword: Mapped[str] = mapped_column(String(250))
    keyword_key: Mapped[str] = mapped_column(String(250))  # lowercased keyword: servers match keywords so
    deleted_at: Mapped[dt.datetime | None]


class ConversationLabel(Base):
    """A label on a conversation."""

    __tablename__ = "conversation_labels"
    __table_args__ = (
        tenant_fk("conversation_id", "conversations", ondelete="CASCADE"),
        tenant_fk("label_id", "labels", ondelete="CASCADE"),
        Index("ix_conversation_labels_label", "company_id", "label_id"),
    )
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    label_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
# ---- drafts --------------------------------------------------------------------------------


class Draft(TenantRow, Base):
    """A message being written: the latest text here first, then one copy in the server's Drafts folder.

    ``server_*`` name the copy last filed there: (folder, UID) under its
    UIDVALIDITY, with its Message-ID; every copy also carries the header
    ``X-Salesinbox-Draft: <id>``. ``version`` grows with each save, so a slow
    upload of an older text never replaces a newer one. ``server_state``:
    pending (the latest text is not on the server yet), saved, discarding (sent
    or thrown away here; the server copy is still to be removed).
    """

    __tablename__ = "drafts"
    __table_args__ = (
        tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),
        tenant_fk("user_id", "users", ondelete="CASCADE"),
        Index("ix_drafts_company_account", "company_id", "account_id"),
    )
    account_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]  # who last saved it
    to_addresses: Mapped[str] = mapped_column(Text, default="")
    cc_addresses: Mapped[str] = mapped_column(Text, default="")
    bcc_addresses: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    in_reply_to_id: Mapped[uuid.UUID | None]  # a stored message this answers (no key: it may be expunged)
    version: Mapped[int] = mapped_column(Integer, default=1)
    server_state: Mapped[str] = mapped_column(String(20), default="pending")
    server_folder: Mapped[str | None] = mapped_column(String(500))
    server_uid: Mapped[int | None] = mapped_column(BigInteger)
    server_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    server_message_id: Mapped[str | None] = mapped_column(String(998))
    last_error: Mapped[str | None] = mapped_column(Text)


# ---- OAuth tokens ----------------------------------------------------------------------------


class AccountOAuthToken(Timestamps, Base):
    """The OAuth token set of an account with ``auth_method = "oauth2"`` (see services/oauth.py).

    Both tokens are MultiFernet tokens, never clear text. ``version`` grows with
    every saved refresh; a refresh is claimed by a conditional UPDATE that sets
    ``refresh_claimed_until`` (only where no live claim exists and the version is
    the one read), so two processes never spend one refresh token.
    ``needs_reauth``: the provider refused the refresh token for good; nothing is
    tried until the owner signs in again.
    """

    __tablename__ = "account_oauth_tokens"
    __table_args__ = (tenant_fk("account_id", "email_accounts", ondelete="CASCADE"),)
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)
    refresh_claimed_until: Mapped[dt.datetime | None]
    refresh_claimed_by: Mapped[str | None] = mapped_column(String(200))
    needs_reauth: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
