"""Expected failures become a clear answer: JSON under /api/v1, a page elsewhere, in the request's language."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
)

from salesinbox.domain.errors import Conflict, DomainError, NotFound, PermissionDenied, PlanRequired, ValidationFailed
from salesinbox.services.accounts import ConnectionFailed
from salesinbox.web.auth import is_api
from salesinbox.web.i18n import _, error_message, localize, localize_errors

STATUS = {
    NotFound: HTTP_404_NOT_FOUND,
    PermissionDenied: HTTP_403_FORBIDDEN,
    PlanRequired: HTTP_402_PAYMENT_REQUIRED,
    Conflict: HTTP_409_CONFLICT,
    ValidationFailed: HTTP_422_UNPROCESSABLE_ENTITY,
    ConnectionFailed: HTTP_422_UNPROCESSABLE_ENTITY,
}
CODES = {
    NotFound: "not_found", PermissionDenied: "forbidden", PlanRequired: "plan_required",
    Conflict: "conflict", ValidationFailed: "invalid", ConnectionFailed: "connection_failed",
}


def _status_of(exc: DomainError) -> int:
    return next((s for t, s in STATUS.items() if isinstance(exc, t)), HTTP_422_UNPROCESSABLE_ENTITY)


def _body(exc: DomainError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": next((c for t, c in CODES.items() if isinstance(exc, t)), "error"), "message": _message(exc)}
    if isinstance(exc, ValidationFailed):
        error["fields"] = localize_errors(exc.errors)
    if isinstance(exc, ConnectionFailed):
        error["imap"], error["smtp"] = localize(exc.report.imap_error), localize(exc.report.smtp_error)
    return {"error": error}


def domain_error(request: Request, exc: DomainError) -> Response:
    status = _status_of(exc)
    if is_api(request.url.path):
        return Response(_body(exc), status_code=status)
    return error_page(status, _message(exc))


def _message(exc: DomainError) -> str:
    if isinstance(exc, ConnectionFailed):  # its own message joins the report's, each a Text
        return " ".join(localize(m) for m in exc.report.messages)
    return error_message(exc)


def error_page(status: int, message: str) -> Template:
    titles = {HTTP_404_NOT_FOUND: _("Not found"), HTTP_403_FORBIDDEN: _("Not allowed")}
    return Template("pages/error.html", status_code=status,
                    context={"title": titles.get(status, _("Something went wrong")), "message": message})


def http_error(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotAuthorizedException) and not is_api(request.url.path):
        return Redirect(f"/login?next={request.url.path}")
    if is_api(request.url.path):
        body: dict[str, Any] = {"code": _http_code(exc), "message": exc.detail}
        if exc.extra:
            body["details"] = exc.extra
        return Response({"error": body}, status_code=exc.status_code, headers=exc.headers)
    return error_page(exc.status_code, exc.detail)


def _http_code(exc: HTTPException) -> str:
    if isinstance(exc, NotAuthorizedException):
        return "unauthorized"
    if isinstance(exc, PermissionDeniedException):
        return "forbidden"
    if isinstance(exc, NotFoundException):
        return "not_found"
    return "invalid" if exc.status_code < HTTP_500_INTERNAL_SERVER_ERROR else "error"


HANDLERS = {DomainError: domain_error, HTTPException: http_error}

#: Answers to bad input, not faults: never logged with a stack trace.
EXPECTED: set = {*STATUS, 400, 401, 402, 403, 404, 405, 409, 413, 415, 422, 429}
