"""Structured logs (structlog) with secrets redacted before anything is written.

Redaction is by key (password, secret, token, authorization, cookie ...) and by
shape (bearer tokens, ``si_`` API tokens, Fernet tokens) so that a secret passed
by mistake in a message is caught too.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(r"pass|secret|token|authori[sz]ation|cookie|session|csrf|key", re.I)
# The OAuth code and tokens in a URL's query (the access log of /accounts/oauth/callback).
_SECRET_SHAPES = re.compile(
    r"(?i)(bearer\s+)\S+|\bsi_[A-Za-z0-9_\-]{16,}|\bgAAAAA[A-Za-z0-9_\-=]{20,}"
    r"|([?&](?:code|access_token|refresh_token|id_token|code_verifier)=)[^&\s\"']+"
)


def redact_text(text: str) -> str:
    return _SECRET_SHAPES.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)


def redact_secrets(_logger, _method, event_dict: dict) -> dict:
    for key, value in list(event_dict.items()):
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


class _RedactingFilter(logging.Filter):
    """For stdlib loggers (uvicorn, sqlalchemy, alembic): scrub the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(log_dir: Path | None, level: str = "INFO") -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "salesinbox.log", encoding="utf-8"))
    for handler in handlers:
        handler.addFilter(_RedactingFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            redact_secrets,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
