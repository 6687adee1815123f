"""HTML we write: what the compose editor produced, made safe to store, send and load back into the editor.

The editor (TipTap, ``frontend/src/compose.js``) only makes paragraphs, line
breaks, bold, italic, underline, strike, code, headings, lists, quotes, rules
and links, each block with ``dir="auto"`` (so Arabic, Hebrew, Persian or Urdu
reads right to left, paragraph by paragraph, where the mail is read), so this
allow-list is that and nothing more: no ``style``, no images, no classes, no
event handlers, and ``dir`` only as ``auto``, ``rtl`` or ``ltr``. Whatever a
user pastes, or a client posts to the API, is cut down to it by nh3 before it
is stored or sent; links keep http, https and mailto only. The plain-text
alternative is derived from the cleaned HTML by inscriptis (a layout-aware
renderer, not Markdown).
"""

from __future__ import annotations

import html as html_lib

import nh3
from inscriptis import get_text
from inscriptis.model.config import ParserConfig

MAX_COMPOSE_HTML = 2 * 1024 * 1024
_TAGS = frozenset(
    {
        "p", "br", "strong", "b", "em", "i", "u", "s", "code", "pre", "blockquote", "ul", "ol", "li",
        "h1", "h2", "h3", "hr", "a", "div", "span",
    }
)
_ATTRIBUTES = {"a": {"href"}, "*": {"dir"}, "ol": {"start"}}
_DIRECTIONS = frozenset({"auto", "rtl", "ltr"})
_TEXT_CONFIG = ParserConfig(display_links=True)
_DOCUMENT = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
    '<body>\n{body}\n</body></html>\n'
)


def _only_known_directions(_tag: str, attribute: str, value: str) -> str | None:
    """``dir`` stays only as a direction (normalised: " RTL " is "rtl"); any other value drops the attribute."""
    if attribute != "dir":
        return value
    direction = value.strip().lower()
    return direction if direction in _DIRECTIONS else None


def clean_compose_html(html: str) -> str:
    """The editor's HTML, cut down to the tags and links it makes; scripts, styles and handlers go."""
    return nh3.clean(
        html[:MAX_COMPOSE_HTML],
        tags=set(_TAGS),
        clean_content_tags={"script", "style", "template", "textarea", "title", "noscript"},
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        attribute_filter=_only_known_directions,
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",  # a relative link means nothing in a mail client
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def as_email_document(clean_html: str) -> str:
    """A whole HTML document around cleaned editor HTML, as mail clients expect it."""
    return _DOCUMENT.format(body=clean_html)


def compose_text(clean_html: str) -> str:
    """The plain-text alternative of cleaned editor HTML (paragraphs, lists and quotes laid out as text)."""
    return "\n".join(line.rstrip() for line in get_text(clean_html, _TEXT_CONFIG).strip("\n").splitlines()) + "\n"


def text_as_html(text: str) -> str:
    """Plain text as editor paragraphs (for switching a plain draft or a quoted reply into rich text)."""
    blocks = text.replace("\r\n", "\n").split("\n\n")
    return "".join(f"<p>{html_lib.escape(block).replace(chr(10), '<br>')}</p>" for block in blocks)
