"""Two-way actions against a real Dovecot: what the user does here happens on the server, and
never with UIDs of a stale numbering."""

from __future__ import annotations

from sqlalchemy import update

from salesinbox.adapters.db.tables import MailFolder
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
