"""Errors a use case can end with; the web and the CLI turn them into words."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every expected failure."""


class NotFound(DomainError):
    """The item does not exist for this company (never says whether it exists elsewhere)."""


class PermissionDenied(DomainError):
    """The actor may not do this."""


class PlanRequired(DomainError):
    """The company's plan does not include this feature."""

    def __init__(self, feature: str, minimum_plan: str) -> None:
        super().__init__(f"{feature} needs the {minimum_plan.title()} plan or higher.")
        self.feature = feature
        self.minimum_plan = minimum_plan


class Conflict(DomainError):
    """The change clashes with existing data (a duplicate address, say)."""


class ValidationFailed(DomainError):
    """Input was refused; ``errors`` maps a field name to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
