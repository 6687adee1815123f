"""The JSON API under /api/v1: the same use cases as the pages, Bearer tokens only."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from typing import Annotated

from litestar import Router, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.providers import ProviderPreset, all_presets
from salesinbox.domain.text import Text
from salesinbox.services import (
    accounts,
    actions,
    contacts,
    conversations,
    items,
    labels,
    links,
    outbox,
    tokens,
    workspace,
)
from salesinbox.services.accounts import AccountInput, AccountView, ConnectionReport
from salesinbox.services.contacts import OrganizationInput, OrganizationView, PersonInput, PersonView
from salesinbox.services.conversations import ConversationSummary, ConversationView
from salesinbox.services.items import ItemInput, ItemKind, ItemView
from salesinbox.services.labels import LabelView
from salesinbox.services.links import LinkView
from salesinbox.services.outbox import OutboundView, OutgoingMessage
from salesinbox.services.tokens import NewToken, TokenView
from salesinbox.services.workspace import CompanyView, UserView
from salesinbox.web.auth import API_PREFIX, admin_only, logged_in
from salesinbox.web.i18n import localize
from salesinbox.web.params import CurrentActor, UseCases

# ---- workspace ---------------------------------------------------------------------


@dataclass
class Me:
    user: UserView
    company: CompanyView


@dataclass
class NewUserInput:
    email: str
    password: str
    name: str = ""
    admin: bool = False


@dataclass
class UserPatch:
    role: str


@dataclass
class TokenInput:
    name: str = "API token"


@get("/me")
async def me(deps: UseCases, actor: CurrentActor) -> Me:
    return Me(await workspace.get_user(deps, actor, actor.user_id), await workspace.get_company(deps, actor))


@get("/company")
async def company(deps: UseCases, actor: CurrentActor) -> CompanyView:
    return await workspace.get_company(deps, actor)


@get("/users")
async def list_users(deps: UseCases, actor: CurrentActor) -> list[UserView]:
    return await workspace.list_users(deps, actor)


@post("/users", guards=[admin_only])
async def add_user(deps: UseCases, actor: CurrentActor, data: JSONBody[NewUserInput]) -> UserView:
    return await workspace.add_user(
        deps, actor, email=data.email, password=data.password, name=data.name, admin=data.admin
    )


@get("/users/{user_id:uuid}")
async def get_user(deps: UseCases, actor: CurrentActor, user_id: FromPath[uuid.UUID]) -> UserView:
    return await workspace.get_user(deps, actor, user_id)


@patch("/users/{user_id:uuid}", guards=[admin_only])
async def change_role(
    deps: UseCases, actor: CurrentActor, user_id: FromPath[uuid.UUID], data: JSONBody[UserPatch]
) -> UserView:
    return await workspace.change_role(deps, actor, user_id, data.role)


@get("/tokens")
async def list_tokens(deps: UseCases, actor: CurrentActor) -> list[TokenView]:
    return await tokens.list_tokens(deps, actor)


@post("/tokens")
async def create_token(deps: UseCases, actor: CurrentActor, data: JSONBody[TokenInput]) -> NewToken:
    return await tokens.create_token(deps, actor, data.name)


@delete("/tokens/{token_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def revoke_token(deps: UseCases, actor: CurrentActor, token_id: FromPath[uuid.UUID]) -> None:
    await tokens.revoke_token(deps, actor, token_id)


# ---- persons and organizations ------------------------------------------------------


@get("/persons")
async def list_persons(
    deps: UseCases, actor: CurrentActor, q: FromQuery[str] = "", organization_id: FromQuery[uuid.UUID | None] = None
) -> list[PersonView]:
    return await contacts.list_persons(deps, actor, query=q, organization_id=organization_id)


@dataclass
class PersonEnvelope:
    data: PersonView


@dataclass
class OrganizationEnvelope:
    data: OrganizationView


@dataclass
class ItemEnvelope:
    data: ItemView


@post("/persons")
async def create_person(deps: UseCases, actor: CurrentActor, data: JSONBody[PersonInput]) -> PersonEnvelope:
    """Answers ``{"data": person}`` (creations answer in an envelope, as POST /messages)."""
    return PersonEnvelope(await contacts.create_person(deps, actor, data))


@get("/persons/{person_id:uuid}")
async def get_person(deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID]) -> PersonView:
    return await contacts.get_person(deps, actor, person_id)


@put("/persons/{person_id:uuid}")
async def update_person(
    deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID], data: JSONBody[PersonInput]
) -> PersonView:
    return await contacts.update_person(deps, actor, person_id, data)


@delete("/persons/{person_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def delete_person(deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID]) -> None:
    await contacts.delete_person(deps, actor, person_id)


@get("/organizations")
async def list_organizations(deps: UseCases, actor: CurrentActor, q: FromQuery[str] = "") -> list[OrganizationView]:
    return await contacts.list_organizations(deps, actor, query=q)


@post("/organizations")
async def create_organization(
    deps: UseCases, actor: CurrentActor, data: JSONBody[OrganizationInput]
) -> OrganizationEnvelope:
    return OrganizationEnvelope(await contacts.create_organization(deps, actor, data))


@get("/organizations/{organization_id:uuid}")
async def get_organization(
    deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID]
) -> OrganizationView:
    return await contacts.get_organization(deps, actor, organization_id)


@put("/organizations/{organization_id:uuid}")
async def update_organization(
    deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID], data: JSONBody[OrganizationInput]
) -> OrganizationView:
    return await contacts.update_organization(deps, actor, organization_id, data)


@delete("/organizations/{organization_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def delete_organization(deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID]) -> None:
    await contacts.delete_organization(deps, actor, organization_id)


# ---- deals, leads, projects ------------------------------------------------------------


@dataclass
class ItemBody(ItemInput):
    # msgspec cannot decode ItemInput's ``Decimal | str`` (two string-like types),
    # which made every item POST/PUT a 500; JSON sends a string or a number.
    value: str | float | None = None


def item_routes(kind: ItemKind) -> Router:
    plural = f"{kind.value}s"

    @get("/", operation_id=f"list_{plural}", summary=f"List {plural}")
    async def list_(
        deps: UseCases,
        actor: CurrentActor,
        status: FromQuery[str | None] = None,
        person_id: FromQuery[uuid.UUID | None] = None,
        organization_id: FromQuery[uuid.UUID | None] = None,
        q: FromQuery[str] = "",
    ) -> list[ItemView]:
        return await items.list_items(
            deps, actor, kind, status=status, person_id=person_id, organization_id=organization_id, query=q
        )

    @post("/", operation_id=f"create_{kind.value}", summary=f"Create a {kind.value}")
    async def create(deps: UseCases, actor: CurrentActor, data: JSONBody[ItemBody]) -> ItemEnvelope:
        return ItemEnvelope(await items.create_item(deps, actor, kind, data))

    @get("/{item_id:uuid}", operation_id=f"get_{kind.value}", summary=f"Get a {kind.value}")
    async def read(deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]) -> ItemView:
        return await items.get_item(deps, actor, kind, item_id)

    @put("/{item_id:uuid}", operation_id=f"update_{kind.value}", summary=f"Update a {kind.value}")
    async def update(
        deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID], data: JSONBody[ItemBody]
    ) -> ItemView:
        return await items.update_item(deps, actor, kind, item_id, data)

    @delete(
        "/{item_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        operation_id=f"delete_{kind.value}",
        summary=f"Delete a {kind.value}",
    )
    async def remove(deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]) -> None:
        await items.delete_item(deps, actor, kind, item_id)

    return Router(f"/{plural}", route_handlers=[list_, create, read, update, remove], tags=[plural])


# ---- email accounts -------------------------------------------------------------------


@dataclass
class MembersInput:
    member_ids: list[uuid.UUID]


@get("/providers")
async def list_providers() -> list[ProviderPreset]:
    return list(all_presets())


@get("/accounts")
async def list_accounts(deps: UseCases, actor: CurrentActor) -> list[AccountView]:
    return await accounts.list_accounts(deps, actor)


@post("/accounts")
async def connect_account(
    deps: UseCases, actor: CurrentActor, data: JSONBody[AccountInput], verify: FromQuery[bool] = True
) -> AccountView:
    return await accounts.connect_account(deps, actor, data, verify=verify)


@post("/accounts/test", status_code=200)
async def test_connection(deps: UseCases, actor: CurrentActor, data: JSONBody[AccountInput]) -> ConnectionReport:
    return _localized(await accounts.test_connection(deps, actor, data))


@get("/accounts/{account_id:uuid}")
async def get_account(deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]) -> AccountView:
    return await accounts.access_account(deps, actor, account_id)


@post("/accounts/{account_id:uuid}/test", status_code=200)
async def test_account(deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]) -> ConnectionReport:
    return _localized(await accounts.test_account(deps, actor, account_id))


def _localized(report: ConnectionReport) -> ConnectionReport:
    """The report's plain words in the request's language, as a refused connect's error body has them."""
    return replace(report, imap_error=localize(report.imap_error), smtp_error=localize(report.smtp_error))


@put("/accounts/{account_id:uuid}/members")
async def set_members(
    deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID], data: JSONBody[MembersInput]
) -> AccountView:
    return await accounts.set_team_members(deps, actor, account_id, data.member_ids)


@delete("/accounts/{account_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def disconnect_account(deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]) -> None:
    await accounts.disconnect_account(deps, actor, account_id)


# ---- conversations ----------------------------------------------------------------------


@get("/conversations")
async def list_conversations(
    deps: UseCases,
    actor: CurrentActor,
    folder: FromQuery[str] = "inbox",
    q: FromQuery[str] = "",
    limit: FromQuery[int] = 50,
    offset: FromQuery[int] = 0,
    unread: FromQuery[bool | None] = None,
    has_attachments: FromQuery[bool | None] = None,
    account_id: FromQuery[uuid.UUID | None] = None,
    participant: FromQuery[str] = "",
    after: FromQuery[dt.date | None] = None,
    before: FromQuery[dt.date | None] = None,
    label: FromQuery[str] = "",
) -> list[ConversationSummary] | list[OutboundView]:
    """Conversations in a folder, newest first; the filters combine.

    ``label``: a label's name, in any case (a name no label has lists nothing).
    ``folder=outbox`` lists outgoing messages not sent yet (or failed, or of unknown outcome).
    """
    if folder == "outbox":
        if label:
            raise ValidationFailed({"label": Text("The outbox has no labels.")})
        return await outbox.list_outbox(deps, actor)
    filters = conversations.Filters(unread, has_attachments, account_id, participant, after, before, label)
    return await conversations.list_conversations(
        deps, actor, folder=folder, query=q, limit=limit, offset=offset, filters=filters
    )


@get("/conversations/{conversation_id:uuid}")
async def get_conversation(
    deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID]
) -> ConversationView:
    return await conversations.get_conversation(deps, actor, conversation_id)


@dataclass
class ConversationPatch:
    read: bool | None = None
    archived: bool | None = None
    labels: list[str] | None = None
    visibility: str | None = None  # shared | private | team_only


@dataclass
class ActionResult:
    id: uuid.UUID
    changed: int  # messages changed on the mail server
    skipped_folders: list[str]  # renumbered by the server since the last sync: left alone until the next pass
    visibility: str | None = None  # after a visibility change
    labels: list[str] | None = None  # after a labels change: the conversation's labels
    folders_without_keywords: list[str] = field(default_factory=list)  # labels kept here only: no keywords there


@patch("/conversations/{conversation_id:uuid}")
async def change_conversation(
    deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID], data: JSONBody[ConversationPatch]
) -> ActionResult:
    """Read / unread, archive / unarchive and labels, carried out on the mail server first.

    ``labels``: the full set of label names the conversation is to have; a
    name no label has yet creates that label, company-wide. On the server
    each label is an IMAP keyword on every message of the conversation in
    your accounts; where a folder takes no keywords the label is kept here
    only (``folders_without_keywords``).
    A moved conversation shows in its new folder after the next sync pass (seconds, when the app syncs).
    """
    visibility = None
    if data.visibility is not None:
        visibility = await links.set_visibility(deps, actor, conversation_id, data.visibility)
    reports: list = []
    labelled = None
    if data.labels is not None:
        labelled = await labels.set_labels(deps, actor, conversation_id, data.labels)
        reports.append(labelled)
    if data.read is not None:
        reports.append(await actions.set_read(deps, actor, conversation_id, data.read))
    if data.archived is True:
        reports.append(await actions.archive(deps, actor, conversation_id))
    elif data.archived is False:
        reports.append(await actions.unarchive(deps, actor, conversation_id))
    return ActionResult(
        conversation_id,
        sum(r.changed for r in reports),
        sorted({f for r in reports for f in r.skipped_folders}),
        visibility,
        labelled.labels if labelled else None,
        labelled.folders_without_keywords if labelled else [],
    )


# ---- labels ---------------------------------------------------------------------------------


@dataclass
class LabelInput:
    name: str


@dataclass
class LabelEnvelope:
    data: LabelView


@get("/labels")
async def list_labels(deps: UseCases, actor: CurrentActor) -> list[LabelView]:
    """The company's labels, by name; ``keyword`` is the IMAP keyword each is stored as on the server."""
    return await labels.list_labels(deps, actor)


@post("/labels", status_code=201)
async def create_label(deps: UseCases, actor: CurrentActor, data: JSONBody[LabelInput]) -> LabelEnvelope:
    """A new company-wide label (409 if one has that name, in any case)."""
    return LabelEnvelope(await labels.create_label(deps, actor, data.name))


@patch("/labels/{label_id:uuid}")
async def rename_label(
    deps: UseCases, actor: CurrentActor, label_id: FromPath[uuid.UUID], data: JSONBody[LabelInput]
) -> LabelView:
    """Rename; the keyword on the mail server stays the same, so no message is rewritten."""
    return await labels.rename_label(deps, actor, label_id, data.name)


@delete("/labels/{label_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def delete_label(deps: UseCases, actor: CurrentActor, label_id: FromPath[uuid.UUID]) -> None:
    """Off every conversation; the keyword is left on the server's messages and not made a label again."""
    await labels.delete_label(deps, actor, label_id)


@dataclass
class LinkInput:
    item_type: str  # deal | lead | project
    item_id: uuid.UUID


@dataclass
class LinkEnvelope:
    data: LinkView


@post("/conversations/{conversation_id:uuid}/links", status_code=201)
async def link_conversation(
    deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID], data: JSONBody[LinkInput]
) -> LinkEnvelope:
    """Link by hand to a deal, lead or project (a conversation may link to several)."""
    return LinkEnvelope(await links.link(deps, actor, conversation_id, data.item_type, data.item_id))


@delete("/conversations/{conversation_id:uuid}/links/{link_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def unlink_conversation(
    deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID], link_id: FromPath[uuid.UUID]
) -> None:
    """Unlink; the automatic rules will not link the same item again."""
    await links.unlink(deps, actor, conversation_id, link_id)


def item_conversation_routes(kind: str) -> Router:
    @get("/{item_id:uuid}/conversations", operation_id=f"list_{kind}_conversations",
         summary=f"Conversations on a {kind}'s Email tab")
    async def item_conversations(
        deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]
    ) -> list[ConversationSummary]:
        """Newest first; only those the token's user may read."""
        return await conversations.item_conversations(deps, actor, kind, item_id)

    return Router(f"/{kind}s", route_handlers=[item_conversations], tags=[f"{kind}s"])


@delete("/conversations/{conversation_id:uuid}", status_code=HTTP_204_NO_CONTENT)
async def trash_conversation(deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID]) -> None:
    """To Trash; a conversation already only in Trash is deleted for good."""
    await actions.trash(deps, actor, conversation_id)


# ---- sending ------------------------------------------------------------------------------


@dataclass
class MessageInput:
    account_id: uuid.UUID
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str | None = None
    in_reply_to: uuid.UUID | None = None  # a stored message this answers
    send_at: dt.datetime | None = None


@dataclass
class OutboundEnvelope:
    data: OutboundView


_deliveries: set[asyncio.Task] = set()


@post("/messages", status_code=201)
async def send_message(
    deps: UseCases,
    actor: CurrentActor,
    data: JSONBody[MessageInput],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)] = None,
) -> OutboundEnvelope:
    """Queue a message (committed before any network call) and start sending it.

    The same ``Idempotency-Key`` for the same account returns the first message
    and sends nothing more. Poll ``GET /messages/{id}`` for the outcome.
    """
    outgoing = OutgoingMessage(
        account_id=data.account_id, to=data.to, cc=data.cc, bcc=data.bcc, subject=data.subject, text=data.text,
        html=data.html, in_reply_to=data.in_reply_to, send_at=data.send_at,
    )
    view = await outbox.enqueue(deps, actor, outgoing, idempotency_key=idempotency_key)
    if view.status == "queued":
        task = asyncio.create_task(outbox.deliver(deps, actor.company_id, view.id))
        _deliveries.add(task)
        task.add_done_callback(_deliveries.discard)
    return OutboundEnvelope(view)


@get("/messages/{message_id:uuid}")
async def get_message(deps: UseCases, actor: CurrentActor, message_id: FromPath[uuid.UUID]) -> OutboundEnvelope:
    """An outgoing message's state: scheduled, queued, sending, sent, failed or outcome_unknown."""
    return OutboundEnvelope(await outbox.get_outbound(deps, actor, message_id))


def api_router() -> Router:
    handlers = [
        me,
        company,
        list_users,
        add_user,
        get_user,
        change_role,
        list_tokens,
        create_token,
        revoke_token,
        list_persons,
        create_person,
        get_person,
        update_person,
        delete_person,
        list_organizations,
        create_organization,
        get_organization,
        update_organization,
        delete_organization,
        *(item_routes(kind) for kind in ItemKind),
        list_providers,
        list_accounts,
        connect_account,
        test_connection,
        get_account,
        test_account,
        set_members,
        disconnect_account,
        list_conversations,
        get_conversation,
        change_conversation,
        trash_conversation,
        link_conversation,
        unlink_conversation,
        list_labels,
        create_label,
        rename_label,
        delete_label,
        *(item_conversation_routes(kind) for kind in conversations.ITEM_KINDS),
        send_message,
        get_message,
    ]
    return Router(API_PREFIX, route_handlers=handlers, guards=[logged_in])
