"""The linking rules end to end: real mail synced from Dovecot, CRM items, the verdicts and links stored."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from salesinbox.domain.errors import PermissionDenied
from salesinbox.services import blocklist, contacts, conversations, items, links, sync, workspace
from salesinbox.services.contacts import OrganizationInput, PersonInput
from salesinbox.services.items import ItemInput, ItemKind
from tests.support.mailboxes import connect_mailbox


def raw(to: str, subject: str, *, sender: str = "paula@customer.test", cc: str = "", msgid: str | None = None,
        refs: tuple[str, ...] = (), headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    if cc:
        message["Cc"] = cc
    message["Message-ID"] = msgid or make_msgid(domain="customer.test")
    if refs:
        message["In-Reply-To"], message["References"] = refs[-1], " ".join(refs)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(f"About {subject}")
    return bytes(message)


async def _opened(deps, actor, subject: str):
    for folder in ("inbox", "needs_linking"):
        for summary in await conversations.list_conversations(deps, actor, folder=folder):
            if summary.subject == subject:
                return await conversations.get_conversation(deps, actor, summary.id)
    raise AssertionError(f"no conversation {subject!r}")


async def _person_with_deals(deps, actor, *titles: str, email="paula@customer.test", status="open"):
    person = await contacts.create_person(deps, actor, PersonInput(name="Paula Buyer", emails=[email]))
    made = [await items.create_item(deps, actor, ItemKind.DEAL, ItemInput(title=t, person_id=person.id,
                                                                          status=status)) for t in titles]
    return person, made


async def test_two_open_deals_put_the_conversation_in_needs_linking_until_the_user_picks(
        deps, tenant, dovecot, mailbox):
    _, (first, second) = await _person_with_deals(deps, tenant.admin, "Renewal", "Upsell")
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Which deal?"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    opened = await _opened(deps, tenant.admin, "Which deal?")
    assert opened.links == [] and opened.linking.outcome == "needs_linking"
    assert {c.item_id for c in opened.linking.candidates} == {first.id, second.id}
    queue = await conversations.list_conversations(deps, tenant.admin, folder="needs_linking")
    assert [c.id for c in queue] == [opened.id]
    picked = await links.link(deps, tenant.admin, opened.id, "deal", second.id)
    assert picked.origin == "manual" and picked.title == "Upsell"
    assert await conversations.list_conversations(deps, tenant.admin, folder="needs_linking") == []
    on_second = await conversations.item_conversations(deps, tenant.admin, "deal", second.id)
    assert [c.id for c in on_second] == [opened.id]
    assert await conversations.item_conversations(deps, tenant.admin, "deal", first.id) == []


async def test_deleting_one_of_two_open_deals_links_the_waiting_conversation_to_the_other(
        deps, tenant, dovecot, mailbox):
    """Found by the visibility model: the verdict of a conversation that only had the deleted deal as a
    candidate (no link to it) was not looked at again, so it waited in "Needs linking" for a deal gone."""
    _, (gone, kept) = await _person_with_deals(deps, tenant.admin, "Renewal", "Upsell")
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Which deal?"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    assert (await _opened(deps, tenant.admin, "Which deal?")).linking.outcome == "needs_linking"

    await items.delete_item(deps, tenant.admin, ItemKind.DEAL, gone.id)
    opened = await _opened(deps, tenant.admin, "Which deal?")
    assert [link.item_id for link in opened.links] == [kept.id] and opened.linking.outcome == "linked"
    assert await conversations.list_conversations(deps, tenant.admin, folder="needs_linking") == []
    assert (await conversations.unread_counts(deps, tenant.admin))["needs_linking"] == 0


async def test_a_won_deal_collects_no_mail_and_a_deal_reopened_picks_it_up(deps, tenant, dovecot, mailbox):
    _, (won,) = await _person_with_deals(deps, tenant.admin, "Done deal", status="won")
    dovecot.deliver(mailbox.address, raw(mailbox.address, "After the win"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    opened = await _opened(deps, tenant.admin, "After the win")
    assert opened.links == [] and opened.linking.outcome == "no_match"
    await items.update_item(deps, tenant.admin, ItemKind.DEAL, won.id,
                            ItemInput(title="Done deal", person_id=won.person_id, status="open"))
    assert [link.item_id for link in (await _opened(deps, tenant.admin, "After the win")).links] == [won.id]


async def test_an_organization_domain_links_but_a_free_mail_domain_never_does(deps, tenant, dovecot, mailbox):
    org = await contacts.create_organization(deps, tenant.admin, OrganizationInput(name="Customer Co",
                                                                                   domains=["customer.test"]))
    free = await contacts.create_organization(deps, tenant.admin, OrganizationInput(name="Gmail users",
                                                                                    domains=["gmail.com"]))
    project = await items.create_item(deps, tenant.admin, ItemKind.PROJECT,
                                      ItemInput(title="Roll-out", organization_id=org.id))
    await items.create_item(deps, tenant.admin, ItemKind.PROJECT, ItemInput(title="Free", organization_id=free.id))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "From someone new", sender="zoe@customer.test"))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "From gmail", sender="bob@gmail.com"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    [link] = (await _opened(deps, tenant.admin, "From someone new")).links
    assert link.item_id == project.id and link.rule == "organization_domain"
    assert "customer.test" in link.reason and "Customer Co" in link.reason
    gmail = await _opened(deps, tenant.admin, "From gmail")
    assert gmail.links == [] and gmail.linking.outcome == "no_match"
    org_view = await conversations.item_conversations(deps, tenant.admin, "organization", org.id)
    assert [c.subject for c in org_view] == ["From someone new"]
    assert await conversations.item_conversations(deps, tenant.admin, "organization", free.id) == []


async def test_internal_bulk_and_blocked_mail_is_not_linked_and_says_why(deps, tenant, dovecot, mailbox):
    await _person_with_deals(deps, tenant.admin, "Deal", email="paula@customer.test")
    colleague = f"ben@{tenant.admin_email.split('@')[1]}"
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Lunch?", sender=colleague))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Newsletter", headers={
        "List-Unsubscribe": "<mailto:leave@customer.test>"}))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Vendor pitch", sender="sales@vendor.test",
                                         cc="paula@customer.test"))
    await blocklist.block(deps, tenant.admin, "vendor.test", scope="company")
    await blocklist.block(deps, tenant.admin, "paula@customer.test")
    account_id = await connect_mailbox(deps, tenant.admin, mailbox)
    assert (await _opened(deps, tenant.admin, "Lunch?")).linking.outcome == "internal"
    assert (await _opened(deps, tenant.admin, "Newsletter")).linking.outcome == "bulk"
    pitch = await _opened(deps, tenant.admin, "Vendor pitch")
    assert pitch.links == [] and pitch.linking.outcome == "blocked"
    assert "blocklist" in pitch.linking.explanation
    # Unblocking Paula (mine) links the pitch she was copied on: the vendor stays blocked, she counts.
    [mine] = [b for b in await blocklist.list_blocked(deps, tenant.admin) if b.scope == "mine"]
    await blocklist.unblock(deps, tenant.admin, mine.id)
    assert [link.title for link in (await _opened(deps, tenant.admin, "Vendor pitch")).links] == ["Deal"]
    # An out-of-office reply in a real conversation changes nothing.
    parent = (await _opened(deps, tenant.admin, "Vendor pitch")).messages[0].message_id
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Re: Vendor pitch", sender="away@elsewhere.test",
                                         refs=(f"<{parent}>",), headers={"Auto-Submitted": "auto-replied"}))
    await sync.sync_account_once(deps, account_id)
    again = await _opened(deps, tenant.admin, "Vendor pitch")
    assert again.message_count == 2 and [link.title for link in again.links] == ["Deal"]


async def test_a_colleagues_own_blocklist_leaves_my_conversations_alone(deps, tenant, dovecot, mailbox):
    await _person_with_deals(deps, tenant.admin, "Deal", email="paula@customer.test")
    await workspace.add_user(deps, tenant.admin, email="col@acme.test", password="Col-pass-1!")
    colleague = await workspace.authenticate(deps, "col@acme.test", "Col-pass-1!")
    await blocklist.block(deps, colleague, "paula@customer.test")  # hers: my account's mail is not hers
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Offer", sender="paula@customer.test"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    offer = await _opened(deps, tenant.admin, "Offer")
    assert [link.title for link in offer.links] == ["Deal"] and offer.linking.outcome == "linked"


async def test_only_admins_change_the_company_blocklist(deps, tenant):
    await workspace.add_user(deps, tenant.admin, email="reg@acme.test", password="Reg-pass-1!")
    regular = await workspace.authenticate(deps, "reg@acme.test", "Reg-pass-1!")
    with pytest.raises(PermissionDenied):
        await blocklist.block(deps, regular, "spam.test", scope="company")
    assert (await blocklist.block(deps, regular, "spam.test")).scope == "mine"


async def test_a_late_message_merging_two_threads_keeps_both_links(deps, tenant, dovecot, mailbox):
    person = await contacts.create_person(deps, tenant.admin, PersonInput(name="P", emails=["p@customer.test"]))
    one = await items.create_item(deps, tenant.admin, ItemKind.DEAL, ItemInput(title="One", person_id=person.id))
    a, b = make_msgid(domain="customer.test"), make_msgid(domain="customer.test")
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Thread A", sender="x@other.test", msgid=a))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Thread B", sender="y@other.test", msgid=b))
    account_id = await connect_mailbox(deps, tenant.admin, mailbox)
    thread_a, thread_b = await _opened(deps, tenant.admin, "Thread A"), await _opened(deps, tenant.admin, "Thread B")
    assert thread_a.id != thread_b.id
    await links.link(deps, tenant.admin, thread_a.id, "deal", one.id)
    project = await items.create_item(deps, tenant.admin, ItemKind.PROJECT, ItemInput(title="Two"))
    await links.link(deps, tenant.admin, thread_b.id, "project", project.id)
    await links.set_visibility(deps, tenant.admin, thread_b.id, "shared")
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Re: both", sender="p@customer.test", refs=(a, b)))
    await sync.sync_account_once(deps, account_id)
    merged = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    assert len(merged) == 1
    view = await conversations.get_conversation(deps, tenant.admin, merged[0].id)
    assert view.message_count == 3
    assert sorted(link.title for link in view.links) == ["One", "Two"]


@pytest.mark.parametrize(("policy", "expected"), [
    ("never", set()),
    ("sent", {"new.client@customer.test", "cc.person@customer.test"}),
    ("sent_received", {"new.client@customer.test", "cc.person@customer.test", "walk.in@prospect.test"}),
])
async def test_the_contact_policy_makes_persons_of_new_correspondents(deps, tenant, dovecot, mailbox, policy,
                                                                      expected):
    from salesinbox.domain.accounts import ContactPolicy
    from tests.integration.test_sync import imap

    existing = await contacts.create_person(deps, tenant.admin, PersonInput(name="Known",
                                                                            emails=["known@customer.test"]))
    colleague = f"ben@{tenant.admin_email.split('@')[1]}"
    sent = raw("new.client@customer.test", "Our offer", sender=mailbox.address,
               cc=f"Cc Person <cc.person@customer.test>, {colleague}, known@customer.test, noreply@customer.test")
    with imap(mailbox) as client:
        client.append("Sent", sent, flags=[b"\\Seen"])
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Walking in", sender="Walk In <walk.in@prospect.test>"))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Sale!", sender="deals@prospect.test",
                                         headers={"List-Id": "<offers.prospect.test>"}))
    await connect_mailbox(deps, tenant.admin, mailbox, contact_policy=ContactPolicy(policy))
    persons = await contacts.list_persons(deps, tenant.admin)
    made = {e for p in persons if p.id != existing.id for e in p.emails}
    assert made == expected
    if "cc.person@customer.test" in expected:
        assert "Cc Person" in {p.name for p in persons}


async def test_a_person_is_created_from_a_sender_by_hand_and_picks_up_their_mail(deps, tenant, dovecot, mailbox):
    from salesinbox.domain.accounts import ContactPolicy

    dovecot.deliver(mailbox.address, raw(mailbox.address, "Hello", sender="Nia New <nia@newco.test>"))
    await connect_mailbox(deps, tenant.admin, mailbox, contact_policy=ContactPolicy.NEVER)
    opened = await _opened(deps, tenant.admin, "Hello")
    assert opened.messages[0].sender_person_id is None
    person, created = await contacts.person_for_address(deps, tenant.admin, "NIA@newco.test", "Nia New")
    again, created_again = await contacts.person_for_address(deps, tenant.admin, "nia@newco.test")
    assert created and not created_again and again.id == person.id and person.name == "Nia New"
    assert (await _opened(deps, tenant.admin, "Hello")).messages[0].sender_person_id == person.id
    on_person = await conversations.item_conversations(deps, tenant.admin, "person", person.id)
    assert [c.subject for c in on_person] == ["Hello"]


async def test_conversations_stored_before_linking_existed_are_looked_at_by_the_next_pass(
        deps, tenant, dovecot, mailbox):
    from sqlalchemy import delete

    from salesinbox.adapters.db.tables import ConversationLink, ConversationLinkState, ConversationParticipant

    _, (renewal,) = await _person_with_deals(deps, tenant.admin, "Renewal")
    dovecot.deliver(mailbox.address, raw(mailbox.address, "Old mail"))
    account_id = await connect_mailbox(deps, tenant.admin, mailbox)
    async with deps.writing() as db:  # as an installation upgraded from before linking has it
        for table in (ConversationLink, ConversationLinkState, ConversationParticipant):
            await db.execute(delete(table).where(table.company_id == tenant.company_id))
    assert (await _opened(deps, tenant.admin, "Old mail")).linking.outcome == "pending"
    await sync.sync_account_once(deps, account_id)
    assert [link.item_id for link in (await _opened(deps, tenant.admin, "Old mail")).links] == [renewal.id]


async def test_an_address_added_to_a_person_later_links_their_earlier_mail_to_their_deal(deps, tenant, dovecot,
                                                                                        mailbox):
    person = await contacts.create_person(deps, tenant.admin, PersonInput(name="Paula Buyer",
                                                                          emails=["paula@customer.test"]))
    deal = await items.create_item(deps, tenant.admin, ItemKind.DEAL, ItemInput(title="Renewal",
                                                                                person_id=person.id))
    dovecot.deliver(mailbox.address, raw(mailbox.address, "From her other address",
                                         sender="paula.private@elsewhere.test"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    before = await _opened(deps, tenant.admin, "From her other address")
    assert before.links == []  # nobody has that address yet

    await contacts.update_person(deps, tenant.admin, person.id, PersonInput(
        name="Paula Buyer", emails=["paula@customer.test", "paula.private@elsewhere.test"]))
    after = await conversations.get_conversation(deps, tenant.admin, before.id)
    assert [(link.item_type, link.item_id, link.origin) for link in after.links] == [("deal", deal.id, "auto")]
    assert "paula.private@elsewhere.test" in after.links[0].reason
    on_deal = await conversations.item_conversations(deps, tenant.admin, "deal", deal.id)
    assert [c.id for c in on_deal] == [before.id]
    on_person = await conversations.item_conversations(deps, tenant.admin, "person", person.id)
    assert before.id in {c.id for c in on_person}


@pytest.mark.parametrize("kind", [ItemKind.LEAD, ItemKind.PROJECT])
async def test_a_single_open_lead_or_project_of_the_sender_collects_their_mail(deps, tenant, dovecot, mailbox,
                                                                              kind):
    sender = f"{kind.value}.contact@customer.test"
    person = await contacts.create_person(deps, tenant.admin, PersonInput(name="Lee Contact", emails=[sender]))
    item = await items.create_item(deps, tenant.admin, kind, ItemInput(title=f"First {kind.value}",
                                                                       person_id=person.id))
    dovecot.deliver(mailbox.address, raw(mailbox.address, f"About the {kind.value}", sender=sender))
    await connect_mailbox(deps, tenant.admin, mailbox)
    opened = await _opened(deps, tenant.admin, f"About the {kind.value}")
    assert [(link.item_type, link.item_id, link.origin) for link in opened.links] == [(kind.value, item.id, "auto")]
    assert opened.links[0].reason
    listed = await conversations.item_conversations(deps, tenant.admin, kind.value, item.id)
    assert [c.id for c in listed] == [opened.id]
