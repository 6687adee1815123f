"""Security headers on every response.

The app's own pages load only our bundle: no inline script, no third-party
origin. Email content (later steps) is rendered in a sandboxed frame with a
stricter policy of its own.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeadersMiddleware(ASGIMiddleware):
    """``form_action_origins``: the OAuth providers' sign-in origins. A form posting to our
    "Sign in with ..." route is answered with a redirect there, and Chromium checks
    every redirect of a form submission against form-action."""

    scopes = ("http",)

    def __init__(self, form_action_origins: list[str] | None = None) -> None:
        origins = " ".join(sorted(set(form_action_origins or [])))
        self._headers = dict(HEADERS)
        if origins:
            policy = CSP.replace("form-action 'self'", f"form-action 'self' {origins}")
            self._headers["content-security-policy"] = policy

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in self._headers.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)
