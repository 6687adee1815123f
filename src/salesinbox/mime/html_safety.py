"""Received HTML mail made safe to show: nh3 (ammonia) with a mail-shaped allow-list.

The output is meant for ``<iframe sandbox srcdoc=...>`` under a strict CSP; this
module is the first wall, not the only one. What it does:

- keeps the tags and presentational attributes that mail layouts need (tables
  with width/align/valign/bgcolor/border/cellpadding/cellspacing/colspan/rowspan,
  ``font``, ``center``, ``dir`` and ``lang`` everywhere, so RTL mail stays RTL);
- drops everything that runs, loads or submits: ``script``, ``style`` blocks,
  ``iframe``, ``object``, ``embed``, ``form`` and its controls, ``meta``, ``link``,
  ``base``, SVG and MathML, event-handler and unknown attributes, comments
  (unknown elements are unwrapped: their text stays);
- filters ``style`` attributes to a list of layout/typography properties whose
  values may only hold words, numbers, colours, quoted names and ``rgb()``/
  ``hsl()``: no ``url()``, ``expression()``, escapes or comments survive;
- links keep ``href`` only for http, https, mailto and tel, and get
  ``rel="noopener noreferrer nofollow"`` and ``target="_blank"``;
- image sources (``img src``/``srcset``, the ``background`` attribute): ``cid:``
  goes through ``inline_image``; ``data:image/(png|jpeg|gif|webp);base64`` stays;
  http(s) (and protocol-relative ``//host``) is dropped when ``remote_images`` is
  ``None`` and replaced by ``remote_images(url)`` otherwise; anything else goes.

``SafeHtml.remote_images`` counts the remote image references found, whether
they could be shown through the proxy or not: ``img src``/``srcset``, ``source
srcset``, ``background`` attributes, ``input src``, ``video poster``, SVG
``image``/``feImage`` hrefs and ``url()`` in style attributes. CSS inside
``<style>`` blocks is dropped unread and not counted.

Before nh3 parses it, the markup is reshaped so that parsing takes linear time
(see ``_Reshaper``): ``<body>`` becomes ``<div>`` (so a newsletter's body styling
survives the fragment parse), nesting is capped at ``MAX_DEPTH``, and misnested
formatting tags (``<b>``, ``<font>``...) close where a browser might not close them.
"""

from __future__ import annotations

import re
import string
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import nh3

MAX_HTML_BYTES = 5 * 1024 * 1024
"""Input beyond this many UTF-8 bytes is cut off before sanitising (it may end mid-tag; the parser copes)."""

MAX_DEPTH = 256
"""Start tags that would nest deeper than this are removed, their text kept (see ``_Reshaper``)."""

LINK_REL = "noopener noreferrer nofollow"

_TAGS = frozenset(
    {
        "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "br",
        "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt",
        "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup",
        "hr", "i", "img", "ins", "kbd", "li", "main", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby",
        "s", "samp", "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
        "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip

# Removed with everything inside them (most never reach ammonia: _Reshaper drops raw-text elements).
# Other unknown elements (form, video, svg, math...) are unwrapped, so their attributes can still be counted.
_CLEAN_CONTENT_TAGS = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript",
        "noembed", "noframes", "title", "xmp", "textarea", "head",
    }
)  # fmt: skip

_GENERIC_ATTRIBUTES = frozenset({"dir", "lang", "title", "style", "align", "valign", "width", "height", "bgcolor"})
_CELL = frozenset({"colspan", "rowspan", "nowrap", "abbr", "scope", "background"})
_ATTRIBUTES: dict[str, set[str]] = {
    "*": set(_GENERIC_ATTRIBUTES),
    "a": {"href"},
    "img": {"src", "srcset", "sizes", "alt", "border", "hspace", "vspace", "href", "xlink:href"},  # href: counted
    "table": {"border", "cellpadding", "cellspacing", "frame", "rules", "summary", "background"},
    "thead": {"background"},
    "tbody": {"background"},
    "tfoot": {"background"},
    "tr": {"background"},
    "td": set(_CELL),
    "th": set(_CELL),
    "div": {"background"},  # a former <body>
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "hr": {"size", "noshade", "color"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "blockquote": {"type"},
    "time": {"datetime"},
    "del": {"datetime"},
    "ins": {"datetime"},
    "details": {"open"},
}

_BOX_SIDES = ("", "-top", "-right", "-bottom", "-left")
_STYLE_PROPERTIES = frozenset(
    {
        "color", "background-color",
        "font", "font-family", "font-size", "font-style", "font-weight", "font-variant", "font-stretch",
        "text-align", "text-align-last", "text-decoration", "text-decoration-line", "text-decoration-color",
        "text-decoration-style", "text-indent", "text-transform", "text-shadow", "text-overflow",
        "width", "height", "max-width", "min-width", "max-height", "min-height", "line-height", "vertical-align",
        "display", "list-style", "list-style-type", "list-style-position", "white-space", "direction",
        "unicode-bidi", "letter-spacing", "word-spacing", "word-break", "word-wrap", "overflow-wrap",
        "table-layout", "border-collapse", "border-spacing", "border-radius", "border-top-left-radius",
        "border-top-right-radius", "border-bottom-left-radius", "border-bottom-right-radius",
        *(f"margin{side}" for side in _BOX_SIDES),
        *(f"padding{side}" for side in _BOX_SIDES),
        *(f"border{side}{part}" for side in _BOX_SIDES for part in ("", "-width", "-style", "-color")),
    }
)  # fmt: skip

# A declaration value may hold only these tokens: no functions but colours, no escapes, no comments.
_STYLE_VALUE = re.compile(
    r"""(?:[\w#%.+-]+|"[^"\\<>\n\r\f]*"|'[^'\\<>\n\r\f]*'|[ \t,/]+|(?:rgba?|hsla?)\([\d .,%/+-]*\)|!\s*important)+""",
    re.IGNORECASE,
)
_STYLE_PROPERTY = re.compile(r"[a-z-]+")
_MAX_STYLE = 4096
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?[/\\]{2}""", re.IGNORECASE)
_CSS_IMAGE_SET_STRING = re.compile(r"""image-set\([^)]{0,200}?["']\s*(?:https?:)?[/\\]{2}""", re.IGNORECASE)

_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}", re.IGNORECASE)
_SRCSET_DESCRIPTOR = re.compile(r"\d+(?:\.\d+)?[wxh]|\d*\.\d+x", re.IGNORECASE)
_PROTOCOL_RELATIVE = frozenset({"//", "\\\\", "/\\", "\\/"})

_IMAGE_SOURCES = frozenset(
    {
        ("img", "src"), ("img", "href"), ("img", "xlink:href"),  # <svg><image href> parses as <img href>
        ("input", "src"), ("video", "poster"), ("feimage", "href"), ("feimage", "xlink:href"),
    }
)  # fmt: skip
_IMAGE_SRCSETS = frozenset({("img", "srcset"), ("source", "srcset")})
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

# The tag reshaping done before parsing (see _Reshaper).
_PLACEHOLDER = "x-sib-"
_FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"}
)
_RENAMED = _FORMATTING | {"svg", "math", "select", "template"}
# One token of the HTML tokeniser's data state that is not text: a comment (with its abrupt forms),
# a bogus comment or doctype (ends at the first ">"), "</>" or a tag, whose attribute values may
# be quoted (a quote opens a value only after "="). Each alternative matches up to ">" or the end.
_TOKEN = re.compile(
    r"""<!--(?:>|->|.*?(?:--!?>|\Z))
    |<[!?][^>]*>?
    |</(?![A-Za-z])[^>]*>?
    |<(?P<closing>/?)(?P<name>[A-Za-z][^\t\n\f />]*)
     (?P<rest>(?:[\t\n\f /]+|=?[^\t\n\f />=]*(?:[\t\n\f ]*=[\t\n\f ]*(?:"[^"]*"?|'[^']*'?|[^\t\n\f >]*))?)*(?:>|\Z))""",
    re.DOTALL | re.VERBOSE,
)
_RAW_TEXT = {
    name: re.compile(f"</{name}[\t\n\f />]", re.IGNORECASE | re.ASCII)
    for name in ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript")
}
_PLACEHOLDER_TAG = re.compile(
    r"(<|&lt;)(/?)" + _PLACEHOLDER + "(" + "|".join(sorted(_FORMATTING, key=len, reverse=True)) + r")(?=[\t\n\f\r />&])"
)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_VOID = frozenset(
    {
        "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image", "img", "input",
        "keygen", "link", "meta", "param", "source", "track", "wbr",
    }
)  # fmt: skip
_NOT_OPENED = frozenset({"html", "head", "frameset"})  # ignored in a body fragment
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_TABLE_PARTS = frozenset({"table", "caption", "colgroup", "tbody", "thead", "tfoot", "tr", "td", "th"})
_CLOSES_P = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl",
        "fieldset", "figcaption", "figure", "footer", "header", "hgroup", "main", "menu", "nav", "ol", "p",
        "search", "section", "summary", "ul", "pre", "listing", "form", "plaintext", "xmp", "li", "dd", "dt",
        *_HEADINGS,
    }
)  # fmt: skip
_SPECIAL = frozenset(
    {
        "address", "applet", "area", "article", "aside", "base", "basefont", "bgsound", "blockquote", "body",
        "br", "button", "caption", "center", "col", "colgroup", "dd", "details", "dir", "div", "dl", "dt",
        "embed", "fieldset", "figcaption", "figure", "footer", "form", "frame", "frameset", "head", "header",
        "hgroup", "hr", "html", "iframe", "img", "input", "keygen", "li", "link", "listing", "main", "marquee",
        "menu", "meta", "nav", "noembed", "noframes", "noscript", "object", "ol", "p", "param", "plaintext",
        "pre", "script", "search", "section", "select", "source", "style", "summary", "table", "tbody", "td",
        "template", "textarea", "tfoot", "th", "thead", "title", "tr", "track", "ul", "wbr", "xmp", *_HEADINGS,
    }
)  # fmt: skip
_IN_SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"})
# Kinds of open element that stop the tree builder's searches of the stack, by index.
_KIND_SETS = (
    _SPECIAL,  # a non-special end tag stops at any special element
    _IN_SCOPE,  # "has an element in scope"
    _IN_SCOPE | {"button"},  # ... in button scope
    frozenset({"html", "table", "template"}),  # ... in table scope
    _IN_SCOPE | {"ol", "ul"},  # ... in list item scope
    _SPECIAL - {"address", "div", "p"},  # a <li>, <dd> or <dt> closes an open one up to these
)
_SPECIAL_KIND, _SCOPE, _BUTTON_SCOPE, _TABLE_SCOPE, _LIST_SCOPE, _LI_STOP = range(len(_KIND_SETS))
_KIND_COUNT = len(_KIND_SETS)
_PLAIN_KINDS: tuple[int, ...] = ()
_KINDS: dict[str, tuple[int, ...]] = {
    name: tuple(kind for kind, names in enumerate(_KIND_SETS) if name in names)
    for name in frozenset().union(*_KIND_SETS)
}


@dataclass(frozen=True)
class SafeHtml:
    """Sanitised body content and how many remote image references it had."""

    html: str  # sanitised HTML document body content
    remote_images: int  # how many remote image references were found (blocked or proxied)


def sanitize_email_html(
    html: str,
    *,
    remote_images: Callable[[str], str] | None,
    inline_image: Callable[[str], str | None],
) -> SafeHtml:
    """Sanitise mail HTML for the reading pane; never raises.

    ``remote_images=None`` blocks remote images; a callable maps each http(s) image URL
    to the URL to load instead (the signed image proxy). ``inline_image`` maps a ``cid:``
    content id to a URL, or ``None`` to drop it. Input over ``MAX_HTML_BYTES`` (5 MB of
    UTF-8) is truncated to that size before sanitising, so the end of a huge message may
    be missing. Should anything fail unexpectedly, the result is empty HTML.
    """
    try:
        rewriter = _Rewriter(remote_images, inline_image)
        cleaned = nh3.clean(
            _prepare(html),
            tags={_parsed_name(tag) for tag in _TAGS},
            clean_content_tags=set(_CLEAN_CONTENT_TAGS),
            attributes={_parsed_name(tag): set(names) for tag, names in _ATTRIBUTES.items()},
            attribute_filter=rewriter,
            strip_comments=True,
            link_rel=LINK_REL,  # for <a>; what the parser sees is <x-sib-a>, so also:
            set_tag_attribute_values={
                "a": {"target": "_blank"},
                _parsed_name("a"): {"target": "_blank", "rel": LINK_REL},
            },
            # Every allowed URL attribute also goes through the rewriter, which is the real gate; this
            # lets through only what it may want to see (relative URLs: for its own proxied/inline URLs).
            url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
            url_relative="pass_through",
            filter_style_properties=set(_STYLE_PROPERTIES),
        )
        return SafeHtml(html=_restore(cleaned), remote_images=rewriter.remote_count)
    except Exception:  # noqa: BLE001 - the contract is "never raise"; empty output is the safe failure
        return SafeHtml(html="", remote_images=0)


def _parsed_name(tag: str) -> str:
    """The name a tag has in the reshaped input that nh3 parses."""
    return _PLACEHOLDER + tag if tag in _RENAMED else tag


def _prepare(html: str) -> str:
    """Bound the input to ``MAX_HTML_BYTES`` of valid UTF-8, then reshape it (see ``_Reshaper``)."""
    if not isinstance(html, str):
        html = str(html)
    data = html.encode("utf-8", "replace")  # lone surrogates (from surrogateescape) become "?"
    if len(data) > MAX_HTML_BYTES:
        data = data[:MAX_HTML_BYTES]
    text = data.decode("utf-8", "ignore")  # drops a character cut in half at the end
    return _Reshaper().reshape(text.replace("\r\n", "\n").replace("\r", "\n"))


def _restore(cleaned: str) -> str:
    """Turn the placeholders that survived sanitising back into the formatting tags they stand for."""
    return _PLACEHOLDER_TAG.sub(r"\1\2\3", cleaned)


class _Reshaper:
    """Rewrites markup so that html5ever parses it in time linear in its size.

    html5ever, like every HTML5 tree builder, walks the stack of open elements on most tags,
    and rebuilds "active formatting elements" (a, b, font, i...) after misnested markup: deep
    or crafted markup makes that quadratic or worse (40 KB of ``<font id=N><p>x`` took 8 s;
    200,000 nested divs, minutes). So the input is tokenised here as the HTML tokeniser does
    (tags with quoted attributes, comments, bogus comments), and:

    - comments, and raw-text elements with their content (script, style, textarea, title, xmp,
      iframe, noembed, noframes, noscript: all dropped by the sanitiser anyway), are replaced
      by an empty comment, so the parser's tokeniser never leaves its data state except after
      ``<plaintext>``, and sees exactly the tags seen here;
    - formatting elements are renamed to inert custom elements (``x-sib-b``), put back after
      sanitising: no adoption agency, no reconstruction. Misnested formatting then ends where
      the parser closes the placeholder, which may differ from what a browser would show;
    - ``svg``, ``math``, ``select`` and ``template`` are renamed too (and unwrapped by the
      sanitiser): no foreign content (so no namespace confusion) and no insertion mode that
      ignores tags, so every tag seen here has the effect modelled below;
    - ``<body>`` becomes ``<div>``, so the body's styling survives the fragment parse;
    - a start tag that would nest deeper than ``MAX_DEPTH`` is replaced by an empty comment
      (its content stays), and so is the end tag that would close it.

    Depth is tracked with a model of the tree builder that pops elements only where the real
    one certainly does too, so it over-counts rather than under-counts.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.positions: dict[str, list[int]] = {}
        self.kinds: list[list[int]] = [[] for _ in range(_KIND_COUNT)]
        self.skipped: dict[str, int] = {}

    def reshape(self, text: str) -> str:
        out: list[str] = []
        position = 0
        while (token := _TOKEN.search(text, position)) is not None:
            out.append(text[position : token.start()])
            position = token.end()
            if token.group("name") is None:  # a comment, bogus comment or doctype
                out.append("<!---->")
                continue
            closing, written, rest = token.group("closing", "name", "rest")
            name = written.translate(_ASCII_LOWER)
            if name in _RAW_TEXT and not closing:
                end = _RAW_TEXT[name].search(text, position)
                end_tag = _TOKEN.match(text, end.start()) if end else None
                position = end_tag.end() if end_tag else len(text)
                out.append("<!---->")
                continue
            if name == "body":
                written = name = "div"
            elif name in _RENAMED:
                written = name = _PLACEHOLDER + name
            out.append(self._tag(closing, name, f"<{closing}{written}{rest}"))
        out.append(text[position:])
        return "".join(out)

    def _tag(self, closing: str, name: str, tag: str) -> str:
        """The tag as it goes to the parser, after applying it to the model."""
        if name in _VOID or name in _NOT_OPENED:
            return tag
        if closing:
            if self.skipped.get(name):
                self.skipped[name] -= 1
                return "<!---->"
            self._end(name)
        elif not self._start(name):
            self.skipped[name] = self.skipped.get(name, 0) + 1
            return "<!---->"
        return tag

    def _start(self, name: str) -> bool:
        """Apply a start tag; ``False`` (and no change) if it would nest deeper than ``MAX_DEPTH``."""
        cut = len(self.names)
        if name in _TABLE_PARTS and name != "table" and self._latest(("table",), cut, _TABLE_SCOPE) < 0:
            return True  # ignored outside a table
        if name == "li":
            cut = self._closable(("li",), cut, _LI_STOP)
        elif name in ("dd", "dt"):
            cut = self._closable(("dd", "dt"), cut, _LI_STOP)
        elif name in ("td", "th"):
            cut = self._closable(("td", "th"), cut, _TABLE_SCOPE)
            cut = self._closable(("tr",), cut, _TABLE_SCOPE, keep=True)
        elif name == "tr":
            cut = self._closable(("tr",), cut, _TABLE_SCOPE)
            cut = self._closable(("tbody", "thead", "tfoot"), cut, _TABLE_SCOPE, keep=True)
        elif name in ("tbody", "thead", "tfoot", "caption", "colgroup"):
            cut = self._closable(("table",), cut, _TABLE_SCOPE, keep=True)
        elif name == "button":
            cut = self._closable(("button",), cut, _SCOPE)
        elif name in ("option", "optgroup"):
            cut -= 1 if cut and self.names[cut - 1] == "option" else 0  # in body, only an option is closed
        if name in _CLOSES_P:
            cut = self._closable(("p",), cut, _BUTTON_SCOPE)
        if name in _HEADINGS and cut and self.names[cut - 1] in _HEADINGS:
            cut -= 1
        if cut >= MAX_DEPTH:
            return False
        self._pop_to(cut)
        self._push(name)
        return True

    def _end(self, name: str) -> None:
        top = len(self.names)
        if name == "p":
            cut = self._closable(("p",), top, _BUTTON_SCOPE)
        elif name == "li":
            cut = self._closable(("li",), top, _LIST_SCOPE)
        elif name in _HEADINGS:
            cut = self._closable(_HEADINGS, top, _SCOPE)
        elif name in ("form", "caption", "colgroup"):  # the tree builder's rules are subtler: only the simplest case
            cut = top - 1 if top and self.names[-1] == name else top
        elif name in _TABLE_PARTS:
            cut = self._closable((name,), top, _TABLE_SCOPE)
        else:
            cut = self._closable((name,), top, _SCOPE if name in _SPECIAL else _SPECIAL_KIND)
        self._pop_to(cut)

    def _closable(self, names: tuple[str, ...], cut: int, stop: int, *, keep: bool = False) -> int:
        """The stack height after closing the latest of ``names`` below ``cut`` (``keep``: up to it)."""
        latest = self._latest(names, cut, stop)
        if latest < 0:
            return cut
        return latest + 1 if keep else latest

    def _latest(self, names: tuple[str, ...], cut: int, stop: int) -> int:
        """Position of the latest of ``names`` below ``cut`` with no element of kind ``stop`` above it, or -1."""
        latest = -1
        for name in names:
            found = self.positions.get(name)
            if found:
                index = bisect_left(found, cut) - 1
                if index >= 0:
                    latest = max(latest, found[index])
        positions = self.kinds[stop]
        if latest < 0 or bisect_right(positions, latest) < bisect_left(positions, cut):  # a stopper in between
            return -1
        return latest

    def _push(self, name: str) -> None:
        position = len(self.names)
        self.names.append(name)
        self.positions.setdefault(name, []).append(position)
        for kind in _KINDS.get(name, _PLAIN_KINDS):
            self.kinds[kind].append(position)

    def _pop_to(self, height: int) -> None:
        while len(self.names) > height:
            name = self.names.pop()
            self.positions[name].pop()
            for kind in _KINDS.get(name, _PLAIN_KINDS):
                self.kinds[kind].pop()


class _Rewriter:
    """The attribute filter for one message: gates URLs, filters styles, counts remote images."""

    def __init__(self, remote_images: Callable[[str], str] | None, inline_image: Callable[[str], str | None]) -> None:
        self.remote_images = remote_images
        self.inline_image = inline_image
        self.remote_count = 0

    def __call__(self, tag: str, attribute: str, value: str) -> str | None:
        """ammonia calls this for the allowed attributes of kept elements, and for all of removed ones."""
        try:
            tag = tag.lower()
            if tag.startswith(_PLACEHOLDER) and tag[len(_PLACEHOLDER) :] in _RENAMED:
                tag = tag[len(_PLACEHOLDER) :]
            return self._rewrite(tag, attribute.lower(), value)
        except Exception:  # noqa: BLE001 - an exception here would only be reported, and strip the attribute
            return None

    def _rewrite(self, tag: str, attribute: str, value: str) -> str | None:
        kept = tag in _TAGS  # attributes of removed elements are only counted
        if attribute == "style":
            self.remote_count += _count_css_remote(value)
            return _filter_style(value) if kept else None
        if (tag, attribute) in _IMAGE_SRCSETS:
            return self._srcset(value, emit=kept)
        if attribute == "background" or (tag, attribute) in _IMAGE_SOURCES:
            return self._image(value, emit=kept and attribute in ("src", "background"))
        if tag == "a" and attribute == "href":
            return _link(value)
        return value

    def _image(self, raw: str, *, emit: bool) -> str | None:
        """The URL to put in place of an image source, or ``None`` to drop it."""
        url = _normalise(raw)
        scheme = _scheme(url)
        if scheme is None and url[:2] in _PROTOCOL_RELATIVE:
            url, scheme = "https:" + url, "https"
        if scheme in ("http", "https"):
            self.remote_count += 1
            return self._proxied(url) if emit else None
        if not emit:
            return None
        if scheme == "cid":
            content_id = unquote(url[4:]).strip().removeprefix("<").removesuffix(">")
            mapped = self.inline_image(content_id) if content_id else None
            return mapped if isinstance(mapped, str) and mapped else None
        if scheme == "data" and _DATA_IMAGE.fullmatch(url):
            return url
        return None

    def _proxied(self, url: str) -> str | None:
        """``remote_images(url)`` for a well-formed absolute http(s) URL; ``None`` when blocked."""
        if self.remote_images is None:
            return None
        path_end = min((index for index in (url.find("?"), url.find("#")) if index >= 0), default=len(url))
        url = url[:path_end].replace("\\", "/") + url[path_end:]  # browsers read \ as / there
        scheme = url.partition(":")[0].lower()
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
        if not host or not url.lower().startswith(f"{scheme}://"):
            return None
        proxied = self.remote_images(url)
        return proxied if isinstance(proxied, str) and proxied else None

    def _srcset(self, value: str, *, emit: bool) -> str | None:
        kept = []
        for url, descriptor in _srcset_candidates(value):
            mapped = self._image(url, emit=emit)
            if mapped is None or any(char.isspace() for char in mapped) or mapped.endswith(","):
                continue
            kept.append(f"{mapped} {descriptor}" if descriptor else mapped)
        return ", ".join(kept) or None


def _normalise(url: str) -> str:
    """What a browser's URL parser starts from: no leading/trailing C0 or space, no tab or newline."""
    return _TAB_NEWLINE.sub("", url.strip(_C0_AND_SPACE))


def _scheme(url: str) -> str | None:
    found = _SCHEME.match(url)
    return found.group(1).lower() if found else None


def _link(raw: str) -> str | None:
    """A link target kept only for http(s) with a host, mailto and tel."""
    url = _normalise(raw)
    scheme = _scheme(url)
    if scheme not in _LINK_SCHEMES:
        return None
    if scheme in ("http", "https") and not url.lower().startswith(f"{scheme}://"):
        return None
    return url


def _srcset_candidates(value: str) -> list[tuple[str, str]]:
    """``(url, descriptor)`` pairs, as the HTML srcset parser splits them; odd descriptors become empty."""
    candidates: list[tuple[str, str]] = []
    position, length = 0, len(value)
    while position < length:
        while position < length and (value[position].isspace() or value[position] == ","):
            position += 1
        start = position
        while position < length and not value[position].isspace():
            position += 1
        url = value[start:position]
        if not url:
            break
        descriptor = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start, depth = position, 0
            while position < length and (depth or value[position] != ","):
                if value[position] == "(":
                    depth += 1
                elif value[position] == ")" and depth:
                    depth -= 1
                position += 1
            words = value[start:position].split()
            descriptor = words[0] if len(words) == 1 and _SRCSET_DESCRIPTOR.fullmatch(words[0]) else ""
        if url:
            candidates.append((url, descriptor))
    return candidates


def _filter_style(value: str) -> str | None:
    """Keep declarations of allowed properties whose values hold no functions but colours."""
    if len(value) > _MAX_STYLE:
        return None
    kept = []
    for declaration in _split_declarations(value):
        name, colon, declared = declaration.partition(":")
        name, declared = name.strip().lower(), declared.strip()
        if not colon or not declared or not _STYLE_PROPERTY.fullmatch(name) or name not in _STYLE_PROPERTIES:
            continue
        if _STYLE_VALUE.fullmatch(declared):
            kept.append(f"{name}: {declared}")
    return "; ".join(kept) or None


def _split_declarations(value: str) -> list[str]:
    """Split on ``;`` outside quotes (an unclosed quote runs to the end, as in CSS)."""
    parts, current, quote = [], [], ""
    for char in value:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ";":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _count_css_remote(value: str) -> int:
    """Remote ``url()`` (and ``image-set()`` string) references in a style attribute."""
    text = _CSS_COMMENT.sub("", _CSS_ESCAPE.sub(_unescape_css, value))
    return len(_CSS_URL.findall(text)) + len(_CSS_IMAGE_SET_STRING.findall(text))


def _unescape_css(found: re.Match[str]) -> str:
    if found.group(1) is None:
        return found.group(2)
    code = int(found.group(1), 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
