"""Conversations: which messages belong together.

The rule is a graph, so the result cannot depend on the order mail arrives in:
two messages are in the same conversation when they are connected by a chain
of these edges —

1. **References.** Each message has *thread keys*: its own Message-ID, every id
   in In-Reply-To and References, and Gmail's X-GM-THRID when present. Two
   messages sharing a key are connected. This covers parent and child (in
   either arrival order) and siblings whose common parent we never saw (JWZ's
   dummy container).
2. **Subject fallback**, for replies whose client stripped the headers: a
   message with *no* In-Reply-To/References whose subject carries a reply or
   forward prefix (Re:, Fwd:, AW:, SV:, Odp: ...) connects to a message with the
   same normalised subject that shares at least one participant and is at most
   ``SUBJECT_WINDOW`` apart in time.

Adding a message unites every conversation it connects to (a late parent
merges threads). The edge test is symmetric and uses only the two messages'
own attributes, so the final partition is the connected components of the
graph, whatever the order: the property tests check exactly that.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

SUBJECT_WINDOW = dt.timedelta(days=30)

# Reply and forward prefixes of the languages our users write in, with the
# "[n]" / "(n)" counters some clients add ("Re[2]:", "AW(3):").
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|wg|sv|vs|vl|odp|pd|r|rif|tr|antw|doorst|res|enc|ynt|ilt|yml|atb|rv|fs|ref|"
    r"回复|回覆|转发|轉寄|答复|返信|転送|ответ|отв|пересл|הועבר|השב|رد|إعادة توجيه|πρβλ|σχετ)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_BRACKET_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")  # mailing-list tags like "[sales-team]"
_SPACE = re.compile(r"\s+")


def strip_prefixes(subject: str) -> tuple[str, bool]:
    """The subject without reply/forward prefixes and list tags, and whether any were there."""
    text, had_prefix = subject or "", False
    while True:
        before = text
        text = _BRACKET_TAG.sub("", text)
        stripped = _PREFIX.sub("", text)
        had_prefix = had_prefix or stripped != text
        text = stripped
        if text == before:
            return text, had_prefix


def subject_key(subject: str) -> str:
    """The normalised subject used to match replies whose headers were stripped."""
    core, _ = strip_prefixes(subject)
    return _SPACE.sub(" ", core).strip().casefold()


def is_reply_subject(subject: str) -> bool:
    return strip_prefixes(subject)[1]


def clean_id(raw: str) -> str:
    return raw.strip().strip("<>").strip()


def thread_keys(
    message_id: str | None, in_reply_to: Iterable[str], references: Iterable[str], gm_thrid: str | None = None
) -> frozenset[str]:
    keys = {f"id:{clean_id(i)}" for i in (message_id, *in_reply_to, *references) if i and clean_id(i)}
    if gm_thrid:
        keys.add(f"gm:{gm_thrid}")
    return frozenset(keys)


@dataclass(frozen=True)
class ThreadFacts:
    """What threading needs to know about one message."""

    keys: frozenset[str]
    subject_key: str
    is_orphan_reply: bool  # no In-Reply-To/References, but a Re:/Fwd: subject
    participants: frozenset[str]
    date: dt.datetime | None

    @classmethod
    def of(cls, *, message_id, in_reply_to, references, subject, participants, date, gm_thrid=None) -> ThreadFacts:
        has_refs = bool([r for r in (*in_reply_to, *references) if clean_id(r)])
        return cls(
            keys=thread_keys(message_id, in_reply_to, references, gm_thrid),
            subject_key=subject_key(subject),
            is_orphan_reply=not has_refs and is_reply_subject(subject),
            participants=frozenset(p.lower() for p in participants if p),
            date=date,
        )


def subject_connected(a: ThreadFacts, b: ThreadFacts, window: dt.timedelta = SUBJECT_WINDOW) -> bool:
    """The subject fallback edge; symmetric by construction."""
    if not a.subject_key or a.subject_key != b.subject_key:
        return False
    if not (a.is_orphan_reply or b.is_orphan_reply):
        return False
    if not a.participants & b.participants:
        return False
    if a.date is None or b.date is None:
        return False
    return abs(a.date - b.date) <= window


def connected(a: ThreadFacts, b: ThreadFacts) -> bool:
    return bool(a.keys & b.keys) or subject_connected(a, b)


@dataclass
class ConversationIndex:
    """In-memory threading with the same rules the database-backed sync applies.

    ``add`` returns the conversation of the new message and the conversations
    merged into it; used by the property tests and as the reference for the
    SQL implementation in ``services.conversations``.
    """

    facts: dict[Hashable, ThreadFacts] = field(default_factory=dict)
    conversation_of: dict[Hashable, int] = field(default_factory=dict)
    _next: int = 0

    def add(self, key: Hashable, facts: ThreadFacts) -> tuple[int, set[int]]:
        linked = {self.conversation_of[k] for k, f in self.facts.items() if connected(facts, f)}
        self.facts[key] = facts
        if not linked:
            self._next += 1
            self.conversation_of[key] = self._next
            return self._next, set()
        survivor = min(linked)  # the oldest conversation survives: links stay stable
        merged = linked - {survivor}
        for other, conversation in self.conversation_of.items():
            if conversation in merged:
                self.conversation_of[other] = survivor
        self.conversation_of[key] = survivor
        return survivor, merged

    def partition(self) -> set[frozenset[Hashable]]:
        groups: dict[int, set[Hashable]] = {}
        for key, conversation in self.conversation_of.items():
            groups.setdefault(conversation, set()).add(key)
        return {frozenset(g) for g in groups.values()}
