"""The composition root: the one place that picks adapters and wires them into
the use cases. The CLI, the web app and the workers start here; tests call the
same functions with their own settings.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from salesinbox.adapters.blobs import ObjectBlobStore
from salesinbox.adapters.db import migrate
from salesinbox.adapters.db.engine import SessionFactories, create_engine
from salesinbox.adapters.events import ChannelsMailEvents, PostgresMailEvents, channels_backend, is_postgresql
from salesinbox.adapters.imap.fetch_workers import ProcessFetcher
from salesinbox.adapters.imap.session import ImapSession
from salesinbox.adapters.mail.server_probe import ServerProbe
from salesinbox.adapters.oauth.client import AuthlibOAuthClient, apps_from_settings
from salesinbox.adapters.passwords import Argon2Passwords
from salesinbox.adapters.secrets import FernetSecretBox, load_or_create_key_file, parse_keys
from salesinbox.services.unit_of_work import Deps
from salesinbox.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    deps: Deps
    sessions: SessionFactories

    async def close(self) -> None:
        if self.deps.images is not None:
            await self.deps.images.aclose()
        await self.sessions.engine.dispose()


def _open_mailbox(server, *, ca_file) -> ImapSession:
    return ImapSession(server.host, server.port, server.security, server.login, server.password,
                       ca_file=str(ca_file) if ca_file else None, mechanism=server.mechanism)


# Young collections after 100,000 net allocations of container objects instead of Python's 700; the older
# generations after 20 and 10 of those (Python's 10 and 10), so a long-running server still reclaims cycles.
GC_THRESHOLDS = (100_000, 20, 10)


def tune_gc() -> None:
    """Run Python's cyclic garbage collector less often in a salesinbox process (CLI, serve, workers).

    Storing synced mail makes and drops many short-lived objects (rows,
    parsed messages coming back from the parse workers), nearly all freed by
    reference counting; the collector, run after every 700 allocations, kept
    walking them and the rest of a large heap: 0.65-0.75 s of the syncing
    process's CPU for a 10,000-message mailbox, 0.07 s with these thresholds
    (bench/README.md). Cycles are still collected, later.
    """
    gc.set_threshold(*GC_THRESHOLDS)


def skip_final_collections() -> None:
    """The process ends now: spare its teardown the cyclic collector's walks over the whole heap.

    Tearing down the interpreter runs full collections while it frees the
    modules; after a sync of 10,000 messages that took 0.25-0.3 s, a twentieth
    of the command. Objects still alive are frozen (``gc.freeze``): they are
    freed as usual, only not walked; the memory goes back with the process.
    """
    gc.freeze()


def secret_keys(settings: Settings) -> list[str]:
    configured = parse_keys(settings.secret_keys.get_secret_value())
    return configured or load_or_create_key_file(settings.secret_key_file)


def prepare(settings: Settings) -> None:
    """Create the data dir and bring the database schema up to date."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)


def build_runtime(settings: Settings, *, images: bool = True) -> Runtime:
    """The wired use cases; ``images=False`` (the CLI) leaves out the image proxy's HTTP client."""
    sessions = SessionFactories(create_engine(settings.resolved_database_url))
    blobs = ObjectBlobStore.local(settings.resolved_data_dir / "blobs")
    deps = Deps(
        read_sessions=sessions.read,
        write_sessions=sessions.write,
        secrets=FernetSecretBox(secret_keys(settings)),
        passwords=Argon2Passwords(),
        probe=ServerProbe(ca_file=settings.tls_ca_file),
        blobs=blobs,
        open_mailbox=partial(_open_mailbox, ca_file=settings.tls_ca_file),
        images=_image_fetcher(settings) if images else None,
        fetcher=ProcessFetcher(
            blobs, ca_file=str(settings.tls_ca_file) if settings.tls_ca_file else None, workers=settings.sync_workers
        ),
        oauth=AuthlibOAuthClient(apps_from_settings(settings)),
        # Scaled out, "new mail" goes to every web process by NOTIFY; embedded, build_app wires it in memory.
        events=PostgresMailEvents(sessions.write) if is_postgresql(settings.resolved_database_url) else None,
    )
    return Runtime(settings, deps, sessions)


def _image_fetcher(settings: Settings):
    from salesinbox.adapters.http.image_fetch import ImageFetcher  # httpx: only where images are served

    return ImageFetcher(allow_networks=settings.image_proxy_networks)


def build_app(settings: Settings, *, run_sync: bool = True):
    """The ASGI app, with its runtime created on startup and closed on shutdown.

    Embedded, the same process also keeps every account in sync (``run_sync``).
    """
    from litestar.channels import ChannelsPlugin

    from salesinbox.adapters.db.session_store import DatabaseSessionStore
    from salesinbox.web.app import WebConfig, create_app

    runtime = build_runtime(settings)
    channels = ChannelsPlugin(backend=channels_backend(settings.resolved_database_url), arbitrary_channels_allowed=True)
    if runtime.deps.events is None and run_sync:
        runtime.deps.events = ChannelsMailEvents(channels)  # embedded: the sync runs in this process
    supervisor = _EmbeddedSync(runtime.deps) if run_sync else None
    config = WebConfig(
        csrf_secret=hmac.new(secret_keys(settings)[0].encode(), b"csrf", hashlib.sha256).hexdigest(),
        session_store=DatabaseSessionStore(runtime.sessions),
        cookie_secure=settings.cookie_secure,
        session_max_age=settings.session_max_age_seconds,
        on_startup=[supervisor.start] if supervisor else [],
        on_shutdown=[*([supervisor.stop] if supervisor else []), runtime.close],
        public_url=settings.public_url,
        form_action_origins=[_origin(app.authorize_url) for app in apps_from_settings(settings).values()],
        channels=channels,
        live_poll_seconds=settings.live_poll_seconds,
        undo_send_seconds=settings.undo_send_seconds,
    )
    return create_app(runtime.deps, config)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _EmbeddedSync:
    """The sync supervisor and the outbox worker as tasks of the web process (one-process deployments)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._stop = None
        self._task = None

    async def start(self) -> None:
        import asyncio

        from salesinbox.workers.outbox_worker import keep_sending
        from salesinbox.workers.sync_supervisor import supervise

        self._stop = asyncio.Event()
        self._task = asyncio.gather(supervise(self.deps, self._stop), keep_sending(self.deps, self._stop))

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await self._task


def configure_logging(settings: Settings) -> None:
    from salesinbox.logs import configure_logging as configure

    configure(settings.log_dir, settings.log_level)


def rotate_secret_keys(settings: Settings) -> int:
    """Re-encrypt every stored secret with the newest key (see ``salesinbox keys rotate``)."""
    import asyncio

    from salesinbox.adapters.secrets import generate_key, write_key_file
    from salesinbox.services.accounts import rotate_account_secrets

    file_mode = not parse_keys(settings.secret_keys.get_secret_value())
    if file_mode:
        write_key_file(settings.secret_key_file, [generate_key(), *secret_keys(settings)])
    runtime = build_runtime(settings)

    async def main() -> int:
        try:
            return await rotate_account_secrets(runtime.deps)  # passwords and OAuth tokens
        finally:
            await runtime.close()

    count = asyncio.run(main())
    if file_mode:
        write_key_file(settings.secret_key_file, secret_keys(settings)[:1])
    return count
