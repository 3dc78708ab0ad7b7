"""Everything one running service holds, wired from its settings."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from newsagg.archive_writer import ArchiveWriter
from newsagg.articles import FeedItem
from newsagg.budget import Budgets
from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec
from newsagg.feed import Feed
from newsagg.fetcher import Fetcher
from newsagg.harvest import Harvester, HarvestView
from newsagg.harvest.schedule import budget_pace, paces
from newsagg.harvest.view import HarvestStanding
from newsagg.key_cache import SharedKeyCache, file_key_cache_for, key_cache_for
from newsagg.keys import KeyRing
from newsagg.metrics import Metrics
from newsagg.provider_health import ProviderHealth, SharedHealth
from newsagg.push.delivery import Deliverer
from newsagg.push.matcher import Matcher
from newsagg.push.searches import Searches
from newsagg.push.stream import MatchHub
from newsagg.push.webhooks import parse_backoff
from newsagg.push.worker import PushWorker
from newsagg.ratelimit import RateLimiter, Standing, choose
from newsagg.settings import Settings, SettingsError
from newsagg.shared import RedisLink, SharedResults
from newsagg.shared_flight import HANDOVER_GRACE_SECONDS, SharedFlight
from newsagg.singleflight import SingleFlight, new_executor
from newsagg.sources import SourceView
from newsagg.store import KeyRecord, Store, check_index, open_store
from newsagg.stories.listing import StoryBook
from newsagg.upkeep import Upkeep
from providers.base import PROVIDER_NAMES, Provider
from providers.guardian import GuardianProvider
from providers.hackernews import HackerNewsProvider
from providers.newsapi import NewsAPIProvider


@dataclass
class Service:
    settings: Settings
    store: Store
    keys: KeyRing
    limiter: RateLimiter
    health: ProviderHealth
    feed: Feed
    stories: StoryBook
    metrics: Metrics
    searches: Searches
    pusher: PushWorker
    hub: MatchHub
    redis: RedisLink | None = None
    key_cache: SharedKeyCache | None = None
    budgets: Budgets | None = None
    harvester: Harvester | None = None
    upkeep: Upkeep | None = None  # the database's (newsagg.upkeep), started with the app
    # The day this installation first ran (its database was made), kept in it: with the
    # public URL's host, what makes its feed ids its own (tag URIs, RFC 4151).
    installed_on: str = "2026-01-01"

    def sources(self) -> list[tuple[SourceView, HarvestStanding | None]]:
        """Each provider as GET /sources shows it: its feed standing and its harvest."""
        return [
            (
                SourceView.of(provider, self.health, self.budgets),
                self.harvester and self.harvester.standing(provider.name),
            )
            for provider in self.feed.providers.values()
        ]

    async def count_request(self, key: KeyRecord) -> Standing:
        """Count one request of `key` if its hourly limit allows; its standing after that
        (with the entry counted, for `uncount_request`)."""
        return await self.limiter.hit(key.id, self.settings.hourly_limit(key.tier))

    async def uncount_request(self, key: KeyRecord, entry: str) -> Standing:
        """Give back the request counted as `entry` (an answer that is not charged for)."""
        return await self.limiter.refund(key.id, self.settings.hourly_limit(key.tier), entry)

    async def standing(self, key: KeyRecord) -> Standing:
        """`key`'s standing, counting nothing."""
        return await self.limiter.peek(key.id, self.settings.hourly_limit(key.tier))

    def degraded(self) -> list[str]:
        """The shared stores this instance is doing without right now (what it meant to
        share is per process meanwhile): what /health reports."""
        return ["redis"] if self.redis is not None and not self.redis.reachable() else []

    async def disconnect(self) -> None:
        """Close the connections the running event loop made to shared stores; the service
        stays usable (the lifespan calls this as its loop ends)."""
        await self.hub.close()
        if self.redis is not None:
            await self.redis.disconnect()

    def close(self) -> None:
        if self.harvester is not None:
            self.harvester.stop()  # before the store (and the upstreams) it uses
        self.pusher.stop()
        if self.upkeep is not None:
            self.upkeep.stop()
        if self.key_cache is not None:
            self.key_cache.close()
        if self.redis is not None:
            self.redis.close()
        self.store.close()


def make_providers(settings: Settings) -> list[Provider]:
    return [
        NewsAPIProvider(settings.newsapi_url, settings.newsapi_key),
        GuardianProvider(
            settings.guardian_url, settings.guardian_key, bodies=settings.guardian_body_hours > 0
        ),
        HackerNewsProvider(settings.hackernews_url),
    ]


def build_service(settings: Settings) -> Service:
    """The service `settings` describe, over the upstreams they name (demo mode's simulator
    is started at the edge, which hands this settings naming it: see edge.demo)."""
    # Before the store: a malformed URL is refused with nothing opened yet.
    redis = RedisLink(settings.redis_url) if settings.redis_url else None
    store = open_store(settings)
    try:
        check_index(store)
    except SettingsError:
        store.close()
        raise
    key_cache = key_cache_for(settings, redis)
    keys = KeyRing(store, key_cache or file_key_cache_for(settings, store))
    if settings.admin_key:
        keys.ensure_bootstrap_admin(settings.admin_key)
    # Shared times must mean the same on every instance: wall-clock epoch, not monotonic.
    clock = time.time if redis is not None else time.monotonic
    health = ProviderHealth(
        probe_seconds=settings.upstream_timeout + HANDOVER_GRACE_SECONDS,
        clock=clock,
        shared=redis and SharedHealth(redis),
    )
    metrics = Metrics()
    budgets = Budgets.from_settings(settings, store)
    cursor_secret = store.secret("cursor_secret", lambda: secrets.token_hex(32))
    installed_on = store.secret("installed_on", lambda: datetime.now(UTC).date().isoformat())
    # Demo mode harvests in seconds; budgets still apply.
    harvest_paces = paces(
        {name: budget_pace(budgets.limits(name)) for name in PROVIDER_NAMES},
        demo=settings.harvest_pace == "demo",
    )
    view = HarvestView(store, harvest_paces)
    providers = make_providers(settings)
    archive = ArchiveWriter(store, {"guardian": settings.guardian_body_hours})
    cache = ResultCache[tuple[FeedItem, ...]](
        settings.cache_ttl, settings.cache_max_stale, clock=clock
    )
    cursors = CursorCodec(bytes.fromhex(cursor_secret))
    feed = Feed(
        providers=providers,
        store=store,
        cache=cache,
        cursors=cursors,
        metrics=metrics,
        flights=SharedFlight(
            Fetcher(health, metrics, budgets, archive, settings.upstream_timeout),
            cache,
            SingleFlight(new_executor()),
            shared=redis and SharedResults(redis, settings.cache_ttl + settings.cache_max_stale),
        ),
        archive=archive,
        covered=view.covered,
    )
    # Built always (its view answers /sources); its thread runs only when the app starts
    # it (NEWSAGG_HARVEST), and its rounds only while it holds the lead.
    harvester = Harvester(
        providers,
        store,
        budgets,
        archive,
        metrics,
        view,
        harvest_paces,
        timeout=settings.upstream_timeout,
        archive_days=settings.archive_days,
    )
    searches = Searches(
        store,
        settings.search_limit,
        bytes.fromhex(store.secret("feed_secret", lambda: secrets.token_hex(32))),
        allow_private=settings.webhook_allow_private,
        pings_per_minute=settings.webhook_pings_per_minute,
    )
    pusher = PushWorker(
        store,
        Matcher(store, metrics),
        Deliverer(
            store,
            parse_backoff(settings.webhook_backoff),
            metrics,
            allow_private=settings.webhook_allow_private,
            senders=settings.webhook_senders,
            per_key=settings.webhook_in_flight_per_key,
        ),
    )
    limiter = choose(settings, store, redis)
    if key_cache is not None:
        key_cache.start()
    return Service(
        settings,
        store,
        keys,
        limiter,
        health,
        feed,
        StoryBook(store, cursors),
        metrics,
        searches,
        pusher,
        MatchHub(store),
        redis,
        key_cache,
        budgets,
        harvester,
        Upkeep(store),
        installed_on,
    )
