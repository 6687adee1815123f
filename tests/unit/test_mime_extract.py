"""Cutting one part out of a raw message: the part ids agree with the ones the parse gave its attachments."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from pathlib import Path

import pytest

from salesinbox.mime.extract import extract_part
from salesinbox.mime.parse import parse_message

CORPUS = Path(__file__).parent.parent / "fixtures" / "emails"
FIXTURES = sorted(path.name for path in CORPUS.glob("*.eml"))
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00,"


def base_message(subject: str = "Shapes") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "jane@acme.example"
    message["To"] = "bob@customer.example"
    message["Subject"] = subject
    return message


def mixed() -> tuple[bytes, dict[str, bytes]]:
    message = base_message()
    message.set_content("See the attachments.")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="quote.pdf")
    message.add_attachment("Zażółć gęślą jaźń\n", subtype="csv", filename="prices.csv", cte="quoted-printable")
    message.add_attachment(b"<svg/>", maintype="image", subtype="svg+xml", filename="logo.svg", cte="7bit")
    return bytes(message), {"quote.pdf": PDF, "prices.csv": "Zażółć gęślą jaźń\n".encode(), "logo.svg": b"<svg/>"}


def nested() -> tuple[bytes, dict[str, bytes]]:
    inner = base_message("Forwarded")
    inner.set_content("inner body")
    inner.add_attachment(b"not an attachment of the outer message", maintype="application",
                         subtype="octet-stream", filename="inner.bin")
    message = base_message()
    message.set_content("plain body")
    message.add_alternative("<p>html body <img src='cid:logo@acme'></p>", subtype="html")
    html = message.get_payload()[1]
    html.add_related(PNG, maintype="image", subtype="png", cid="<logo@acme>", filename="logo.png")
    message.make_mixed()
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="two.pdf")
    message.add_attachment(inner)  # message/rfc822
    return bytes(message), {"logo.png": PNG, "two.pdf": PDF, "message.eml": bytes(inner)}


def single_part() -> tuple[bytes, dict[str, bytes]]:
    encoded = base64.encodebytes(PDF).decode()
    raw = (
        "From: jane@acme.example\r\nTo: bob@customer.example\r\nSubject: Only a file\r\nMIME-Version: 1.0\r\n"
        'Content-Type: application/pdf; name="alone.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + encoded.replace("\n", "\r\n")
    ).encode()
    return raw, {"alone.pdf": PDF}


SHAPES = {"mixed": mixed, "nested": nested, "single part": single_part}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_attachment_the_parse_reports_comes_back_with_its_exact_bytes(shape):
    raw, expected = SHAPES[shape]()
    parsed = parse_message(raw)

    assert sorted(a.filename for a in parsed.attachments) == sorted(expected)
    for attachment in parsed.attachments:
        assert extract_part(raw, attachment.part_id) == expected[attachment.filename], attachment


def test_a_forwarded_message_comes_back_whole_and_is_never_entered():
    raw, _ = nested()
    forwarded = next(a for a in parse_message(raw).attachments if a.content_type == "message/rfc822")

    content = extract_part(raw, forwarded.part_id)

    assert b"Subject: Forwarded" in content and b"inner.bin" in content
    assert parse_message(content).attachments[0].filename == "inner.bin"
    assert extract_part(raw, f"{forwarded.part_id}.1") is None  # its inside has no section number of ours


def test_nested_part_ids_follow_imap_section_numbers():
    raw, _ = nested()
    ids = {a.filename: a.part_id for a in parse_message(raw).attachments}

    assert ids == {"logo.png": "1.2.2", "two.pdf": "2", "message.eml": "3"}
    assert extract_part(raw, "1.1") == b"plain body\n"  # a body part is a part too


@pytest.mark.parametrize("name", FIXTURES)
def test_every_attachment_of_the_corpus_can_be_extracted(name):
    raw = (CORPUS / name).read_bytes()
    for attachment in parse_message(raw).attachments:
        content = extract_part(raw, attachment.part_id)
        assert content is not None, attachment


def test_the_corpus_bytes_are_the_decoded_payloads():
    raw = (CORPUS / "nested-structure.eml").read_bytes()
    assert extract_part(raw, "2") == b"%PDF-1.4\n"
    assert extract_part(raw, "3.1") == b"0123456789"
    assert extract_part(raw, "1.2.2") == base64.b64decode("R0lGODlhAQABAAAAACw=")
    mixed_raw = (CORPUS / "mixed-attachments.eml").read_bytes()
    pdf = next(a for a in parse_message(mixed_raw).attachments if a.filename == "quote-2026.pdf")
    assert extract_part(mixed_raw, pdf.part_id).startswith(b"%PDF-1.4")


@pytest.mark.parametrize("part_id", ["0", "9", "2.7", "1.1.1.1", "", "x", "-1"])
def test_a_part_id_that_names_no_part_gives_none(part_id):
    raw, _ = mixed()
    assert extract_part(raw, part_id) is None


def test_a_message_over_the_parse_limits_gives_nothing():
    depth = 150  # past limits.MAX_DEPTH: the parse reads only headers, and reports no attachments
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    raw = (f"From: a@b.example\r\nSubject: deep\r\n{head}Content-Type: text/plain\r\n\r\nx\r\n").encode()
    assert parse_message(raw).status == "over_limit"
    assert extract_part(raw, "1") is None
    assert extract_part(b"", "1") is None
