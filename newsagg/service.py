"""Everything one running service holds, wired from its settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from newsagg.aggregate import Aggregator, FeedItem, new_executor
from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec
from newsagg.keys import KeyRing
from newsagg.metrics import Metrics
from newsagg.provider_health import ProviderHealth
from newsagg.ratelimit import RateLimiter, SlidingWindowLimiter
from newsagg.settings import Settings
from newsagg.singleflight import SingleFlight
from newsagg.store import Store, open_store
from providers.base import Provider
from providers.guardian import GuardianProvider
from providers.hackernews import HackerNewsProvider
from providers.newsapi import NewsAPIProvider
from simulator import Simulator


@dataclass
class Service:
    settings: Settings
    store: Store
    keys: KeyRing
    limiter: RateLimiter
    health: ProviderHealth
    aggregator: Aggregator
    metrics: Metrics
    simulator: Simulator | None = None

    def close(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()
        self.store.close()


def pointed_at(settings: Settings, simulator: Simulator) -> Settings:
    """The settings with every provider's URL and key those of a running simulator."""
    return replace(
        settings,
        newsapi_url=simulator.base_url("newsapi"),
        guardian_url=simulator.base_url("guardian"),
        hackernews_url=simulator.base_url("hackernews"),
        newsapi_key=simulator.newsapi_key,
        guardian_key=simulator.guardian_key,
    )


def start_demo_simulator(settings: Settings) -> tuple[Settings, Simulator]:
    """Start the upstream simulator and point every provider at it."""
    simulator = Simulator()
    simulator.start()
    return pointed_at(settings, simulator), simulator


def make_providers(settings: Settings) -> list[Provider]:
    return [
        NewsAPIProvider(settings.newsapi_url, settings.newsapi_key),
        GuardianProvider(settings.guardian_url, settings.guardian_key),
        HackerNewsProvider(settings.hackernews_url),
    ]


def build_service(settings: Settings) -> Service:
    simulator = None
    if settings.demo:
        settings, simulator = start_demo_simulator(settings)
    store = open_store(settings)
    keys = KeyRing(store)
    if settings.admin_key:
        keys.ensure_bootstrap_admin(settings.admin_key)
    health = ProviderHealth()
    metrics = Metrics()
    cursor_secret = store.secret("cursor_secret", lambda: secrets.token_hex(32))
    aggregator = Aggregator(
        providers=make_providers(settings),
        store=store,
        cache=ResultCache[tuple[FeedItem, ...]](settings.cache_ttl, settings.cache_max_stale),
        health=health,
        cursors=CursorCodec(bytes.fromhex(cursor_secret)),
        timeout=settings.upstream_timeout,
        single_flight=SingleFlight(new_executor()).submit,
        metrics=metrics,
    )
    return Service(
        settings, store, keys, SlidingWindowLimiter(), health, aggregator, metrics, simulator
    )
