"""Primary keys are UUIDv7: time-ordered, so inserts stay local in B-tree indexes."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(int=uuid_utils.uuid7().int)
