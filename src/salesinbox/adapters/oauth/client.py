"""OAuth 2.0 authorization code flow with PKCE (RFC 6749, RFC 7636) and refresh, over authlib + httpx.

One ``AsyncOAuth2Client`` per call, closed after it: token calls are rare (one
per account per hour), and a client kept open would hold sockets between them.
Errors become ``domain.oauth.OAuthTokenError`` with a kind the services act on:
an HTTP answer that is not JSON (a gateway's 503 page) or no answer at all is
transient; a JSON error is classified by its ``error`` code and description.
The tokens never appear in an exception text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from salesinbox.domain.oauth import OAuthTokenError, TokenGrant, classify_token_error
from salesinbox.domain.providers import OAUTH_ENDPOINTS, OAuthEndpoints

if TYPE_CHECKING:
    import httpx
    from authlib.integrations.httpx_client import AsyncOAuth2Client

# authlib and httpx are imported where a token call is made: every CLI command wires this
# adapter, and importing them cost each one (``salesinbox sync --once`` included) 0.15 s.

TIMEOUT = 20.0


@dataclass(frozen=True)
class OAuthApp:
    """A registered OAuth client and the endpoints it talks to."""

    endpoints: OAuthEndpoints
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str

    def __repr__(self) -> str:
        return f"OAuthApp({self.endpoints.preset_key}, {self.client_id})"


def apps_from_settings(settings) -> dict[str, OAuthApp]:
    """The OAuth clients configured in settings (``SALESINBOX_OAUTH_<NAME>_*``), by preset key."""
    apps = {}
    for key, endpoints in OAUTH_ENDPOINTS.items():
        name = endpoints.settings_name
        client_id = getattr(settings, f"oauth_{name}_client_id", "")
        if not client_id:
            continue
        secret = getattr(settings, f"oauth_{name}_client_secret").get_secret_value()
        apps[key] = OAuthApp(
            endpoints,
            client_id,
            secret,
            getattr(settings, f"oauth_{name}_authorize_url", "") or endpoints.authorize_url,
            getattr(settings, f"oauth_{name}_token_url", "") or endpoints.token_url,
        )
    return apps


class AuthlibOAuthClient:
    def __init__(self, apps: dict[str, OAuthApp], *, timeout: float = TIMEOUT) -> None:
        self._apps = apps
        self._timeout = timeout

    def configured(self, provider: str) -> bool:
        return provider in self._apps

    def _app(self, provider: str) -> OAuthApp:
        try:
            return self._apps[provider]
        except KeyError:
            raise OAuthTokenError("refused", f"No OAuth client is configured for {provider}.") from None

    def _client(self, app: OAuthApp, redirect_uri: str | None = None) -> AsyncOAuth2Client:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        return AsyncOAuth2Client(
            client_id=app.client_id,
            client_secret=app.client_secret or None,
            # A confidential client posts its secret in the body: both Google
            # and Microsoft accept it, and public clients send only the id.
            token_endpoint_auth_method="client_secret_post" if app.client_secret else "none",
            scope=" ".join(app.endpoints.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self._timeout,
        )

    def authorization_url(
        self, provider: str, redirect_uri: str, state: str, code_verifier: str, login_hint: str = ""
    ) -> str:
        app = self._app(provider)
        extra = dict(app.endpoints.authorize_params)
        if login_hint:
            extra["login_hint"] = login_hint
        client = self._client(app, redirect_uri)
        url, _ = client.create_authorization_url(app.authorize_url, state=state, code_verifier=code_verifier, **extra)
        return url

    async def exchange_code(self, provider: str, code: str, redirect_uri: str, code_verifier: str) -> TokenGrant:
        app = self._app(provider)
        async with self._client(app, redirect_uri) as client:
            return await _calling(
                client.fetch_token(
                    app.token_url, grant_type="authorization_code", code=code, code_verifier=code_verifier
                )
            )

    async def refresh(self, provider: str, refresh_token: str) -> TokenGrant:
        app = self._app(provider)
        async with self._client(app) as client:
            grant = await _calling(client.refresh_token(app.token_url, refresh_token=refresh_token))
        # authlib fills in the old refresh token when none came back; say "not rotated" instead.
        rotated = grant.refresh_token if grant.refresh_token != refresh_token else None
        return TokenGrant(grant.access_token, rotated, grant.expires_in, grant.id_token)


async def _calling(call) -> TokenGrant:
    import httpx
    from authlib.integrations.httpx_client import OAuthError

    try:
        token = await call
    except OAuthError as refused:
        kind = classify_token_error(400, refused.error or "", refused.description or "")
        raise OAuthTokenError(kind, _words(refused.error, refused.description)) from None
    except httpx.HTTPStatusError as failed:
        status = failed.response.status_code
        raise OAuthTokenError(
            classify_token_error(status), f"The sign-in server answered HTTP {status}.", _retry_after(failed.response)
        ) from None
    except (httpx.TransportError, ValueError) as failed:
        raise OAuthTokenError("transient", f"Could not reach the sign-in server ({type(failed).__name__}).") from None
    access = token.get("access_token")
    if not access:
        raise OAuthTokenError("refused", "The sign-in server answered without an access token.")
    expires_in = token.get("expires_in")
    return TokenGrant(
        access_token=access,
        refresh_token=token.get("refresh_token"),
        expires_in=int(expires_in) if expires_in is not None else None,
        id_token=token.get("id_token"),
    )


def _words(error: str | None, description: str | None) -> str:
    text = f"{error or 'error'}: {description}" if description else (error or "error")
    return f"The sign-in server refused: {text[:300]}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None
