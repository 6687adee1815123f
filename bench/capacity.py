"""Capacity benchmark: the Sales Inbox and search over 1,000,000 messages of one company, on PostgreSQL.

One company, eight users, six private accounts and two team accounts (sales@,
support@), their folders, and a mailbox written straight into a throwaway
database by ``bench.capacity_gen`` (COPY). Then, through the service functions
the web app calls (``conversations.list_conversations`` for a folder's first
page and for search, ``conversations.unread_counts`` for the folder counts
the inbox page shows), with the visibility rules of ``services/access.py``
applied, for a user with a private account and a team account:

- the first page (51 rows: the page asks for one more to know there is a next)
  of Inbox, Sent and Archive, and the unread counts;
- search in Inbox for a common word, a rare word, a two-word phrase and a
  right-to-left word;

each timed ``--repeat`` times after one warm-up, p50 / p95 in milliseconds.
Targets (issue 7): first page p95 <= 300 ms, search p95 <= 1 s.

    python -m bench capacity                      # 1,000,000 messages (a few minutes)
    python -m bench capacity --messages 20000     # quick
    python -m bench capacity --keep               # leave the database for EXPLAIN, print its URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import text

from bench.capacity_gen import HEBREW, Account, Counts, Generator, load, make_folders
from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.domain.accounts import AccountKind, Security, SyncStart
from salesinbox.services import accounts, conversations, workspace
from salesinbox.services.accounts import AccountInput
from salesinbox.settings import Settings
from tests.support.databases import PG_ADMIN, ThrowawayDatabase, _libpq

RESULTS = Path(__file__).parent / "results"
OWN_DOMAIN = "bench.example"
PASSWORD = "Bench-pass-1"
# Share of the threads each account holds: six private accounts, then sales@ and support@.
PRIVATE_WEIGHTS = (0.06, 0.12, 0.08, 0.06, 0.05, 0.03)
TEAM_WEIGHTS = (0.35, 0.25)
PAGE = 51  # pages_inbox.PAGE_SIZE + 1
FOLDERS = ("inbox", "sent", "archive")


async def _setup(settings: Settings, seed: int) -> tuple[uuid.UUID, uuid.UUID, list[Account]]:
    """The company, its users and accounts, through the services; returns (company, measured user, accounts)."""
    runtime = bootstrap.build_runtime(settings)
    deps = runtime.deps
    tag = uuid.uuid4().hex[:8]
    try:
        company, admin = await workspace.initialize_company(
            deps, company_name="Capacity Ltd", admin_email=f"admin-{tag}@{OWN_DOMAIN}", admin_password=PASSWORD
        )
        admin_actor = await workspace.actor_for(deps, company.id, admin.id)
        users = [admin]
        for i in range(1, 8):
            users.append(
                await workspace.add_user(
                    deps, admin_actor, email=f"user{i}-{tag}@{OWN_DOMAIN}", password=PASSWORD, name=f"User {i}"
                )
            )
        actors = [await workspace.actor_for(deps, company.id, u.id) for u in users]
        made = []
        for i, weight in enumerate(PRIVATE_WEIGHTS):
            view = await accounts.connect_account(deps, actors[i], _input(f"user{i}@{OWN_DOMAIN}"), verify=False)
            made.append((view.id, view.address, weight, False))
        teams = (("sales", [1, 2, 3, 4]), ("support", [3, 4, 5, 6, 7]))
        for (name, members), weight in zip(teams, TEAM_WEIGHTS, strict=True):
            view = await accounts.connect_account(
                deps,
                admin_actor,
                _input(f"{name}@{OWN_DOMAIN}", kind=AccountKind.TEAM, member_ids=[users[m].id for m in members]),
                verify=False,
            )
            made.append((view.id, view.address, weight, True))
        folders = make_folders(_libpq(settings.database_url), company.id, [m[0] for m in made], seed)
        return (
            company.id,
            users[1].id,
            [
                Account(id, address, weight, f, team)
                for (id, address, weight, team), f in zip(made, folders, strict=True)
            ],
        )
    finally:
        await runtime.close()


def _input(address: str, kind: AccountKind = AccountKind.PRIVATE, member_ids=()) -> AccountInput:
    return AccountInput(
        address=address,
        login=address,
        password="not-used",
        kind=kind,
        imap_host="127.0.0.1",
        imap_port=143,
        imap_security=Security.NONE,
        smtp_host="127.0.0.1",
        smtp_port=587,
        smtp_security=Security.NONE,
        sync_start=SyncStart.EVERYTHING,
        member_ids=list(member_ids),
    )


def _stats(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[max(int(len(samples) * 0.95) - 1, 0)], 1),
        "n": len(samples),
    }


async def _timed(call, repeat: int) -> tuple[dict[str, float], object]:
    result = await call()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - start) * 1000)
    return _stats(samples), result


def search_words(generator: Generator) -> dict[str, str]:
    """The queries: a common word, a rare one (from the vocabulary's tail), a phrase, a right-to-left word."""
    return {
        "common_word": "contract",
        "rare_word": generator.words[25_000],
        "phrase": "renewal discount",
        "rtl_word": HEBREW[3],
    }


async def measure(
    settings: Settings, company_id: uuid.UUID, user_id: uuid.UUID, queries: dict[str, str], repeat: int
) -> dict:
    runtime = bootstrap.build_runtime(settings)
    deps = runtime.deps
    try:
        actor = await workspace.actor_for(deps, company_id, user_id)
        figures: dict[str, dict] = {}
        for folder in FOLDERS:
            figures[f"first_page_{folder}"], rows = await _timed(
                lambda folder=folder: conversations.list_conversations(deps, actor, folder=folder, limit=PAGE), repeat
            )
            figures[f"first_page_{folder}"]["rows"] = len(rows)
        figures["unread_counts"], counts = await _timed(lambda: conversations.unread_counts(deps, actor), repeat)
        figures["unread_counts"]["counts"] = counts
        async with runtime.sessions.engine.connect() as connection:
            for name, query in queries.items():
                hits = await connection.scalar(
                    text(
                        "SELECT count(*) FROM message_search "
                        "WHERE company_id = :c AND document @@ to_tsquery('simple', :q)"
                    ),
                    {"c": company_id, "q": " & ".join(w + ":*" for w in query.split())},
                )
                figures[f"search_{name}"], rows = await _timed(
                    lambda query=query: conversations.list_conversations(deps, actor, query=query, limit=PAGE), repeat
                )
                figures[f"search_{name}"].update(query=query, company_hits=hits, rows=len(rows))
        return figures
    finally:
        await runtime.close()


async def _explain(settings: Settings, company_id: uuid.UUID, user_id: uuid.UUID, queries: dict[str, str]) -> None:
    """Each measured call once, then EXPLAIN (ANALYZE, BUFFERS) of every statement it ran, with its parameters."""
    from sqlalchemy import event

    runtime = bootstrap.build_runtime(settings)
    deps = runtime.deps
    captured: list[tuple[str, str, object]] = []
    label = [""]

    def record(conn, cursor, statement, parameters, context, executemany):
        captured.append((label[0], statement, parameters))

    event.listen(runtime.sessions.engine.sync_engine, "before_cursor_execute", record)
    try:
        actor = await workspace.actor_for(deps, company_id, user_id)
        label[0] = "first page inbox"
        await conversations.list_conversations(deps, actor, folder="inbox", limit=PAGE)
        label[0] = "unread counts"
        await conversations.unread_counts(deps, actor)
        for name, query in queries.items():
            label[0] = f"search {name} {query!r}"
            await conversations.list_conversations(deps, actor, query=query, limit=PAGE)
    finally:
        await runtime.close()
    with psycopg.connect(_libpq(settings.database_url), options="-c jit=off") as conn:  # as the app's engine
        for what, statement, parameters in captured:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
            print(f"---- {what}\n{statement[:700]}\n" + "\n".join(r[0] for r in plan) + "\n")


def _existing(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The company and measured user of a database kept by an earlier run (--keep)."""
    with psycopg.connect(_libpq(url)) as conn:
        company_id, user_id = conn.execute(
            "SELECT u.company_id, u.id FROM users u JOIN companies c ON c.id = u.company_id "
            "WHERE c.name = 'Capacity Ltd' AND u.name = 'User 1'"
        ).fetchone()
    return company_id, user_id


def build(settings: Settings, messages: int, seed: int) -> tuple[uuid.UUID, uuid.UUID, Generator, Counts]:
    """The company (through the services) and its mailbox (COPY) in a migrated, empty database."""
    company_id, user_id, made = asyncio.run(_setup(settings, seed))
    generator = Generator(seed, company_id, made, OWN_DOMAIN)
    return company_id, user_id, generator, load(_libpq(settings.database_url), generator, messages)


def run(messages: int, seed: int = 7, repeat: int = 20, keep: bool = False, workdir: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = ThrowawayDatabase("postgresql", workdir or Path(tmp)).create()
        settings = Settings(data_dir=Path(tmp) / "data", database_url=db.url, secret_keys=generate_key())
        try:
            company_id, user_id, generator, counts = build(settings, messages, seed)
            figures = asyncio.run(measure(settings, company_id, user_id, search_words(generator), repeat))
        finally:
            if keep:
                print(f"kept: {_libpq(db.url)}")
            else:  # no dump for the secrets audit (db.drop): gigabytes of mail, no secret in it
                with psycopg.connect(_libpq(PG_ADMIN), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    return {
        "backend": "postgresql",
        "messages": counts.messages,
        "conversations": counts.conversations,
        "locations": counts.locations,
        "thread_keys": counts.thread_keys,
        "attachments": counts.attachments,
        "participants": counts.participants,
        "generation": counts.timings,
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=int(os.environ.get("BENCH_CAPACITY_MESSAGES", 1_000_000)))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database (for EXPLAIN); prints its URL")
    parser.add_argument("--no-save", action="store_true", help="print only; leave bench/results alone")
    parser.add_argument("--database", help="measure a database kept by an earlier run instead of generating one")
    parser.add_argument("--explain", action="store_true", help="with --database: print the plans, measure nothing")
    args = parser.parse_args(argv)
    if args.database:
        settings = Settings(
            data_dir=Path(tempfile.gettempdir()), database_url=args.database, secret_keys=generate_key()
        )
        company_id, user_id = _existing(args.database)
        queries = search_words(Generator(args.seed, company_id, [], OWN_DOMAIN))
        if args.explain:
            asyncio.run(_explain(settings, company_id, user_id, queries))
            return {}
        figures = asyncio.run(measure(settings, company_id, user_id, queries, args.repeat))
        print(json.dumps(figures, indent=2))
        return figures
    result = {
        **run(args.messages, args.seed, args.repeat, args.keep),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    print(json.dumps(result, indent=2))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "capacity-postgresql.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
