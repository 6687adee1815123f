"""A local OAuth 2.0 identity provider, speaking the real protocol over HTTP, in a thread.

It stands in for Google's and Microsoft's sign-in servers, which cannot be
reached from here. Endpoints:

- ``GET /authorize`` (RFC 6749 4.1.1, RFC 7636 4.3): checks the client, the
  redirect URI, ``response_type=code`` and an S256 ``code_challenge``, and shows
  a consent page (an email field and "Allow"); ``POST /authorize`` issues a
  one-time code and redirects back with ``code`` and the unchanged ``state``.
- ``POST /token``: ``authorization_code`` (the code once, the same client and
  redirect URI, and ``BASE64URL(SHA256(code_verifier)) == code_challenge``) and
  ``refresh_token``; refresh tokens rotate (the old one is refused afterwards,
  as Microsoft does) unless ``rotate`` is off. An ID token (unsigned JWT)
  carries the email. Errors are RFC 6749 5.2 JSON (``invalid_grant`` ...).
- ``POST /introspect`` (RFC 7662): what Dovecot's oauth2 passdb asks;
  ``{"active": true, "email": ...}`` for a live access token.

Test controls: ``fail_next(n, status)`` answers the next token calls with an
HTTP error page (503, 429), ``refuse_next(error, description)`` with an OAuth
error, ``token_delay`` slows the token endpoint (to make concurrent refreshes
overlap), ``revoke(email)`` revokes every token of a user, ``calls`` counts
token calls by grant type, ``access_lifetime`` sets ``expires_in``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.secrets_audit import seeded


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    email: str
    scope: str


@dataclass
class _Grant:
    email: str
    expires_at: float = 0.0
    revoked: bool = False


@dataclass
class IdentityProvider:
    client_id: str = "salesinbox-test"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    access_lifetime: int = 3600
    rotate: bool = True
    token_delay: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._failures: list[tuple[int, dict | None]] = []
        self.calls: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> IdentityProvider:
        provider = self

        class Handler(_Handler):
            idp = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="idp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def authorize_url(self) -> str:
        return self.url + "/authorize"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def introspection_url(self) -> str:
        return self.url + "/introspect"

    # -- test controls ----------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([(status, None)] * count)

    def refuse_next(self, error: str, description: str = "", status: int = 400) -> None:
        with self._lock:
            self._failures.append((status, {"error": error, "error_description": description}))

    def revoke(self, email: str) -> None:
        """The user revoked the app's access: every access and refresh token of theirs stops working."""
        with self._lock:
            for grant in (*self._access.values(), *self._refresh.values()):
                if grant.email == email:
                    grant.revoked = True

    def live_refresh_tokens(self, email: str) -> list[str]:
        with self._lock:
            return [t for t, g in self._refresh.items() if g.email == email and not g.revoked]

    def issue(self, email: str) -> dict:
        """A token set for ``email`` without the browser dance (for tests that start signed in)."""
        with self._lock:
            return self._tokens(email, with_refresh=True)

    def sign_in(self, authorize_url: str, email: str) -> str:
        """What a person's browser does: open the consent page, allow; returns the redirect back (code, state)."""
        import httpx

        with httpx.Client(timeout=10) as client:
            page = client.get(authorize_url)
            page.raise_for_status()
            query = dict(parse_qs(urlsplit(authorize_url).query))
            fields = {k: v[0] for k, v in query.items()}
            answer = client.post(self.authorize_url, data={**fields, "email": email})
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    # -- protocol ---------------------------------------------------------

    def _tokens(self, email: str, *, with_refresh: bool, scope: str = "") -> dict:
        # Every token is seeded for the secrets audit: none may reach a database dump or a log line.
        access = seeded("at-" + secrets.token_urlsafe(24))
        self._access[access] = _Grant(email, time.time() + self.access_lifetime)
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "scope": scope,
            "id_token": _id_token(email, self.client_id),
        }
        if with_refresh:
            refresh = seeded("rt-" + secrets.token_urlsafe(24))
            self._refresh[refresh] = _Grant(email)
            answer["refresh_token"] = refresh
        return answer

    def _authorize_error(self, query: dict) -> str | None:
        if query.get("client_id") != self.client_id:
            return "unknown client_id"
        if query.get("response_type") != "code":
            return "response_type must be code"
        if not query.get("redirect_uri", "").startswith("http"):
            return "bad redirect_uri"
        if query.get("code_challenge_method") != "S256" or len(query.get("code_challenge", "")) < 43:
            return "PKCE with S256 is required"
        return None

    def _grant_code(self, form: dict) -> str:
        with self._lock:
            code = "c-" + secrets.token_urlsafe(16)
            self._codes[code] = _Code(
                form["client_id"], form["redirect_uri"], form["code_challenge"], form["email"], form.get("scope", "")
            )
        return code

    def _token(self, form: dict, basic: tuple[str, str] | None) -> tuple[int, dict | None]:
        if self.token_delay:
            time.sleep(self.token_delay)
        with self._lock:
            self.calls[form.get("grant_type", "")] += 1
            if self._failures:
                return self._failures.pop(0)
            client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
            if client_id != self.client_id or secret != self.client_secret:
                return 401, {"error": "invalid_client"}
            if form.get("grant_type") == "authorization_code":
                return self._exchange(form)
            if form.get("grant_type") == "refresh_token":
                return self._refresh_grant(form)
            return 400, {"error": "unsupported_grant_type"}

    def _exchange(self, form: dict) -> tuple[int, dict]:
        code = self._codes.pop(form.get("code", ""), None)  # a code works once
        if code is None or code.client_id != form.get("client_id", code.client_id):
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if code.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != code.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, self._tokens(code.email, with_refresh=True, scope=code.scope)

    def _refresh_grant(self, form: dict) -> tuple[int, dict]:
        token = form.get("refresh_token", "")
        grant = self._refresh.get(token)
        if grant is None or grant.revoked:
            return 400, {"error": "invalid_grant", "error_description": "refresh token revoked or unknown"}
        if self.rotate:
            grant.revoked = True
        answer = self._tokens(grant.email, with_refresh=self.rotate)
        return 200, answer

    def _introspect(self, token: str) -> dict:
        with self._lock:
            grant = self._access.get(token)
            if grant is None or grant.revoked or grant.expires_at < time.time():
                return {"active": False}
            return {"active": True, "email": grant.email, "client_id": self.client_id}


def _id_token(email: str, audience: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "http://idp.test",
        "aud": audience,
        "sub": hashlib.sha256(email.encode()).hexdigest()[:20],
        "email": email,
        "email_verified": True,
        "iat": int(time.time()),
        "exp": int(time.time()) + 3600,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


class _Handler(BaseHTTPRequestHandler):
    idp: IdentityProvider
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def _form(self) -> dict:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict | None) -> None:
        if data is None:  # an error page from a gateway, not JSON
            self._send(
                status,
                b"<html><body>Service Unavailable</body></html>",
                "text/html",
                {"retry-after": "0"} if status == 429 else None,
            )
            return
        self._send(status, json.dumps(data).encode(), "application/json", {"cache-control": "no-store"})

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._send(404, b"not found", "text/plain")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        problem = self.idp._authorize_error(query)
        if problem:
            self._send(400, problem.encode(), "text/plain")
            return
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
        )
        page = (
            f"<!doctype html><title>Test identity provider</title><h1>Sign in</h1>"
            f'<form method="post" action="/authorize">{hidden}'
            f'<label>Email <input name="email" data-testid="idp-email" '
            f'value="{html.escape(query.get("login_hint", ""))}"></label>'
            f"<p>salesinbox wants to read and send your mail.</p>"
            f'<button type="submit" data-testid="idp-allow">Allow</button></form>'
        )
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        form = self._form()
        if path == "/authorize":
            if self.idp._authorize_error(form) or not form.get("email"):
                self._send(400, b"bad request", "text/plain")
                return
            code = self.idp._grant_code(form)
            back = {"code": code, **({"state": form["state"]} if "state" in form else {})}
            separator = "&" if "?" in form["redirect_uri"] else "?"
            self._send(302, b"", "text/plain", {"location": form["redirect_uri"] + separator + urlencode(back)})
        elif path == "/token":
            status, data = self.idp._token(form, self._basic())
            self._json(status, data)
        elif path == "/introspect":
            self._json(200, self.idp._introspect(form.get("token", "")))
        else:
            self._send(404, b"not found", "text/plain")

    def _basic(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password
