"""The capacity benchmark's generator, at a tiny scale, so that it cannot rot.

`python -m bench capacity` writes a million messages straight into PostgreSQL
(COPY, bench/capacity_gen.py) instead of syncing them: this checks that what
it writes is what the sync engine's store leaves behind (every table the
store and the linking rules fill, consistent with each other), that the
services read it (the inbox, the unread counts, search), and that the same
seed gives the same mailbox. PostgreSQL only: the generator speaks COPY.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg

from bench import capacity
from bench.capacity_gen import Account, Generator
from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.services import conversations, workspace
from salesinbox.settings import Settings
from tests.support.databases import BACKENDS, ThrowawayDatabase, _libpq

MESSAGES = 1_500


def _consistency(dsn: str, company_id) -> dict[str, int]:
    """Counts of rows that break what the store guarantees; all must be 0."""
    checks = {
        "messages without a location": "SELECT count(*) FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM message_locations l WHERE l.company_id = m.company_id AND l.message_id = m.id)",
        "messages without a search document": "SELECT count(*) FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM message_search s WHERE s.company_id = m.company_id AND s.message_id = m.id)",
        "messages without their own thread key": "SELECT count(*) FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM message_thread_keys k WHERE k.company_id = m.company_id AND k.message_id = m.id "
        "AND k.key = 'id:' || m.message_id_header)",
        "conversations whose count or last date is off": "SELECT count(*) FROM conversations c JOIN "
        "(SELECT conversation_id, count(*) AS n, max(sent_at) AS last FROM messages GROUP BY conversation_id) m "
        "ON m.conversation_id = c.id WHERE (c.message_count, c.last_message_at) IS DISTINCT FROM (m.n, m.last)",
        "conversations without participants": "SELECT count(*) FROM conversations c WHERE NOT EXISTS "
        "(SELECT 1 FROM conversation_participants p WHERE p.company_id = c.company_id AND p.conversation_id = c.id)",
        "conversations without a linking verdict": "SELECT count(*) FROM conversations c WHERE NOT EXISTS "
        "(SELECT 1 FROM conversation_link_states s WHERE s.company_id = c.company_id AND s.conversation_id = c.id)",
        "locations in another account's folder": "SELECT count(*) FROM message_locations l JOIN mail_folders f "
        "ON f.company_id = l.company_id AND f.id = l.folder_id WHERE f.account_id <> l.account_id",
        "rows of another company": "SELECT (SELECT count(*) FROM messages WHERE company_id <> %(c)s) + "
        "(SELECT count(*) FROM message_locations WHERE company_id <> %(c)s)",
        "foreign keys broken (attachments)": "SELECT count(*) FROM attachments a WHERE NOT EXISTS "
        "(SELECT 1 FROM messages m WHERE m.company_id = a.company_id AND m.id = a.message_id)",
    }
    with psycopg.connect(dsn) as conn:
        return {what: conn.execute(sql, {"c": company_id}).fetchone()[0] for what, sql in checks.items()}


if "postgresql" in BACKENDS:

    def test_the_capacity_generator_writes_what_the_store_writes_and_the_services_read_it(workdir: Path):
        db = ThrowawayDatabase("postgresql", workdir).create()
        settings = Settings(data_dir=workdir / "capacity", database_url=db.url, secret_keys=generate_key())
        try:
            company_id, user_id, generator, counts = capacity.build(settings, MESSAGES, seed=3)
            assert counts.messages == MESSAGES
            assert 1 < MESSAGES / counts.conversations < 8  # threads of 1-20 messages, most short
            assert counts.locations > MESSAGES  # some messages are held by two accounts
            broken = _consistency(_libpq(db.url), company_id)
            assert broken == dict.fromkeys(broken, 0)

            figures = asyncio.run(capacity.measure(settings, company_id, user_id, capacity.search_words(generator), 1))
            assert figures["first_page_inbox"]["rows"] == capacity.PAGE
            assert figures["search_common_word"]["rows"] > 0
            assert 0 < figures["search_common_word"]["company_hits"] < MESSAGES
            assert figures["search_rtl_word"]["company_hits"] > 0
            counts_by_folder = figures["unread_counts"]["counts"]
            assert counts_by_folder["inbox"] > 0 and counts_by_folder["sent"] == 0

            # Every body starts "Hello <name>": a search for it lists what the folder lists, newest first,
            # though more than 1,000 messages match (search is not a capped list of ids on PostgreSQL).
            inbox, found = asyncio.run(_inbox_and_search(settings, company_id, user_id, "hello"))
            assert found == inbox and len(found) == capacity.PAGE
        finally:
            db.drop()


async def _inbox_and_search(settings, company_id, user_id, query: str) -> tuple[list, list]:
    runtime = bootstrap.build_runtime(settings)
    try:
        actor = await workspace.actor_for(runtime.deps, company_id, user_id)
        inbox = await conversations.list_conversations(runtime.deps, actor, limit=capacity.PAGE)
        found = await conversations.list_conversations(runtime.deps, actor, query=query, limit=capacity.PAGE)
        return [c.id for c in inbox], [c.id for c in found]
    finally:
        await runtime.close()


def test_the_same_seed_gives_the_same_mailbox():
    def first_threads(seed: int) -> list:
        folders = {role: uuid.UUID(int=i) for i, role in enumerate(("inbox", "sent", "archive", "trash", "junk"))}
        accounts = [Account(uuid.UUID(int=100 + i), f"a{i}@bench.example", 1.0, folders, i == 1) for i in range(2)]
        threads = Generator(seed, uuid.UUID(int=1), accounts, "bench.example").threads(200)
        return [next(threads) for _ in range(5)]

    mailbox = first_threads(5)
    assert first_threads(5) == mailbox
    assert first_threads(6) != mailbox
