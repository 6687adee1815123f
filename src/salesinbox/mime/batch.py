"""Parsing many messages at once: the entry point worker processes import.

Kept apart from the sync service so that a spawned worker imports only the
MIME code, not the database and web stacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from salesinbox.domain.threading import ThreadFacts
from salesinbox.mime.lean import LeanPlan, on_server
from salesinbox.mime.parse import ParsedMessage, parse_message


@dataclass(frozen=True)
class Prepared:
    """A parsed message with what storing it needs computed beside it, in the worker process.

    The process that stores the batch is the sync's bottleneck; whatever is a
    pure function of the message is done here, where parsing already runs.
    """

    parsed: ParsedMessage
    facts: ThreadFacts  # without a Gmail thread id (the IMAP layer adds it; then facts are redone)
    to_json: str
    cc_json: str
    bcc_json: str


def facts_of(p: ParsedMessage) -> ThreadFacts:
    people = [*([p.from_] if p.from_ else []), *p.to, *p.cc, *p.bcc]
    return ThreadFacts.of(
        message_id=p.message_id,
        in_reply_to=p.in_reply_to,
        references=p.references,
        subject=p.subject,
        participants=sorted({a.email for a in people if a.email}),
        date=p.date,
        gm_thrid=p.gm_thrid,
    )


def addresses_json(items) -> str:
    return json.dumps([[a.name, a.email] for a in items], ensure_ascii=False)


def prepare(raw: bytes, skeleton: LeanPlan | None = None) -> Prepared:
    """``skeleton``: ``raw`` is a skeleton (``mime.lean``) whose attachments of this plan stayed on the server."""
    p = parse_message(raw)
    if skeleton is not None:
        # The IMAP layer kept the skeleton only if ``lean.trusted``: every omitted part is a leaf the parse
        # makes an attachment of, at its planned id; so ``on_server`` finds them all (None is not reached).
        p = on_server(p, skeleton) or p
    return Prepared(p, facts_of(p), addresses_json(p.to), addresses_json(p.cc), addresses_json(p.bcc))


def prepare_many(messages: list[tuple[bytes, LeanPlan | None]]) -> list[Prepared]:
    """(raw, skeleton plan or None) pairs, prepared."""
    return [prepare(raw, skeleton) for raw, skeleton in messages]


def die_with_parent() -> None:
    """Worker initializer: end this process soon after the one that started it dies, even by SIGKILL.

    Without it a killed sync process leaves its parse workers behind. A daemon
    thread watches the parent's pid (a dead parent's children are handed to
    another process). Linux's PR_SET_PDEATHSIG is not used: it fires when the
    *thread* that started the worker ends, and a pool first used from a thread
    that later finishes (an embedded app's server thread) lost its workers.
    """
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
