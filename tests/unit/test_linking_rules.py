"""The linking rules (domain.linking), without I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from salesinbox.domain.linking import (
    Candidate,
    Facts,
    Outcome,
    decide,
    is_free_mail,
    match_participants,
    matching_domains,
)

OWN = frozenset({"acme.test"})


def facts(*addresses: str, blocked: frozenset[str] = frozenset(), any_message: bool = True) -> Facts:
    return Facts(frozenset(addresses), any_message, OWN, blocked)


def deal(item: str, via: str = "person", value: str = "paula@customer.test") -> Candidate:
    return Candidate("deal", item, f"Deal {item}", via, "Paula", value)


def test_only_bulk_mail_is_never_linked():
    assert match_participants(facts()).outcome is Outcome.BULK


def test_a_conversation_of_colleagues_only_is_internal():
    assert match_participants(facts("anna@acme.test", "ben@acme.test")).outcome is Outcome.INTERNAL


def test_outside_participants_are_those_not_on_the_company_domains():
    matching = match_participants(facts("anna@acme.test", "paula@customer.test"))
    assert matching.outcome is None and matching.external == {"paula@customer.test"}


def test_the_blocklist_drops_an_address_or_a_domain_and_the_others_still_count():
    mixed = match_participants(facts("noise@vendor.test", "paula@customer.test", blocked=frozenset({"vendor.test"})))
    assert mixed.outcome is None and mixed.external == {"paula@customer.test"}
    one = match_participants(facts("paula@customer.test", blocked=frozenset({"paula@customer.test"})))
    assert one.outcome is Outcome.BLOCKED


def test_free_mail_domains_never_match_an_organization():
    assert is_free_mail("Gmail.com")
    assert matching_domains({"bob@gmail.com", "paula@customer.test"}) == {"customer.test"}


def test_one_candidate_links_with_its_reason():
    verdict = decide(match_participants(facts("paula@customer.test")), [deal("d1")], frozenset(), frozenset())
    assert verdict.outcome is Outcome.LINKED
    [link] = verdict.new_links
    assert link.item_id == "d1" and link.reason() == {
        "rule": "person_email", "name": "Paula", "value": "paula@customer.test", "kind": "deal"}


def test_several_candidates_are_never_guessed_between():
    verdict = decide(match_participants(facts("paula@customer.test")), [deal("d1"), deal("d2")],
                     frozenset(), frozenset())
    assert verdict.outcome is Outcome.NEEDS_LINKING and not verdict.new_links
    assert {c.item_id for c in verdict.ambiguous["deal"]} == {"d1", "d2"}


def test_the_same_item_found_twice_is_one_candidate_and_the_person_match_is_its_reason():
    by_org = deal("d1", via="organization", value="customer.test")
    verdict = decide(match_participants(facts("paula@customer.test")), [by_org, deal("d1")], frozenset(), frozenset())
    assert [c.via for c in verdict.new_links] == ["person"]


def test_a_kind_already_linked_is_left_alone_and_other_kinds_still_link():
    lead = Candidate("lead", "l1", "Lead", "person", "Paula", "paula@customer.test")
    verdict = decide(match_participants(facts("paula@customer.test")), [deal("d2"), lead],
                     frozenset({"deal"}), frozenset())
    assert [c.item_id for c in verdict.new_links] == ["l1"] and verdict.outcome is Outcome.LINKED


def test_an_item_the_user_unlinked_is_never_linked_again():
    verdict = decide(match_participants(facts("paula@customer.test")), [deal("d1")],
                     frozenset(), frozenset({("deal", "d1")}))
    assert verdict.outcome is Outcome.NO_MATCH and not verdict.new_links
    # ... and with two candidates one of which was unlinked, the other is the single one left.
    verdict = decide(match_participants(facts("paula@customer.test")), [deal("d1"), deal("d2")],
                     frozenset(), frozenset({("deal", "d1")}))
    assert [c.item_id for c in verdict.new_links] == ["d2"]


def test_a_manual_link_keeps_an_internal_conversation_linked():
    verdict = decide(match_participants(facts("ben@acme.test")), [], frozenset({"project"}), frozenset())
    assert verdict.outcome is Outcome.LINKED


addresses = st.sampled_from(["paula@customer.test", "bob@gmail.com", "anna@acme.test", "x@vendor.test"])
candidates = st.lists(st.builds(
    Candidate, st.sampled_from(["deal", "lead", "project"]), st.sampled_from(["i1", "i2", "i3"]), st.just("T"),
    st.sampled_from(["person", "organization"]), st.just("N"), addresses), max_size=6)


@given(st.frozensets(addresses, max_size=4), candidates, st.frozensets(st.sampled_from(["deal", "lead", "project"])))
def test_the_verdict_never_guesses_and_never_touches_a_linked_kind(people, found, linked):
    verdict = decide(match_participants(facts(*people)), found, linked, frozenset())
    for c in verdict.new_links:
        assert c.kind not in linked
        assert len({x.item_id for x in found if x.kind == c.kind}) == 1  # exactly one candidate of its kind
    assert not (set(verdict.ambiguous) & linked)
    assert len({c.kind for c in verdict.new_links}) == len(verdict.new_links)  # at most one new link per kind
    # the order candidates arrive in does not change the verdict
    again = decide(match_participants(facts(*people)), list(reversed(found)), linked, frozenset())
    assert {(c.kind, c.item_id) for c in again.new_links} == {(c.kind, c.item_id) for c in verdict.new_links}
    assert again.outcome == verdict.outcome
