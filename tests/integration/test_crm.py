"""Persons, organizations, deals, leads and projects, on SQLite and PostgreSQL."""

from decimal import Decimal

import pytest

from salesinbox.domain.errors import Conflict, NotFound, ValidationFailed
from salesinbox.services import contacts, items
from salesinbox.services.contacts import OrganizationInput, PersonInput
from salesinbox.services.items import ItemInput, ItemKind
from tests.conftest import create_tenant


async def test_a_person_keeps_several_addresses_normalised_and_in_order(deps, tenant):
    person = await contacts.create_person(deps, tenant.admin, PersonInput(
        name="Jane Doe", emails=["Jane@Globex.com", "jane.doe@gmail.com", "jane@globex.com"]))
    assert person.emails == ["jane@globex.com", "jane.doe@gmail.com"]
    found = await contacts.list_persons(deps, tenant.admin, query="gmail")
    assert [p.id for p in found] == [person.id]


async def test_an_address_belongs_to_one_person_per_company(deps, tenant):
    await contacts.create_person(deps, tenant.admin, PersonInput(name="A", emails=["shared@globex.com"]))
    with pytest.raises(Conflict):
        await contacts.create_person(deps, tenant.admin, PersonInput(name="B", emails=["SHARED@globex.com"]))
    other = await create_tenant(deps)
    again = await contacts.create_person(deps, other.admin, PersonInput(name="A", emails=["shared@globex.com"]))
    assert again.emails == ["shared@globex.com"]


async def test_an_organization_has_domains_and_its_people(deps, tenant):
    org = await contacts.create_organization(deps, tenant.admin, OrganizationInput(
        name="Globex", domains=["https://www.Globex.com/", "globex.io"]))
    assert org.domains == ["globex.com", "globex.io"]
    person = await contacts.create_person(deps, tenant.admin, PersonInput(name="Hank", organization_id=org.id))
    assert person.organization_name == "Globex"
    assert [p.id for p in await contacts.list_persons(deps, tenant.admin, organization_id=org.id)] == [person.id]
    with pytest.raises(Conflict):
        await contacts.create_organization(deps, tenant.admin, OrganizationInput(name="Dup", domains=["globex.io"]))


async def test_a_deal_has_value_stage_status_and_its_contacts(deps, tenant):
    org = await contacts.create_organization(deps, tenant.admin, OrganizationInput(name="Globex"))
    person = await contacts.create_person(deps, tenant.admin, PersonInput(name="Hank", organization_id=org.id))
    deal = await items.create_item(deps, tenant.admin, ItemKind.DEAL, ItemInput(
        title="Platform", value="12,500.50", currency="usd", person_id=person.id, organization_id=org.id))
    assert (deal.value, deal.currency, deal.stage, deal.status) == (Decimal("12500.50"), "USD", "Qualified", "open")
    assert (deal.person_name, deal.organization_name, deal.owner_id) == ("Hank", "Globex", tenant.admin.user_id)
    won = await items.update_item(deps, tenant.admin, ItemKind.DEAL, deal.id, ItemInput(
        title="Platform", value=deal.value, currency="USD", status="won", person_id=person.id))
    assert won.status == "won" and won.organization_id is None
    assert [d.id for d in await items.list_items(deps, tenant.admin, ItemKind.DEAL, status="won")] == [deal.id]


@pytest.mark.parametrize("kind", list(ItemKind))
async def test_each_item_kind_is_created_read_listed_and_deleted(deps, tenant, kind):
    item = await items.create_item(deps, tenant.admin, kind, ItemInput(title=f"A {kind}"))
    assert (await items.get_item(deps, tenant.admin, kind, item.id)).title == f"A {kind}"
    assert item.id in [i.id for i in await items.list_items(deps, tenant.admin, kind)]
    await items.delete_item(deps, tenant.admin, kind, item.id)
    with pytest.raises(NotFound):
        await items.get_item(deps, tenant.admin, kind, item.id)


async def test_statuses_outside_a_kind_are_refused(deps, tenant):
    with pytest.raises(ValidationFailed) as caught:
        await items.create_item(deps, tenant.admin, ItemKind.LEAD, ItemInput(title="L", status="won"))
    assert "status" in caught.value.errors


async def test_an_item_cannot_point_at_another_companys_person_or_owner(deps, tenant):
    other = await create_tenant(deps)
    foreign = await contacts.create_person(deps, other.admin, PersonInput(name="Spy"))
    with pytest.raises(ValidationFailed) as caught:
        await items.create_item(deps, tenant.admin, ItemKind.DEAL, ItemInput(title="X", person_id=foreign.id))
    assert "person_id" in caught.value.errors
    with pytest.raises(ValidationFailed):
        await items.create_item(deps, tenant.admin, ItemKind.DEAL, ItemInput(title="X", owner_id=other.admin.user_id))


async def test_deleting_a_person_keeps_their_deals(deps, tenant):
    person = await contacts.create_person(deps, tenant.admin, PersonInput(name="Gone"))
    deal = await items.create_item(deps, tenant.admin, ItemKind.DEAL, ItemInput(title="Stays", person_id=person.id))
    await contacts.delete_person(deps, tenant.admin, person.id)
    assert (await items.get_item(deps, tenant.admin, ItemKind.DEAL, deal.id)).person_id is None
