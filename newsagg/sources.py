"""A provider as GET /sources shows it: what it serves, its health and its budget (its
harvest is the harvester's to tell)."""

from __future__ import annotations

from dataclasses import dataclass

from newsagg.budget import Budgets, BudgetStanding
from newsagg.provider_health import BreakerView, Health, ProviderHealth
from providers.base import CATEGORIES, Category, Provider, ProviderName


@dataclass(frozen=True, slots=True)
class SourceView:
    name: ProviderName
    enabled: bool
    categories: tuple[Category, ...]
    health: Health
    breaker: BreakerView
    budget: BudgetStanding

    @classmethod
    def of(cls, provider: Provider, health: ProviderHealth, budgets: Budgets) -> SourceView:
        return cls(
            provider.name,
            provider.enabled,
            tuple(c for c in CATEGORIES if c in provider.categories),
            health.get(provider.name),
            health.breaker(provider.name),
            budgets.standing(provider.name),
        )
