"""A large synthetic company mailbox, written straight into PostgreSQL with COPY.

The rows are the ones a sync pass leaves behind (services/mail_store.py, the
linking rules, adapters/db/search.py): conversations, messages, their thread
keys, (folder, UID) locations in the folders of several accounts, attachments,
conversation participants and linking verdicts, a few per-conversation
visibility settings, and the full-text documents, built by the same SQL
expression ``index_documents`` uses. Field values come from the same domain
code the store calls (``ThreadFacts.of``, ``make_snippet``).

The shape: threads of 1-20 messages (most short), a few accounts of very
different sizes (two team accounts carry the most), about one thread in
twelve held by two accounts, newsletters, a few internal threads, unread
mail mostly recent. Words follow Zipf frequencies: bodies are sentences from a
pool drawn over the 5,000 most frequent words, plus a word or two drawn over
the whole 30,000-word vocabulary, so rare words have a handful of hits and
common ones hundreds of thousands. A few percent of bodies are right-to-left
(Hebrew, Arabic). Same seed, same rows (ids included).

Speed: plain indexes of the loaded tables are dropped before the load and
rebuilt after it (what a restore does); each table is streamed through its own
connection with ``session_replication_role = replica`` (foreign-key triggers
off: the rows are consistent by construction), so the server parses the
tables side by side while Python generates.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg

from salesinbox.adapters.blobs import raw_key
from salesinbox.domain.linking import domain_of
from salesinbox.domain.threading import ThreadFacts
from salesinbox.mime.parse import SNIPPET_LENGTH, make_snippet

# The tables the load writes, in no particular order (foreign keys are not checked during the load).
LOADED = (
    "conversations",
    "messages",
    "message_thread_keys",
    "message_locations",
    "attachments",
    "conversation_participants",
    "conversation_link_states",
    "conversation_visibility",
    "message_search",
)
FOLDERS = (
    ("INBOX", "inbox"),
    ("Sent", "sent"),
    ("Archive", "archive"),
    ("Trash", "trash"),
    ("Junk", "junk"),
    ("Drafts", "drafts"),
)
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=3 * 365)

COMMON = (
    "the and to we you for of a in is on with your our this that please thanks it be will as at are "
    "proposal contract meeting offer price invoice order delivery call next week team update renewal "
    "discount demo payment licence support quote review project deal customer account attached schedule "
    "budget quarter pricing signed draft terms agreement follow questions details today tomorrow monday "
    "friday send sent shipment install training onboarding integration security migration forecast"
).split()
HEBREW = "שלום תודה הצעה חוזה פגישה מחיר חשבונית משלוח לקוח עדכון תמיכה הזמנה שבוע הבא".split()
ARABIC = "مرحبا شكرا عرض عقد اجتماع سعر فاتورة شحن عميل تحديث دعم طلب الأسبوع القادم".split()
FIRST = (
    "anna ben chloe dev emil fatima gus hana ivan jana kofi lena marek nadia omar pia quinn rosa sam tara "
    "uma viktor wen xavier yara zoe"
).split()
LAST = (
    "nowak smith garcia cohen haddad kim muller rossi silva tanaka okafor jensen kowalski dubois novak ivanova"
).split()
EXTENSIONS = ("pdf", "docx", "xlsx", "png", "zip")


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    address: str
    weight: float  # share of the threads
    folders: dict[str, uuid.UUID]  # role -> folder id
    team: bool


@dataclass
class Counts:
    messages: int = 0
    conversations: int = 0
    locations: int = 0
    thread_keys: int = 0
    attachments: int = 0
    participants: int = 0
    visibility_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def vocabulary(rng: random.Random, size: int = 30_000) -> list[str]:
    """The real words first (most frequent), then pronounceable made-up ones, all distinct."""
    onsets = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words, seen = list(COMMON), set(COMMON)
    while len(words) < size:
        word = "".join(rng.choice(onsets) for _ in range(rng.choice((2, 3, 3, 4)))) + rng.choice(("", "n", "r", "s"))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1 / (rank**s) for rank in range(1, n + 1)))


class _Ids:
    """Deterministic UUIDv7s: the time part from a clock that advances with the load (as a sync pass would)."""

    def __init__(self, rng: random.Random, start: dt.datetime) -> None:
        self.rng, self.ms = rng, int(start.timestamp() * 1000)

    def next(self) -> uuid.UUID:
        self.ms += 1
        value = (self.ms << 80) | (0x7 << 76) | (self.rng.getrandbits(12) << 64) | (0b10 << 62)
        return uuid.UUID(int=value | self.rng.getrandbits(62))


def thread_sizes(rng: random.Random, total: int) -> list[int]:
    """Sizes of 1-20 with a long tail (P(n) ~ n^-1.5): mean about 3.5, half the threads a single message."""
    cum = zipf_weights(20, 1.5)
    sizes, left = [], total
    while left > 0:
        n = min(bisect.bisect(cum, rng.random() * cum[-1]) + 1, left)
        sizes.append(n)
        left -= n
    return sizes


class Generator:
    def __init__(self, seed: int, company_id: uuid.UUID, accounts: list[Account], own_domain: str) -> None:
        self.rng = random.Random(seed)
        self.company_id, self.accounts, self.own_domain = company_id, accounts, own_domain
        self.words = vocabulary(self.rng)
        self.pool_cum = zipf_weights(5_000)
        self.all_cum = zipf_weights(len(self.words))
        self.sentences = [self._sentence() for _ in range(20_000)]
        self.rtl = [
            " ".join(self.rng.choice(lang) for _ in range(self.rng.randint(5, 12)))
            for lang in (HEBREW, ARABIC)
            for _ in range(200)
        ]
        self.domains = [f"{self._word(5000)}{self._word(5000)}.example" for _ in range(800)]
        self.contacts = [
            (
                f"{self.rng.choice(FIRST).title()} {self.rng.choice(LAST).title()}",
                f"{self.rng.choice(FIRST)}.{self.rng.choice(LAST)}{i}@{self.domains[i % len(self.domains)]}",
            )
            for i in range(5_000)
        ]
        self.contact_cum = zipf_weights(len(self.contacts), 0.8)
        self.account_cum = list(itertools.accumulate(a.weight for a in accounts))
        self.uids: dict[uuid.UUID, int] = {}
        self.ids = _Ids(self.rng, END)

    def _word(self, top: int | None = None) -> str:
        cum = self.pool_cum if top == 5000 else self.all_cum
        return self.words[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def _sentence(self) -> str:
        words = self.rng.choices(self.words[:5000], cum_weights=self.pool_cum, k=self.rng.randint(5, 14))
        return " ".join(words).capitalize() + "."

    def _body(self, name: str) -> str:
        rng = self.rng
        parts = rng.choices(self.sentences, k=rng.randint(2, 9))
        parts.insert(rng.randrange(len(parts) + 1), f"Ref {self._word()} {self._word() if rng.random() < 0.5 else ''}")
        if rng.random() < 0.04:
            parts.insert(0, rng.choice(self.rtl))
        return f"Hello {name},\n\n" + " ".join(parts) + "\n\nBest regards\n"

    def _contact(self) -> tuple[str, str]:
        return self.contacts[bisect.bisect(self.contact_cum, self.rng.random() * self.contact_cum[-1])]

    def _account(self) -> int:
        return bisect.bisect(self.account_cum, self.rng.random() * self.account_cum[-1])

    def _uid(self, folder: uuid.UUID) -> int:
        self.uids[folder] = self.uids.get(folder, 0) + 1
        return self.uids[folder]

    def threads(self, total: int):
        """Yields one thread's rows at a time, as dicts of table -> rows."""
        rng = self.rng
        sizes = thread_sizes(rng, total)
        starts = sorted(END - SPAN + dt.timedelta(seconds=rng.random() * SPAN.total_seconds()) for _ in sizes)
        for size, start in zip(sizes, starts, strict=True):
            yield self._thread(size, min(start, END - dt.timedelta(hours=1)))

    def _thread(self, size: int, start: dt.datetime) -> dict[str, list]:
        rng, company = self.rng, self.company_id
        holder = self.accounts[self._account()]
        holders = [holder]
        if rng.random() < 0.08:  # copied to a second account of the company (a team address, a colleague)
            other = self.accounts[self._account()]
            if other.id != holder.id:
                holders.append(other)
        kind = rng.random()
        bulk, internal = size == 1 and kind < 0.1, kind > 0.97
        if bulk:
            contact = ("News", f"news@{rng.choice(self.domains)}")
        elif internal:
            contact = (rng.choice(FIRST).title(), f"{rng.choice(FIRST)}@{self.own_domain}")
        else:
            contact = self._contact()
        cc = self._contact() if rng.random() < 0.2 and not bulk else None
        home = (
            "junk"
            if bulk and rng.random() < 0.3
            else rng.choices(("inbox", "archive", "trash"), weights=(55, 38, 7))[0]
        )
        subject = " ".join(self._word(5000) for _ in range(rng.randint(2, 6))).capitalize()
        if rng.random() < 0.3:
            subject += f" #{rng.randint(1000, 99999)}"
        conversation_id = self.ids.next()
        rows: dict[str, list] = {t: [] for t in LOADED}
        rows["search_extra"] = []
        when, ids_so_far, people = start, [], set()
        summary = {"last": None, "snippet": "", "attachments": False}
        for position in range(size):
            outgoing = position % 2 == 1 if size > 1 else False
            if not bulk and rng.random() < 0.15:
                outgoing = not outgoing
            me = (holder.address.split("@")[0].title(), holder.address)
            sender, to = (me, contact) if outgoing else (contact, me)
            ccs = [cc] if cc and rng.random() < 0.7 else []
            message_id = f"{rng.getrandbits(64):016x}.{position}@{domain_of(sender[1])}"
            lost_headers = position > 0 and rng.random() < 0.03
            in_reply_to = [] if position == 0 or lost_headers else [ids_so_far[-1]]
            references = [] if position == 0 or lost_headers else ids_so_far[-10:]
            subj = ("Re: " if position else "") + subject
            facts = ThreadFacts.of(
                message_id=message_id,
                in_reply_to=in_reply_to,
                references=references,
                subject=subj,
                participants=[sender[1], to[1], *(c[1] for c in ccs)],
                date=when,
            )
            body = self._body(to[0].split()[0])
            attachments = (
                [
                    f"{self._word(5000)}-{rng.randint(1, 999)}.{rng.choice(EXTENSIONS)}"
                    for _ in range(rng.choice((1, 1, 2)))
                ]
                if rng.random() < 0.15
                else []
            )
            mid = self.ids.next()
            content_hash = hashlib.sha256(message_id.encode()).hexdigest()
            snippet = make_snippet(body[: 3 * SNIPPET_LENGTH])  # the same snippet: it never reads further
            rows["messages"].append(
                (
                    company,
                    mid,
                    conversation_id,
                    f"mid:{message_id}",
                    message_id,
                    content_hash,
                    raw_key(content_hash),
                    len(body) + 900 + sum(40_000 for _ in attachments),
                    subj,
                    facts.subject_key[:500],
                    facts.is_orphan_reply,
                    sender[1],
                    sender[0],
                    json.dumps([[to[0], to[1]]]),
                    json.dumps([list(c) for c in ccs]),
                    "[]",
                    " ".join(sorted(facts.participants)),
                    when,
                    snippet,
                    body,
                    None,
                    bool(attachments),
                    False,
                    bulk,
                    "ok",
                    "",
                    None,
                )
            )
            rows["message_thread_keys"].extend((company, k[:1000], mid) for k in facts.keys)
            for account in holders[: 1 if outgoing and len(holders) > 1 and rng.random() < 0.5 else 2]:
                role = "sent" if outgoing else home
                folder = account.folders[role]
                recent = END - when < dt.timedelta(days=21)
                unread = not outgoing and rng.random() < (0.45 if recent else 0.02)
                flags = " ".join(
                    f
                    for f, on in (
                        ("\\Seen", not unread),
                        ("\\Flagged", rng.random() < 0.02),
                        ("\\Answered", not outgoing and position < size - 1),
                    )
                    if on
                )
                rows["message_locations"].append(
                    (company, folder, self._uid(folder), account.id, mid, 1_700_000_000, flags, 1 + position)
                )
            for name in attachments:
                rows["attachments"].append(
                    (company, self.ids.next(), mid, "2", name, "application/octet-stream", 40_000, None, False)
                )
            participants_text = " ".join(f"{n} {e}" for n, e in (sender, to, *ccs))
            rows["search_extra"].append((mid, participants_text, " ".join(attachments)))
            people |= facts.participants
            summary["attachments"] = summary["attachments"] or bool(attachments)
            summary["last"], summary["snippet"] = when, snippet
            ids_so_far.append(message_id)
            when = min(when + dt.timedelta(minutes=rng.randint(5, 4 * 24 * 60)), END)
        rows["conversations"].append(
            (
                company,
                conversation_id,
                subject,
                summary["snippet"],
                start,
                summary["last"],
                size,
                summary["attachments"],
            )
        )
        rows["conversation_participants"].extend(
            (company, conversation_id, a[:320], domain_of(a)[:253]) for a in sorted(people)
        )
        outcome = "bulk" if bulk else "internal" if internal else "needs_linking" if rng.random() < 0.04 else "no_match"
        rows["conversation_link_states"].append((company, conversation_id, outcome, '{"candidates": {}}', END))
        if not holder.team and rng.random() < 0.02:
            rows["conversation_visibility"].append((company, conversation_id, holder.id, "shared", None, END))
        return rows


COLUMNS = {
    "conversations": "company_id, id, subject, snippet, started_at, last_message_at, message_count, has_attachments",
    "messages": "company_id, id, conversation_id, dedupe_key, message_id_header, content_hash, raw_key, size, "
    "subject, subject_key, orphan_reply, from_email, from_name, to_list, cc_list, bcc_list, participants, "
    "sent_at, snippet, body_text, body_html, has_attachments, is_calendar, is_bulk, parse_status, "
    "parse_problems, gm_thrid",
    "message_thread_keys": "company_id, key, message_id",
    "message_locations": "company_id, folder_id, uid, account_id, message_id, uidvalidity, flags, modseq",
    "attachments": "company_id, id, message_id, part_id, filename, content_type, size, content_id, inline",
    "conversation_participants": "company_id, conversation_id, email, domain",
    "conversation_link_states": "company_id, conversation_id, outcome, detail, evaluated_at",
    "conversation_visibility": "company_id, conversation_id, account_id, visibility, changed_by, changed_at",
    "search_extra": "message_id, participants, attachments",
}

# The document of adapters/db/search.py:index_documents, over the loaded rows.
SEARCH_FILL = (
    "INSERT INTO message_search (company_id, message_id, document) "
    "SELECT m.company_id, m.id, setweight(to_tsvector('simple', m.subject), 'A') || "
    "to_tsvector('simple', x.participants) || to_tsvector('simple', x.attachments) || "
    "to_tsvector('simple', left(m.body_text, 200000)) "
    "FROM search_extra x JOIN messages m ON m.company_id = %s AND m.id = x.message_id"
)


def _plain_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Indexes of the loaded tables that no constraint owns: dropped for the load, rebuilt after it."""
    return conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        (list(LOADED),),
    ).fetchall()


def load(dsn: str, generator: Generator, messages: int) -> Counts:
    """Generate ``messages`` messages and COPY them in; returns what was written and how long each step took."""
    counts, timings = Counts(), {}
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as admin:
        indexes = _plain_indexes(admin)
        for name, _ in indexes:
            admin.execute(f'DROP INDEX "{name}"')
        admin.execute("CREATE UNLOGGED TABLE search_extra (message_id uuid, participants text, attachments text)")
    tables = [*(t for t in LOADED if t != "message_search"), "search_extra"]
    connections = {t: psycopg.connect(dsn) for t in tables}
    try:
        copies, contexts = {}, []
        for table, conn in connections.items():
            conn.execute("SET session_replication_role = replica")
            cursor = conn.cursor()
            context = cursor.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN")
            copies[table] = context.__enter__()
            contexts.append(context)
        for rows in generator.threads(messages):
            for table, found in rows.items():
                if found:
                    write = copies[table].write_row
                    for row in found:
                        write(row)
            counts.conversations += 1
            counts.messages += len(rows["messages"])
            counts.locations += len(rows["message_locations"])
            counts.thread_keys += len(rows["message_thread_keys"])
            counts.attachments += len(rows["attachments"])
            counts.participants += len(rows["conversation_participants"])
            counts.visibility_rows += len(rows["conversation_visibility"])
        for context in contexts:
            context.__exit__(None, None, None)
        for conn in connections.values():
            conn.commit()
    finally:
        for conn in connections.values():
            conn.close()
    timings["generate_and_copy_s"] = time.perf_counter() - started
    step = time.perf_counter()
    # Side by side: the full-text documents then their GIN index, and every other index.
    search_indexes = [d for name, d in indexes if name.startswith("ix_message_search")]
    other_indexes = [d for name, d in indexes if not name.startswith("ix_message_search")]
    with ThreadPoolExecutor(2) as pool:
        done = [
            pool.submit(
                _run,
                dsn,
                [
                    "CREATE INDEX ON search_extra (message_id)",
                    (SEARCH_FILL, (generator.company_id,)),
                    "DROP TABLE search_extra",
                    *search_indexes,
                ],
            ),
            pool.submit(_run, dsn, other_indexes),
        ]
        for future in done:
            future.result()
    timings["search_documents_and_indexes_s"] = time.perf_counter() - step
    with psycopg.connect(dsn, autocommit=True) as admin:
        step = time.perf_counter()
        for account in generator.accounts:  # the folder counters a finished pass leaves
            for folder in account.folders.values():
                n = generator.uids.get(folder, 0)
                admin.execute(
                    "UPDATE mail_folders SET uidvalidity = 1700000000, uidnext = %s, server_total = %s, synced = %s, "
                    "state = 'synced', last_sync_at = %s WHERE company_id = %s AND id = %s",
                    (n + 1, n, n, END, generator.company_id, folder),
                )
        admin.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - step
    timings["total_s"] = time.perf_counter() - started
    counts.timings = {k: round(v, 1) for k, v in timings.items()}
    return counts


def _run(dsn: str, statements: list) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '512MB'")
        for statement in statements:
            conn.execute(*statement) if isinstance(statement, tuple) else conn.execute(statement)


def make_folders(dsn: str, company_id: uuid.UUID, account_ids: list[uuid.UUID], seed: int) -> list[dict]:
    """The six folders of each account, as the first sync pass creates them."""
    rng = random.Random(seed + 1)
    ids = _Ids(rng, END - SPAN)
    made = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for account_id in account_ids:
            folders = {}
            for name, role in FOLDERS:
                folder_id = ids.next()
                conn.execute(
                    "INSERT INTO mail_folders (company_id, id, account_id, name, role, state, server_total, synced, "
                    "consecutive_resets, held_deletions, deletions_confirmed) "
                    "VALUES (%s, %s, %s, %s, %s, 'pending', 0, 0, 0, 0, false)",
                    (company_id, folder_id, account_id, name, role),
                )
                folders[role] = folder_id
            made.append(folders)
    return made
