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

from sqlalchemy import ColumnElement, Uuid, column, func, literal_column, select, table, text
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
    tsquery = _tsquery(terms)
    rows = await db.execute(
        text(
            "SELECT message_id FROM message_search WHERE company_id = :c AND document @@ to_tsquery('simple', :q) "
            "LIMIT :n"
        ),
        {"q": tsquery, "c": company_id, "n": limit},
    )
    return [r[0] for r in rows]


async def matching(db: AsyncSession, company_id: uuid.UUID, query: str, message_id: ColumnElement) -> ColumnElement:
    """SQL: the message ``message_id`` (a column of the caller's query) matches ``query``.

    PostgreSQL: a subquery the planner joins with the rest of the caller's query: every match counts, so
    a list of the newest conversations with a common word walks them newest first and stops at a page,
    and one with a rare word starts from the word's few matches (bench/README.md, capacity).
    SQLite: the ids of the first 1,000 matches (an embedded installation's mailbox is small).
    """
    terms = _terms(query)
    if _is_sqlite(db) or not terms:
        return message_id.in_(await search_message_ids(db, company_id, query))
    tsquery = _tsquery(terms)
    if not tsquery:
        return message_id.in_([])
    return message_id.in_(
        select(_SEARCH.c.message_id).where(
            _SEARCH.c.company_id == company_id,
            _SEARCH.c.document.bool_op("@@")(func.to_tsquery(literal_column("'simple'"), tsquery)),
        )
    )


# The PostgreSQL table, for building queries (made by hand in the migrations; not in the models' metadata).
_SEARCH = table("message_search", column("company_id", Uuid), column("message_id", Uuid), column("document"))


def _tsquery(terms: list[str]) -> str:
    return " & ".join(re.sub(r"[^\w]", "", t) + ":*" for t in terms if re.sub(r"[^\w]", "", t))


def _is_sqlite(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "sqlite"
