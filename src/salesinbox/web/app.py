"""The app factory. ``bootstrap.build_app`` calls it with the wired use cases."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment
from litestar import Litestar
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.base import Store
from litestar.template.config import TemplateConfig

from salesinbox import __version__
from salesinbox.services.unit_of_work import Deps
from salesinbox.web import i18n
from salesinbox.web.auth import API_PREFIX, ActorMiddleware, provide_actor
from salesinbox.web.errors import EXPECTED, HANDLERS
from salesinbox.web.headers import SecurityHeadersMiddleware
from salesinbox.web.routes import api_routes, page_routes
from salesinbox.web.sessions import RotatingSessionConfig

HERE = Path(__file__).parent


@dataclass
class WebConfig:
    session_store: Store
    csrf_secret: str
    cookie_secure: bool = False
    session_max_age: int = 14 * 24 * 3600
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The address people reach the app at (OAuth redirect URI); empty: each request's own.
    public_url: str = ""
    # Origins a form may send the browser to besides ours: the OAuth providers' sign-in pages.
    form_action_origins: list[str] = field(default_factory=list)
    # "New mail" events for the live streams (adapters/events.py); None: in memory, this process only.
    channels: ChannelsPlugin | None = None
    # How often a live stream also checks the database (what no event announced: another process on SQLite,
    # flag changes, a missed event).
    live_poll_seconds: float = 2.0
    undo_send_seconds: int = 10


def memory_channels() -> ChannelsPlugin:
    return ChannelsPlugin(backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True)


def _setup_jinja(engine: JinjaTemplateEngine) -> None:
    env: Environment = engine.engine
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    # A service's message (a Text) reaches templates in many ways (field errors, connection reports,
    # error pages): every printed value passes through localize, so none is left in English.
    env.finalize = i18n.localize
    env.globals["current_locale"] = i18n.current_locale.get
    env.filters["options"] = options
    env.filters["labelled"] = labelled
    env.filters["mail_time"] = i18n.mail_time
    env.filters["filesize"] = i18n.file_size
    env.globals["uuid4"] = uuid.uuid4


def options(rows, value_attr: str = "id", label_attr: str = "name") -> list[tuple[str, str]]:
    """Rows as (value, label) pairs for a <select>."""
    return [(str(getattr(r, value_attr)), str(getattr(r, label_attr))) for r in rows]


def labelled(values, names: dict) -> list[tuple[str, str]]:
    """Plain values as (value, translated label) pairs for a <select>."""
    return [(str(v), names.get(str(v), str(v))) for v in values]


def create_app(deps: Deps, config: WebConfig) -> Litestar:
    templates = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine,
                               engine_callback=_setup_jinja)
    channels = config.channels or memory_channels()
    sessions = RotatingSessionConfig(max_age=config.session_max_age, secure=config.cookie_secure,
                                     samesite="lax", httponly=True, key="salesinbox_session")
    return Litestar(
        route_handlers=[
            *page_routes(), *api_routes(),
            create_static_files_router("/static", directories=[HERE / "static"], include_in_schema=False),
        ],
        middleware=[SecurityHeadersMiddleware(config.form_action_origins), sessions.middleware, ActorMiddleware(deps)],
        csrf_config=CSRFConfig(secret=config.csrf_secret, exclude=[f"^{API_PREFIX}/", "^/static/"],
                               cookie_secure=config.cookie_secure, cookie_samesite="lax"),
        stores={"sessions": config.session_store},
        template_config=templates,
        plugins=[HTMXPlugin(), FlashPlugin(FlashConfig(template_config=templates)), channels],
        openapi_config=_openapi(),
        exception_handlers=HANDLERS,
        dependencies={"actor": Provide(provide_actor), "deps": Provide(lambda: deps, sync_to_thread=False)},
        state=State(
            {
                "deps": deps,
                "public_url": config.public_url.rstrip("/"),
                "live_poll_seconds": config.live_poll_seconds,
                "undo_send_seconds": config.undo_send_seconds,
            }
        ),
        on_startup=config.on_startup,
        on_shutdown=config.on_shutdown,
        # Our handlers (salesinbox.logs) are on the root logger, with secrets
        # redacted: Litestar's own logger propagates to them instead of owning
        # a console handler of its own.
        logging_config=LoggingConfig(
            configure_root_logger=False, disable_existing_loggers=False, log_exceptions="always",
            disable_stack_trace=EXPECTED,
            loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}},
        ),
        debug=False,
    )


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="salesinbox API", version=__version__, path=API_PREFIX,
        description="Everything the salesinbox UI does. Authenticate with a personal API token: "
                    "`Authorization: Bearer si_...` (create one under Settings → API tokens).",
        components=Components(security_schemes={
            "token": SecurityScheme(type="http", scheme="bearer", description="Personal API token")}),
        security=[{"token": []}],
        render_plugins=[JsonRenderPlugin()],
    )
