"""What the fault-injection suites share: trial counts, totals, the server's truth, an audit of remote writes.

- ``trials(kind)``: how many trials of a kind to run. ``SALESINBOX_FAULT_TRIALS``
  is the total over every kind (default 200, the CI run); each kind gets its
  share of it, so ``SALESINBOX_FAULT_TRIALS=1000`` runs five times as many of
  each. ``SALESINBOX_FAULT_SEED`` changes the seed.
- ``Totals`` count trials, cuts, and what went wrong: messages lost,
  duplicated, and remote writes with a UID that did not name (in the folder's
  current numbering) a message the action meant. ``report`` prints them and,
  when ``SALESINBOX_FAULT_TRIALS`` is set, merges them into
  ``bench/results/faults-<backend>.json``.
- ``server_state`` reads a mailbox straight from Dovecot (not through the
  proxy): each folder's UIDVALIDITY, UIDNEXT and, per UID, its key (the
  ``X-Salesinbox-Draft`` header for a draft of ours, else its Message-ID) and
  flags.
- ``writes_in`` reads the commands a client sent (a proxy transcript) and
  returns each UID STORE / MOVE / COPY / EXPUNGE with the folder it was sent
  in; an ``Auditor`` checks them against what each UID named in the folder's
numbering at the time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from imapclient import IMAPClient

from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, workspace
from salesinbox.services.accounts import AccountInput

TOTAL = int(os.environ.get("SALESINBOX_FAULT_TRIALS", "200"))
LONG_RUN = "SALESINBOX_FAULT_TRIALS" in os.environ
SEED = int(os.environ.get("SALESINBOX_FAULT_SEED", "20261001"))
# Shares of the total, per kind: together they make 200 in CI.
SHARES = {"fetch": 40, "idle": 20, "search": 30, "actions": 50, "drafts": 40, "sent": 20}
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
DRAFT_HEADER = "X-Salesinbox-Draft"


def trials(kind: str) -> int:
    return max(1, TOTAL * SHARES[kind] // sum(SHARES.values()))


# ---- totals ----------------------------------------------------------------------------


@dataclass
class Totals:
    kind: str
    trials: int = 0
    cuts: int = 0  # trials in which the proxy did cut the connection
    failed: int = 0  # trials in which the cut made the operation fail (the rest completed regardless)
    lost: int = 0
    duplicated: int = 0
    stale_writes: int = 0
    renumbered: int = 0  # trials run after the server renumbered a folder (UIDVALIDITY changed)
    writes: int = 0  # remote writes (UID STORE, MOVE, COPY, EXPUNGE) audited
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("kind", "problems")}


def report(totals: Totals, backend: str) -> None:
    """Print the totals (seen with ``pytest -s`` or in a failure's captured output) and keep them for a long run."""
    print(f"fault trials [{backend}] {totals.kind}: {json.dumps(totals.as_dict())}")
    if not LONG_RUN:
        return
    path = RESULTS / f"faults-{backend}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if data.get("seed") != SEED or data.get("total") != TOTAL:
        data = {"seed": SEED, "total": TOTAL, "kinds": {}}
    data["kinds"][totals.kind] = totals.as_dict()
    data["sum"] = {
        key: sum(kind[key] for kind in data["kinds"].values())
        for key in ("trials", "cuts", "failed", "lost", "duplicated", "stale_writes")
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# ---- companies and accounts for trials ---------------------------------------------------


class _NoLogins:
    """Trial companies need no login: skip argon2, which would cost more than a trial's sync."""

    def hash(self, password: str) -> str:
        return "!"

    def verify(self, password_hash: str | None, password: str) -> bool:
        return False


async def new_company(deps):
    quick = dataclasses.replace(deps, passwords=_NoLogins())
    company, admin = await workspace.initialize_company(
        quick,
        company_name="Trial Ltd",
        admin_email=f"admin-{secrets.token_hex(6)}@trial.test",
        admin_password=secrets.token_urlsafe(12),
    )
    return await workspace.actor_for(deps, company.id, admin.id)


async def connect_through(deps, actor, mailbox, proxy) -> uuid.UUID:
    """Connect the mailbox with its IMAP traffic through the proxy (SMTP goes straight to the rig)."""
    view = await accounts.connect_account(
        deps,
        actor,
        AccountInput(
            address=mailbox.address,
            login=mailbox.login,
            password=mailbox.password,
            imap_host=proxy.host,
            imap_port=proxy.port,
            imap_security=Security.NONE,
            smtp_host=mailbox.smtp_host,
            smtp_port=mailbox.smtp_port,
            smtp_security=Security.NONE,
            sync_start=SyncStart.EVERYTHING,
        ),
        verify=False,
    )
    return view.id


# ---- the server's truth ------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One message in a folder, as the server holds it."""

    message_id: str  # without the angle brackets, as the sync stores it
    draft: str | None  # the X-Salesinbox-Draft header of a draft copy of ours
    flags: frozenset[str]

    @property
    def key(self) -> str:
        return f"draft:{self.draft}" if self.draft else self.message_id


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int
    messages: dict[int, Seen]

    def keys(self) -> list[str]:
        return [seen.key for seen in self.messages.values()]


def _seen(header_block: bytes, flags: frozenset[str]) -> Seen:
    headers = BytesHeaderParser(policy=default_policy).parsebytes(header_block)
    draft = headers.get(DRAFT_HEADER)
    message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
    return Seen(message_id, str(draft).strip() if draft else None, flags)


def flag_set(flags: Iterable) -> frozenset[str]:
    return frozenset(
        f.decode() if isinstance(f, bytes) else str(f) for f in flags if f not in (b"\\Recent", "\\Recent")
    )


def server_state(mailbox, folders: Iterable[str]) -> dict[str, FolderState]:
    state = {}
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        for folder in folders:
            info = client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            data = client.fetch(uids, [f"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID {DRAFT_HEADER.upper()})]", "FLAGS"])
            state[folder] = FolderState(
                int(info[b"UIDVALIDITY"]),
                int(info[b"UIDNEXT"]),
                {
                    uid: _seen(next(v for k, v in d.items() if k.startswith(b"BODY[HEADER")), flag_set(d[b"FLAGS"]))
                    for uid, d in data.items()
                },
            )
    return state


def renumber(mailbox, folder: str) -> int:
    """Make the server renumber ``folder`` (a new UIDVALIDITY); returns it.

    The folder is deleted and created again, and its messages put back in
    reverse order, numbered so that they take the highest of the old UIDs: a
    UID from before now names another message, or one expunged in the new
    numbering (below UIDNEXT). So any write with an old UID is caught: it hits
    the wrong message, or a UID this numbering never gave a message.
    """
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        old_next = int(client.select_folder(folder, readonly=True)[b"UIDNEXT"])
        data = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"])
        client.unselect_folder()
        client.delete_folder(folder)
        client.create_folder(folder)
        fillers = old_next - 1 - len(data)
        for _ in range(fillers):
            client.append(folder, b"Subject: filler\r\n\r\nfiller\r\n", flags=[b"\\Deleted"])
        for _uid, d in sorted(data.items(), reverse=True):
            client.append(folder, d[b"BODY[]"], flags=[f for f in d[b"FLAGS"] if f != b"\\Recent"])
        client.select_folder(folder)
        if fillers:
            client.expunge()
        return int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])


# ---- the audit of remote writes ----------------------------------------------------------


@dataclass(frozen=True)
class Write:
    folder: str | None  # the folder selected when it was sent
    command: str
    uids: tuple[int, ...] | None  # None: a write by sequence number or on every \Deleted message


_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_WRITES = {"STORE", "MOVE", "COPY", "EXPUNGE"}


def _commands(transcript: bytes) -> Iterator[bytes]:
    """Whole command lines, literals (APPEND's message, ...) left out; a line the cut left unfinished too."""
    at = 0
    while True:
        end = transcript.find(b"\r\n", at)
        if end < 0:
            return
        line, at = transcript[at:end], end + 2
        while (literal := _LITERAL.search(line)) is not None:
            at += int(literal[1])  # the literal itself
            end = transcript.find(b"\r\n", at)
            if end < 0:
                return
            line, at = line[: literal.start()] + b"<literal>" + transcript[at:end], end + 2
        yield line


def _folder_name(argument: str) -> str:
    argument = argument.strip()
    if argument.startswith('"'):
        return re.match(r'"((?:[^"\\]|\\.)*)"', argument)[1].replace('\\"', '"').replace("\\\\", "\\")
    return argument.split(" ", 1)[0]


def _uid_set(text: str) -> tuple[int, ...]:
    uids: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        a, b = int(low), int(high or low)
        uids.extend(range(min(a, b), max(a, b) + 1))
    return tuple(uids)


def writes_in(transcript: bytes) -> list[Write]:
    selected: str | None = None
    found = []
    for line in _commands(transcript):
        words = line.decode("utf-8", "replace").split(" ")
        if len(words) < 2:
            continue
        command, rest = words[1].upper(), words[2:]
        if command in ("SELECT", "EXAMINE"):
            selected = _folder_name(" ".join(rest))
        elif command in ("CLOSE", "UNSELECT"):
            selected = None
        elif command == "UID" and rest and rest[0].upper() in _WRITES:
            found.append(Write(selected, rest[0].upper(), _uid_set(rest[1]) if len(rest) > 1 else None))
        elif command in _WRITES:
            found.append(Write(selected, command, None))
    return found


class Auditor:
    """Reads the server's state, remembers what each UID named in each numbering, and audits remote writes.

    A UID written is meant when, in the folder's numbering at the time (the
    last state read before the write), it names, or once named, a message
    the action meant; a UID at or past that UIDNEXT is one the action itself
    created (an APPEND). Anything else is a stale write: a UID of another
    numbering, which names another message or none.
    """

    def __init__(self, mailbox) -> None:
        self.mailbox = mailbox
        self.history: dict[tuple[str, int], dict[int, str]] = {}  # (folder, UIDVALIDITY) -> UID -> key
        self.writes = 0

    def state(self, folders: Iterable[str]) -> dict[str, FolderState]:
        found = server_state(self.mailbox, folders)
        for name, folder in found.items():
            self.history.setdefault((name, folder.uidvalidity), {}).update(
                {uid: seen.key for uid, seen in folder.messages.items()}
            )
        return found

    def stale(self, transcripts: Iterable[bytes], before: dict[str, FolderState], meant: set[str]) -> list[str]:
        wrong = []
        for transcript in transcripts:
            for write in writes_in(transcript):
                self.writes += 1
                state = before.get(write.folder or "")
                if state is None or write.uids is None:
                    wrong.append(f"{write}: not auditable")
                    continue
                named = self.history.get((write.folder, state.uidvalidity), {})
                for uid in write.uids:
                    key = named.get(uid)
                    if (key is None and uid < state.uidnext) or (key is not None and key not in meant):
                        wrong.append(f"{write.command} UID {uid} in {write.folder} named {key or 'nothing'}")
        return wrong


def remote_writes(transcripts: Iterable[bytes]) -> list[str]:
    """For code that must write nothing at all (a sync pass, IDLE): every remote write it sent."""
    return [f"{write}" for transcript in transcripts for write in writes_in(transcript)]
