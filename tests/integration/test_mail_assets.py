"""Opening attachments of synced mail, against a real Dovecot, on SQLite and PostgreSQL.

The sync keeps only an attachment's metadata; its bytes are cut out of the
raw message (blob storage) on demand, cached, and when the raw message is
gone, read again from the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import uuid

import pytest
from sqlalchemy import select, update

from salesinbox.adapters.blobs import raw_key
from salesinbox.adapters.db.tables import Attachment, MailFolder, Message, MessageLocation
from salesinbox.domain.errors import NotFound
from salesinbox.services import mail_assets, workspace
from salesinbox.services.mail_assets import AttachmentUnavailable, part_key
from tests.conftest import create_tenant
from tests.support.mailboxes import connect_mailbox, mail_with_attachments

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 16 + b"\n%%EOF\n"
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script>Quote</body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
FILES = {"Angebot für Müller.pdf": ("application/pdf", PDF), "quote.html": ("text/html", HTML),
         "logo.svg": ("image/svg+xml", SVG)}


@dataclasses.dataclass
class Synced:
    account_id: uuid.UUID
    attachments: dict[str, uuid.UUID]  # filename -> id
    raw_key: str
    content_hash: str


async def stored_attachments(deps, company_id) -> list:
    """(filename, attachment id, raw key, content hash) of every attachment the company's mail carries."""
    async with deps.reading() as db:
        return (await db.execute(
            select(Attachment.filename, Attachment.id, Message.raw_key, Message.content_hash)
            .join(Message, (Message.company_id == Attachment.company_id) & (Message.id == Attachment.message_id))
            .where(Attachment.company_id == company_id)
        )).all()


@pytest.fixture
async def synced(deps, tenant, dovecot, mailbox) -> Synced:
    dovecot.deliver(mailbox.address, mail_with_attachments(mailbox.address, FILES, "Documents for the renewal"))
    account_id = await connect_mailbox(deps, tenant.admin, mailbox)
    rows = await stored_attachments(deps, tenant.company_id)
    assert {name for name, *_ in rows} == set(FILES)
    return Synced(account_id, {name: id_ for name, id_, *_ in rows}, rows[0][2], rows[0][3])


class CountingMailboxes:
    """``deps.open_mailbox`` that counts the IMAP connections opened."""

    def __init__(self, open_mailbox) -> None:
        self.open_mailbox, self.opened = open_mailbox, 0

    def __call__(self, login):
        self.opened += 1
        return self.open_mailbox(login)


async def pretend_the_server_renumbered(deps, company_id) -> None:
    """What a folder looks like after the server gave it a new UIDVALIDITY, before the next pass notices."""
    async with deps.writing() as db:
        for table in (MailFolder, MessageLocation):
            await db.execute(update(table).where(table.company_id == company_id)
                             .values(uidvalidity=table.uidvalidity + 1))


def blob_root(settings):
    return settings.resolved_data_dir / "blobs"


def forget_cached_parts(settings, synced: Synced) -> None:
    shutil.rmtree(blob_root(settings) / part_key(synced.content_hash, "1").rsplit("/", 1)[0], ignore_errors=True)


async def test_every_attachment_opens_with_its_exact_bytes_name_and_type(deps, tenant, synced):
    for name, (content_type, content) in FILES.items():
        found = await mail_assets.open_attachment(deps, tenant.admin, synced.attachments[name])
        assert (found.filename, found.content_type, found.content) == (name, content_type, content)


async def test_a_cached_part_is_served_without_the_raw_message_or_the_server(deps, tenant, synced, settings):
    pdf = synced.attachments["Angebot für Müller.pdf"]
    await mail_assets.open_attachment(deps, tenant.admin, pdf)
    (blob_root(settings) / synced.raw_key).unlink()
    counting = CountingMailboxes(deps.open_mailbox)

    found = await mail_assets.open_attachment(dataclasses.replace(deps, open_mailbox=counting), tenant.admin, pdf)

    assert found.content == PDF and counting.opened == 0


async def test_a_lost_raw_message_is_read_again_from_the_server_and_stored(deps, tenant, synced, settings):
    assert synced.raw_key == raw_key(synced.content_hash)
    raw_path = blob_root(settings) / synced.raw_key
    original = raw_path.read_bytes()
    raw_path.unlink()
    forget_cached_parts(settings, synced)
    counting = CountingMailboxes(deps.open_mailbox)
    recovering = dataclasses.replace(deps, open_mailbox=counting)

    found = await mail_assets.open_attachment(recovering, tenant.admin, synced.attachments["quote.html"])

    assert found.content == HTML and counting.opened == 1
    assert raw_path.read_bytes() == original  # stored again, byte for byte
    svg = await mail_assets.open_attachment(recovering, tenant.admin, synced.attachments["logo.svg"])
    assert svg.content == SVG and counting.opened == 1  # the raw blob serves the next one


async def test_a_renumbered_folder_is_not_trusted_for_a_lost_raw_message(deps, tenant, synced, settings):
    (blob_root(settings) / synced.raw_key).unlink()
    forget_cached_parts(settings, synced)
    await pretend_the_server_renumbered(deps, tenant.company_id)  # the stored UIDs may name other messages now

    with pytest.raises(AttachmentUnavailable):
        await mail_assets.open_attachment(deps, tenant.admin, synced.attachments["logo.svg"])


async def test_another_company_gets_not_found_for_the_same_id(deps, synced):
    other = await create_tenant(deps, name="Other Ltd")
    for attachment_id in synced.attachments.values():
        with pytest.raises(NotFound):
            await mail_assets.open_attachment(deps, other.admin, attachment_id)


async def test_a_colleague_without_access_to_the_account_gets_not_found(deps, tenant, synced):
    email = f"rep-{uuid.uuid4().hex[:8]}@acme.test"
    await workspace.add_user(deps, tenant.admin, email=email, password="Rep-pass-1!", name="Rep")
    colleague = await workspace.authenticate(deps, email, "Rep-pass-1!")

    with pytest.raises(NotFound):
        await mail_assets.open_attachment(deps, colleague, synced.attachments["quote.html"])


async def test_an_unknown_id_is_not_found(deps, tenant, synced):
    with pytest.raises(NotFound):
        await mail_assets.open_attachment(deps, tenant.admin, uuid.uuid4())


async def test_mail_past_the_first_batch_is_kept_in_packs_and_read_again_when_a_pack_is_lost(
        deps, tenant, dovecot, mailbox, settings):
    for n in range(70):  # the first batch (50) is fetched by the pass itself; the rest by a worker, as one pack
        files = {f"offer-{n}.pdf": ("application/pdf", PDF + str(n).encode())}
        dovecot.deliver(mailbox.address, mail_with_attachments(mailbox.address, files, f"Offer {n}"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    rows = await stored_attachments(deps, tenant.company_id)
    packed = [row for row in rows if row.raw_key.startswith("packs/")]
    assert len(rows) == 70 and len(packed) == 20
    assert len({row.raw_key.split("@")[0] for row in packed}) == 1  # one object for the batch
    for row in rows:  # every message's raw MIME, byte for byte where its key says
        assert hashlib.sha256(await deps.blobs.get(row.raw_key)).hexdigest() == row.content_hash
    name, attachment_id, key, content_hash = packed[0]
    n = int(name.removeprefix("offer-").removesuffix(".pdf"))
    found = await mail_assets.open_attachment(deps, tenant.admin, attachment_id)
    assert found.content == PDF + str(n).encode()

    (blob_root(settings) / key.split("@")[0]).unlink()  # the pack is lost
    shutil.rmtree(blob_root(settings) / part_key(content_hash, "1").rsplit("/", 1)[0], ignore_errors=True)
    counting = CountingMailboxes(deps.open_mailbox)
    recovering = dataclasses.replace(deps, open_mailbox=counting)
    found = await mail_assets.open_attachment(recovering, tenant.admin, attachment_id)
    assert found.content == PDF + str(n).encode() and counting.opened == 1  # read again from the server
    assert hashlib.sha256((blob_root(settings) / raw_key(content_hash)).read_bytes()).hexdigest() == content_hash
    assert hashlib.sha256(await deps.blobs.get(key)).hexdigest() == content_hash  # the packed key finds that copy


# ---- a large message: its large attachments stay on the server until opened (mime/lean.py) ----------------------

LARGE_PDF = b"%PDF-1.4\n" + b"".join(hashlib.sha256(b"%d" % n).digest() for n in range(10_000)) + b"\n%%EOF\n"
LARGE_FILES = {"Vertrag Müller.pdf": ("application/pdf", LARGE_PDF), "logo.svg": ("image/svg+xml", SVG)}


@dataclasses.dataclass
class SyncedLarge:
    account_id: uuid.UUID
    rows: dict[str, Attachment]  # filename -> row
    raw: bytes  # the raw message as kept in blob storage
    size: int  # the message's size as stored


@pytest.fixture
async def synced_large(deps, tenant, dovecot, mailbox) -> SyncedLarge:
    dovecot.deliver(mailbox.address, mail_with_attachments(mailbox.address, LARGE_FILES, "Signed contract"))
    account_id = await connect_mailbox(deps, tenant.admin, mailbox)
    async with deps.reading() as db:
        found = (
            await db.execute(
                select(Attachment, Message.raw_key, Message.size).join(
                    Message, (Message.company_id == Attachment.company_id) & (Message.id == Attachment.message_id)
                ).where(Attachment.company_id == tenant.company_id)
            )
        ).all()
    assert {row.filename for row, *_ in found} == set(LARGE_FILES)
    return SyncedLarge(
        account_id, {row.filename: row for row, *_ in found}, await deps.blobs.get(found[0][1]), found[0][2]
    )


async def test_a_large_attachment_stays_on_the_server_until_opened_then_comes_from_the_cache(
    deps, tenant, synced_large
):
    pdf, svg = synced_large.rows["Vertrag Müller.pdf"], synced_large.rows["logo.svg"]
    assert pdf.on_server and not svg.on_server  # the small one came with the message
    assert abs(pdf.size - len(LARGE_PDF)) < len(LARGE_PDF) * 0.02  # its size, from the server's BODYSTRUCTURE
    assert synced_large.size > len(LARGE_PDF) > 30 * len(synced_large.raw)  # the stored message is a skeleton
    counting = CountingMailboxes(deps.open_mailbox)
    counted = dataclasses.replace(deps, open_mailbox=counting)

    first = await mail_assets.open_attachment(counted, tenant.admin, pdf.id)
    again = await mail_assets.open_attachment(counted, tenant.admin, pdf.id)
    logo = await mail_assets.open_attachment(counted, tenant.admin, svg.id)

    assert (first.filename, first.content_type, first.content) == ("Vertrag Müller.pdf", "application/pdf", LARGE_PDF)
    assert again.content == LARGE_PDF and logo.content == SVG
    assert counting.opened == 1  # the server once, for the large part; then the cache, and the skeleton


async def test_a_large_attachment_is_not_read_from_a_renumbered_folder(deps, tenant, synced_large):
    await pretend_the_server_renumbered(deps, tenant.company_id)  # the stored UID may name another message now

    with pytest.raises(AttachmentUnavailable):
        await mail_assets.open_attachment(deps, tenant.admin, synced_large.rows["Vertrag Müller.pdf"].id)


async def test_a_part_that_is_not_the_attachment_described_is_refused(deps, tenant, synced_large):
    """Another copy of the message (merged by Message-ID) may number its parts otherwise."""
    pdf = synced_large.rows["Vertrag Müller.pdf"]
    async with deps.writing() as db:
        await db.execute(
            update(Attachment).where(Attachment.company_id == tenant.company_id, Attachment.id == pdf.id)
            .values(part_id="3")  # the logo's part on the server
        )

    with pytest.raises(AttachmentUnavailable):
        await mail_assets.open_attachment(deps, tenant.admin, pdf.id)
