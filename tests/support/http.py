"""HTTP clients for the web tests: a browser-like session on the pages, and a
Bearer-token client on the JSON API.

Pages keep a server-side session (``salesinbox_session``) and want a CSRF token
on every POST: Litestar compares the ``_csrf_token`` form field (or the
``x-csrftoken`` header) with the ``csrftoken`` cookie. ``PageSession`` reads
the token where a browser would, from ``<meta name="csrf-token">``, and sends
it back with each form. Redirects are never followed, so tests can assert them.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

SESSION_COOKIE = "salesinbox_session"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_FIELD_ERROR = re.compile(r'<div class="field-error" id="e-([\w-]+)">(.*?)</div>', re.S)


def csrf_token_in(page: str) -> str:
    found = _CSRF_META.search(page)
    if not found:
        raise AssertionError("the page has no <meta name=\"csrf-token\">")
    return found.group(1)


def field_errors(page: str) -> dict[str, str]:
    """The form's field errors, as the page shows them under each field."""
    return {name: html.unescape(message.strip()) for name, message in _FIELD_ERROR.findall(page)}


def has_testid(page: str, testid: str) -> bool:
    return f'data-testid="{testid}"' in page


class PageSession:
    """One browser: a cookie jar, the current CSRF token, no redirect following."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, follow_redirects=False)
        self.csrf_token = ""

    async def __aenter__(self) -> PageSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    @property
    def session_id(self) -> str | None:
        return self.http.cookies.get(SESSION_COOKIE)

    def use_session_id(self, session_id: str) -> None:
        """Send this session id from now on, as if the server had set it (or an attacker planted it)."""
        self.http.cookies.set(SESSION_COOKIE, session_id, domain=self.http.base_url.host)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(path, **kwargs)
        if 'name="csrf-token"' in response.text:
            self.csrf_token = csrf_token_in(response.text)
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
                   **kwargs: Any) -> httpx.Response:
        """POST a form as the page would, with the current CSRF token unless ``csrf=False``."""
        if csrf and not self.csrf_token:
            await self.get("/login")
        form = dict(data or {})
        if csrf:
            form["_csrf_token"] = self.csrf_token
        response = await self.http.post(path, data=form, **kwargs)
        if 'name="csrf-token"' in response.text:
            self.csrf_token = csrf_token_in(response.text)
        return response

    async def login(self, email: str, password: str, *, next_path: str | None = None) -> httpx.Response:
        await self.get("/login")
        form = {"email": email, "password": password}
        if next_path is not None:
            form["next"] = next_path
        return await self.post("/login", form)


async def logged_in_session(base_url: str, email: str, password: str) -> PageSession:
    """A page session already logged in; the caller closes it."""
    session = PageSession(base_url)
    response = await session.login(email, password)
    if response.status_code != 303:
        await session.aclose()
        raise AssertionError(f"login as {email} failed with {response.status_code}")
    return session


def api_client(base_url: str, secret: str | None) -> httpx.AsyncClient:
    """An API client sending ``Authorization: Bearer <secret>`` (none when ``secret`` is None)."""
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    return httpx.AsyncClient(base_url=f"{base_url}/api/v1", headers=headers, follow_redirects=False)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a JSON error answer, checking the envelope on the way."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), error
    return error
