"""Large messages kept without their large attachments: a skeleton built from IMAP body sections.

SPEC: "attachment metadata is synced; attachment bytes are fetched on demand
and cached". A message over ``LEAN_OVER`` bytes is not downloaded whole.
Its BODYSTRUCTURE (RFC 3501 7.4.2) names every part; ``plan`` picks the
sections to fetch instead: the message header, each part's MIME header, and
the body of every text/plain and text/html part and of every other part up
to ``OMIT_OVER`` bytes. ``assemble`` puts them back together as a MIME
message of the same shape, whose omitted parts have empty bodies: it parses
to the same text, HTML and attachment list (same part ids: the IMAP section
numbers) as the whole message would. ``on_server`` then gives the omitted
attachments their size from the BODYSTRUCTURE and marks them, so that
opening one fetches its bytes from the server (``services.mail_assets``).

Whatever is unexpected -- not multipart at the top, a multipart without a
boundary, a shape the checks disagree with, more than ``MAX_SECTIONS``
sections -- gives None: the message is fetched whole, as before.

No I/O here: the IMAP adapter fetches what ``plan`` asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from salesinbox.mime.extract import leaf_parts
from salesinbox.mime.parse import ParsedMessage

LEAN_OVER = 100_000  # bytes (RFC822.SIZE): a larger message is fetched as a skeleton
OMIT_OVER = 32_768  # bytes (encoded): a larger non-text part stays on the server
MAX_SECTIONS = 400  # a plan longer than this fetches the whole message instead (one short command)
_BODY_TYPES = {(b"TEXT", b"PLAIN"), (b"TEXT", b"HTML")}


@dataclass(frozen=True)
class LeanPlan:
    sections: tuple[str, ...]  # "HEADER", "1.MIME", "1", ... as in BODY.PEEK[<section>]
    omitted: dict[str, int]  # part id -> encoded size in bytes, from the BODYSTRUCTURE
    encodings: dict[str, str]  # part id -> its Content-Transfer-Encoding, lower case


def plan(structure: Sequence, omit_over: int = OMIT_OVER) -> LeanPlan | None:
    """The sections to fetch for a skeleton of the message of this BODYSTRUCTURE; None: fetch it whole.

    ``structure`` as imapclient parses it: a multipart is ``([children], subtype,
    params, ...)``, a leaf ``(type, subtype, params, id, description, encoding,
    size, ...)``.
    """
    if not _is_multipart(structure):
        return None
    sections: list[str] = ["HEADER"]
    omitted: dict[str, int] = {}
    encodings: dict[str, str] = {}
    if not _walk(structure, "", sections, omitted, encodings, omit_over):
        return None
    if not omitted or len(sections) > MAX_SECTIONS:
        return None
    return LeanPlan(tuple(sections), omitted, encodings)


def _walk(node: Sequence, path: str, sections: list, omitted: dict, encodings: dict, omit_over: int) -> bool:
    if _boundary(node) is None:
        return False
    for number, child in enumerate(node[0], 1):
        child_id = f"{path}.{number}" if path else str(number)
        sections.append(f"{child_id}.MIME")
        if _is_multipart(child):
            if not _walk(child, child_id, sections, omitted, encodings, omit_over):
                return False
            continue
        kind, size = _leaf_kind(child)
        if kind is None:
            return False
        if kind in _BODY_TYPES or size <= omit_over:
            sections.append(child_id)
        else:
            omitted[child_id] = size
            encodings[child_id] = _text(child[5]).lower() if len(child) > 5 else ""
    return True


def assemble(structure: Sequence, sections: dict[str, bytes]) -> bytes | None:
    """The skeleton from the fetched ``sections`` (keyed as in the plan); None if one is missing."""
    header = sections.get("HEADER")
    if header is None:
        return None
    try:
        return header_block(header) + _multipart_body(structure, "", sections)
    except KeyError:
        return None


def _multipart_body(node: Sequence, path: str, sections: dict[str, bytes]) -> bytes:
    boundary = _boundary(node)
    out = []
    for number, child in enumerate(node[0], 1):
        child_id = f"{path}.{number}" if path else str(number)
        out.append(b"--" + boundary + b"\r\n" + header_block(sections[f"{child_id}.MIME"]))
        if _is_multipart(child):
            out.append(_multipart_body(child, child_id, sections))
        else:
            out.append(sections.get(child_id, b""))  # absent: omitted, its body left on the server
        out.append(b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def trusted(skeleton: bytes, lean: LeanPlan) -> bool:
    """Whether the parse of ``skeleton`` makes an attachment of every omitted part, at its planned part id.

    The parse's own tree and walk (``extract.leaf_parts``) number the parts;
    a leaf of a type other than text/plain, text/html (or a multipart that lost
    its parts) is always an attachment there, whatever its disposition.
    """
    parts = leaf_parts(skeleton)
    for part_id in lean.omitted:
        part = parts.get(part_id)
        if part is None:
            return False
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") or kind.startswith("multipart/"):
            return False
    return True


def on_server(parsed: ParsedMessage, lean: LeanPlan) -> ParsedMessage | None:
    """The skeleton's parse with its omitted attachments sized and marked; None if the parse does not
    show every omitted part as an attachment (then the skeleton is not trusted: fetch the whole message)."""
    found = {a.part_id for a in parsed.attachments}
    if not set(lean.omitted) <= found:
        return None
    attachments = tuple(
        replace(a, size=decoded_size(lean.omitted[a.part_id], lean.encodings.get(a.part_id, "")), on_server=True)
        if a.part_id in lean.omitted
        else a
        for a in parsed.attachments
    )
    return replace(parsed, attachments=attachments)


def decoded_size(encoded: int, encoding: str) -> int:
    """A part's size as the user sees it, estimated from its encoded size (base64 lines of 76 + CRLF)."""
    if encoding == "base64":
        return max(encoded - 2 * (encoded // 78), 0) * 3 // 4
    return encoded


def header_block(header: bytes) -> bytes:
    """A header block that ends in exactly one empty line (servers differ on whether they send it)."""
    header = header.rstrip(b"\r\n")
    return header + b"\r\n\r\n" if header else b"\r\n"


def _is_multipart(node: Sequence) -> bool:
    return bool(node) and isinstance(node[0], list)


def _boundary(node: Sequence) -> bytes | None:
    params = node[2] if len(node) > 2 else None
    if not isinstance(params, (tuple, list)):
        return None
    for name, value in zip(params[::2], params[1::2], strict=False):
        if isinstance(name, bytes) and name.upper() == b"BOUNDARY" and isinstance(value, bytes) and value:
            if b"\r" in value or b"\n" in value:
                return None
            return value
    return None


def _leaf_kind(node: Sequence) -> tuple[tuple[bytes, bytes] | None, int]:
    if len(node) < 7 or not isinstance(node[0], bytes) or not isinstance(node[1], bytes):
        return None, 0
    size = node[6]
    if not isinstance(size, int) or size < 0:
        return None, 0
    return (node[0].upper(), node[1].upper()), size


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")
