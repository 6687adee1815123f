"""Every surface, after every step, against a small reference model of the visibility rules.

A Hypothesis state machine connects private and team accounts, delivers mail
(a conversation reaching a second account adds a participant), shares and
unshares, links and unlinks, changes team membership and disconnects
accounts. After each step it asks the real services, as each of three users
(an admin and two colleagues), what they see: the Sales Inbox, each
conversation by id, each message's body and attachment, and each deal's Email tab. It
compares them with ``Model``: the rules of docs/linking.md in a few lines.

Mail is stored through ``MailStore`` (what the sync calls for every fetched
batch), not fetched over IMAP: the rules live in the database, and the IMAP
path is tested on its own. ``SALESINBOX_VISIBILITY_EXAMPLES`` sets the number
of examples (500 by default; 10000 for the long run).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from salesinbox import bootstrap
from salesinbox.adapters.db.tables import MailFolder
from salesinbox.domain.accounts import AccountKind
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.mime.parse import parse_message
from salesinbox.services import accounts, conversations, items, links, mail_assets, workspace
from salesinbox.services.accounts import AccountInput
from salesinbox.services.items import ItemInput, ItemKind
from salesinbox.services.mail_store import Arrival, MailStore
from tests.conftest import create_tenant

EXAMPLES = int(os.environ.get("SALESINBOX_VISIBILITY_EXAMPLES", "500"))
# 500 examples take about 1.5 min on SQLite and 2.5 min on PostgreSQL here (2 cores): more than the
# suite's per-test deadline, which is there to stop a hang, not this.
pytestmark = pytest.mark.timeout(max(900, EXAMPLES * 2))
USERS = ("admin", "ben", "cleo")


class _Loop:
    """The services are async; Hypothesis drives a sync machine: one event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Account:
    id: uuid.UUID
    kind: str
    owner: str
    members: set[str]
    default: str
    folder: uuid.UUID


@dataclass
class Model:
    accounts: dict[uuid.UUID, Account] = field(default_factory=dict)
    holdings: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)  # conversation -> accounts
    messages: dict[uuid.UUID, dict[uuid.UUID, uuid.UUID]] = field(default_factory=dict)  # conv -> message -> acct
    visibility: dict[tuple[uuid.UUID, uuid.UUID], str] = field(default_factory=dict)
    links: dict[uuid.UUID, dict[uuid.UUID, uuid.UUID]] = field(default_factory=dict)  # conv -> deal -> link id

    def usable(self, user: str) -> set[uuid.UUID]:
        return {a.id for a in self.accounts.values() if a.owner == user or (a.kind == "team" and user in a.members)}

    def shared_by(self, conversation: uuid.UUID, account: uuid.UUID) -> bool:
        own = self.visibility.get((conversation, account), self.accounts[account].default)
        return own == "shared"

    def in_inbox(self, user: str, conversation: uuid.UUID) -> bool:
        return bool(self.holdings[conversation] & self.usable(user))

    def readable(self, user: str, conversation: uuid.UUID) -> bool:
        return self.in_inbox(user, conversation) or any(
            self.shared_by(conversation, a) for a in self.holdings[conversation])

    def readable_message(self, user: str, conversation: uuid.UUID, message: uuid.UUID) -> bool:
        account = self.messages[conversation][message]
        return account in self.usable(user) or self.shared_by(conversation, account)


def _mail(subject: str, msgid: str, refs: tuple[str, ...] = ()) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Buyer <buyer@customer.example>", "team@acme.test", subject
    message["Message-ID"] = msgid
    if refs:
        message["In-Reply-To"], message["References"] = refs[-1], " ".join(refs)
    message.set_content(f"About {subject}")
    message.add_attachment(b"terms", maintype="application", subtype="pdf", filename="terms.pdf")
    return bytes(message)


class VisibilityMachine(RuleBasedStateMachine):
    """One example: fresh accounts, mail and deals in the shared company; surfaces compared on them only."""

    accounts_ = Bundle("accounts")
    conversations_ = Bundle("conversations")
    deals_ = Bundle("deals")

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.tag = uuid.uuid4().hex[:10]
        self.uids = 0
        self.msgids: dict[uuid.UUID, str] = {}

    # ---- steps ----------------------------------------------------------------------------

    @initialize(target=deals_)
    def a_deal(self):
        return self._deal()

    @rule(target=deals_)
    def another_deal(self):
        return self._deal()

    def _deal(self) -> uuid.UUID:
        return LOOP.run(items.create_item(DEPS, ACTORS["admin"], ItemKind.DEAL, ItemInput(title=f"Deal {self.tag}"))).id

    @rule(target=accounts_, owner=st.sampled_from(USERS), team=st.booleans(),
          members=st.sets(st.sampled_from(USERS)), shared_default=st.booleans())
    def connect(self, owner, team, members, shared_default):
        kind = "team" if team else "private"
        owner = "admin" if team else owner  # team accounts: the admin creates them and chooses members
        default = "shared" if shared_default else ("team_only" if team else "private")
        data = AccountInput(
            address=f"{kind}-{uuid.uuid4().hex[:12]}@acme.test", password="unused-password",
            kind=AccountKind(kind), imap_host="imap.invalid", imap_port=993, smtp_host="smtp.invalid",
            smtp_port=465, default_visibility=default,
            member_ids=[ACTORS[m].user_id for m in members] if team else [],
        )
        view = LOOP.run(accounts.connect_account(DEPS, ACTORS[owner], data, verify=False))
        folder = LOOP.run(_inbox_folder(view.id))
        members = ({owner} | set(members)) if team else set()
        self.model.accounts[view.id] = Account(view.id, kind, owner, members, default, folder)
        return view.id

    @rule(target=conversations_, account=accounts_)
    def new_mail(self, account):
        if account not in self.model.accounts:
            return uuid.uuid4()  # disconnected meanwhile: a conversation that never was
        msgid = f"<{uuid.uuid4().hex}@customer.example>"
        conversation, message = self._store(account, _mail(f"Topic {self.tag} {msgid[1:9]}", msgid))
        self.msgids[conversation] = msgid
        self.model.holdings[conversation] = {account}
        self.model.messages[conversation] = {message: account}
        self.model.links[conversation] = {}
        return conversation

    @rule(conversation=conversations_, account=accounts_)
    def reply_reaches_another_account(self, conversation, account):
        """A participant more: the same conversation now also lives in ``account``."""
        if conversation not in self.model.holdings or account not in self.model.accounts:
            return
        raw = _mail(f"Re: topic {self.tag}", f"<{uuid.uuid4().hex}@customer.example>", (self.msgids[conversation],))
        stored_in, message = self._store(account, raw)
        assert stored_in == conversation
        self.model.holdings[conversation].add(account)
        self.model.messages[conversation][message] = account

    def _store(self, account: uuid.UUID, raw: bytes) -> tuple[uuid.UUID, uuid.UUID]:
        self.uids += 1
        parsed = parse_message(raw)
        LOOP.run(DEPS.blobs.put(f"raw/{parsed.content_hash}", raw))
        return LOOP.run(_store(account, self.model.accounts[account].folder, self.uids, parsed))

    @rule(user=st.sampled_from(USERS), conversation=conversations_,
          visibility=st.sampled_from(["shared", "private", "team_only"]))
    def set_visibility(self, user, conversation, visibility):
        if conversation not in self.model.holdings:
            return
        mine = self.model.holdings[conversation] & self.model.usable(user)
        try:
            LOOP.run(links.set_visibility(DEPS, ACTORS[user], conversation, visibility))
        except ValidationFailed:
            assert not mine, "a holder of the conversation was refused"
            return
        except NotFound:
            assert not self.model.readable(user, conversation)
            return
        assert mine, f"{user} changed the visibility of a conversation they do not hold"
        for account in mine:
            kind = self.model.accounts[account].kind
            value = "shared" if visibility == "shared" else ("team_only" if kind == "team" else "private")
            self.model.visibility[(conversation, account)] = value

    @rule(user=st.sampled_from(USERS), conversation=conversations_, deal=deals_)
    def link(self, user, conversation, deal):
        if conversation not in self.model.holdings:
            return
        try:
            view = LOOP.run(links.link(DEPS, ACTORS[user], conversation, "deal", deal))
        except NotFound:
            assert not self.model.readable(user, conversation)
            return
        assert self.model.readable(user, conversation)
        self.model.links[conversation][deal] = view.id

    @rule(user=st.sampled_from(USERS), conversation=conversations_, data=st.data())
    def unlink(self, user, conversation, data):
        if conversation not in self.model.holdings or not self.model.links.get(conversation):
            return
        deal = data.draw(st.sampled_from(sorted(self.model.links[conversation])))
        try:
            LOOP.run(links.unlink(DEPS, ACTORS[user], conversation, self.model.links[conversation][deal]))
        except NotFound:
            assert not self.model.readable(user, conversation)
            return
        assert self.model.readable(user, conversation)
        del self.model.links[conversation][deal]

    @rule(account=accounts_, members=st.sets(st.sampled_from(USERS)))
    def change_members(self, account, members):
        found = self.model.accounts.get(account)
        if found is None or found.kind != "team":
            return
        LOOP.run(accounts.set_team_members(DEPS, ACTORS["admin"], account, [ACTORS[m].user_id for m in members]))
        found.members = {"admin"} | set(members)

    @rule(account=accounts_)
    def disconnect(self, account):
        found = self.model.accounts.get(account)
        if found is None:
            return
        LOOP.run(accounts.disconnect_account(DEPS, ACTORS[found.owner], account))
        del self.model.accounts[account]
        for conversation in list(self.model.holdings):
            self.model.holdings[conversation].discard(account)
            self.model.messages[conversation] = {
                m: a for m, a in self.model.messages[conversation].items() if a != account}
            if not self.model.holdings[conversation]:  # its last copy is gone: so is the conversation's mail
                del self.model.holdings[conversation]

    def teardown(self) -> None:
        """Disconnect what this example connected: the company is shared by all examples, and each user's
        account list (and every query that names it) would otherwise grow with every example."""
        for account in list(self.model.accounts.values()):
            LOOP.run(accounts.disconnect_account(DEPS, ACTORS[account.owner], account.id))

    # ---- every surface, as every user ---------------------------------------------------------

    @invariant()
    def surfaces_match_the_model(self):
        live = set(self.model.holdings)
        for user in USERS:
            seen = LOOP.run(_surfaces(ACTORS[user], live, self.model))
            expected = {
                "inbox": {c for c in live if self.model.in_inbox(user, c)},
                "readable": {c for c in live if self.model.readable(user, c)},
                "messages": {m for c in live for m in self.model.messages[c]
                             if self.model.readable_message(user, c, m)},
                "deals": {(d, c) for c in live for d in self.model.links[c] if self.model.readable(user, c)},
            }
            assert seen == expected, f"{user}: {seen} != {expected}"


async def _inbox_folder(account_id: uuid.UUID) -> uuid.UUID:
    async with DEPS.writing() as db:
        folder = MailFolder(company_id=ACTORS["admin"].company_id, account_id=account_id, name="INBOX",
                            role="inbox", uidvalidity=1)
        db.add(folder)
        await db.flush()
        return folder.id


async def _store(account: uuid.UUID, folder: uuid.UUID, uid: int, parsed) -> tuple[uuid.UUID, uuid.UUID]:
    company = ACTORS["admin"].company_id
    async with DEPS.writing() as db:
        arrival = Arrival(uid, (), None, parsed, f"raw/{parsed.content_hash}", 10)
        await MailStore(db, company, account).store(folder, 1, [arrival])
    async with DEPS.reading() as db:
        from sqlalchemy import select

        from salesinbox.adapters.db.tables import Attachment, Message, MessageLocation

        row = (await db.execute(
            select(Message.conversation_id, Message.id)
            .join(MessageLocation, (MessageLocation.company_id == Message.company_id)
                  & (MessageLocation.message_id == Message.id))
            .where(MessageLocation.company_id == company, MessageLocation.folder_id == folder,
                   MessageLocation.uid == uid)
        )).one()
        ATTACHMENTS[row.id] = await db.scalar(
            select(Attachment.id).where(Attachment.company_id == company, Attachment.message_id == row.id))
        return row.conversation_id, row.id


async def _surfaces(actor, live: set[uuid.UUID], model: Model) -> dict[str, set]:
    inbox = {c.id for c in await conversations.list_conversations(DEPS, actor, folder="inbox", limit=200)} & live
    readable, messages = set(), set()
    for conversation in live:
        try:
            view = await conversations.get_conversation(DEPS, actor, conversation)
        except NotFound:
            pass
        else:
            readable.add(conversation)
            messages.update(m.id for m in view.messages)
            assert view.in_inbox == (conversation in inbox)
            assert {link.item_id for link in view.links} == set(model.links[conversation])
    for conversation in live:  # a message's body and attachment answer exactly like its conversation's list
        for message in model.messages[conversation]:
            try:
                await conversations.message_html(DEPS, actor, message, proxy=None)
            except NotFound:
                assert message not in messages
            else:
                assert message in messages
            attachment = ATTACHMENTS[message]
            try:
                opened = await mail_assets.open_attachment(DEPS, actor, attachment)
            except NotFound:
                assert message not in messages
            else:
                assert message in messages and opened.filename == "terms.pdf"
    deals = set()
    for deal in {d for c in live for d in model.links[c]}:
        deals.update((deal, c.id) for c in await conversations.item_conversations(DEPS, actor, "deal", deal)
                     if c.id in live)
    return {"inbox": inbox, "readable": readable, "messages": messages, "deals": deals}


DEPS = None
ACTORS: dict = {}
ATTACHMENTS: dict = {}  # message -> its attachment's id
LOOP: _Loop | None = None


@pytest.fixture
def world(settings):
    global DEPS, LOOP
    LOOP = _Loop()
    runtime = LOOP.run(_runtime(settings))
    DEPS = runtime.deps
    tenant = LOOP.run(create_tenant(DEPS, name="Visibility Ltd"))
    ACTORS["admin"] = tenant.admin
    for name in ("ben", "cleo"):
        LOOP.run(workspace.add_user(DEPS, tenant.admin, email=f"{name}-{tenant.company_id.hex[:6]}@acme.test",
                                    password=f"{name.title()}-pass-1!"))
        ACTORS[name] = LOOP.run(workspace.authenticate(DEPS, f"{name}-{tenant.company_id.hex[:6]}@acme.test",
                                                       f"{name.title()}-pass-1!"))
    yield
    LOOP.run(runtime.close())
    LOOP.close()


async def _runtime(settings):
    return bootstrap.build_runtime(settings)


def test_every_surface_agrees_with_the_visibility_model(world):
    run_state_machine_as_test(VisibilityMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], derandomize=False))
