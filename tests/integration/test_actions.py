"""Two-way actions against a real Dovecot: what the user does here happens on the server, and
never with UIDs of a stale numbering."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from salesinbox.adapters.db.tables import MailFolder
from salesinbox.domain.errors import NotFound
from salesinbox.services import actions, conversations, sync
from tests.integration.test_outbox import connect
from tests.integration.test_sync import imap, mail


def server_flags(box, folder: str) -> dict[str, set[bytes]]:
    with imap(box) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        if not uids:
            return {}
        data = client.fetch(uids, [b"FLAGS", b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        return {d[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip(): set(d[b"FLAGS"])
                for d in data.values()}


async def _one(deps, tenant, dovecot, box, subject: str):
    dovecot.deliver(box.address, mail(box.address, subject, "body")[0])
    account_id = await connect(deps, tenant, box)
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    return account_id, summary.id


async def test_read_and_unread_are_set_on_the_server(deps, tenant, dovecot, mailbox):
    _, conversation = await _one(deps, tenant, dovecot, mailbox, "Read me")

    await actions.set_read(deps, tenant.admin, conversation, True)
    assert b"\\Seen" in server_flags(mailbox, "INBOX")["Read me"]
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    assert not summary.unread
    unread, read = conversations.Filters(unread=True), conversations.Filters(unread=False)
    assert await conversations.list_conversations(deps, tenant.admin, folder="inbox", filters=unread) == []
    assert len(await conversations.list_conversations(deps, tenant.admin, folder="inbox", filters=read)) == 1

    await actions.set_read(deps, tenant.admin, conversation, False)
    assert b"\\Seen" not in server_flags(mailbox, "INBOX")["Read me"]


async def test_archive_delete_restore_and_delete_forever_move_mail_on_the_server(deps, tenant, dovecot, mailbox):
    account_id, conversation = await _one(deps, tenant, dovecot, mailbox, "Move me")

    await actions.archive(deps, tenant.admin, conversation)
    assert "Move me" not in server_flags(mailbox, "INBOX") and "Move me" in server_flags(mailbox, "Archive")
    await sync.sync_account_once(deps, account_id)
    assert [c.subject for c in await conversations.list_conversations(deps, tenant.admin, folder="archive")] == [
        "Move me"]

    await actions.trash(deps, tenant.admin, conversation)
    assert "Move me" in server_flags(mailbox, "Trash") and "Move me" not in server_flags(mailbox, "Archive")
    await sync.sync_account_once(deps, account_id)

    await actions.restore(deps, tenant.admin, conversation)
    assert "Move me" in server_flags(mailbox, "INBOX")
    await sync.sync_account_once(deps, account_id)

    await actions.trash(deps, tenant.admin, conversation)
    await sync.sync_account_once(deps, account_id)
    await actions.trash(deps, tenant.admin, conversation)  # in Trash only: deleted for good
    assert "Move me" not in server_flags(mailbox, "Trash") and "Move me" not in server_flags(mailbox, "INBOX")


async def test_a_stale_uidvalidity_means_nothing_is_written(deps, tenant, dovecot, mailbox):
    _, conversation = await _one(deps, tenant, dovecot, mailbox, "Renumbered folder")
    async with deps.writing() as db:
        inbox = (MailFolder.name == "INBOX", MailFolder.company_id == tenant.company_id)
        await db.execute(update(MailFolder).where(*inbox).values(uidvalidity=MailFolder.uidvalidity + 1))

    report = await actions.archive(deps, tenant.admin, conversation)

    assert report.changed == 0 and report.skipped_folders == ["INBOX"]
    assert "Renumbered folder" in server_flags(mailbox, "INBOX")


async def _subjects(deps, tenant, folder: str) -> list[str]:
    return sorted(c.subject for c in await conversations.list_conversations(deps, tenant.admin, folder=folder))


async def test_a_move_is_listed_where_it_went_and_undone_at_once_without_waiting_for_a_sync(
        deps, tenant, dovecot, mailbox):
    for subject in ("First to go", "Second to go"):
        dovecot.deliver(mailbox.address, mail(mailbox.address, subject, "body")[0])
    account_id = await connect(deps, tenant, mailbox)
    ids = [c.id for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")]

    await actions.act_on_many(deps, tenant.admin, "archive", ids)
    assert await _subjects(deps, tenant, "archive") == ["First to go", "Second to go"]  # COPYUID: known at once
    assert await _subjects(deps, tenant, "inbox") == []
    await actions.act_on_many(deps, tenant.admin, "unarchive", ids)  # the undo, before any sync pass
    assert set(server_flags(mailbox, "INBOX")) == {"First to go", "Second to go"}
    assert server_flags(mailbox, "Archive") == {}
    await actions.trash(deps, tenant.admin, ids[0])
    await actions.restore(deps, tenant.admin, ids[0])
    assert set(server_flags(mailbox, "INBOX")) == {"First to go", "Second to go"}

    await sync.sync_account_once(deps, account_id)  # the pass agrees with what was recorded: no duplicates
    assert await _subjects(deps, tenant, "inbox") == ["First to go", "Second to go"]
    assert await _subjects(deps, tenant, "archive") == await _subjects(deps, tenant, "trash") == []
    [first] = [c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")
               if c.id == ids[0]]
    assert first.message_count == 1


async def test_acting_on_many_does_nothing_when_one_conversation_is_not_the_actors(deps, tenant, dovecot, mailbox):
    _, conversation = await _one(deps, tenant, dovecot, mailbox, "Keep me here")

    with pytest.raises(NotFound):
        await actions.act_on_many(deps, tenant.admin, "archive", [conversation, uuid.uuid4()])
    with pytest.raises(NotFound):
        await actions.act_on_many(deps, tenant.admin, "explode", [conversation])

    assert "Keep me here" in server_flags(mailbox, "INBOX")
    await actions.act_on_many(deps, tenant.admin, "read", [conversation, conversation])
    assert b"\\Seen" in server_flags(mailbox, "INBOX")["Keep me here"]


async def test_a_pass_that_listed_a_folder_before_a_move_stores_the_moved_message_without_failing(
        deps, tenant, dovecot, mailbox):
    """The race: the move records the message's new place, and a pass that fetched that place too stores it."""
    from sqlalchemy import func, select

    from salesinbox.adapters.db.tables import MailFolder, MessageLocation
    from salesinbox.mime.parse import parse_message
    from salesinbox.services.mail_store import Arrival, MailStore

    raw = mail(mailbox.address, "Moved meanwhile", "body")[0]
    dovecot.deliver(mailbox.address, raw)
    account_id = await connect(deps, tenant, mailbox)
    [conversation] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    await actions.archive(deps, tenant.admin, conversation.id)  # recorded in Archive at once (COPYUID)
    async with deps.reading() as db:
        folder = await db.scalar(select(MailFolder).where(
            MailFolder.account_id == account_id, MailFolder.role == "archive"))
        uid = await db.scalar(select(MessageLocation.uid).where(MessageLocation.folder_id == folder.id))
    parsed = parse_message(raw)
    async with deps.writing() as db:  # what the pass that listed Archive before the move now stores
        await MailStore(db, tenant.company_id, account_id).store(
            folder.id, folder.uidvalidity, [Arrival(uid, (), None, parsed, "raw/x", len(raw))])
    async with deps.reading() as db:
        count = await db.scalar(select(func.count()).select_from(MessageLocation).where(
            MessageLocation.folder_id == folder.id))
    assert count == 1
