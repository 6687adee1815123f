"""Large messages synced without their large attachments (mime/lean.py), against a real Dovecot.

A message over ``LEAN_OVER`` bytes is fetched as a skeleton built from its
BODYSTRUCTURE's sections. The skeleton must parse to what the whole message
parses to -- text, HTML, every attachment at the same part id with the same
name and type, sizes within a few percent -- for every shape of message; a
shape it cannot follow is fetched whole.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage

import pytest

from salesinbox.adapters.imap.session import ImapSession
from salesinbox.mime import lean
from salesinbox.mime.batch import prepare
from salesinbox.mime.extract import extract_part
from tests.rig.dovecot import Dovecot
from tests.rig.plugin import Mailbox


def noise(size: int, seed: str) -> bytes:
    """Incompressible bytes, the same for the same seed."""
    out, block = bytearray(), seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def customer_mail(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Jörg <joerg@customer.example>", to, subject
    message["Message-ID"] = f"<{hashlib.sha1(subject.encode()).hexdigest()}@customer.example>"
    return message


def with_pdf(to: str) -> bytes:
    message = customer_mail(to, "Contract with a large PDF")
    message.set_content("The contract is attached.\n\nBest, Jörg")
    message.add_alternative("<p>The contract is <b>attached</b>.</p><p>Best, Jörg</p>", subtype="html")
    message.add_attachment(noise(300_000, "pdf"), maintype="application", subtype="pdf", filename="Vertrag Müller.pdf")
    message.add_attachment(noise(2_000, "png"), maintype="image", subtype="png", filename="stamp.png")
    return bytes(message)


def newsletter_with_inline_images(to: str) -> bytes:
    """multipart/related inside multipart/alternative inside multipart/mixed: nested sections."""
    message = customer_mail(to, "Product news with pictures")
    message.set_content("Our new products. Pictures in the HTML version.")
    message.add_alternative('<p>Our new products</p><img src="cid:hero@x"><img src="cid:tiny@x">', subtype="html")
    html = message.get_payload()[1]
    html.add_related(noise(150_000, "hero"), maintype="image", subtype="jpeg", cid="<hero@x>")
    html.add_related(noise(500, "tiny"), maintype="image", subtype="gif", cid="<tiny@x>")
    message.add_attachment(noise(120_000, "zip"), maintype="application", subtype="zip", filename="catalogue.zip")
    return bytes(message)


def forwarded_message(to: str) -> bytes:
    inner = customer_mail(to, "The original offer")
    inner.set_content("The original offer text.")
    inner.add_attachment(noise(200_000, "inner"), maintype="application", subtype="pdf", filename="offer.pdf")
    message = customer_mail(to, "Fwd: The original offer")
    message.set_content("See the forwarded offer below.")
    message.add_attachment(inner)
    return bytes(message)


def large_text_attachment(to: str) -> bytes:
    """A large text/plain attachment: text parts are always fetched, so nothing is left on the server."""
    message = customer_mail(to, "Server log")
    message.set_content("The log you asked for.")
    message.add_attachment(("log line\n" * 20_000).encode(), maintype="text", subtype="plain", filename="server.log")
    return bytes(message)


def single_part_pdf(to: str) -> bytes:
    """Not multipart at the top: fetched whole."""
    message = customer_mail(to, "Just a PDF")
    message.set_content(noise(150_000, "single"), maintype="application", subtype="pdf", filename="scan.pdf")
    return bytes(message)


def small_mail(to: str) -> bytes:
    message = customer_mail(to, "A small note")
    message.set_content("Short.")
    message.add_attachment(noise(20_000, "small"), maintype="application", subtype="pdf", filename="small.pdf")
    return bytes(message)


SHAPES = {
    "pdf": (with_pdf, {"2"}),
    "newsletter": (newsletter_with_inline_images, {"1.2.2", "2"}),
    "forwarded": (forwarded_message, {"2"}),
    "text-attachment": (large_text_attachment, None),
    "single-part": (single_part_pdf, None),
    "small": (small_mail, None),
}


@pytest.fixture
def session(dovecot: Dovecot, mailbox: Mailbox):
    imap = ImapSession("127.0.0.1", mailbox.imap_port, "none", mailbox.login, mailbox.password, timeout=10)
    with imap:
        yield imap


def described(parsed) -> tuple:
    return (
        parsed.subject,
        parsed.message_id,
        parsed.text,
        parsed.html,
        [(a.part_id, a.filename, a.content_type, a.content_id, a.inline) for a in parsed.attachments],
    )


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPES)
def test_a_skeleton_parses_as_the_whole_message_does(dovecot: Dovecot, mailbox: Mailbox, session, shape):
    build, omitted = SHAPES[shape]
    whole = build(mailbox.address)
    dovecot.deliver(mailbox.address, whole)
    session.examine("INBOX")
    (uid,) = session.client.search(["ALL"])

    (fetched,) = session.fetch_mail([uid])

    stored = session.fetch_one(uid)
    assert fetched.size == len(stored)
    full = prepare(stored).parsed
    if omitted is None:
        assert fetched.lean is None and fetched.raw == stored
        return
    assert fetched.lean is not None and set(fetched.lean.omitted) == omitted
    assert len(fetched.raw) < 20_000 < len(stored)
    skeleton = prepare(fetched.raw, fetched.lean).parsed
    assert described(skeleton) == described(full)
    for mine, theirs in zip(skeleton.attachments, full.attachments, strict=True):
        assert mine.on_server == (mine.part_id in omitted)
        assert abs(mine.size - theirs.size) <= theirs.size * 0.02 + 8, (mine, theirs)


@pytest.mark.parametrize("shape", [name for name, (_, omitted) in SHAPES.items() if omitted], ids=str)
def test_a_part_left_on_the_server_reads_back_as_the_whole_message_gives_it(
    dovecot: Dovecot, mailbox: Mailbox, session, shape
):
    build, omitted = SHAPES[shape]
    whole = build(mailbox.address)
    dovecot.deliver(mailbox.address, whole)
    session.examine("INBOX")
    (uid,) = session.client.search(["ALL"])
    stored = session.fetch_one(uid)

    for part_id in sorted(omitted):
        part = session.fetch_part(uid, part_id)
        (described,) = prepare(part).parsed.attachments
        assert extract_part(part, "1") == extract_part(stored, part_id)
        assert (described.filename, described.content_type) == next(
            (a.filename, a.content_type) for a in prepare(stored).parsed.attachments if a.part_id == part_id
        )
    assert session.fetch_part(uid, "9") is None  # no such part


def test_a_batch_keeps_its_order_and_its_flags_with_skeletons_among_whole_messages(
    dovecot: Dovecot, mailbox: Mailbox, session
):
    for build in (small_mail, with_pdf, large_text_attachment, newsletter_with_inline_images):
        dovecot.deliver(mailbox.address, build(mailbox.address))
    session.examine("INBOX")
    uids = sorted(session.client.search(["ALL"]), reverse=True)
    session.client.select_folder("INBOX")
    session.client.add_flags([uids[2]], [b"\\Flagged"])  # the PDF mail
    session.examine("INBOX")

    fetched = list(session.fetch_mail(uids))

    assert [f.uid for f in fetched] == uids
    assert [f.lean is not None for f in fetched] == [True, False, True, False]
    assert "\\Flagged" in fetched[2].flags and "\\Seen" not in fetched[2].flags  # BODY.PEEK: still unread


def test_a_plan_too_long_fetches_the_whole_message(dovecot: Dovecot, mailbox: Mailbox, session):
    message = customer_mail(mailbox.address, "Hundreds of parts")
    message.set_content("Many files.")
    for n in range(lean.MAX_SECTIONS // 2 + 1):
        message.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"f{n}.bin")
    message.add_attachment(noise(200_000, "many"), maintype="application", subtype="pdf", filename="big.pdf")
    dovecot.deliver(mailbox.address, bytes(message))
    session.examine("INBOX")
    (uid,) = session.client.search(["ALL"])

    (fetched,) = session.fetch_mail([uid])

    assert fetched.lean is None and fetched.raw == session.fetch_one(uid)
