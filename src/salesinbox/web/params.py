"""Handler parameters injected by the app (see ``app.create_app`` dependencies)."""

from __future__ import annotations

from litestar.di import NamedDependency

from salesinbox.domain.tenancy import Actor
from salesinbox.services.unit_of_work import Deps

UseCases = NamedDependency[Deps]
CurrentActor = NamedDependency[Actor]
