"""The tenancy guard: company A's user, aiming every route of the app at company B.

A and B are twins: the same company name, the same person (same email), the
same organization (same domain), a deal, a lead and a project each with the same
titles, and an API token each. B also has a second user and a team account
connected on the test Dovecot. Only B's rows carry ``MARKER``, in fields A's
rows leave empty (phone, address, description, a user's name, a sender name).

``REGISTRY`` says, for every (method, path) the app serves, how A replays it
with B's ids: pages with A's session and CSRF token, the API with A's token;
path ids are B's, and bodies point at B's rows. Each replay must be refused
(403/404; 422 where a body names a foreign row) or, on a route that has no
id to aim, answer with A's own data. After each one, B's rows read through B's
API are exactly as they were, and nothing A received (body or headers) holds
one of B's ids, the marker or B's secrets.

A route without an entry fails ``test_every_route_is_covered_by_the_cross_tenant_registry``:
adding a route means saying here how it keeps companies apart.
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from salesinbox import bootstrap
from salesinbox.domain.accounts import AccountKind, Security
from salesinbox.services import (
    accounts,
    blocklist,
    contacts,
    conversations,
    drafts,
    items,
    labels,
    outbox,
    sync,
    tokens,
    workspace,
)
from salesinbox.services.accounts import AccountInput
from salesinbox.services.contacts import OrganizationInput, PersonInput
from salesinbox.services.items import ItemInput, ItemKind
from tests.conftest import create_tenant, make_settings
from tests.rig.plugin import Mailbox, new_mailbox
from tests.support.http import PageSession, api_client, logged_in_session

MARKER = f"b-only-{uuid.uuid4().hex[:10]}"
PASSWORD = "Twin-pass-1!"

Route = tuple[str, str]

# ---- the two companies -----------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    """One twin's ids (as strings, ready for paths and bodies) and credentials."""

    company: str
    admin: str
    person: str
    organization: str
    deal: str
    lead: str
    project: str
    token: str
    account: str
    admin_email: str
    admin_password: str = field(repr=False)
    token_secret: str = field(repr=False)
    user: str = ""
    user_email: str = ""
    conversation: str = ""
    attachment: str = ""
    message: str = ""
    outbound: str = ""
    link: str = ""
    blocked: str = ""
    label: str = ""
    draft: str = ""
    mailbox: Mailbox | None = field(default=None, repr=False)

    def secrets(self) -> dict[str, str]:
        """What must never reach the other company: every id, the passwords, the token."""
        ids = ("company", "admin", "user", "person", "organization", "deal", "lead", "project", "token", "account",
               "conversation", "attachment", "message", "outbound", "link", "blocked", "label", "draft")
        found = {name: getattr(self, name) for name in ids}
        found.update({"admin password": self.admin_password, "token secret": self.token_secret,
                      "mailbox password": self.mailbox.password if self.mailbox else ""})
        return {name: value for name, value in found.items() if value}


async def build_company(deps, *, marker: str = "", mailbox: Mailbox | None = None) -> Company:
    tenant = await create_tenant(deps, name="Twin Ltd")
    admin = tenant.admin
    org = await contacts.create_organization(deps, admin, OrganizationInput(
        name="Globex", domains=["globex.test"], address=marker))
    person = await contacts.create_person(deps, admin, PersonInput(
        name="Hank Scorpio", emails=["hank@globex.test"], phone=marker, organization_id=org.id))
    item_ids = {}
    for kind in ItemKind:
        row = await items.create_item(deps, admin, kind, ItemInput(
            title=f"Globex {kind.value}", person_id=person.id, organization_id=org.id, description=marker))
        item_ids[kind.value] = str(row.id)
    token = await tokens.create_token(deps, admin, "Twin token")
    blocked = await blocklist.block(deps, admin, "twin-noise.test", scope="company")
    label = await labels.create_label(deps, admin, "Priority")
    extra: dict[str, Any] = {}
    if mailbox is None:
        # A's own team account, saved untested, for replays that add B's users to it.
        account = await accounts.connect_account(deps, admin, AccountInput(
            address=f"sales-{uuid.uuid4().hex[:8]}@twin.test", password="unused-password", kind=AccountKind.TEAM,
            imap_host="imap.invalid", imap_port=993, smtp_host="smtp.invalid", smtp_port=465), verify=False)
    else:
        user_email = f"second-{uuid.uuid4().hex[:8]}@twin.test"
        user = await workspace.add_user(deps, admin, email=user_email, password=PASSWORD, name=marker)
        account = await accounts.connect_account(deps, admin, AccountInput(
            address=mailbox.address, login=mailbox.login, password=mailbox.password, kind=AccountKind.TEAM,
            display_name=marker, member_ids=[user.id],
            imap_host=mailbox.imap_host, imap_port=mailbox.imap_port, imap_security=Security.NONE,
            smtp_host=mailbox.smtp_host, smtp_port=mailbox.smtp_port, smtp_security=Security.NONE))
        conversation, attachment, message_id, link = await _synced_conversation(
            deps, admin, account.id, mailbox, marker)
        queued = await outbox.enqueue(deps, admin, outbox.OutgoingMessage(
            account.id, to=["hank@globex.test"], subject=f"Renewal {marker}", text=marker))
        await labels.set_labels(deps, admin, uuid.UUID(conversation), ["Priority"])
        draft = await drafts.save_draft(deps, admin, None, drafts.DraftInput(
            account.id, to="hank@globex.test", subject=f"Draft {marker}", html=f"<p>{marker}</p>"))
        extra = {"user": str(user.id), "user_email": user_email, "mailbox": mailbox, "conversation": conversation,
                 "attachment": attachment, "message": message_id, "outbound": str(queued.id), "link": link,
                 "draft": str(draft.id)}
    return Company(
        company=str(tenant.company_id), admin=str(admin.user_id), person=str(person.id),
        organization=str(org.id), token=str(token.token.id), account=str(account.id),
        admin_email=tenant.admin_email, admin_password=tenant.admin_password, token_secret=token.secret,
        blocked=str(blocked.id), label=str(label.id),
        **item_ids, **extra)


async def _synced_conversation(deps, admin, account_id, mailbox: Mailbox, marker: str) -> tuple[str, str, str]:
    """Mail from Hank in B's mailbox, synced: B's conversation (and its attachment) that A must never reach."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "hank@globex.test", mailbox.address, "Globex renewal"
    message.set_content(f"Globex renewal terms {marker}")
    message.add_alternative(f"<p>Globex renewal terms {marker}</p>", subtype="html")
    message.add_attachment(f"Signed terms {marker}".encode(), maintype="application", subtype="pdf",
                           filename="terms.pdf")
    await asyncio.to_thread(_deliver, mailbox, bytes(message))
    await sync.sync_account_once(deps, account_id)
    listed = await conversations.list_conversations(deps, admin, folder="inbox")
    opened = await conversations.get_conversation(deps, admin, listed[0].id)
    assert opened.links, "Hank's mail links to his deal, lead and project: B's links A must never touch"
    return (str(listed[0].id), str(opened.messages[0].attachments[0].id), str(opened.messages[0].id),
            str(opened.links[0].id))


def _deliver(mailbox: Mailbox, raw: bytes) -> None:
    with smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=10) as smtp:
        smtp.login(mailbox.login, mailbox.password)
        smtp.sendmail("hank@globex.test", [mailbox.address], raw)


# B's rows as B's own API lists them (every field of each): what no replay of A's may change.
B_READS = ["/company", "/users", "/tokens", "/persons", "/organizations", "/deals", "/leads", "/projects", "/accounts",
           "/conversations", "/conversations/{b.conversation}", "/deals/{b.deal}/conversations",
           "/persons/{b.person}/conversations", "/labels", "/conversations?label=Priority"]


def _without_last_used(value: Any) -> Any:
    # A token's last use is stamped by B's own reads (at most once a minute); it is not A's doing.
    if isinstance(value, dict):
        return {k: _without_last_used(v) for k, v in value.items() if k != "last_used_at"}
    if isinstance(value, list):
        return [_without_last_used(v) for v in value]
    return value


async def read_b(b_api: httpx.AsyncClient, b: Company) -> dict[str, Any]:
    paths = [p.format(b=b) for p in B_READS]
    responses = await asyncio.gather(*(b_api.get(p) for p in paths))
    for path, response in zip(paths, responses, strict=True):
        assert response.status_code == 200, f"B can no longer read {path}: {response.status_code}"
    return {path: _without_last_used(r.json()) for path, r in zip(paths, responses, strict=True)}


@dataclass
class World:
    a: Company
    b: Company
    a_pages: PageSession = field(repr=False)
    a_api: httpx.AsyncClient = field(repr=False)
    b_api: httpx.AsyncClient = field(repr=False)
    b_before: dict[str, Any] = field(repr=False)
    base_url: str = field(repr=False)


@pytest.fixture(scope="module")
async def world(deps, live_server, dovecot, smtp_server) -> AsyncIterator[World]:
    a = await build_company(deps)
    b = await build_company(deps, marker=MARKER, mailbox=new_mailbox(dovecot, smtp_server))
    a_pages = await logged_in_session(live_server.url, a.admin_email, a.admin_password)
    async with a_pages, api_client(live_server.url, a.token_secret) as a_api, \
            api_client(live_server.url, b.token_secret) as b_api:
        yield World(a, b, a_pages, a_api, b_api, await read_b(b_api, b), live_server.url)


# ---- the registry ------------------------------------------------------------------------------

HIDDEN = frozenset({403, 404})  # B's row is not there for A: never "it exists, elsewhere"
REFUSED = frozenset({422})  # a body naming B's row is refused as "no such item in this company"


@dataclass(frozen=True)
class Replay:
    """One request of A's aimed at B. Strings may name ``{a.<field>}`` and ``{b.<field>}``."""

    channel: str  # "page" (A's session and CSRF token) or "api" (A's token)
    method: str
    path: str
    expect: frozenset[int] = HIDDEN
    form: Mapping[str, Any] | None = None
    json: Any = None
    params: Mapping[str, str] | None = None
    shows: str = ""  # text A's answer must hold: proof the request did its work, on A's rows
    own_session: bool = False  # log A in afresh for this one (it logs out, or logs in)

    @property
    def label(self) -> str:
        return f"{self.channel} {self.method} {self.path}"


def page(method: str, path: str, expect=HIDDEN, **kwargs) -> Replay:
    return Replay("page", method, path, frozenset(expect), **kwargs)


def api(method: str, path: str, expect=HIDDEN, **kwargs) -> Replay:
    return Replay("api", method, f"/api/v1{path}", frozenset(expect), **kwargs)


ITEM_BODY = {"title": "Taken over", "status": "open"}


def item_routes(kind: str) -> dict[Route, list[Replay]]:
    plural, b_id, a_id = f"{kind}s", f"{{b.{kind}}}", f"{{a.{kind}}}"
    page_id, api_id = f"/{plural}/{{item_id:uuid}}", f"/api/v1/{plural}/{{item_id:uuid}}"
    return {
        ("GET", f"/{plural}"): [page("GET", f"/{plural}", {200}, params={"q": "Globex"}, shows=f"Globex {kind}")],
        ("GET", f"/{plural}/new"): [page("GET", f"/{plural}/new", {200},
                                         params={"person_id": "{b.person}", "organization_id": "{b.organization}"})],
        ("POST", f"/{plural}"): [page("POST", f"/{plural}", REFUSED, form={**ITEM_BODY, "person_id": "{b.person}"}),
                                 page("POST", f"/{plural}", REFUSED, form={**ITEM_BODY, "owner_id": "{b.admin}"})],
        ("GET", page_id): [page("GET", f"/{plural}/{b_id}")],
        ("GET", f"{page_id}/edit"): [page("GET", f"/{plural}/{b_id}/edit")],
        ("POST", page_id): [page("POST", f"/{plural}/{b_id}", form=ITEM_BODY),
                            page("POST", f"/{plural}/{a_id}", REFUSED,
                                 form={**ITEM_BODY, "organization_id": "{b.organization}"})],
        ("POST", f"{page_id}/delete"): [page("POST", f"/{plural}/{b_id}/delete")],
        ("GET", f"/api/v1/{plural}"): [
            api("GET", f"/{plural}", {200}, params={"person_id": "{b.person}"}),
            api("GET", f"/{plural}", {200}, params={"organization_id": "{b.organization}"}),
            api("GET", f"/{plural}", {200}, params={"q": "Globex"}, shows=a_id)],
        ("POST", f"/api/v1/{plural}"): [
            api("POST", f"/{plural}", REFUSED, json={**ITEM_BODY, "person_id": "{b.person}"})],
        ("GET", api_id): [api("GET", f"/{plural}/{b_id}")],
        ("PUT", api_id): [api("PUT", f"/{plural}/{b_id}", json=ITEM_BODY),
                          api("PUT", f"/{plural}/{a_id}", REFUSED, json={**ITEM_BODY, "person_id": "{b.person}"})],
        ("DELETE", api_id): [api("DELETE", f"/{plural}/{b_id}")],
    }


PERSON = {"name": "Hank Scorpio", "phone": "taken over"}
ORGANIZATION = {"name": "Globex", "address": "taken over"}


# B's mailbox, as A would type its settings; the password is left out unless added.
ACCOUNT = {"address": "{b.mailbox.address}", "imap_host": "{b.mailbox.imap_host}",
           "imap_port": "{b.mailbox.imap_port}", "imap_security": "none", "smtp_host": "{b.mailbox.smtp_host}",
           "smtp_port": "{b.mailbox.smtp_port}", "smtp_security": "none"}


REGISTRY: dict[Route, list[Replay]] = {
    # ---- first run, login, health: no id to aim at B
    ("GET", "/"): [page("GET", "/", {303})],
    ("GET", "/setup"): [page("GET", "/setup", {404})],
    ("POST", "/setup"): [page("POST", "/setup", {404}, form={
        "company": "Twin Ltd", "email": "{b.admin_email}", "password": "Take-over-1", "plan": "ultimate"})],
    ("GET", "/login"): [page("GET", "/login", {303})],
    ("POST", "/login"): [page("POST", "/login", {401}, own_session=True,
                              form={"email": "{b.admin_email}", "password": "not-b-s-password"})],
    ("POST", "/logout"): [page("POST", "/logout", {303}, own_session=True)],
    ("GET", "/healthz"): [page("GET", "/healthz", {200})],
    # ---- CRM pages
    **item_routes("deal"), **item_routes("lead"), **item_routes("project"),
    ("GET", "/persons"): [page("GET", "/persons", {200}, params={"q": "hank@globex.test"}, shows="Hank Scorpio")],
    ("GET", "/persons/new"): [page("GET", "/persons/new", {200}, params={"organization_id": "{b.organization}"})],
    ("POST", "/persons"): [page("POST", "/persons", REFUSED, form={**PERSON, "organization_id": "{b.organization}"}),
                           page("POST", "/persons", REFUSED, form={**PERSON, "owner_id": "{b.admin}"})],
    ("GET", "/persons/{person_id:uuid}"): [page("GET", "/persons/{b.person}")],
    ("GET", "/persons/{person_id:uuid}/edit"): [page("GET", "/persons/{b.person}/edit")],
    ("POST", "/persons/{person_id:uuid}"): [
        page("POST", "/persons/{b.person}", form=PERSON),
        page("POST", "/persons/{a.person}", REFUSED, form={**PERSON, "organization_id": "{b.organization}"})],
    ("POST", "/persons/{person_id:uuid}/delete"): [page("POST", "/persons/{b.person}/delete")],
    ("GET", "/organizations"): [page("GET", "/organizations", {200}, params={"q": "globex.test"}, shows="Globex")],
    ("GET", "/organizations/new"): [page("GET", "/organizations/new", {200})],
    ("POST", "/organizations"): [
        page("POST", "/organizations", REFUSED, form={**ORGANIZATION, "owner_id": "{b.admin}"})],
    ("GET", "/organizations/{organization_id:uuid}"): [page("GET", "/organizations/{b.organization}")],
    ("GET", "/organizations/{organization_id:uuid}/edit"): [page("GET", "/organizations/{b.organization}/edit")],
    ("POST", "/organizations/{organization_id:uuid}"): [
        page("POST", "/organizations/{b.organization}", form=ORGANIZATION),
        page("POST", "/organizations/{a.organization}", REFUSED, form={**ORGANIZATION, "owner_id": "{b.admin}"})],
    ("POST", "/organizations/{organization_id:uuid}/delete"): [page("POST", "/organizations/{b.organization}/delete")],
    # ---- settings pages
    ("GET", "/settings/users"): [page("GET", "/settings/users", {200}, shows="{a.admin_email}")],
    # Login emails are unique across the server, so "already exists" is all A learns; no id, no name.
    ("POST", "/settings/users"): [page("POST", "/settings/users", REFUSED,
                                       form={"email": "{b.user_email}", "password": "Long-enough-1"})],
    ("POST", "/settings/users/{user_id:uuid}/role"): [
        page("POST", "/settings/users/{b.user}/role", form={"role": "regular"}),
        page("POST", "/settings/users/{b.admin}/role", form={"role": "regular"})],
    ("GET", "/settings/tokens"): [page("GET", "/settings/tokens", {200}, shows="Twin token")],
    ("POST", "/settings/tokens"): [page("POST", "/settings/tokens", {201}, form={"name": "A's new token"})],
    ("POST", "/settings/tokens/{token_id:uuid}/revoke"): [page("POST", "/settings/tokens/{b.token}/revoke")],
    ("GET", "/settings/blocklist"): [page("GET", "/settings/blocklist", {200}, shows="twin-noise.test")],
    ("POST", "/settings/blocklist"): [page("POST", "/settings/blocklist", {303}, form={"value": "a-own.test"})],
    ("POST", "/settings/blocklist/{entry_id:uuid}/delete"): [page("POST", "/settings/blocklist/{b.blocked}/delete")],
    ("POST", "/contacts/from-sender"): [page("POST", "/contacts/from-sender", {303},
                                             form={"email": "hank@globex.test", "name": "Hank"})],
    ("GET", "/conversations/{conversation_id:uuid}/panel"): [page("GET", "/conversations/{b.conversation}/panel")],
    ("POST", "/conversations/{conversation_id:uuid}/links"): [
        page("POST", "/conversations/{b.conversation}/links", form={"item": "deal:{a.deal}"}),
        page("POST", "/conversations/{b.conversation}/links", form={"item": "deal:{b.deal}"})],
    ("POST", "/conversations/{conversation_id:uuid}/links/{link_id:uuid}/delete"): [
        page("POST", "/conversations/{b.conversation}/links/{b.link}/delete")],
    ("POST", "/conversations/{conversation_id:uuid}/visibility"): [
        page("POST", "/conversations/{b.conversation}/visibility", form={"visibility": "shared"})],
    ("GET", "/settings/labels"): [page("GET", "/settings/labels", {200}, shows="Priority")],
    ("POST", "/settings/labels"): [page("POST", "/settings/labels", {303}, form={"name": "A's own label"})],
    ("POST", "/settings/labels/{label_id:uuid}/rename"): [
        page("POST", "/settings/labels/{b.label}/rename", form={"name": "Taken over"})],
    ("POST", "/settings/labels/{label_id:uuid}/delete"): [page("POST", "/settings/labels/{b.label}/delete")],
    ("POST", "/conversations/{conversation_id:uuid}/labels"): [
        page("POST", "/conversations/{b.conversation}/labels", form={"labels": "Priority", "new_label": "Taken"}),
        page("POST", "/conversations/{b.conversation}/labels", form={"labels": []})],
    # ---- email account pages
    ("GET", "/accounts"): [page("GET", "/accounts", {200}, shows="{a.account}")],
    ("GET", "/accounts/new"): [page("GET", "/accounts/new", {200}, params={"kind": "team"})],
    # Testing B's address without a password must not borrow B's stored one.
    ("POST", "/accounts/test"): [page("POST", "/accounts/test", {200}, form=ACCOUNT,
                                      shows="Enter the password or app password.")],
    ("POST", "/accounts"): [page("POST", "/accounts", REFUSED, form={
        **ACCOUNT, "kind": "team", "password": "{b.mailbox.password}", "member_ids": ["{b.user}"]})],
    ("GET", "/accounts/{account_id:uuid}"): [page("GET", "/accounts/{b.account}")],
    ("GET", "/accounts/{account_id:uuid}/sync"): [page("GET", "/accounts/{b.account}/sync")],
    # ---- OAuth sign-in (no OAuth client is configured here: nothing is kept, the browser goes back)
    ("POST", "/accounts/oauth/start"): [page("POST", "/accounts/oauth/start", {303}, form={
        **ACCOUNT, "provider": "gmail", "kind": "team", "member_ids": ["{b.user}"]})],
    # An answer with B's ids and no sign-in started by A: refused, nothing changes.
    ("GET", "/accounts/oauth/callback"): [page("GET", "/accounts/oauth/callback", {303}, params={
        "state": "{b.account}", "code": "{b.token}"})],
    ("POST", "/accounts/{account_id:uuid}/reauthorise"): [page("POST", "/accounts/{b.account}/reauthorise")],
    # ---- pages: the Sales Inbox
    ("GET", "/inbox/{folder:str}"): [page("GET", "/inbox/inbox", {200}, params={"q": "Globex"}),
                                     page("GET", "/inbox/sent", {200}), page("GET", "/inbox/outbox", {200}),
                                     page("GET", "/inbox/inbox", {200}, params={"account": "{b.account}"})],
    ("GET", "/inbox/{folder:str}/list"): [page("GET", "/inbox/inbox/list", {200}, params={"q": "renewal"})],
    ("GET", "/inbox/{folder:str}/{conversation_id:uuid}"): [page("GET", "/inbox/inbox/{b.conversation}")],
    ("GET", "/compose"): [page("GET", "/compose", {200}), page("GET", "/compose", REFUSED,
                                                            params={"reply_to": "{b.message}", "mode": "reply_all"}),
                          page("GET", "/compose", params={"draft": "{b.draft}"})],
    ("POST", "/compose"): [page("POST", "/compose", form={"account_id": "{b.account}", "to": "x@a.test",
                                                          "subject": "x", "text": "x"}),
                           page("POST", "/compose", REFUSED, form={"account_id": "{a.account}", "to": "x@a.test",
                                                                   "in_reply_to": "{b.message}"})],
    ("POST", "/outbox/{outbound_id:uuid}/undo"): [page("POST", "/outbox/{b.outbound}/undo")],
    ("POST", "/outbox/{outbound_id:uuid}/edit"): [page("POST", "/outbox/{b.outbound}/edit")],
    # ---- drafts: B's draft is not found; a draft naming B's account (or B's draft id) is refused
    ("POST", "/drafts"): [
        page("POST", "/drafts", REFUSED, form={"account_id": "{b.account}", "subject": "x", "text": "x"}),
        page("POST", "/drafts", form={"account_id": "{a.account}", "draft_id": "{b.draft}", "text": "x"}),
        page("POST", "/drafts", REFUSED, form={"account_id": "{b.account}", "draft_id": "{b.draft}", "text": "x"})],
    ("POST", "/drafts/{draft_id:uuid}/discard"): [page("POST", "/drafts/{b.draft}/discard")],
    ("POST", "/drafts/from-message/{message_id:uuid}"): [page("POST", "/drafts/from-message/{b.message}")],
    ("POST", "/inbox/{folder:str}/{conversation_id:uuid}/{action:str}"): [
        page("POST", "/inbox/inbox/{b.conversation}/archive"), page("POST", "/inbox/inbox/{b.conversation}/read")],
    # Several ids: one of B's among them and nothing is done, for anyone.
    ("POST", "/inbox/{folder:str}/bulk"): [
        page("POST", "/inbox/inbox/bulk", form={"action": "archive", "ids": ["{b.conversation}"]}),
        page("POST", "/inbox/inbox/bulk", form={"action": "trash", "ids": [str(uuid.UUID(int=1)), "{b.conversation}"]}),
        page("POST", "/inbox/trash/bulk", form={"action": "unread", "ids": ["{b.conversation}"]}),
        page("POST", "/inbox/inbox/bulk", form={"action": "label", "label": "{a.label}", "ids": ["{b.conversation}"]}),
        page("POST", "/inbox/inbox/bulk", form={"action": "unlabel", "label": "{b.label}",
                                                 "ids": ["{b.conversation}"]})],
    ("GET", "/messages/{message_id:uuid}/body"): [page("GET", "/messages/{b.message}/body"),
                                                  page("GET", "/messages/{b.message}/body", params={"images": "1"})],
    ("POST", "/accounts/{account_id:uuid}/test"): [page("POST", "/accounts/{b.account}/test")],
    ("POST", "/accounts/{account_id:uuid}/members"): [
        page("POST", "/accounts/{b.account}/members", form={"member_ids": ["{a.admin}"]})],
    ("POST", "/accounts/{account_id:uuid}/delete"): [page("POST", "/accounts/{b.account}/delete")],
    # ---- API: workspace
    ("GET", "/api/v1/me"): [api("GET", "/me", {200}, shows="{a.company}")],
    ("GET", "/api/v1/company"): [api("GET", "/company", {200}, shows="{a.company}")],
    ("GET", "/api/v1/users"): [api("GET", "/users", {200}, shows="{a.admin}")],
    ("POST", "/api/v1/users"): [api("POST", "/users", {409}, json={"email": "{b.user_email}",
                                                                     "password": "Long-enough-1"})],
    ("GET", "/api/v1/users/{user_id:uuid}"): [api("GET", "/users/{b.user}"), api("GET", "/users/{b.admin}")],
    ("PATCH", "/api/v1/users/{user_id:uuid}"): [api("PATCH", "/users/{b.user}", json={"role": "admin"}),
                                                api("PATCH", "/users/{b.admin}", json={"role": "regular"})],
    ("GET", "/api/v1/tokens"): [api("GET", "/tokens", {200}, shows="{a.token}")],
    ("POST", "/api/v1/tokens"): [api("POST", "/tokens", {201}, json={"name": "A's API token"})],
    ("DELETE", "/api/v1/tokens/{token_id:uuid}"): [api("DELETE", "/tokens/{b.token}")],
    # ---- API: persons and organizations
    ("GET", "/api/v1/persons"): [api("GET", "/persons", {200}, params={"organization_id": "{b.organization}"}),
                                 api("GET", "/persons", {200}, params={"q": "hank"}, shows="{a.person}")],
    ("POST", "/api/v1/persons"): [
        api("POST", "/persons", REFUSED, json={**PERSON, "organization_id": "{b.organization}"}),
        api("POST", "/persons", REFUSED, json={**PERSON, "owner_id": "{b.user}"})],
    ("GET", "/api/v1/persons/{person_id:uuid}"): [api("GET", "/persons/{b.person}")],
    ("PUT", "/api/v1/persons/{person_id:uuid}"): [
        api("PUT", "/persons/{b.person}", json=PERSON),
        api("PUT", "/persons/{a.person}", REFUSED, json={**PERSON, "organization_id": "{b.organization}"})],
    ("DELETE", "/api/v1/persons/{person_id:uuid}"): [api("DELETE", "/persons/{b.person}")],
    ("GET", "/api/v1/organizations"): [api("GET", "/organizations", {200}, params={"q": "globex"},
                                           shows="{a.organization}")],
    ("POST", "/api/v1/organizations"): [api("POST", "/organizations", REFUSED,
                                            json={**ORGANIZATION, "owner_id": "{b.admin}"})],
    ("GET", "/api/v1/organizations/{organization_id:uuid}"): [api("GET", "/organizations/{b.organization}")],
    ("PUT", "/api/v1/organizations/{organization_id:uuid}"): [
        api("PUT", "/organizations/{b.organization}", json=ORGANIZATION),
        api("PUT", "/organizations/{a.organization}", REFUSED, json={**ORGANIZATION, "owner_id": "{b.admin}"})],
    ("DELETE", "/api/v1/organizations/{organization_id:uuid}"): [api("DELETE", "/organizations/{b.organization}")],
    # ---- API: email accounts
    ("GET", "/api/v1/providers"): [api("GET", "/providers", {200}, shows="imap.gmail.com")],
    ("GET", "/api/v1/accounts"): [api("GET", "/accounts", {200}, shows="{a.account}")],
    # verify=false: were the member check missing, the account would be saved (201), not hidden by a login failure.
    ("POST", "/api/v1/accounts"): [api("POST", "/accounts", REFUSED, params={"verify": "false"}, json={
        **ACCOUNT, "imap_port": 143, "smtp_port": 587, "kind": "team", "password": "anything",
        "member_ids": ["{b.user}"]})],
    ("POST", "/api/v1/accounts/test"): [api("POST", "/accounts/test", REFUSED, json={
        **ACCOUNT, "imap_port": 143, "smtp_port": 587}, shows="Enter the password or app password.")],
    ("GET", "/api/v1/accounts/{account_id:uuid}"): [api("GET", "/accounts/{b.account}")],
    ("POST", "/api/v1/accounts/{account_id:uuid}/test"): [api("POST", "/accounts/{b.account}/test")],
    ("PUT", "/api/v1/accounts/{account_id:uuid}/members"): [
        api("PUT", "/accounts/{b.account}/members", json={"member_ids": ["{a.admin}"]}),
        api("PUT", "/accounts/{a.account}/members", REFUSED, json={"member_ids": ["{b.user}"]})],
    ("DELETE", "/api/v1/accounts/{account_id:uuid}"): [api("DELETE", "/accounts/{b.account}")],
    # ---- API: conversations
    ("GET", "/api/v1/conversations"): [api("GET", "/conversations", {200}, params={"q": "Globex"}),
                                       api("GET", "/conversations", {200}, params={"folder": "sent"}),
                                       api("GET", "/conversations", {200}, params={"folder": "outbox"}),
                                       api("GET", "/conversations", {200}, params={"account_id": "{b.account}"}),
                                       api("GET", "/conversations", {200}, params={"label": "Priority"})],
    ("GET", "/api/v1/conversations/{conversation_id:uuid}"): [api("GET", "/conversations/{b.conversation}")],
    ("PATCH", "/api/v1/conversations/{conversation_id:uuid}"): [
        api("PATCH", "/conversations/{b.conversation}", json={"read": True}),
        api("PATCH", "/conversations/{b.conversation}", json={"archived": True}),
        api("PATCH", "/conversations/{b.conversation}", json={"visibility": "shared"}),
        api("PATCH", "/conversations/{b.conversation}", json={"labels": ["Priority", "Taken over"]}),
        api("PATCH", "/conversations/{b.conversation}", json={"labels": []})],
    ("GET", "/api/v1/labels"): [api("GET", "/labels", {200}, shows="{a.label}")],
    ("POST", "/api/v1/labels"): [api("POST", "/labels", {201}, json={"name": "A's API label"})],
    ("PATCH", "/api/v1/labels/{label_id:uuid}"): [api("PATCH", "/labels/{b.label}", json={"name": "Taken over"})],
    ("DELETE", "/api/v1/labels/{label_id:uuid}"): [api("DELETE", "/labels/{b.label}")],
    ("POST", "/api/v1/conversations/{conversation_id:uuid}/links"): [
        api("POST", "/conversations/{b.conversation}/links", json={"item_type": "deal", "item_id": "{a.deal}"}),
        api("POST", "/conversations/{b.conversation}/links", json={"item_type": "lead", "item_id": "{b.lead}"})],
    ("DELETE", "/api/v1/conversations/{conversation_id:uuid}/links/{link_id:uuid}"): [
        api("DELETE", "/conversations/{b.conversation}/links/{b.link}")],
    **{("GET", f"/api/v1/{kind}s/{{item_id:uuid}}/conversations"): [api("GET", f"/{kind}s/{{b.{kind}}}/conversations")]
       for kind in ("deal", "lead", "project", "person", "organization")},
    ("DELETE", "/api/v1/conversations/{conversation_id:uuid}"): [api("DELETE", "/conversations/{b.conversation}")],
    # ---- API: sending
    ("POST", "/api/v1/messages"): [api("POST", "/messages", json={"account_id": "{b.account}", "to": ["x@a.test"]}),
                                   api("POST", "/messages", REFUSED, json={
                                       "account_id": "{a.account}", "to": ["x@a.test"], "in_reply_to": "{b.message}"})],
    ("GET", "/api/v1/messages/{message_id:uuid}"): [api("GET", "/messages/{b.outbound}")],
    # ---- attachments and the image proxy
    ("GET", "/attachments/{attachment_id:uuid}"): [page("GET", "/attachments/{b.attachment}", {404})],
    # No company data: the proxy fetches only URLs this server signed, for any logged-in user.
    ("GET", "/proxy/image"): [page("GET", "/proxy/image", {403}, params={"url": "http://127.0.0.1:9/x.png",
                                                                         "sig": "not-a-signature"})],
}

# Routes no company data flows through, and why they need no replay.
IGNORED: dict[Route, str] = {
    ("GET", "/static/{file_path:path}"): "the CSS and JS bundle: the same files for everyone",
    ("GET", "/api/v1/openapi.json"): "Litestar's OpenAPI document: describes the routes, holds no rows",
    ("GET", "/inbox"): "a redirect to /inbox/inbox, the same for everyone",
    ("GET", "/inbox/events"): "an endless event stream (a replay would never end); its only data is a change "
    "counter computed over the caller's own usable accounts (conversations.inbox_version), "
    "see test_inbox_pages for its scoping",
    ("GET", "/api/v1"): "added by Litestar with the OpenAPI document: its root",
    ("GET", "/api/v1/{path:str}"): "added by Litestar with the OpenAPI document: its render plugins",
}
UNROUTED_METHODS = {"OPTIONS", "HEAD"}  # answered by Litestar itself, never by a handler

CASES = [(route, replay) for route, replays in REGISTRY.items() for replay in replays]


def fill(value: Any, a: Company, b: Company) -> Any:
    if isinstance(value, str):
        return value.format(a=a, b=b)
    if isinstance(value, Mapping):
        return {k: fill(v, a, b) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, a, b) for v in value]
    return value


async def send(world: World, replay: Replay) -> httpx.Response:
    path, params = fill(replay.path, world.a, world.b), fill(replay.params, world.a, world.b)
    if replay.channel == "api":
        return await world.a_api.request(replay.method, path.removeprefix("/api/v1"), params=params,
                                         json=fill(replay.json, world.a, world.b))
    if replay.own_session:
        async with await logged_in_session(world.base_url, world.a.admin_email, world.a.admin_password) as session:
            return await session.post(path, fill(replay.form, world.a, world.b))
    if replay.method == "GET":
        return await world.a_pages.get(path, params=params)
    return await world.a_pages.post(path, fill(replay.form, world.a, world.b), params=params)


def routes_the_app_serves(tmp_path: Path) -> set[Route]:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'never-opened.db'}", tmp_path)
    return {(method, route.path) for route in bootstrap.build_app(settings).routes
            for method in route.methods - UNROUTED_METHODS}


# ---- the tests ---------------------------------------------------------------------------------------


def test_every_route_is_covered_by_the_cross_tenant_registry(tmp_path):
    served = routes_the_app_serves(tmp_path)
    assert set(IGNORED) <= served, f"ignored routes the app no longer has: {set(IGNORED) - served}"
    missing = served - set(IGNORED) - set(REGISTRY)
    stale = set(REGISTRY) - served
    assert not missing, f"routes without a cross-tenant replay in REGISTRY: {sorted(missing)}"
    assert not stale, f"REGISTRY entries for routes the app does not serve: {sorted(stale)}"


@pytest.mark.parametrize(("route", "replay"), CASES, ids=[f"{r.label}#{i}" for i, (_, r) in enumerate(CASES)])
async def test_company_a_cannot_reach_company_b_through(world, route, replay):
    response = await send(world, replay)
    answer = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())

    assert response.status_code in replay.expect, f"{replay.label}: {response.status_code} {response.text[:500]}"
    leaked = {name for name, secret in {**world.b.secrets(), "marker": MARKER}.items() if secret in answer}
    assert not leaked, f"{replay.label} showed A company B's {sorted(leaked)}"
    if replay.shows:
        assert fill(replay.shows, world.a, world.b) in response.text, f"{replay.label} did not show A's own data"
    assert await read_b(world.b_api, world.b) == world.b_before, f"{replay.label} changed company B"


async def test_the_twins_hold_the_same_data_but_only_b_carries_the_marker(world):
    a_person = (await world.a_api.get(f"/persons/{world.a.person}")).json()
    b_person = (await world.b_api.get(f"/persons/{world.b.person}")).json()
    assert (a_person["name"], a_person["emails"]) == (b_person["name"], b_person["emails"])
    assert (a_person["phone"], b_person["phone"]) == ("", MARKER)
    assert (await world.a_api.get("/company")).json()["name"] == (await world.b_api.get("/company")).json()["name"]
    for path in ("/persons", "/organizations", "/deals", "/leads", "/projects", "/users", "/accounts"):
        assert MARKER not in (await world.a_api.get(path)).text, path
