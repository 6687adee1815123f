"""Server-side sessions whose id is replaced at login and logout.

Litestar keeps whatever session id the browser sent; reusing it across a login
would allow session fixation, so a handler asks for a fresh id with
``rotate_session(request)`` and the old one is deleted from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig

_ROTATE = "rotate_session"
_NEW_ID = "rotated_session_id"


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    connection.scope.setdefault("state", {})[_ROTATE] = True


class RotatingSessionBackend(ServerSideSessionBackend):
    def get_session_id(self, connection: ASGIConnection) -> str:
        state = connection.scope.get("state", {})
        if state.get(_ROTATE):
            return state.setdefault(_NEW_ID, self.generate_session_id())
        return super().get_session_id(connection)

    async def store_in_message(self, scope_session, message, connection: ASGIConnection) -> None:
        old_id = connection.cookies.get(self.config.key)
        if connection.scope.get("state", {}).get(_ROTATE) and old_id:
            await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
        await super().store_in_message(scope_session, message, connection)


@dataclass
class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]
