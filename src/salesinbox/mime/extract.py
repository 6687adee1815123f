"""One MIME part's bytes, by the part id ``parse_message`` gave its attachment.

Attachments are stored as metadata only (``bodies.AttachmentInfo``); their
bytes stay in the raw message and are cut out on demand. The ids must agree
with the ones the parse assigned, so this module builds the tree the very
same way (``parse._part_tree``: the fast split, else the feedparser, with
``parse._OpaqueMessage``: message/rfc822 parts are never entered) and walks
it with the very same walk (``bodies._Walk``), only recording each leaf
instead of reading it.

A message the parse refused as over a limit (``limits.measure``) reported no
attachments, and is not parsed here either: ``None``.
"""

from __future__ import annotations

from email.message import Message

from salesinbox.mime.bodies import _Unit, _Walk
from salesinbox.mime.limits import measure
from salesinbox.mime.parse import _part_tree


class _Leaves(_Walk):
    """The parse's walk, collecting every leaf part by its IMAP section number."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[str, Message] = {}

    def leaf(self, part: Message, part_id: str, ctype: str) -> list[_Unit]:
        self.parts.setdefault(part_id, part)
        return []


def leaf_parts(raw: bytes) -> dict[str, Message]:
    """Every leaf part of ``raw`` by part id, numbered as ``parse_message`` numbers attachments."""
    if not raw.strip() or measure(raw).over_limit:
        return {}
    try:
        message = _part_tree(raw)
        walk = _Leaves()
        walk.visit(message, "")
    except RecursionError:  # only if limits.measure missed a deep structure, as in parse_message
        return {}
    return walk.parts


def extract_part(raw: bytes, part_id: str) -> bytes | None:
    """The decoded bytes (base64, quoted-printable undone) of the part ``part_id``; None if there is none.

    A message/rfc822 part comes back as the forwarded message's raw bytes; a
    message/delivery-status part (which the stdlib parses into header blocks)
    as its blocks written out again.
    """
    part = leaf_parts(raw).get(part_id)
    if part is None:
        return None
    try:
        blocks = part.get_payload()
        if isinstance(blocks, list):
            return "".join(str(block) for block in blocks).encode("utf-8", "surrogateescape")
        payload = part.get_payload(decode=True)
    except (TypeError, LookupError, ValueError):  # UnicodeError is a ValueError
        return None
    return payload if isinstance(payload, bytes) else None
