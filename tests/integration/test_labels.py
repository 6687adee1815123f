"""Labels against a real Dovecot, on both databases: kept as IMAP keywords, followed from other mail clients,
never written with UIDs of a stale numbering."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import update

from salesinbox.adapters.db.tables import MailFolder
from salesinbox.domain.errors import Conflict, NotFound
from salesinbox.services import conversations, labels, sync
from tests.integration.test_actions import server_flags
from tests.integration.test_outbox import connect
from tests.integration.test_sync import imap, mail


async def _one(deps, tenant, dovecot, box, subject: str):
    dovecot.deliver(box.address, mail(box.address, subject, "body")[0])
    account_id = await connect(deps, tenant, box)
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    return account_id, summary.id


async def _labels_on(deps, tenant, conversation_id) -> list[str]:
    return (await conversations.get_conversation(deps, tenant.admin, conversation_id)).labels


def _label_filter(name: str) -> conversations.Filters:
    return conversations.Filters(label=name)


async def test_adding_and_removing_a_label_writes_and_removes_the_keyword_on_the_server(
        deps, tenant, dovecot, mailbox):
    _, conversation = await _one(deps, tenant, dovecot, mailbox, "Quote for Acme")

    report = await labels.set_labels(deps, tenant.admin, conversation, ["Hot lead", "Q4"])

    assert report.labels == ["Hot lead", "Q4"] and report.changed == 1 and report.skipped_folders == []
    assert {b"Hot_lead", b"Q4"} <= server_flags(mailbox, "INBOX")["Quote for Acme"]
    assert [label.name for label in await labels.list_labels(deps, tenant.admin)] == ["Hot lead", "Q4"]
    listed = await conversations.list_conversations(
        deps, tenant.admin, folder="inbox", filters=_label_filter("hot LEAD"))
    assert [c.labels for c in listed] == [["Hot lead", "Q4"]]

    await labels.set_labels(deps, tenant.admin, conversation, ["Q4"])

    flags = server_flags(mailbox, "INBOX")["Quote for Acme"]
    assert b"Hot_lead" not in flags and b"Q4" in flags
    assert await conversations.list_conversations(
        deps, tenant.admin, folder="inbox", filters=_label_filter("Hot lead")) == []
    assert await _labels_on(deps, tenant, conversation) == ["Q4"]


async def test_a_keyword_set_by_another_client_shows_as_the_label_after_a_sync_pass(deps, tenant, dovecot, mailbox):
    account_id, conversation = await _one(deps, tenant, dovecot, mailbox, "From Thunderbird")
    await labels.create_label(deps, tenant.admin, "Customer")
    with imap(mailbox) as client:
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        client.add_flags(uids, [b"customer", b"Follow_up", b"$Forwarded", b"NonJunk", b"$MDNSent"])

    await sync.sync_account_once(deps, account_id)  # incremental: QRESYNC on this Dovecot

    assert await _labels_on(deps, tenant, conversation) == ["Customer", "Follow up"]  # matched case-insensitively
    assert {label.name for label in await labels.list_labels(deps, tenant.admin)} == {"Customer", "Follow up"}

    with imap(mailbox) as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search(["ALL"]), [b"customer"])
    await sync.sync_account_once(deps, account_id)

    assert await _labels_on(deps, tenant, conversation) == ["Follow up"]


@pytest.fixture(params=["qresync", "plain"])
def server(request, dovecot, smtp_server):
    from tests.rig.plugin import new_mailbox

    imap_server = dovecot if request.param == "qresync" else request.getfixturevalue("dovecot_plain")
    return imap_server, new_mailbox(imap_server, smtp_server)


async def test_keywords_arrive_on_new_mail_and_without_condstore(deps, tenant, server):
    imap_server, box = server
    account_id, conversation = await _one(deps, tenant, imap_server, box, "Plain server")
    with imap(box) as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(["ALL"]), [b"Renewal"])
        client.append("Archive", mail(box.address, "Arrives labelled", "body")[0], flags=[b"Renewal"])

    await sync.sync_account_once(deps, account_id)

    assert await _labels_on(deps, tenant, conversation) == ["Renewal"]
    archived = await conversations.list_conversations(
        deps, tenant.admin, folder="archive", filters=_label_filter("renewal"))
    assert [(c.subject, c.labels) for c in archived] == [("Arrives labelled", ["Renewal"])]


async def test_renaming_keeps_the_conversations_labels_and_the_keyword_on_the_server(deps, tenant, dovecot, mailbox):
    account_id, conversation = await _one(deps, tenant, dovecot, mailbox, "Renamed label")
    await labels.set_labels(deps, tenant.admin, conversation, ["Trial"])
    [trial] = await labels.list_labels(deps, tenant.admin)

    renamed = await labels.rename_label(deps, tenant.admin, trial.id, "Paid pilot")
    await sync.sync_account_once(deps, account_id)

    assert renamed.keyword == trial.keyword == "Trial"
    assert await _labels_on(deps, tenant, conversation) == ["Paid pilot"]
    assert b"Trial" in server_flags(mailbox, "INBOX")["Renamed label"]
    await labels.create_label(deps, tenant.admin, "Other")
    with pytest.raises(Conflict):
        await labels.rename_label(deps, tenant.admin, trial.id, "other")


async def test_a_deleted_label_is_not_made_again_from_its_keyword(deps, tenant, dovecot, mailbox):
    account_id, conversation = await _one(deps, tenant, dovecot, mailbox, "Deleted label")
    await labels.set_labels(deps, tenant.admin, conversation, ["Old campaign"])
    [label] = await labels.list_labels(deps, tenant.admin)

    await labels.delete_label(deps, tenant.admin, label.id)
    dovecot.deliver(mailbox.address, mail(mailbox.address, "Deleted label 2", "body")[0])
    with imap(mailbox) as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(["ALL"]), [b"Old_campaign"])
    await sync.sync_account_once(deps, account_id)

    assert await labels.list_labels(deps, tenant.admin) == []
    assert await _labels_on(deps, tenant, conversation) == []
    revived = await labels.create_label(deps, tenant.admin, "old campaign")
    assert revived.keyword == "Old_campaign"


async def test_a_stale_uidvalidity_is_never_written(deps, tenant, dovecot, mailbox):
    _, conversation = await _one(deps, tenant, dovecot, mailbox, "Renumbered")
    async with deps.writing() as db:
        inbox = (MailFolder.name == "INBOX", MailFolder.company_id == tenant.company_id)
        await db.execute(update(MailFolder).where(*inbox).values(uidvalidity=MailFolder.uidvalidity + 1))

    report = await labels.set_labels(deps, tenant.admin, conversation, ["Renumbered"])

    assert report.changed == 0 and report.skipped_folders == ["INBOX"]
    assert not {f for f in server_flags(mailbox, "INBOX")["Renumbered"] if not f.startswith(b"\\")}
    assert report.labels == ["Renumbered"]  # kept here; the server copy waits for the next change after a sync


class _NoKeywords:
    """The real session, but the folder's PERMANENTFLAGS lack \\* (Dovecot always allows keywords)."""

    def __init__(self, session) -> None:
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    def connect(self):
        self._session.connect()
        return self

    def open_for_keywords(self, folder: str) -> tuple[int, bool]:
        return self._session.open_for_keywords(folder)[0], False


async def test_a_folder_that_takes_no_keywords_keeps_the_label_here_and_says_so(deps, tenant, dovecot, mailbox):
    account_id, conversation = await _one(deps, tenant, dovecot, mailbox, "No keywords")
    plain = dataclasses.replace(deps, open_mailbox=lambda login: _NoKeywords(deps.open_mailbox(login)))

    report = await labels.set_labels(plain, tenant.admin, conversation, ["Local only"])

    assert report.folders_without_keywords == ["INBOX"] and report.changed == 0
    assert not {f for f in server_flags(mailbox, "INBOX")["No keywords"] if not f.startswith(b"\\")}
    assert report.labels == ["Local only"] and await _labels_on(deps, tenant, conversation) == ["Local only"]
    with imap(mailbox) as client:  # another client changes the flags: the pass looks at them again
        client.select_folder("INBOX")
        client.add_flags(client.search(["ALL"]), [b"\\Flagged"])
    await sync.sync_account_once(deps, account_id)
    assert await _labels_on(deps, tenant, conversation) == ["Local only"]  # a pass does not take it off


async def test_bulk_labelling_does_nothing_when_one_conversation_is_not_the_actors(deps, tenant, dovecot, mailbox):
    for subject in ("Bulk one", "Bulk two"):
        dovecot.deliver(mailbox.address, mail(mailbox.address, subject, "body")[0])
    await connect(deps, tenant, mailbox)
    ids = [c.id for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")]
    label = await labels.create_label(deps, tenant.admin, "Batch")

    with pytest.raises(NotFound):
        await labels.label_many(deps, tenant.admin, [*ids, tenant.admin.user_id], label.id, add=True)
    await labels.label_many(deps, tenant.admin, ids, label.id, add=True)

    assert all(b"Batch" in flags for flags in server_flags(mailbox, "INBOX").values())
    listed = await conversations.list_conversations(deps, tenant.admin, folder="inbox", filters=_label_filter("Batch"))
    assert len(listed) == 2
    await labels.label_many(deps, tenant.admin, ids[:1], label.id, add=False)
    listed = await conversations.list_conversations(deps, tenant.admin, folder="inbox", filters=_label_filter("Batch"))
    assert [c.id for c in listed] == ids[1:]


async def test_a_late_message_joining_two_threads_keeps_the_labels_of_both(deps, tenant, dovecot, mailbox):
    first, first_id = mail(mailbox.address, "Pricing", "body", day=1)
    second, second_id = mail(mailbox.address, "Contract", "body", day=2)
    for raw in (first, second):
        dovecot.deliver(mailbox.address, raw)
    account_id = await connect(deps, tenant, mailbox)
    by_subject = {c.subject: c.id for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")}
    await labels.set_labels(deps, tenant.admin, by_subject["Pricing"], ["Pricing talks"])
    await labels.set_labels(deps, tenant.admin, by_subject["Contract"], ["Legal"])

    dovecot.deliver(mailbox.address, mail(mailbox.address, "Re: both", "body", day=3, refs=(first_id, second_id))[0])
    await sync.sync_account_once(deps, account_id)

    [merged] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    assert merged.message_count == 3 and merged.labels == ["Legal", "Pricing talks"]
