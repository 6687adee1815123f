"""Team accounts (issue 6): a member who does not own the account reads and sends from the shared address;
the team's outbox is its members' and no one else's; a membership change takes effect at once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from salesinbox.domain.accounts import AccountKind
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.services import accounts, conversations, outbox, workspace
from salesinbox.services.outbox import OutgoingMessage
from tests.integration.test_outbox import folder_messages
from tests.integration.test_sync import mail
from tests.support.mailboxes import connect_mailbox


async def _user(deps, tenant, name: str):
    address = f"{name}-{uuid.uuid4().hex[:6]}@acme.test"
    await workspace.add_user(deps, tenant.admin, email=address, password="Team-pass-1!")
    return await workspace.authenticate(deps, address, "Team-pass-1!")


async def test_a_member_sends_from_the_team_address_and_only_members_see_its_outbox(
        deps, tenant, dovecot, mailbox_factory, smtp_server):
    team_box, customer = mailbox_factory(), mailbox_factory()
    member, outsider = await _user(deps, tenant, "member"), await _user(deps, tenant, "outsider")
    dovecot.deliver(team_box.address, mail(team_box.address, "Question for sales", "Who can help?",
                                           sender=customer.address)[0])
    account_id = await connect_mailbox(deps, tenant.admin, team_box, kind=AccountKind.TEAM,
                                       member_ids=[member.user_id])

    [asked] = await conversations.list_conversations(deps, member, folder="inbox")  # the member reads it
    assert asked.subject == "Question for sales"
    assert await conversations.list_conversations(deps, outsider, folder="inbox") == []
    assert account_id in {a.id for a in await accounts.list_accounts(deps, member)}  # in the From picker

    tag = uuid.uuid4().hex[:8]
    sent = await outbox.enqueue(deps, member, OutgoingMessage(
        account_id, to=[customer.address], subject=f"Re: Question for sales {tag}", text="I can."))
    await outbox.deliver(deps, tenant.company_id, sent.id)
    assert (await outbox.get_outbound(deps, member, sent.id)).status == "sent"
    [delivered] = [m for m in folder_messages(customer, "INBOX") if tag in m["Subject"]]
    assert team_box.address in delivered["From"]  # from the shared address, not the member's own

    later = await outbox.enqueue(deps, member, OutgoingMessage(
        account_id, to=[customer.address], subject=f"Follow-up {tag}", text="Any news?",
        send_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)))
    assert [m.id for m in await outbox.list_outbox(deps, tenant.admin)] == [later.id]  # the owner: a member too
    assert [m.id for m in await outbox.list_outbox(deps, member)] == [later.id]
    assert await outbox.list_outbox(deps, outsider) == []
    with pytest.raises(NotFound):
        await outbox.get_outbound(deps, outsider, later.id)
    with pytest.raises(NotFound):
        await outbox.cancel(deps, outsider, later.id)
    with pytest.raises((NotFound, ValidationFailed)):
        await outbox.enqueue(deps, outsider, OutgoingMessage(account_id, to=[customer.address], subject="Not mine"))

    # Out of the team: at once, nothing of it is theirs any more.
    await accounts.set_team_members(deps, tenant.admin, account_id, [])
    assert await outbox.list_outbox(deps, member) == []
    assert await conversations.list_conversations(deps, member, folder="inbox") == []
    with pytest.raises((NotFound, ValidationFailed)):
        await outbox.enqueue(deps, member, OutgoingMessage(account_id, to=[customer.address], subject="Gone"))
