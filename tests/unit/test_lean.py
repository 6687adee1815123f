"""mime/lean.py: which sections a skeleton needs, and when a skeleton is not to be trusted.

The skeleton against real Dovecot answers is tested in tests/integration/test_lean_fetch.py.
"""

from __future__ import annotations

from salesinbox.mime import lean
from salesinbox.mime.parse import parse_message

TEXT = (b"TEXT", b"PLAIN", (b"CHARSET", b"utf-8"), None, None, b"7BIT", 40, 2)
HTML = (b"TEXT", b"HTML", (b"CHARSET", b"utf-8"), None, None, b"QUOTED-PRINTABLE", 300_000, 4_000)
PDF = (b"APPLICATION", b"PDF", (b"NAME", b"a.pdf"), None, None, b"BASE64", 400_000)
PNG = (b"IMAGE", b"PNG", None, b"<logo@x>", None, b"BASE64", 900)


def multipart(children: list, subtype: bytes = b"MIXED", boundary: bytes | None = b"b1") -> tuple:
    return (children, subtype, (b"BOUNDARY", boundary) if boundary else None)


def test_large_attachments_are_omitted_and_text_and_small_parts_fetched_however_large():
    structure = multipart([multipart([TEXT, HTML], b"ALTERNATIVE", b"b2"), PDF, PNG])

    planned = lean.plan(structure)

    assert planned is not None
    assert planned.sections == ("HEADER", "1.MIME", "1.1.MIME", "1.1", "1.2.MIME", "1.2", "2.MIME", "3.MIME", "3")
    assert planned.omitted == {"2": 400_000} and planned.encodings == {"2": "base64"}


def test_what_a_skeleton_cannot_follow_is_fetched_whole():
    assert lean.plan(PDF) is None  # not multipart at the top
    assert lean.plan(multipart([TEXT, PDF], boundary=None)) is None
    assert lean.plan(multipart([TEXT, PNG])) is None  # nothing to leave on the server
    assert lean.plan(multipart([TEXT, (b"APPLICATION", b"PDF")])) is None  # a leaf too short to read
    assert lean.plan(multipart([TEXT, PDF], boundary=b"evil\r\nBcc: x@y")) is None


def test_the_skeleton_assembles_and_parses_with_the_attachment_sized_from_the_structure():
    structure = multipart([TEXT, PDF])
    planned = lean.plan(structure)
    sections = {
        "HEADER": b"From: a@customer.example\r\nSubject: Offer\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n',
        "1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n",
        "1": b"See the offer.\r\n",
        "2.MIME": b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
    }

    skeleton = lean.assemble(structure, sections)

    assert skeleton is not None and lean.trusted(skeleton, planned)
    parsed = lean.on_server(parse_message(skeleton), planned)
    assert parsed.text.strip() == "See the offer." and parsed.subject == "Offer"
    (attachment,) = parsed.attachments
    assert (attachment.part_id, attachment.filename, attachment.on_server) == ("2", "a.pdf", True)
    assert attachment.size == lean.decoded_size(400_000, "base64") == 292_308
    assert lean.assemble(structure, {k: v for k, v in sections.items() if k != "2.MIME"}) is None


def test_a_part_whose_header_says_text_is_not_left_on_the_server():
    """The server's structure and the part's own header disagree: the parse would read an empty body."""
    structure = multipart([TEXT, PDF])
    planned = lean.plan(structure)
    sections = {
        "HEADER": b'From: a@customer.example\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n',
        "1.MIME": b"Content-Type: text/plain\r\n\r\n",
        "1": b"Hello\r\n",
        "2.MIME": b"Content-Type: text/plain\r\n\r\n",
    }

    assert not lean.trusted(lean.assemble(structure, sections), planned)


def test_a_part_the_parse_numbers_otherwise_is_not_trusted():
    structure = multipart([TEXT, PDF])
    planned = lean.plan(structure)
    sections = {  # the header names another boundary than the structure: the parse sees one part
        "HEADER": b'From: a@customer.example\r\nContent-Type: multipart/mixed; boundary="other"\r\n\r\n',
        "1.MIME": b"Content-Type: text/plain\r\n\r\n",
        "1": b"Hello\r\n",
        "2.MIME": b"Content-Type: application/pdf\r\n\r\n",
    }

    assert not lean.trusted(lean.assemble(structure, sections), planned)
