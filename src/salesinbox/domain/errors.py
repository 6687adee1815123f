"""Errors a use case can end with; the web and the CLI turn them into words.

Their messages are ``Text`` (domain/text.py): English as a str, translated by
the web into the request's language.
"""

from __future__ import annotations

from collections.abc import Mapping

from salesinbox.domain.text import Text


class DomainError(Exception):
    """Base of every expected failure."""


class NotFound(DomainError):
    """The item does not exist for this company (never says whether it exists elsewhere)."""


class PermissionDenied(DomainError):
    """The actor may not do this."""


class PlanRequired(DomainError):
    """The company's plan does not include this feature."""

    def __init__(self, feature: str, minimum_plan: str) -> None:
        super().__init__(Text("%(feature)s needs the %(plan)s plan or higher.", feature=feature,
                              plan=minimum_plan.title()))
        self.feature = feature
        self.minimum_plan = minimum_plan


class Conflict(DomainError):
    """The change clashes with existing data (a duplicate address, say)."""


class ValidationFailed(DomainError):
    """Input was refused; ``errors`` maps a field name to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(self.describe(errors))
        self.errors = errors

    @staticmethod
    def describe(errors: Mapping[str, str]) -> str:
        """The errors in one line, "field: message; ..." (the web joins translated messages the same way)."""
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
