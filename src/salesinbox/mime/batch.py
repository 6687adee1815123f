"""Parsing many messages at once: the entry point worker processes import.

Kept apart from the sync service so that a spawned worker imports only the
MIME code, not the database and web stacks.
"""

from __future__ import annotations

from salesinbox.mime.parse import ParsedMessage, parse_message


def parse_many(raws: list[bytes]) -> list[ParsedMessage]:
    return [parse_message(raw) for raw in raws]
