"""Settings, read once from the environment (prefix ``SALESINBOX_``).

Everything has an embedded default: SQLite and files under ``./var``.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESINBOX_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Comma-separated Fernet keys, newest first. Empty: a key is generated once
    # into <data_dir>/secret.key (embedded default). Scaled out, set it.
    secret_keys: SecretStr = SecretStr("")
    session_max_age_seconds: int = 14 * 24 * 3600
    cookie_secure: bool = False
    log_level: str = "INFO"
    # Worker processes that fetch, keep and parse mail for the sync; 0: one per CPU core.
    sync_workers: int = 0
    # A PEM bundle trusted for IMAP/SMTP TLS besides the system's (private CAs).
    tls_ca_file: Path | None = None
    # Comma-separated CIDRs the image proxy may fetch from although they are not
    # public (on-premises image hosts; the tests' local server). Empty: public only.
    image_proxy_allow_networks: str = ""
    # The address people reach this app at (e.g. https://mail.example.com); the
    # OAuth redirect URI is <public_url>/accounts/oauth/callback. Empty: taken
    # from each request (fine behind a proxy that passes the Host header).
    public_url: str = ""
    # OAuth clients registered by the self-hoster (docs/oauth.md). A provider's
    # "Sign in with ..." button appears only when its client id is set.
    oauth_google_client_id: str = ""
    oauth_google_client_secret: SecretStr = SecretStr("")
    oauth_microsoft_client_id: str = ""
    oauth_microsoft_client_secret: SecretStr = SecretStr("")
    # For testing or a self-hosted identity provider only: replace the
    # provider's published endpoints (empty: the published ones).
    oauth_google_authorize_url: str = ""
    oauth_google_token_url: str = ""
    oauth_microsoft_authorize_url: str = ""
    oauth_microsoft_token_url: str = ""
    # Seconds between a live stream's own database checks, besides "new mail" events (which only
    # new mail sends: actions, flag changes and expunges are seen by this check).
    live_poll_seconds: float = 2.0
    # How long a sent message is held so that "Undo" can stop it (0: sent at once, no undo).
    undo_send_seconds: int = Field(10, ge=0, le=120)

    @field_validator("image_proxy_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for net in value.replace(",", " ").split():
            ipaddress.ip_network(net)  # a ValueError names the bad CIDR
        return value

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'salesinbox.db'}"

    @property
    def image_proxy_networks(self) -> list[str]:
        return [net for net in self.image_proxy_allow_networks.replace(",", " ").split() if net]

    @property
    def secret_key_file(self) -> Path:
        return self.resolved_data_dir / "secret.key"

    @property
    def log_dir(self) -> Path:
        return self.resolved_data_dir / "log"
