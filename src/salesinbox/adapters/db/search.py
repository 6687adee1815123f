"""Full-text search over messages: SQLite FTS5 or PostgreSQL tsvector, one interface.

Documents hold the subject, the text body, the participants (names and
addresses) and the attachment names. Queries are plain words typed by a user:
they are turned into a conjunction of prefix terms, never passed through as
query syntax.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_BODY_CHARS = 200_000


@dataclass(frozen=True)
class SearchDocument:
    company_id: uuid.UUID
    message_id: uuid.UUID
    subject: str
    body: str
    participants: str
    attachments: str


def _terms(query: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(query)][:20]


async def index_documents(db: AsyncSession, documents: Iterable[SearchDocument]) -> None:
    """Index a batch of messages; straight to the driver (executemany), as ``upsert.insert_rows`` explains."""
    sqlite = _is_sqlite(db)
    rows = [
        (
            str(d.company_id) if sqlite else d.company_id,
            str(d.message_id) if sqlite else d.message_id,
            d.subject,
            d.body[:MAX_BODY_CHARS],
            d.participants,
            d.attachments,
        )
        for d in documents
    ]
    if not rows:
        return
    connection = await db.connection()
    if sqlite:
        await connection.exec_driver_sql(
            "INSERT INTO message_search (company_id, message_id, subject, body, participants, attachments) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    else:
        await connection.exec_driver_sql(
            "INSERT INTO message_search (company_id, message_id, document) VALUES (%s, %s, "
            "setweight(to_tsvector('simple', %s), 'A') || to_tsvector('simple', %s) || "
            "to_tsvector('simple', %s) || to_tsvector('simple', %s)) ON CONFLICT DO NOTHING",
            [(c, m, s, p, a, b) for c, m, s, b, p, a in rows],
        )


async def search_message_ids(db: AsyncSession, company_id: uuid.UUID, query: str, limit: int = 1000) -> list[uuid.UUID]:
    terms = _terms(query)
    if not terms:
        return []
    if _is_sqlite(db):
        match = " AND ".join('"' + t.replace('"', "") + '"*' for t in terms)
        rows = await db.execute(
            text("SELECT message_id FROM message_search WHERE message_search MATCH :q AND company_id = :c LIMIT :n"),
            {"q": match, "c": str(company_id), "n": limit},
        )
        return [uuid.UUID(r[0]) for r in rows]
    tsquery = " & ".join(re.sub(r"[^\w]", "", t) + ":*" for t in terms if re.sub(r"[^\w]", "", t))
    rows = await db.execute(
        text(
            "SELECT message_id FROM message_search WHERE company_id = :c AND document @@ to_tsquery('simple', :q) "
            "LIMIT :n"
        ),
        {"q": tsquery, "c": company_id, "n": limit},
    )
    return [r[0] for r in rows]


def _is_sqlite(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "sqlite"
