"""Threading: references first, a careful subject fallback, and no dependence on arrival order."""

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from salesinbox.domain.threading import (
    ConversationIndex,
    ThreadFacts,
    is_reply_subject,
    subject_connected,
    subject_key,
    thread_keys,
)

T0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)


def facts(message_id, refs=(), subject="Offer", participants=("a@x.io", "b@y.io"), at=T0, gm=None):
    return ThreadFacts.of(message_id=message_id, in_reply_to=(), references=refs, subject=subject,
                          participants=participants, date=at, gm_thrid=gm)


def test_reply_and_forward_prefixes_of_many_languages_are_stripped():
    for subject in ["Re: Offer", "RE: re: Offer", "Fwd: Offer", "AW: Offer", "SV: Offer", "Odp: Offer",
                    "Re[2]: Offer", "[sales] Re: Offer", "回复: Offer", "Ответ: Offer", "  offer  "]:
        assert subject_key(subject) == "offer", subject
    assert is_reply_subject("Re: Offer") and not is_reply_subject("Offer")
    assert subject_key("Regarding the offer") == "regarding the offer"


def test_thread_keys_include_own_id_references_and_gmail_thread():
    assert thread_keys("<a@x>", ["<b@x>"], ["c@x", " "], "123") == {"id:a@x", "id:b@x", "id:c@x", "gm:123"}


def test_a_reply_joins_its_parent_and_a_late_parent_merges_two_threads():
    index = ConversationIndex()
    c1, _ = index.add("child1", facts("c1", refs=("p",)))
    c2, _ = index.add("child2", facts("c2", refs=("p2",)))
    assert c1 != c2
    survivor, merged = index.add("parent", facts("p", refs=("p2",)))
    assert survivor == c1 and merged == {c2}
    assert index.partition() == {frozenset({"child1", "child2", "parent"})}


def test_siblings_of_a_missing_parent_share_a_conversation():
    index = ConversationIndex()
    index.add("a", facts("a", refs=("missing",)))
    index.add("b", facts("b", refs=("missing",)))
    assert len(index.partition()) == 1


def test_the_subject_fallback_needs_a_stripped_reply_a_shared_participant_and_a_time_window():
    original = facts("o", subject="Offer")
    orphan = facts("r", subject="Re: Offer", at=T0 + dt.timedelta(days=2))
    assert subject_connected(original, orphan) and subject_connected(orphan, original)
    stranger = facts("s", subject="Re: Offer", participants=("z@z.io",))
    late = facts("l", subject="Re: Offer", at=T0 + dt.timedelta(days=60))
    two_originals = facts("o2", subject="Offer", at=T0 + dt.timedelta(days=1))
    with_refs = facts("w", refs=("elsewhere",), subject="Re: Offer")
    assert not subject_connected(original, stranger)
    assert not subject_connected(original, late)
    assert not subject_connected(original, two_originals)  # two new threads with one subject stay apart
    assert not subject_connected(original, with_refs)


# ---- arrival order does not matter ----------------------------------------------------

ids = st.sampled_from([f"m{i}" for i in range(8)])
subjects = st.sampled_from(["Offer", "Re: Offer", "Invoice", "Fwd: Invoice"])
people = st.sets(st.sampled_from(["a@x.io", "b@y.io", "c@z.io"]), min_size=1, max_size=2)
message = st.builds(
    lambda mid, refs, subject, who, day, gm: (mid, facts(mid, tuple(refs), subject, tuple(who),
                                                         T0 + dt.timedelta(days=day), gm)),
    ids, st.lists(ids, max_size=3), subjects, people, st.integers(0, 45), st.sampled_from([None, None, "g1"]),
)
mailboxes = st.lists(message, min_size=1, max_size=12, unique_by=lambda m: m[0])


@settings(max_examples=300, deadline=None)
@given(mailboxes, st.randoms(use_true_random=False))
def test_the_conversations_do_not_depend_on_arrival_order(messages, rng):
    forward = ConversationIndex()
    for key, f in messages:
        forward.add(key, f)
    shuffled = list(messages)
    rng.shuffle(shuffled)
    other = ConversationIndex()
    for key, f in shuffled:
        other.add(key, f)
    assert forward.partition() == other.partition()
