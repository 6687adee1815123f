"""Connections cut at random bytes during SEARCH, APPEND, STORE and MOVE, against a real Dovecot, through a TCP proxy.

The companion of test_sync_faults.py (FETCH and IDLE). Each test keeps one
small mailbox and one account for all its trials (so a trial costs a few
IMAP round trips) and runs, per trial: an operation cut at a random byte
(the byte drawn by a seeded RNG within what an uninterrupted run of the same
operation exchanged), then what the product does next without a fault (the
next sync pass, the user's second click where the first one failed, the
outbox worker's retry), then a comparison with the server:

- search: incremental sync passes (new mail, flags changed and messages
  expunged by another client meanwhile): the database mirrors every synced
  folder exactly (UIDs, Message-IDs, flags), each message stored once;
- actions: read / unread, labels (STORE), archive, unarchive, trash, restore
  (MOVE) and delete for good (UID EXPUNGE), sometimes after the server
  renumbered a folder (UIDVALIDITY changed): each action ends done exactly
  once, and no command names a UID that, in the folder's current numbering,
  is not a message the action meant (a "stale write");
- drafts: saves and discards (APPEND, then UID EXPUNGE of the copy replaced),
  and "Edit draft" on another client's draft, sometimes with the Drafts folder
  renumbered: the server ends with exactly one copy of a draft, its latest
  text, the draft it replaced gone and another client's draft untouched;
- sent: the Sent copy after sending (SEARCH, then APPEND): exactly one copy;
- and, on a server without MOVE, a move cut between its COPY and its EXPUNGE
  and done again: one copy in the target folder.

Totals (trials, cuts, lost, duplicated, stale writes) are printed, and kept
in bench/results/faults-<backend>.json when ``SALESINBOX_FAULT_TRIALS`` is set
(see tests/support/fault_trials.py).
"""

from __future__ import annotations

import asyncio
import email
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from salesinbox.adapters.db.tables import Draft, MailFolder, Message, MessageLocation, OutboundMessage
from salesinbox.adapters.imap.session import ImapError
from salesinbox.domain.errors import NotFound
from salesinbox.domain.labels import keyword_for
from salesinbox.services import actions, drafts, labels, outbox, sync
from salesinbox.services.drafts import DraftInput
from salesinbox.services.outbox import OutgoingMessage
from tests.rig.dovecot import Dovecot
from tests.rig.plugin import new_mailbox
from tests.support import mailboxes
from tests.support.fault_trials import (
    SEED,
    TOTAL,
    Auditor,
    FolderState,
    Totals,
    connect_through,
    flag_set,
    new_company,
    remote_writes,
    renumber,
    report,
    server_state,
    trials,
)
from tests.support.faulty_proxy import FaultyProxy

FOLDERS = ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive")  # every folder the sync reads on the rig
HANG = 30.0  # only a hang takes this long
PROMPT = 5.0

pytestmark = pytest.mark.timeout(max(300, TOTAL))


@pytest.fixture
def proxy(dovecot) -> Iterator[FaultyProxy]:
    with FaultyProxy(dovecot.imap_port, lifetime=max(600.0, TOTAL * 2.0)) as running:
        yield running


def letter(to: str, subject: str) -> bytes:
    return mailboxes.letter(to, subject, f"{subject}: a short note about the quote.", dated=True)


async def clean_pass(deps, account_id: uuid.UUID) -> None:
    """A sync pass without a fault; after one that saw a folder renumbered, another, as time would bring.

    The trials renumber folders often; passes that each find the same folder
    renumbered again stop the account (the loop guard, sync.MAX_RESETS): not
    what these trials are about.
    """
    report = await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)
    if any(folder.reset for folder in report.folders):
        await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)


class Cutter:
    """Arms the proxy at a random byte of an operation, drawn within what its last uninterrupted run exchanged."""

    def __init__(self, proxy: FaultyProxy, rng: random.Random) -> None:
        self.proxy, self.rng = proxy, rng
        self.sizes: dict[str, tuple[int, int]] = {}  # operation -> (server bytes, client bytes)

    def knows(self, operation: str) -> bool:
        return operation in self.sizes

    def arm(self, operation: str) -> dict:
        server, client = self.sizes[operation]
        where = (
            {"client_bytes": self.rng.randrange(max(1, client))}
            if self.rng.random() < 0.25
            else {"server_bytes": self.rng.randrange(max(1, server))}
        )
        self.proxy.reset_counters()
        self.proxy.arm(**where, rst=self.rng.random() < 0.75)
        return where

    def start_uncut(self) -> None:
        self.proxy.reset_counters()

    def measure(self, operation: str) -> None:
        """After an uninterrupted run: its size, for the next cuts."""
        stats = self.proxy.stats()
        self.sizes[operation] = (stats.server_bytes, stats.client_bytes)

    def disarm(self) -> bool:
        """True when the cut happened."""
        cut = self.proxy.stats().cuts > 0
        self.proxy.disarm()
        return cut


async def connections_closed(proxy: FaultyProxy) -> None:
    deadline = time.monotonic() + PROMPT
    while proxy.stats().open:
        assert time.monotonic() < deadline, f"connections left open: {proxy.stats()}"
        await asyncio.sleep(0.01)


async def local_state(deps, account_id: uuid.UUID) -> tuple[dict[str, dict[int, tuple[str, frozenset]]], Counter]:
    """The database's mirror of the account: per folder, UID -> (Message-ID, flags); and messages per Message-ID."""
    async with deps.reading() as db:
        rows = (
            await db.execute(
                select(MailFolder.name, MessageLocation.uid, Message.message_id_header, MessageLocation.flags)
                .join(
                    MailFolder,
                    (MailFolder.company_id == MessageLocation.company_id)
                    & (MailFolder.id == MessageLocation.folder_id),
                )
                .join(
                    Message,
                    (Message.company_id == MessageLocation.company_id) & (Message.id == MessageLocation.message_id),
                )
                .where(MessageLocation.account_id == account_id)
            )
        ).all()
        company = await db.scalar(select(MailFolder.company_id).where(MailFolder.account_id == account_id).limit(1))
        stored = Counter(await db.scalars(select(Message.message_id_header).where(Message.company_id == company)))
    folders: dict[str, dict[int, tuple[str, frozenset]]] = {}
    for name, uid, message_id, flags in rows:
        folders.setdefault(name, {})[uid] = (message_id, flag_set(flags.split()))
    return folders, stored


async def compare(deps, account_id: uuid.UUID, server: dict[str, FolderState]) -> tuple[int, int, list[str]]:
    """(lost, duplicated, other differences) between the database and the server, after a clean pass."""
    folders, stored = await local_state(deps, account_id)
    lost = duplicated = 0
    problems = []
    for name, state in server.items():
        here = folders.get(name, {})
        there = {uid: (seen.message_id, seen.flags) for uid, seen in state.messages.items()}
        lost += len(there.keys() - here.keys())
        duplicated += len(here.keys() - there.keys())
        problems += [
            f"{name} UID {uid}: here {here[uid]}, there {there[uid]}"
            for uid in here.keys() & there.keys()
            if here[uid] != there[uid]
        ]
    on_server = {seen.message_id for state in server.values() for seen in state.messages.values()}
    lost += len(on_server - stored.keys())
    duplicated += sum(count - 1 for count in stored.values() if count > 1)
    return lost, duplicated, problems


def copies(server: dict[str, FolderState]) -> Counter:
    """How many times each message is on the server, over every folder."""
    return Counter(key for state in server.values() for key in state.keys())


def tally(totals: Totals, context: str, lost: int, duplicated: int, stale: list[str], problems: list[str]) -> None:
    totals.lost += lost
    totals.duplicated += duplicated
    totals.stale_writes += len(stale)
    if lost or duplicated or stale or problems:
        totals.problems.append(f"{context}: lost {lost}, duplicated {duplicated}, stale {stale}, {problems}")


def finish(totals: Totals, backend: str) -> None:
    report(totals, backend)
    assert (totals.lost, totals.duplicated, totals.stale_writes) == (0, 0, 0), "\n".join(totals.problems[:5])
    assert not totals.problems, totals.problems[:5]
    assert totals.cuts >= totals.trials * 0.8, totals  # nearly every trial was cut, not run whole


def set_on_server(mailbox, folder: str, uid: int, flag: bytes, *, add: bool = True, expunge: bool = False) -> None:
    """Another mail client at work on the same mailbox."""
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        client.select_folder(folder)
        (client.add_flags if add else client.remove_flags)([uid], [flag], silent=True)
        if expunge:
            client.uid_expunge([uid])


# ---- SEARCH: incremental passes ----------------------------------------------------------


async def test_incremental_passes_cut_at_random_bytes_mirror_the_server_exactly(deps, backend, dovecot, mailbox, proxy):
    for i in range(5):
        dovecot.deliver(mailbox.address, letter(mailbox.address, f"Opening {i}"))
    account_id = await connect_through(deps, await new_company(deps), mailbox, proxy)
    rng, totals = random.Random(SEED + 1), Totals("search")
    cutter = Cutter(proxy, rng)
    await sync.sync_account_once(deps, account_id)
    cutter.start_uncut()
    await sync.sync_account_once(deps, account_id)  # nothing new: SELECTs, and SEARCH where something changed
    cutter.measure("pass")

    for trial in range(trials("search")):
        # Another client and the world at work meanwhile: new mail, a flag, an expunge.
        for n in range(rng.randrange(3)):
            dovecot.deliver(mailbox.address, letter(mailbox.address, f"Trial {trial}.{n}"))
        inbox = server_state(mailbox, ["INBOX"])["INBOX"]
        if inbox.messages and rng.random() < 0.4:
            set_on_server(mailbox, "INBOX", rng.choice(sorted(inbox.messages)), rng.choice([b"\\Seen", b"\\Flagged"]))
        if len(inbox.messages) > 4 and rng.random() < 0.2:
            set_on_server(mailbox, "INBOX", min(inbox.messages), b"\\Deleted", expunge=True)
        # Cuts anywhere in the pass: most of its bytes are the SELECTs' and SEARCH's answers and the new mail.
        where = cutter.arm("pass")
        try:
            await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)
        except sync.SyncFailed:
            totals.failed += 1
        totals.trials += 1
        totals.cuts += cutter.disarm()
        writes = proxy.transcripts()
        await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)
        server = server_state(mailbox, FOLDERS)
        lost, duplicated, problems = await compare(deps, account_id, server)
        stale = remote_writes(writes)  # a sync pass writes nothing at all
        tally(totals, f"trial {trial}, a cut after {where}", lost, duplicated, stale, problems)
        await connections_closed(proxy)
    finish(totals, backend)


# ---- STORE, MOVE, EXPUNGE: two-way actions -------------------------------------------------

LABELS = ("Hot", "Cold")


async def conversation_of(deps, account_id: uuid.UUID, message_id: str) -> uuid.UUID | None:
    async with deps.reading() as db:
        return await db.scalar(
            select(Message.conversation_id)
            .join(
                MessageLocation,
                (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id),
            )
            .where(MessageLocation.account_id == account_id, Message.message_id_header == message_id)
            .limit(1)
        )


def choose_action(rng: random.Random, folder: str, flags: frozenset[str]) -> str:
    choices = {
        "INBOX": ["archive", "trash", "read", "unread", "label"],
        "Archive": ["unarchive", "trash", "read", "label"],
        "Trash": ["restore", "delete"],
    }[folder]
    return rng.choice(choices)


def intended(action: str, label: str | None, folder: str, flags: frozenset[str]) -> tuple[str | None, frozenset]:
    """Where the message should end, with which flags (folder None: deleted for good)."""
    keywords = {keyword_for(name) for name in LABELS}
    moves = {"archive": "Archive", "unarchive": "INBOX", "trash": "Trash", "restore": "INBOX", "delete": None}
    if action in moves:
        return moves[action], flags
    if action in ("read", "unread"):
        return folder, flags | {"\\Seen"} if action == "read" else flags - {"\\Seen"}
    return folder, (flags - keywords) | ({keyword_for(label)} if label else set())


async def act(deps, actor, conversation_id: uuid.UUID, action: str, label: str | None):
    if action == "label":
        return await labels.set_labels(deps, actor, conversation_id, [label] if label else [])
    if action == "delete":
        return await actions.trash(deps, actor, conversation_id)  # in Trash only: for good
    return await actions.act_on_many(deps, actor, action, [conversation_id])


def where_is(server: dict[str, FolderState], message_id: str) -> list[tuple[str, frozenset]]:
    return [
        (name, seen.flags)
        for name, state in server.items()
        for seen in state.messages.values()
        if seen.message_id == message_id
    ]


async def test_actions_cut_at_random_bytes_end_done_once_and_never_write_with_stale_uids(
    deps, backend, dovecot, mailbox, proxy
):
    for i in range(6):
        dovecot.deliver(mailbox.address, letter(mailbox.address, f"Deal {i}"))
    actor = await new_company(deps)
    account_id = await connect_through(deps, actor, mailbox, proxy)
    await sync.sync_account_once(deps, account_id)
    rng, totals = random.Random(SEED + 2), Totals("actions")
    cutter, auditor = Cutter(proxy, rng), Auditor(mailbox)
    server = auditor.state(FOLDERS)
    expected = {
        seen.message_id: (name, seen.flags) for name, state in server.items() for seen in state.messages.values()
    }

    trial = 0
    while totals.trials < trials("actions"):
        trial += 1
        if len(expected) < 5:  # deleted for good: new mail keeps the mailbox busy
            dovecot.deliver(mailbox.address, letter(mailbox.address, f"Deal {trial}"))
            await clean_pass(deps, account_id)
            server = auditor.state(FOLDERS)
            expected.update(
                {
                    seen.message_id: ("INBOX", seen.flags)
                    for seen in server["INBOX"].messages.values()
                    if seen.message_id not in expected
                }
            )
        message_id = rng.choice(sorted(expected))
        folder, flags = expected[message_id]
        action = choose_action(rng, folder, flags)
        label = rng.choice([*LABELS, None]) if action == "label" else None
        goal = intended(action, label, folder, flags)
        conversation_id = await conversation_of(deps, account_id, message_id)
        renumbered = [name for name in ("Archive", "Trash") if server[name].messages]
        before = server  # as the last trial left it
        context = f"trial {trial}: {action} {label or ''} of {message_id} in {folder}"
        if renumbered and rng.random() < 0.15:  # the server renumbers a folder before the action
            renumbered = rng.choice(renumbered)
            context += f", {renumbered} renumbered"
            renumber(mailbox, renumbered)
            totals.renumbered += 1
            before = auditor.state(FOLDERS)
        cut = cutter.knows(action)
        if cut:
            context += f", a cut after {cutter.arm(action)}"
        else:
            cutter.start_uncut()
        error = None
        try:
            await asyncio.wait_for(act(deps, actor, conversation_id, action, label), HANG)
            if not cut:
                cutter.measure(action)
        except ImapError as exc:
            totals.failed += 1
            error = exc
        except NotFound:  # not where it should be: an earlier trial went wrong (and said so)
            cutter.disarm()
            totals.problems.append(f"{context}: not found")
            expected[message_id] = next(iter(where_is(server, message_id)), (None, frozenset()))
            if expected[message_id][0] is None:
                expected.pop(message_id)
            continue
        if cut:
            totals.trials += 1
            totals.cuts += cutter.disarm()
        if error is not None and not proxy.stats().cuts:
            totals.problems.append(f"{context}: failed without a cut: {error} {proxy.stats()}")
        stale = auditor.stale(proxy.transcripts(), before, {message_id})

        # What comes next without a fault: the user clicks again at once, or after the next pass,
        # if it is not done yet (as the list shows it then); and the next pass.
        if rng.random() < 0.5:
            await clean_pass(deps, account_id)
        server = auditor.state(FOLDERS)
        if where_is(server, message_id) != ([goal] if goal[0] else []):
            conversation_id = await conversation_of(deps, account_id, message_id)
            proxy.reset_counters()
            try:
                await asyncio.wait_for(act(deps, actor, conversation_id, action, label), HANG)
            except NotFound:  # the list no longer shows it: nothing to click
                pass
            stale += auditor.stale(proxy.transcripts(), server, {message_id})
        await clean_pass(deps, account_id)
        server = auditor.state(FOLDERS)
        if where_is(server, message_id) != ([goal] if goal[0] else []):  # the click after the pass
            conversation_id = await conversation_of(deps, account_id, message_id)
            proxy.reset_counters()
            await asyncio.wait_for(act(deps, actor, conversation_id, action, label), HANG)
            stale += auditor.stale(proxy.transcripts(), server, {message_id})
            await clean_pass(deps, account_id)
            server = auditor.state(FOLDERS)

        if goal[0] is None:
            expected.pop(message_id)
        else:
            expected[message_id] = goal
        now = {
            seen.message_id: (name, seen.flags) for name, state in server.items() for seen in state.messages.values()
        }
        lost, duplicated, problems = await compare(deps, account_id, server)
        lost += len(expected.keys() - now.keys())
        duplicated += sum(count - 1 for count in copies(server).values() if count > 1)
        problems += [
            f"{m}: expected {expected[m]}, on the server {now[m]}"
            for m in expected.keys() & now.keys()
            if expected[m] != now[m]
        ]
        problems += [f"{m} on the server, deleted for good here" for m in now.keys() - expected.keys()]
        tally(totals, context, lost, duplicated, stale, problems)
        await connections_closed(proxy)
    totals.writes = auditor.writes
    finish(totals, backend)


# ---- APPEND: drafts -------------------------------------------------------------------------


async def draft_copies(mailbox) -> list[tuple[int, str | None, bytes]]:
    """(UID, X-Salesinbox-Draft, body) of every message in Drafts."""
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        client.select_folder("Drafts", readonly=True)
        data = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
    found = []
    for uid, d in sorted(data.items()):
        raw = d[b"BODY[]"]
        header = next(
            (
                line.split(b":", 1)[1].strip().decode()
                for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n")
                if line.lower().startswith(b"x-salesinbox-draft:")
            ),
            None,
        )
        found.append((uid, header, raw))
    return found


async def adopt(deps, actor, account_id: uuid.UUID, mailbox) -> tuple[uuid.UUID, str]:
    """Another mail client saves a draft; after a pass, it is opened for editing here. (Draft id, its Message-ID.)"""
    raw = letter(mailbox.address, "A draft begun elsewhere")
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        client.append("Drafts", raw, flags=[b"\\Draft"])
    await clean_pass(deps, account_id)
    message_id = str(email.message_from_bytes(raw)["Message-ID"]).strip("<>")
    async with deps.reading() as db:
        stored = await db.scalar(
            select(Message.id).where(Message.company_id == actor.company_id, Message.message_id_header == message_id)
        )
    return await drafts.edit_synced_draft(deps, actor, stored), message_id


async def settle_company(deps, company_id: uuid.UUID) -> None:
    """The outbox worker's chore, for this company's drafts only, until nothing is left to file or remove."""
    for _ in range(5):
        if not await drafts.settle(deps, company_id=company_id):
            return
    raise AssertionError("drafts still unsettled after five rounds without a fault")


async def test_draft_saves_and_discards_cut_at_random_bytes_leave_exactly_the_latest_copy(
    deps, backend, dovecot, mailbox, proxy
):
    actor = await new_company(deps)
    account_id = await connect_through(deps, actor, mailbox, proxy)
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)  # another mail client's draft: never touched
        client.append("Drafts", letter(mailbox.address, "Their own draft"), flags=[b"\\Draft"])
    await sync.sync_account_once(deps, account_id)
    bystander = next(iter(server_state(mailbox, ["Drafts"])["Drafts"].messages.values())).message_id
    rng, totals = random.Random(SEED + 3), Totals("drafts")
    cutter, auditor = Cutter(proxy, rng), Auditor(mailbox)
    draft_id: uuid.UUID | None = None
    text = ""
    before = None

    trial = 0
    while totals.trials < trials("drafts"):
        trial += 1
        action = "discard" if draft_id is not None and rng.random() < 0.2 else "save"
        adopted = None
        if draft_id is None and rng.random() < 0.4:  # "Edit draft" on another client's draft: the save replaces it
            adopted = await adopt(deps, actor, account_id, mailbox)
            draft_id, before = adopted[0], None
        if before is None or rng.random() < 0.15:
            if before is not None or (adopted and rng.random() < 0.5):
                renumber(mailbox, "Drafts")
                totals.renumbered += 1
            before = auditor.state(["Drafts"])
        cut = cutter.knows(action)
        where = cutter.arm(action) if cut else cutter.start_uncut()
        context = f"trial {trial}: {action} of draft {draft_id} {adopted or ''}, a cut after {where}"
        if action == "save":
            text = f"Version {trial}: the price is {rng.randrange(1000, 9999)} EUR."
            view = await asyncio.wait_for(
                drafts.save_draft(
                    deps,
                    actor,
                    draft_id,
                    DraftInput(account_id, to="buyer@customer.example", subject="Our quote", text=text),
                ),
                HANG,
            )
            draft_id, done = view.id, view.on_server
        else:
            done = await asyncio.wait_for(drafts.discard_draft(deps, actor, draft_id), HANG)
        if cut:
            totals.trials += 1
            totals.cuts += cutter.disarm()
            totals.failed += not done
        elif done:
            cutter.measure(action)
        meant = {f"draft:{draft_id}", *([adopted[1]] if adopted else [])}
        stale = auditor.stale(proxy.transcripts(), before, meant)

        before = auditor.state(["Drafts"])
        proxy.reset_counters()
        await asyncio.wait_for(settle_company(deps, actor.company_id), HANG)
        stale += auditor.stale(proxy.transcripts(), before, meant)

        before = auditor.state(["Drafts"])  # and the next trial's starting point
        in_drafts = await draft_copies(mailbox)
        ours = [(uid, raw) for uid, header, raw in in_drafts if header == str(draft_id)]
        others = [raw for _uid, header, raw in in_drafts if header != str(draft_id)]
        problems = []
        async with deps.reading() as db:
            row = await db.get(Draft, (actor.company_id, draft_id))
        if action == "discard":
            lost, duplicated = 0, len(ours)
            problems += ["the row outlived its discard"] if row is not None else []
            draft_id = None
        else:
            lost, duplicated = int(not ours), max(0, len(ours) - 1)
            if ours and text.encode() not in ours[-1][1]:
                problems.append("the copy on the server is not the latest text")
            if row is None or row.server_state != "saved" or (ours and row.server_uid != ours[-1][0]):
                problems.append(f"the row does not point at the copy: {row and (row.server_state, row.server_uid)}")
        if [bystander.encode() in raw for raw in others] != [True]:  # untouched, and the adopted one replaced
            problems.append(f"other drafts than the other client's own in Drafts: {len(others)}")
            duplicated += max(0, len(others) - 1)  # an adopted draft left beside the copy that replaced it
            lost += not any(bystander.encode() in raw for raw in others)
        tally(totals, context, lost, duplicated, stale, problems)
        await connections_closed(proxy)
    totals.writes = auditor.writes
    finish(totals, backend)


# ---- APPEND: the Sent copy ------------------------------------------------------------------


async def test_sent_copies_cut_at_random_bytes_are_filed_exactly_once(
    deps, backend, dovecot, mailbox, mailbox_factory, proxy
):
    peer = mailbox_factory()
    actor = await new_company(deps)
    account_id = await connect_through(deps, actor, mailbox, proxy)
    await sync.sync_account_once(deps, account_id)
    rng, totals = random.Random(SEED + 4), Totals("sent")
    cutter = Cutter(proxy, rng)

    trial = 0
    while totals.trials < trials("sent"):
        trial += 1
        queued = await outbox.enqueue(
            deps,
            actor,
            OutgoingMessage(account_id, to=[peer.address], subject=f"Quote {trial}", text="The quote, as discussed."),
        )
        cut = cutter.knows("file")
        where = cutter.arm("file") if cut else cutter.start_uncut()
        assert await asyncio.wait_for(outbox.deliver(deps, actor.company_id, queued.id), HANG) == "sent"
        async with deps.reading() as db:
            row = await db.get(OutboundMessage, (actor.company_id, queued.id))
        if cut:
            totals.trials += 1
            totals.cuts += cutter.disarm()
            totals.failed += row.sent_copy == "pending"
        elif row.sent_copy == "appended":
            cutter.measure("file")
        stale = remote_writes(proxy.transcripts())  # filing a copy writes no UID
        proxy.reset_counters()
        await asyncio.wait_for(outbox.recover(deps, account_id=account_id), HANG)  # the worker files what is pending
        stale += remote_writes(proxy.transcripts())

        async with deps.reading() as db:
            row = await db.get(OutboundMessage, (actor.company_id, queued.id))
        sent = Counter(server_state(mailbox, ["Sent"])["Sent"].keys())
        message_id = row.message_id_header.strip("<>")
        problems = [] if row.sent_copy == "appended" else [f"sent_copy is {row.sent_copy}"]
        tally(
            totals,
            f"trial {trial}: a cut after {where}",
            int(not sent[message_id]),
            sum(c - 1 for c in sent.values() if c > 1),
            stale,
            problems,
        )
        await connections_closed(proxy)

    await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)
    lost, duplicated, problems = await compare(deps, account_id, server_state(mailbox, FOLDERS))
    tally(totals, "the pass after the trials", lost, duplicated, [], problems)
    finish(totals, backend)


# ---- the audit itself ---------------------------------------------------------------------


def test_the_audit_catches_a_write_with_a_uid_of_an_earlier_numbering(mailbox, proxy):
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        for i in range(3):
            client.append("Archive", letter(mailbox.address, f"Audit {i}"))
    auditor = Auditor(mailbox)
    before = auditor.state(["Archive"])
    oldest, *_ = sorted(before["Archive"].messages)
    meant = {before["Archive"].messages[oldest].message_id}
    renumber(mailbox, "Archive")
    after = auditor.state(["Archive"])
    now = next(uid for uid, seen in after["Archive"].messages.items() if seen.message_id in meant)
    assert now != oldest and after["Archive"].uidvalidity != before["Archive"].uidvalidity

    for uid, expected in [(now, []), (oldest, [f"STORE UID {oldest} in Archive named "])]:
        proxy.reset_counters()
        with IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=10) as client:
            client.login(mailbox.login, mailbox.password)
            client.select_folder("Archive")
            client.add_flags([uid], [b"\\Flagged"], silent=True)
        found = auditor.stale(proxy.transcripts(), after, meant)
        assert [text[: len(expected[0])] for text in found] == expected
    assert auditor.writes == 2


# ---- a server without MOVE: COPY, then EXPUNGE ------------------------------------------------

NO_MOVE = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS SPECIAL-USE NAMESPACE CONDSTORE QRESYNC"


@pytest.fixture(scope="module")
def dovecot_without_move() -> Iterator[Dovecot]:
    with Dovecot(capabilities=NO_MOVE) as server:
        yield server


async def test_a_move_cut_between_its_copy_and_its_expunge_is_not_copied_twice_when_done_again(
    deps, dovecot_without_move, smtp_server
):
    server = dovecot_without_move
    box = new_mailbox(server, smtp_server)
    # Message-IDs of one length: the cut is placed by counting bytes of commands that name them.
    for n, subject in enumerate(("A first deal", "A second deal")):
        message = email.message_from_bytes(letter(box.address, subject))
        message.replace_header("Message-ID", f"<deal-{n}@customer.example>")
        server.deliver(box.address, bytes(message))
    with FaultyProxy(server.imap_port) as proxy:
        actor = await new_company(deps)
        account_id = await connect_through(deps, actor, box, proxy)
        await sync.sync_account_once(deps, account_id)
        auditor = Auditor(box)
        first, second = (seen.message_id for _, seen in sorted(auditor.state(["INBOX"])["INBOX"].messages.items()))

        # Where, in what the client sends, the COPY ends and the EXPUNGE's STORE begins.
        proxy.reset_counters()
        await actions.archive(deps, actor, await conversation_of(deps, account_id, first))
        sent = proxy.transcripts()[0]
        assert b" UID COPY " in sent and b" UID MOVE " not in sent
        copied = sent.rindex(b"\r\n", 0, sent.index(b" UID STORE ")) + 2

        for retry_at_once in (True, False):  # the user clicks again at once, or after the next pass
            await sync.sync_account_once(deps, account_id)
            before = auditor.state(["INBOX", "Archive"])
            proxy.reset_counters()
            proxy.arm(client_bytes=copied)
            with pytest.raises(ImapError):
                await actions.archive(deps, actor, await conversation_of(deps, account_id, second))
            proxy.disarm()
            stale = auditor.stale(proxy.transcripts(), before, {second})
            there = auditor.state(["INBOX", "Archive"])
            assert [s.message_id for s in there["Archive"].messages.values()].count(second) == 1  # copied, once
            if not retry_at_once:
                await sync.sync_account_once(deps, account_id)
            proxy.reset_counters()
            await actions.archive(deps, actor, await conversation_of(deps, account_id, second))
            stale += auditor.stale(proxy.transcripts(), there, {second})
            await sync.sync_account_once(deps, account_id)
            final = auditor.state(["INBOX", "Archive"])
            assert sorted(s.message_id for s in final["Archive"].messages.values()) == sorted([first, second])
            assert not final["INBOX"].messages and not stale
            lost, duplicated, problems = await compare(deps, account_id, final)
            assert (lost, duplicated, problems) == (0, 0, [])
            # Back to the Inbox for the second round, as it was.
            await actions.unarchive(deps, actor, await conversation_of(deps, account_id, second))
