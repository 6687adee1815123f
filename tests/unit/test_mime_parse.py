"""Parsing raw mail: any bytes in, a ParsedMessage out, within limits, never an exception.

The corpus in tests/fixtures/emails is hand-written for these tests; the huge
and deeply nested messages are generated here instead of committed.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesinbox.mime import parse as mime_parse
from salesinbox.mime.bodies import MAX_HTML_TO_TEXT
from salesinbox.mime.parse import Address, ParsedMessage

CORPUS = Path(__file__).parent.parent / "fixtures" / "emails"
FIXTURES = sorted(path.name for path in CORPUS.glob("*.eml"))
# A deadline that only stops a hang, never a speed check: each hostile input below takes a fraction of a second;
# what these tests guard against (a quadratic walk, unbounded recursion) takes minutes or never ends.
HANG = 20.0


def parse_message(raw: bytes, **options) -> ParsedMessage:
    """The parse under test, checked on every call against the feedparser-only reference: never a different result."""
    parsed = mime_parse.parse_message(raw, **options)
    assert mime_parse.parse_message(raw, fast=False, **options) == parsed
    return parsed


def fixture(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def parse(name: str) -> ParsedMessage:
    return parse_message(fixture(name))


def strings_of(message: ParsedMessage) -> list[str]:
    addresses = [*message.to, *message.cc, *message.bcc, *message.reply_to, *([message.from_] if message.from_ else [])]
    return [
        message.subject,
        message.text,
        message.html or "",
        message.snippet,
        message.message_id or "",
        *message.references,
        *message.in_reply_to,
        *(part for address in addresses for part in (address.name, address.email)),
        *(attachment.filename for attachment in message.attachments),
    ]


def assert_storable(message: ParsedMessage) -> None:
    """Every string can go into PostgreSQL text: valid UTF-8, no NUL."""
    for text in strings_of(message):
        text.encode("utf-8")
        assert "\x00" not in text


def generated(*, subject: str = "Generated", headers: dict[str, str] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Jane Doe <jane.doe@acme.example>"
    message["To"] = "bob@customer.example"
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    return message


# --- the corpus --------------------------------------------------------------


def test_the_corpus_has_at_least_thirty_hand_written_messages():
    assert len(FIXTURES) >= 30


@pytest.mark.parametrize("name", FIXTURES)
def test_every_corpus_message_parses_to_storable_text_and_hashes_its_raw_bytes(name):
    raw = fixture(name)
    message = parse_message(raw)
    assert message.status in ("ok", "malformed")
    assert message.content_hash == hashlib.sha256(raw).hexdigest()
    assert message.subject
    assert message.gm_thrid is None
    assert_storable(message)


@pytest.mark.parametrize("name", FIXTURES)
def test_a_message_is_malformed_exactly_when_problems_are_noted(name):
    message = parse(name)
    assert (message.status == "malformed") == bool(message.problems)


# --- headers and bodies --------------------------------------------------------


def test_a_plain_message_gives_its_headers_text_and_a_snippet_without_quotes():
    message = parse("plain.eml")
    assert message.status == "ok"
    assert message.message_id == "plain-1@acme.example"
    assert message.subject == "Proposal for the Q2 rollout"
    assert message.from_ == Address("Jane Doe", "jane.doe@acme.example")
    assert message.to == (Address("Bob Buyer", "bob@customer.example"),)
    assert message.date == datetime(2026, 3, 3, 9, 15, tzinfo=UTC)
    assert message.html is None and message.attachments == ()
    assert "We can start on April 6th." in message.text
    assert message.snippet.startswith("Hi Bob, As promised, here is a short summary")
    assert "When could you start" not in message.snippet
    assert "  " not in message.snippet and "\n" not in message.snippet


def test_a_snippet_is_about_two_hundred_characters_cut_at_a_word():
    message = generated()
    message.set_content("> an old quoted line\n" * 5 + "word " * 400)
    snippet = parse_message(message.as_bytes()).snippet
    assert 150 <= len(snippet) <= 200
    assert snippet.startswith("word word") and snippet.endswith("word")


def test_an_alternative_prefers_the_plain_text_and_keeps_the_html():
    message = parse("alternative.eml")
    assert message.text == "Thanks for the call — notes below.\n* pricing agreed"
    assert message.html is not None and "<b>notes</b>" in message.html
    assert message.attachments == ()


def test_an_empty_text_alternative_falls_back_to_the_html():
    message = generated()
    message.set_content("\n")
    message.add_alternative("<p>The real <b>content</b></p>", subtype="html")
    assert parse_message(message.as_bytes()).text.strip() == "The real content"


def test_an_html_only_message_gets_readable_text_without_script_or_style():
    message = parse("html-only.eml")
    assert message.html is not None and "<script>" in message.html  # unsanitised: a later step cleans it
    assert "March update" in message.text and "Three new features shipped." in message.text
    assert "Team" in message.text and "49 €" in message.text
    assert "alert" not in message.text and "color" not in message.text and "<" not in message.text


def test_attachments_have_part_ids_filenames_types_and_decoded_sizes():
    message = parse("mixed-attachments.eml")
    assert message.text == "Please find the quote attached."
    assert [(a.part_id, a.filename, a.content_type) for a in message.attachments] == [
        ("2", "quote-2026.pdf", "application/pdf"),
        ("3", "terms.txt", "text/plain"),
        ("4", "prices.csv", "text/csv"),
    ]
    pdf = message.attachments[0]
    assert pdf.size == 9 + 256 * 40  # the decoded size, computed from the base64 length
    assert pdf.content_id is None and not pdf.inline
    assert "These terms are an attachment" not in message.text


def test_an_inline_image_keeps_its_content_id_and_is_marked_inline():
    message = parse("inline-image.eml")
    [logo] = message.attachments
    assert logo.part_id == "2" and logo.filename == "logo.png" and logo.content_type == "image/png"
    assert logo.content_id == "logo.123@acme.example"
    assert logo.inline
    assert message.html is not None and "cid:logo.123@acme.example" in message.html


def test_an_inline_image_without_a_content_id_is_not_embedded():
    [photo] = parse("mixed-inline-texts.eml").attachments
    assert photo.filename == "site.jpg" and not photo.inline


def test_several_inline_text_parts_are_joined_in_order():
    message = parse("mixed-inline-texts.eml")
    assert message.text == "First paragraph before the photo.\n\nSecond paragraph after the photo."


def test_an_rfc2231_filename_with_continuations_and_charsets_is_decoded():
    message = parse("rfc2231-continuation.eml")
    assert [attachment.filename for attachment in message.attachments] == [
        "Vertragsentwurf für die Müller GmbH — Fassung 3.docx",
        "Umowa zamówienia łódż.pdf",
    ]


def test_filenames_lose_directories_control_characters_and_direction_overrides():
    names = [attachment.filename for attachment in parse("hostile-filenames.eml").attachments]
    assert names == ["system.ini", "invoicefdp.exe", "tabhere.txt"]


@pytest.mark.parametrize(
    ("name", "subject", "body"),
    [
        ("subject-utf8-b.eml", "Angebot für Müller — 10 % Rabatt ✓", "Grüße, Müller — ✓"),
        ("subject-utf8-q.eml", "Réunion à Genève, déjà prévue", "Grüße, Müller — ✓"),
        ("subject-iso-8859-2.eml", "Zażółć gęślą jaźń - oferta", "Dzień dobry, przesyłam ofertę."),
        ("subject-koi8-r.eml", "Коммерческое предложение", "Здравствуйте! Высылаем предложение."),
        ("subject-shift-jis.eml", "お見積りのご案内", "いつもお世話になっております。"),
        ("subject-gb2312.eml", "关于合同的问题", "您好，请查收合同。"),
        ("subject-big5.eml", "報價單與合約", "您好，請查收報價單。"),
        ("subject-euc-kr.eml", "견적서 보내드립니다", "안녕하세요, 견적서를 보내드립니다."),
        ("subject-iso-2022-jp.eml", "見積書の送付について", "いつもお世話になっております。見積書をお送りします。"),
        ("koi8-r-body-no-subject-charset.eml", "Russian body", "Добрый день! Счёт во вложении."),
        (
            "qp-latin1.eml",
            "Présentation",
            "Voici la présentation de notre société, avec une ligne très longue qui continue ici. Coût: 100 €.",
        ),
    ],
)
def test_subjects_and_bodies_decode_in_every_common_charset(name, subject, body):
    message = parse(name)
    assert message.status == "ok", message.problems
    assert message.subject == subject
    assert message.text.strip() == body


def test_gbk_characters_under_a_gb2312_label_still_decode():
    message = parse("gbk-in-gb2312.eml")
    assert message.subject == "镕基的报价"
    assert message.text == "朱镕基先生，您好。"


def test_hebrew_and_arabic_decode_from_their_windows_charsets():
    message = parse("rtl-hebrew-arabic.eml")
    assert message.subject == "שלום - مرحبا"
    assert message.text == "שלום, מצורפת הצעת המחיר."
    assert message.html == '<p dir="rtl">مرحبا، مرفق عرض السعر.</p>'


@pytest.mark.parametrize(
    ("name", "text", "note"),
    [
        ("lying-ascii-is-utf8.eml", "Preis: 12 € pro Stück, Lieferung nach Köln.", "not valid us-ascii"),
        (
            "lying-latin1-is-cyrillic.eml",
            "Добрый день! Направляем вам коммерческое предложение на поставку оборудования.",
            "looks like cp1251",
        ),
        ("lying-utf8-is-cp1252.eml", "“Invoice” for the café — total 450 € (déjà payé).", "not valid utf-8"),
        (
            "unknown-charset.eml",
            "Die Lieferung für Sie ist unterwegs. Grüße aus Düsseldorf und schöne Woche!",
            "unknown charset 'x-unknown'",
        ),
    ],
)
def test_a_lying_or_unknown_charset_is_detected_and_noted(name, text, note):
    message = parse(name)
    assert message.text.strip() == text
    assert message.status == "malformed"
    assert any(note in problem for problem in message.problems), message.problems


def test_an_html_body_without_a_mime_charset_uses_its_meta_charset():
    raw = (
        b"From: a@acme.example\r\nSubject: meta\r\nContent-Type: text/html\r\n\r\n"
        b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251"></head>'
        + "<body>Счёт</body></html>".encode("cp1251")
    )
    assert parse_message(raw).text.strip() == "Счёт"


@pytest.mark.parametrize("label", ["base64", "rot13", "idna", "punycode", "undefined", "zlib", "utf-8\x00"])
def test_a_charset_label_naming_no_text_encoding_is_treated_as_unknown(label):
    raw = (
        f'From: a@acme.example\r\nSubject: label\r\nContent-Type: text/plain; charset="{label}"\r\n\r\n'.encode()
        + "Grüße".encode()
        + b"\xff\r\n"
    )
    message = parse_message(raw)
    assert message.text.startswith("Gr")
    assert message.status == "malformed"


def test_a_huge_html_body_is_turned_into_text_from_its_start_and_noted():
    message = generated()
    message.set_content("<p>" + "word " * 150_000 + "</p>", subtype="html")
    parsed = parse_message(message.as_bytes())
    assert parsed.text.startswith("word word")
    assert MAX_HTML_TO_TEXT * 0.9 < len(parsed.text) <= MAX_HTML_TO_TEXT
    assert any("HTML too long" in problem for problem in parsed.problems)


def test_unclosed_nested_table_cells_convert_to_text_as_rows_of_words():
    # inscriptis' grid layout took over 2 s on 68 KB of this (it grows with the square of nested tables);
    # tables read as rows of words, which the text below shows, take milliseconds.
    segment = "<p>Features.</p><table><tr><td>Plan</td><td>Price</td></tr><tr>" + "<td>Team</td><td>49 &euro" * 20
    message = generated()
    message.set_content(segment * 120, subtype="html")
    parsed, seconds = timed(message.as_bytes())
    assert parsed.text.startswith("Features.\n\nPlan Price\nTeam 49 &euro Team 49 &euro")
    assert seconds < HANG


def test_base64_with_bad_padding_still_decodes_and_is_noted():
    message = parse("broken-base64-padding.eml")
    assert message.text.startswith("This body was base64 encoded with its padding cut off")
    assert message.status == "malformed"
    assert any("base64" in problem for problem in message.problems)


def test_quoted_printable_soft_line_breaks_are_joined():
    assert "très longue qui continue ici" in parse("qp-latin1.eml").text


def test_an_unknown_transfer_encoding_is_read_as_8bit():
    assert parse("unknown-transfer-encoding.eml").text == "Straße und Café, ohne Kodierung.\n"


def test_a_calendar_invite_is_flagged_and_listed_as_invite_ics():
    message = parse("calendar-invite.eml")
    assert message.is_calendar
    [invite] = message.attachments
    assert (invite.part_id, invite.filename, invite.content_type) == ("3", "invite.ics", "text/calendar")
    assert message.text == "You have been invited to: Demo"
    assert "BEGIN:VCALENDAR" not in message.text


def test_a_message_without_a_calendar_part_is_not_an_invite():
    assert not parse("mixed-attachments.eml").is_calendar


def test_a_forwarded_message_is_one_attachment_and_its_body_stays_out():
    message = parse("forwarded-rfc822.eml")
    [forwarded] = message.attachments
    assert (forwarded.part_id, forwarded.content_type, forwarded.filename) == ("2", "message/rfc822", "message.eml")
    assert forwarded.size > 400
    assert message.text == "See the forwarded message below."
    assert "INNER BODY TEXT" not in message.text


def test_part_ids_follow_imap_section_numbering_and_do_not_enter_forwarded_mail():
    message = parse("nested-structure.eml")
    assert [(a.part_id, a.content_type) for a in message.attachments] == [
        ("1.2.2", "image/gif"),
        ("2", "application/pdf"),
        ("3.1", "application/msword"),
        ("3.2", "message/rfc822"),
    ]
    assert message.text == "Body text part 1.1"
    assert message.html == '<p>Body html part 1.2.1</p><img src="cid:img1@x">'
    assert "inner" not in message.text


def test_a_single_part_message_is_section_1():
    message = generated()
    message.set_content(b"%PDF-1.4", maintype="application", subtype="pdf", filename="only.pdf")
    [only] = parse_message(message.as_bytes()).attachments
    assert (only.part_id, only.filename, only.size) == ("1", "only.pdf", 8)


def test_a_delivery_report_numbers_its_status_block_as_one_part():
    message = parse("delivery-status-report.eml")
    assert [(a.part_id, a.content_type) for a in message.attachments] == [
        ("2", "message/delivery-status"),
        ("3", "text/rfc822-headers"),
    ]
    assert message.text == "Your message could not be delivered to nobody@customer.example."


def test_references_keep_header_order_without_duplicates_and_lose_their_brackets():
    message = parse("nested-structure.eml")
    assert message.references == ("a@x.example", "b@x.example")
    assert message.in_reply_to == ("b@x.example",)


def test_a_missing_message_id_is_none_and_not_a_problem():
    message = parse("missing-message-id.eml")
    assert message.message_id is None
    assert message.status == "ok"


def test_a_garbage_message_id_is_none_and_noted():
    message = parse_message(b"From: a@acme.example\r\nMessage-ID: not an id\r\nSubject: x\r\n\r\nhi\r\n")
    assert message.message_id is None
    assert message.status == "malformed"


def test_a_garbage_date_is_none_and_noted():
    message = parse("garbage-date.eml")
    assert message.date is None
    assert message.status == "malformed"
    assert any("Date" in problem for problem in message.problems)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 3 Mar 2026 10:00:00 -0000", datetime(2026, 3, 3, 10, 0, tzinfo=UTC)),
        ("Tue, 3 Mar 2026 10:00:00 -0800 (PST)", datetime(2026, 3, 3, 18, 0, tzinfo=UTC)),
        ("2026-03-03T10:00:00+02:00", datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
    ],
)
def test_dates_become_timezone_aware_utc(header, expected):
    message = parse_message(f"From: a@acme.example\r\nDate: {header}\r\nSubject: x\r\n\r\nhi\r\n".encode())
    assert message.date == expected
    assert message.date is not None and message.date.utcoffset().total_seconds() == 0


def test_a_broken_address_list_keeps_every_address_it_can_read():
    message = parse("broken-address-list.eml")
    emails = [address.email for address in message.to]
    assert "john.smith@customer.example" in emails
    assert "ann.lee@customer.example" in emails
    assert "carl@customer.example" in emails
    assert Address("Smith, John", "john.smith@customer.example") in message.to
    assert Address("Ann Lee", "ann.lee@customer.example") in message.to
    assert message.cc == (Address("Jörg Müller", "joerg@customer.example"),)
    assert message.status == "malformed"
    assert any(problem.startswith("To header") for problem in message.problems)


@pytest.mark.parametrize(
    "value",
    [
        "a:" * 4_000,
        "From: Ja" * 1_000,
        "x:" * 400 + ";" * 400,
        "(" * 3_000 + "a@b.example",
        "(" * 400 + "a@b.example",
    ],
)
def test_an_address_header_of_nested_groups_or_comments_does_not_exhaust_the_stack(value):
    raw = f"From: {value}\r\nTo: {value}\r\nSubject: groups\r\n\r\nhi\r\n".encode()
    message, seconds = timed(raw)
    assert message.status == "malformed"
    assert message.to in ((), (Address("", "a@b.example"),))
    assert seconds < HANG


def test_addresses_are_lower_cased_and_names_decoded():
    message = generated(headers={"Cc": '=?iso-8859-2?Q?Pawe=B3_Nowak?= <Pawel.Nowak@Firma.PL>, "Doe, J" <J@D.example>'})
    message.set_content("hi")
    parsed = parse_message(message.as_bytes())
    assert parsed.cc == (Address("Paweł Nowak", "pawel.nowak@firma.pl"), Address("Doe, J", "j@d.example"))


def test_raw_utf8_in_headers_is_allowed_and_decoded():
    message = parse("raw-8bit-utf8-headers.eml")
    assert message.status == "ok"
    assert message.subject == "Grüße aus München"
    assert message.from_ == Address("Jörg Müller", "joerg@kunde.example")
    assert message.to == (Address("Zoë", "zoe@acme.example"),)


def test_raw_latin1_in_headers_is_decoded_with_the_body_charset_and_noted():
    message = parse("raw-8bit-latin1-headers.eml")
    assert message.subject == "Réunion de lancement à Genève"
    assert message.from_ == Address("Jérôme Dupont", "jerome@client.example")
    assert message.status == "malformed"
    assert any("Subject header" in problem for problem in message.problems)


def test_thousands_of_raw_8bit_header_values_are_decoded_with_one_guess_quickly():
    recipients = b"".join(f"To: Jérôme Dupont <j{n}@client.example>\r\n".encode("latin-1") for n in range(2_000))
    parts = b"".join(
        b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="'
        + f"Réunion {n}.pdf".encode("latin-1")
        + b'"\r\n\r\nx\r\n'
        for n in range(2_000)
    )
    raw = (
        b"From: a@acme.example\r\nSubject: R\xe9union\r\n"
        + recipients
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + parts
        + b"--b--\r\n"
    )
    message, seconds = timed(raw)
    assert message.subject == "Réunion"
    assert len(message.to) == 1_000 and message.to[1_999 % 1_000].name == "Jérôme Dupont"
    assert message.attachments[-1].filename == "Réunion 1999.pdf"
    assert seconds < HANG


def test_a_truncated_multipart_keeps_its_text_and_notes_the_missing_boundary():
    message = parse("truncated-mime.eml")
    assert message.text == "The rest of this message was cut off in transit."
    assert [attachment.filename for attachment in message.attachments] == ["cut.pdf"]
    assert message.status == "malformed"
    assert any("closing MIME boundary" in problem for problem in message.problems)


def test_lf_line_endings_and_an_mbox_from_line_parse_cleanly():
    message = parse("lf-only-mbox-from.eml")
    assert message.status == "ok"
    assert message.from_ == Address("Jane Doe", "jane.doe@acme.example")
    assert message.text == "Plain LF line endings.\n"


def test_a_nul_byte_in_a_body_never_reaches_the_text():
    message = parse_message(b"From: a@acme.example\r\nSubject: nul\x00\r\n\r\nbefore\x00after\r\n")
    assert message.text == "beforeafter\n"
    assert message.subject == "nul"


# --- bulk mail ------------------------------------------------------------------


def test_list_unsubscribe_marks_bulk_mail():
    assert parse("bulk-list-unsubscribe.eml").is_bulk


def test_an_auto_reply_marks_bulk_mail():
    assert parse("auto-reply.eml").is_bulk


def test_a_person_to_person_message_is_not_bulk():
    assert not parse("plain.eml").is_bulk


@pytest.mark.parametrize(
    ("headers", "is_bulk"),
    [
        ({"Auto-Submitted": "no"}, False),
        ({"Auto-Submitted": "auto-generated"}, True),
        ({"Precedence": "bulk"}, True),
        ({"Precedence": "list"}, True),
        ({"Precedence": "junk"}, True),
        ({"Precedence": "first-class"}, False),
        ({"List-Id": "Sales <sales.lists.acme.example>"}, True),
    ],
)
def test_bulk_signs_in_headers(headers, is_bulk):
    message = generated(headers=headers)
    message.set_content("hi")
    assert parse_message(message.as_bytes()).is_bulk is is_bulk


# --- limits ---------------------------------------------------------------------


def nested(depth: int) -> bytes:
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n) for n in range(depth))
    closing = b"".join(b"\r\n--b%d--" % n for n in reversed(range(depth)))
    return (
        b"From: Jane <jane@acme.example>\r\nSubject: Deep\r\nMessage-ID: <deep@acme.example>\r\nMIME-Version: 1.0\r\n"
        + opening
        + b"Content-Type: text/plain\r\n\r\nthe deepest text"
        + closing
        + b"\r\n"
    )


def many_parts(count: int) -> bytes:
    head = b'From: a@acme.example\r\nSubject: Many\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
    parts = b"".join(b"--m\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(count))
    return head + parts + b"--m--\r\n"


def timed(raw: bytes, **kwargs) -> tuple[ParsedMessage, float]:
    """The parse and the CPU time this thread spent on it: a bound on the work, whatever else the machine
    runs meanwhile (wall time failed these checks on a loaded 2-core machine)."""
    started = time.thread_time()
    message = parse_message(raw, **kwargs)
    return message, time.thread_time() - started


def test_nesting_150_deep_is_over_limit_quickly_with_headers_kept():
    message, seconds = timed(nested(150))
    assert message.status == "over_limit"
    assert any("nested more than 100" in problem for problem in message.problems)
    assert message.subject == "Deep" and message.message_id == "deep@acme.example"
    assert message.attachments == () and message.html is None
    assert seconds < HANG


def test_nesting_1500_deep_would_crash_the_stdlib_but_is_over_limit_here():
    message, seconds = timed(nested(1500))
    assert message.status == "over_limit"
    assert any("nested more than 100" in problem for problem in message.problems)
    assert seconds < HANG


def test_nesting_at_the_limit_is_parsed_in_full():
    message = parse_message(nested(100))
    assert message.status == "ok"
    assert message.text == "the deepest text"


def test_twenty_thousand_parts_are_over_limit():
    message, seconds = timed(many_parts(20_000))
    assert message.status == "over_limit"
    assert any("more than 10,000 MIME parts" in problem for problem in message.problems)
    assert message.subject == "Many"
    assert message.snippet.startswith("part 0 part 1")
    assert seconds < HANG


def test_ten_thousand_parts_are_within_the_limit():
    assert parse_message(many_parts(10_000)).status == "ok"


def test_a_200_kb_header_block_is_over_limit_but_keeps_the_first_headers_and_a_snippet():
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"x" * 80) for n in range(2_200))
    raw = b"From: Jane <jane@acme.example>\r\nSubject: Big headers\r\n" + filler + b"\r\nThe body text.\r\n"
    message, seconds = timed(raw)
    assert len(raw) > 200_000
    assert message.status == "over_limit"
    assert any("header block is over 100 KB" in problem for problem in message.problems)
    assert message.subject == "Big headers" and message.from_ == Address("Jane", "jane@acme.example")
    assert message.snippet == "The body text."
    assert seconds < HANG


def test_100000_to_addresses_finish_well_under_a_second_and_keep_the_first_thousand():
    recipients = b"".join(b"To: Person %d <p%d@customer.example>\r\n" % (n, n) for n in range(100_000))
    raw = b"From: a@acme.example\r\nSubject: Everyone\r\n" + recipients + b"\r\nhello\r\n"
    message, seconds = timed(raw)
    assert message.status == "over_limit"
    assert len(message.to) == 1_000
    assert message.to[0] == Address("Person 0", "p0@customer.example")
    assert seconds < HANG


def test_a_long_address_list_within_the_limits_is_capped_at_a_thousand_quickly():
    recipients = ", ".join(f"p{n}@customer.example" for n in range(2_500))
    message = generated()
    message.set_content("hi")
    raw = message.as_bytes().replace(b"To: bob@customer.example", b"To: " + recipients.encode())
    parsed, seconds = timed(raw)
    assert len(parsed.to) == 1_000
    assert seconds < HANG


def test_a_huge_content_type_header_is_over_limit():
    raw = b"From: a@acme.example\r\nSubject: Params\r\nContent-Type: text/plain" + b"; a=b" * 5_000 + b"\r\n\r\nhi\r\n"
    message, seconds = timed(raw)
    assert message.status == "over_limit"
    assert seconds < HANG


def test_a_message_over_max_bytes_is_over_limit_with_headers_and_a_snippet():
    raw = fixture("plain.eml")
    message = parse_message(raw, max_bytes=100)
    assert message.status == "over_limit"
    assert message.subject == "Proposal for the Q2 rollout"
    assert message.snippet.startswith("Hi Bob,")
    assert message.content_hash == hashlib.sha256(raw).hexdigest()
    assert parse_message(raw, max_bytes=len(raw)).status == "ok"


def test_an_over_limit_snippet_skips_mime_headers_boundaries_and_base64():
    raw = nested(150).replace(b"the deepest text", b"QUJD" * 30 + b"\r\nthe deepest text")
    assert parse_message(raw).snippet == "the deepest text"


# --- anything at all --------------------------------------------------------------


def test_empty_input_is_unparseable():
    message = parse_message(b"")
    assert message.status == "unparseable"
    assert message.subject == "" and message.from_ is None and message.text == ""
    assert message.content_hash == hashlib.sha256(b"").hexdigest()


def test_bytes_without_any_header_are_unparseable_but_keep_their_text():
    message = parse_message(b"just some words\r\nand more\r\n")
    assert message.status == "unparseable"
    assert "just some words" in message.text


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=4_000))
def test_any_bytes_give_a_parsed_message(raw):
    message = parse_message(raw)
    assert message.status in ("ok", "malformed", "over_limit", "unparseable")
    assert_storable(message)


SPICE = [
    b"\r\n",
    b"\n\n",
    b"--",
    b"=?",
    b"?=",
    b"=?utf-8?B?",
    b'boundary="',
    b"charset=",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"filename*0*=",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"<",
    b">",
    b"@",
    b",",
    b";",
    b'"',
    b"'",
    b"%",
    b"\\",
]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIXTURES),
    st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 40), st.one_of(st.sampled_from(SPICE), st.binary(max_size=8))),
        max_size=12,
    ),
)
def test_corpus_messages_with_random_damage_give_a_parsed_message(name, damage):
    raw = bytearray(fixture(name))
    for where, cut, insert in damage:
        at = int(where * len(raw))
        raw[at : at + cut] = insert
    message = parse_message(bytes(raw))
    assert message.status in ("ok", "malformed", "over_limit", "unparseable")
    assert_storable(message)


# ---- the fast path for plain address lists agrees with policy.default -------------------

_atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-", min_size=1, max_size=12)
_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ", max_size=20)


@st.composite
def _plain_address(draw) -> str:
    local = ".".join(draw(st.lists(_atom, min_size=1, max_size=2)))
    domain = draw(
        st.lists(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=2, max_size=3
        )
    )
    addr = f"{local}@{'.'.join(domain)}"
    name = " ".join(draw(_name).split())
    return f"{name} <{addr}>" if name else addr


@given(st.lists(_plain_address(), min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_plain_address_lists_read_fast_as_policy_default_reads_them(items: list[str]) -> None:
    from salesinbox.mime.headers import _parse_addresses, _simple_addresses

    text = ", ".join(items)
    strict = _parse_addresses("to", text)
    fast = _simple_addresses(text)
    assert strict is not None
    assert fast == strict


@pytest.mark.parametrize(
    "text",
    [
        '"Doe, Jane" <jane@example.com>',
        "=?utf-8?q?J=C3=B6rg?= <jorg@example.com>",
        "Jane (work) <jane@example.com>",
        "team: a@example.com, b@example.com;",
        "Jane Doe jane@example.com",
        "Żaneta <zaneta@example.com>",
        "<@route:jane@example.com>",
    ],
)
def test_anything_but_plain_addresses_leaves_the_fast_path(text: str) -> None:
    from salesinbox.mime.headers import _simple_addresses

    assert _simple_addresses(text) is None


def test_date_and_plain_subject_read_without_header_objects() -> None:
    raw = (
        b"From: Jane <jane@example.com>\r\nTo: a@example.com, Bob B <bob@example.org>\r\n"
        b"Subject:  Re:   Plans\r\n\tfor Q3\r\nDate: Tue, 3 Nov 2026 10:00:00 +0100\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Re: Plans for Q3"
    assert parsed.date == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    assert parsed.to == (Address("", "a@example.com"), Address("Bob B", "bob@example.org"))
    assert parsed.status == "ok"


# ---- names made of encoded words only: read without policy.default's parser, as it reads them ----------

_CHARSETS = ("utf-8", "iso-8859-1", "iso-8859-2", "windows-1256", "koi8-r", "iso-8859-8")
_Q_PLAIN = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")


def _encoded_word(text: str, charset: str, q: bool) -> str:
    data = text.encode(charset)
    if q:
        body = "".join("_" if b == 0x20 else chr(b) if b in _Q_PLAIN else f"={b:02X}" for b in data)
        return f"=?{charset}?q?{body}?="
    return f"=?{charset}?b?{base64.b64encode(data).decode('ascii')}?="


_PRINTABLE_ONLY = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")  # what str.isprintable() refuses


@st.composite
def _encoded_name_address(draw, printable: bool = True) -> str:
    charset = draw(st.sampled_from(_CHARSETS))
    alphabet = st.characters(codec=charset, exclude_categories=_PRINTABLE_ONLY if printable else ("Cs",))
    words = draw(st.lists(st.text(alphabet=alphabet, min_size=1, max_size=8), min_size=1, max_size=3))
    q = draw(st.booleans())
    name = " ".join(_encoded_word(word, charset, q) for word in words)
    addr = draw(_plain_address()).rpartition(" ")[2].strip("<>")
    return f"{name} <{addr}>"


@given(st.lists(_encoded_name_address(), min_size=1, max_size=5))
@settings(max_examples=400, deadline=None)
def test_encoded_word_names_read_fast_as_policy_default_reads_them(items: list[str]) -> None:
    from salesinbox.mime.headers import _encoded_name_addresses, _parse_addresses

    text = ",\t".join(items)
    fast = _encoded_name_addresses(text)
    assert fast == _parse_addresses("to", text)
    assert fast is not None or "\ufffd" in "".join(a.name for a in _parse_addresses("to", text) or ())


@given(st.lists(_encoded_name_address(printable=False), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_encoded_word_names_with_any_characters_are_read_fast_only_as_policy_default_reads_them(items) -> None:
    from salesinbox.mime.headers import _encoded_name_addresses, _parse_addresses

    text = ", ".join(items)
    fast = _encoded_name_addresses(text)
    if fast is not None:
        assert fast == _parse_addresses("to", text)


@given(st.lists(_encoded_name_address(), min_size=1, max_size=3), st.data())
@settings(max_examples=300, deadline=None)
def test_a_damaged_encoded_word_is_read_fast_only_as_policy_default_reads_it(items: list[str], data) -> None:
    from salesinbox.mime.headers import _encoded_name_addresses, _parse_addresses

    text = ", ".join(items)
    at = data.draw(st.integers(0, len(text) - 1))
    text = text[:at] + data.draw(st.sampled_from(["", "=", "?", "=FF", "*", "A", " ", "_", "=?"])) + text[at + 1 :]
    fast = _encoded_name_addresses(text)
    if fast is not None:  # else the full parser reads it (and notes what was wrong)
        assert fast == _parse_addresses("to", text)


@pytest.mark.parametrize(
    "text",
    [
        "=?utf-8?b?w7Y?= <x@example.com>",  # base64 padding missing: policy.default repairs it with a defect
        "=?utf-8?b?w7#=?= <x@example.com>",  # not base64
        "=?x-bogus?q?abc?= <x@example.com>",  # unknown charset
        "=?utf-8?q?=FF?= <x@example.com>",  # not UTF-8
        "Lea =?utf-8?q?Gro=C3=9F?= <x@example.com>",  # plain words beside encoded ones
        "=?utf-8?q?a,b?= <x@example.com>",  # a comma inside a word
        '"=?utf-8?q?a?=" <x@example.com>',  # quoted
        "=?iso-8859-1?q?=9?= <x@example.com>",  # "=" without two hex digits: policy.default ends the word early
        "=?utf-8?q?a?=<x@example.com>",  # no space before the address
        "=?utf-8?q?a=00b?= <x@example.com>",  # a control character
        "=?utf-8?q?a=0Ab?= <x@example.com>",
    ],
)
def test_encoded_word_names_out_of_the_plain_shape_go_to_the_full_parser(text: str) -> None:
    from salesinbox.mime.headers import _encoded_name_addresses

    assert _encoded_name_addresses(text) is None


def test_a_message_with_encoded_word_names_reads_them() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M=C3=BCller?= <Jorg@Example.com>\r\n"
        b"To: =?windows-1256?b?2uPRIOPk1ebR?= <omar@example.eg>, Bob <bob@example.org>\r\n"
        b"Subject: hi\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n"
    )
    message = parse_message(raw)
    assert message.from_ == Address("Jörg Müller", "jorg@example.com")
    assert message.to == (Address("عمر منصور", "omar@example.eg"), Address("Bob", "bob@example.org"))
    assert message.status == "ok"


def test_clean_text_keeps_ascii_and_drops_nul_and_lone_surrogates() -> None:
    from salesinbox.mime.charsets import clean

    assert clean("plain text") == "plain text"
    assert clean("a\x00b") == "ab"
    assert clean("żółw\x00\udce9!") == "żółw\ufffd!"
