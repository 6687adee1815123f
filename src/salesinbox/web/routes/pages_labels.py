"""Labels from the pages: the settings page (create, rename, delete) and a conversation's labels.

Bulk labelling goes through the inbox's ``/inbox/{folder}/bulk`` (``pages_inbox``).
"""

from __future__ import annotations

import uuid

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from salesinbox.domain.errors import Conflict, ValidationFailed
from salesinbox.services import labels
from salesinbox.services.labels import LabelReport
from salesinbox.web.auth import logged_in
from salesinbox.web.i18n import _, error_message
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import form_data, form_list, page, safe_next, see_other
from salesinbox.web.routes.pages_accounts import plan_gate


def report_words(report: LabelReport, done: str) -> tuple[str, bool]:
    """What a labels change says: done, or which folders were not written on the server and why."""
    if report.skipped_folders:
        words = _("Not everything changed: the server renumbered %(folders)s; try again after the next sync.")
        return words % {"folders": ", ".join(report.skipped_folders)}, False
    if report.folders_without_keywords:
        words = _("%(done)s The mail server keeps no labels in %(folders)s, so there they are kept here only.")
        return words % {"done": done, "folders": ", ".join(report.folders_without_keywords)}, True
    return done, True


async def _labels_page(deps, actor, values=None, errors=None, status=200) -> Template:
    return await page(
        deps,
        actor,
        "pages/settings/labels.html",
        nav="labels",
        status=status,
        labels=await labels.list_labels(deps, actor),
        values=values or {},
        errors=errors or {},
    )


@get("/settings/labels", name="labels")
async def labels_page(deps: UseCases, actor: CurrentActor) -> Template:
    return await _labels_page(deps, actor)


@post("/settings/labels", name="labels_create")
async def labels_create(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    values = await form_data(request)
    try:
        label = await labels.create_label(deps, actor, values.get("name", ""))
    except ValidationFailed as exc:
        return await _labels_page(deps, actor, values, {"name": _label_error(exc)}, status=422)
    except Conflict:
        return await _labels_page(deps, actor, values, {"name": _("There is a label of that name already.")}, 422)
    flash(request, _("Label “%(name)s” created.") % {"name": label.name}, "success")
    return see_other("/settings/labels")


def _label_error(exc: ValidationFailed) -> str:
    return _("Give the label a name of at most 50 characters.") if "name" in exc.errors else error_message(exc)


@post("/settings/labels/{label_id:uuid}/rename", name="labels_rename")
async def labels_rename(
    request: Request, deps: UseCases, actor: CurrentActor, label_id: FromPath[uuid.UUID]
) -> Redirect:
    values = await form_data(request)
    try:
        label = await labels.rename_label(deps, actor, label_id, values.get("name", ""))
    except ValidationFailed as exc:
        flash(request, _label_error(exc), "error")
    except Conflict:
        flash(request, _("There is a label of that name already."), "error")
    else:
        flash(request, _("Renamed to “%(name)s”.") % {"name": label.name}, "success")
    return see_other("/settings/labels")


@post("/settings/labels/{label_id:uuid}/delete", name="labels_delete")
async def labels_delete(
    request: Request, deps: UseCases, actor: CurrentActor, label_id: FromPath[uuid.UUID]
) -> Redirect:
    await labels.delete_label(deps, actor, label_id)
    flash(request, _("Label deleted."), "success")
    return see_other("/settings/labels")


@post("/conversations/{conversation_id:uuid}/labels", name="conversation_labels")
async def conversation_labels(
    request: Request, deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID]
) -> Redirect:
    """The label picker: the checked labels, plus a new one typed in, become the conversation's labels."""
    values = await form_data(request)
    names = await form_list(request, "labels")
    if values.get("new_label", "").strip():
        names.append(values["new_label"])
    back = safe_next(values.get("next"), "/inbox")
    try:
        report = await labels.set_labels(deps, actor, conversation_id, names)
    except ValidationFailed as exc:
        flash(request, _label_error(exc), "error")
        return see_other(back)
    message, ok = report_words(report, _("Labels saved."))
    flash(request, message, "success" if ok else "error")
    return see_other(back)


ROUTES = [
    Router(
        "/",
        before_request=plan_gate,
        route_handlers=[labels_page, labels_create, labels_rename, labels_delete, conversation_labels],
        guards=[logged_in],
        include_in_schema=False,
    )
]
