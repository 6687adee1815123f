"""Rich text we send: cleaned to the editor's own tags, sent with a plain-text alternative, headers untouched."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesinbox.mime.compose_html import clean_compose_html, compose_text, text_as_html
from salesinbox.services.outbox import WIRE, OutgoingMessage, _build
from tests.support.xss_corpus import load_vectors

ACCOUNT = SimpleNamespace(address="rep@acme.test", display_name="Rep", attachment_limit_bytes=10**7)
ALLOWED_TAGS = {"p", "br", "strong", "b", "em", "i", "u", "s", "code", "pre", "blockquote", "ul", "ol", "li",
                "h1", "h2", "h3", "hr", "a", "div", "span"}


class _Elements(HTMLParser):
    """Every element and attribute a browser or mail client would build from the HTML."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def assert_harmless(html: str) -> None:
    for tag, attrs in _Elements(html).found:
        assert tag in ALLOWED_TAGS, html
        assert set(attrs) <= {"href", "rel", "dir", "start"}, html
        if "href" in attrs:
            assert re.match(r"(https?|mailto):", attrs["href"] or ""), html
        if "dir" in attrs:
            assert attrs["dir"] in {"auto", "rtl", "ltr"}, html

def built(html: str, text: str = ""):
    message, _ = _build(ACCOUNT, OutgoingMessage("a", to=["buyer@customer.example"], subject="S", text=text,
                                                 html=html), None)
    return message_from_bytes(message.as_bytes(policy=WIRE), policy=default)


def test_rich_text_is_sent_as_html_with_a_plain_text_part_derived_from_it():
    message = built("<p>Hello <strong>Ana</strong>,</p><ul><li>one</li><li>two</li></ul>"
                    '<p>See <a href="https://acme.test/offer">the offer</a>.</p>')

    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()
    assert "Hello Ana," in plain and "* one" in plain and "https://acme.test/offer" in plain
    assert "<strong>Ana</strong>" in html and html.lstrip().startswith("<!DOCTYPE html>")
    assert 'rel="noopener noreferrer"' in html


def test_plain_text_alone_stays_a_single_text_part():
    message = built("", text="Just words.")
    assert message.get_content_type() == "text/plain" and message.get_content().strip() == "Just words."


@pytest.mark.parametrize("vector", load_vectors(remote="https://attacker.invalid"))
def test_hostile_html_typed_or_pasted_is_cut_to_the_editors_tags(vector):
    cleaned = clean_compose_html(vector)
    assert_harmless(cleaned)
    if cleaned:
        assert_harmless(built(vector).get_body(("html",)).get_content().partition("<body>")[2])


def test_links_keep_only_web_and_mail_addresses():
    cleaned = clean_compose_html('<a href="javascript:alert(1)">a</a><a href="mailto:x@y.test">b</a>'
                                 '<a href="https://ok.test" onclick="x()" target="_top">c</a>')
    assert cleaned == ('<a rel="noopener noreferrer">a</a><a href="mailto:x@y.test" rel="noopener noreferrer">b</a>'
                       '<a href="https://ok.test" rel="noopener noreferrer">c</a>')


def test_each_block_keeps_its_direction_and_dir_keeps_only_a_direction():
    editor_html = ('<p dir="auto">مرحبا، هذا عرضنا.</p><p dir="auto">Best regards, Ada</p>'
                   '<ul dir="auto"><li dir="auto"><p dir="auto">שלום</p></li></ul><h2 dir="rtl">עברית</h2>'
                   '<blockquote dir="ltr"><p dir="auto">quoted</p></blockquote>')
    assert clean_compose_html(editor_html) == editor_html
    assert clean_compose_html('<p dir=" RTL ">a</p>') == '<p dir="rtl">a</p>'
    for unknown in ("rtl;color:red", "rlo", "", "inherit", "rtl&quot; onclick=&quot;x()", "auto auto"):
        assert clean_compose_html(f'<p dir="{unknown}">a</p>') == "<p>a</p>", unknown
    cleaned = clean_compose_html('<a href="https://ok.test" dir="sideways">x</a>')
    assert cleaned == '<a href="https://ok.test" rel="noopener noreferrer">x</a>'


def test_sent_html_keeps_each_blocks_direction():
    html = built('<p dir="auto">مرحبا</p><p dir="auto">Hello</p><p dir="up">x</p>').get_body(("html",))
    body = html.get_content().partition("<body>")[2]
    assert '<p dir="auto">مرحبا</p><p dir="auto">Hello</p><p>x</p>' in body


def test_plain_text_becomes_escaped_paragraphs_for_the_editor():
    assert text_as_html("a <b>\nc\n\nd") == "<p>a &lt;b&gt;<br>c</p><p>d</p>"
    assert compose_text(clean_compose_html(text_as_html("a <b>\nc\n\nd"))) == "a <b>\nc\n\nd\n"


NASTY = st.sampled_from(["\r", "\n", "\r\nBcc: evil@attacker.test", "\u2028", "\x00", "=?utf-8?q?=0D=0ABcc:_x?=",
                         "<script>", "</p>", "<a href='x'>", "Ω"])


@given(html=st.lists(st.one_of(NASTY, st.text(max_size=6)), max_size=10).map("".join),
       subject=st.lists(st.one_of(NASTY, st.text(max_size=6)), max_size=6).map("".join))
@settings(max_examples=500, deadline=None)
def test_rich_text_never_adds_a_header_or_a_part_header(html, subject):
    message, recipients = _build(ACCOUNT, OutgoingMessage("a", to=["buyer@customer.example"], subject=subject,
                                                          html=html), None)
    parsed = message_from_bytes(message.as_bytes(policy=WIRE), policy=default)
    names = {k.lower() for k in parsed.keys()}
    assert names <= {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                     "content-transfer-encoding"}
    assert recipients == ["buyer@customer.example"]
    for part in list(parsed.walk())[1:]:
        assert {k.lower() for k in part.keys()} <= {"content-type", "content-transfer-encoding", "mime-version"}
