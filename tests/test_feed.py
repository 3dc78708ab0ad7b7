"""The feed's logic, in-process: fake providers, a fake clock, a throwaway SQLite store.

What only HTTP shows (the real clients, the simulator, Connexion) is tested elsewhere;
here each rule of the core is pinned where it lives, fast.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from newsagg.archive_writer import ArchiveWriter
from newsagg.articles import FeedItem
from newsagg.budget import Budgets, Caller
from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec
from newsagg.errors import InvalidInput, Unavailable
from newsagg.feed import Coverage, Feed, never_covered
from newsagg.feed_page import FeedPage, SourceReport
from newsagg.fetcher import Fetcher
from newsagg.metrics import Metrics
from newsagg.provider_health import ProviderHealth
from newsagg.query.analysis import Analyzer
from newsagg.query.matching import matches
from newsagg.query.syntax import parse
from newsagg.request import FeedRequest
from newsagg.settings import Settings
from newsagg.shared_flight import SharedFlight
from newsagg.singleflight import SingleFlight
from newsagg.store import Store, open_store
from providers.base import (
    CATEGORIES,
    PROVIDER_NAMES,
    Article,
    BeforeCall,
    Query,
    UpstreamError,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
UNBUDGETED = dict.fromkeys(PROVIDER_NAMES, "1000000/second")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def story(
    source: str,
    n: int,
    *,
    url: str | None = None,
    minutes_ago: int | None = None,
    title: str | None = None,
    description: str | None = None,
) -> Article:
    return Article(
        title=title or f"{source} story {n}",
        description=description,
        url=url or f"https://example.com/{source}/{n}",
        source=source,  # type: ignore[arg-type]
        publisher=None,
        author=None,
        image_url=None,
        category="technology",
        published_at=NOW - timedelta(minutes=n),
    )


def titles(page: FeedPage) -> list[str]:
    return [item.article.title for item in page.items]


# How an upstream that searches word for word matches (FakeProvider).
WORD_FOR_WORD = Analyzer("none")


@dataclass
class FakeProvider:
    """A provider in memory: answers `articles`, or raises `error` when one is set."""

    name: str
    articles: list[Article] = field(default_factory=list)
    error: UpstreamError | None = None
    enabled: bool = True
    categories: frozenset[str] = frozenset(CATEGORIES)
    calls: int = 0
    # Whether it answers a query with what matches it (word for word), or with everything
    # it has, as an upstream whose reasons newsagg cannot see.
    searches: bool = True

    def serves(self, query: Query) -> bool:
        return query.category is None or query.category in self.categories

    def fetch(self, query: Query, timeout: float, before_call: BeforeCall) -> list[Article]:
        before_call()
        self.calls += 1
        if self.error is not None:
            raise self.error
        if not query.q or not self.searches:
            return list(self.articles)
        asked = WORD_FOR_WORD.query(parse(query.q))
        return [
            a
            for a in self.articles
            if matches(asked, WORD_FOR_WORD.document(a.title, a.description))
        ]


@dataclass
class Rig:
    feed: Feed
    providers: dict[str, FakeProvider]
    clock: FakeClock
    health: ProviderHealth

    def page(self, caller: Caller | None = None, **request: object) -> FeedPage:
        parsed = FeedRequest.parse(**request)  # type: ignore[arg-type]
        return asyncio.run(self.feed.page(parsed, caller))


def report(page: FeedPage, name: str) -> SourceReport:
    return next(r for r in page.sources if r.name == name)


@pytest.fixture
def rig(tmp_path) -> Iterator[Callable[..., Rig]]:
    made: list[tuple[Store, ThreadPoolExecutor]] = []

    def make(
        *providers: FakeProvider,
        ttl: float = 60,
        max_stale: float = 600,
        quotas: dict[str, str] | None = None,
        covered: Coverage = never_covered,
    ) -> Rig:
        given = {p.name for p in providers}
        providers += tuple(FakeProvider(n, enabled=False) for n in PROVIDER_NAMES if n not in given)
        clock = FakeClock()
        store = open_store(Settings(database=str(tmp_path / f"feed{len(made)}.sqlite3")))
        executor = ThreadPoolExecutor(max_workers=4)
        made.append((store, executor))
        health = ProviderHealth(failure_threshold=2, open_seconds=30, clock=clock)
        cache = ResultCache[tuple[FeedItem, ...]](ttl, max_stale, clock=clock)
        metrics, archive = Metrics(), ArchiveWriter(store, {})
        budgets = Budgets(store, quotas or UNBUDGETED, on_demand_share=0.2)  # type: ignore[arg-type]
        feed = Feed(
            providers=list(providers),  # type: ignore[arg-type]
            store=store,
            cache=cache,
            cursors=CursorCodec(b"k" * 32),
            metrics=metrics,
            flights=SharedFlight(
                Fetcher(health, metrics, budgets, archive, timeout=1.0),
                cache,
                SingleFlight(executor),
            ),
            archive=archive,
            covered=covered,
        )
        return Rig(feed, {p.name: p for p in providers}, clock, health)

    yield make
    for store, executor in made:
        executor.shutdown(wait=True)
        store.close()


def test_a_story_carried_twice_keeps_the_record_nearest_its_source(rig):
    shared = "https://www.theguardian.com/tech/story"
    r = rig(
        FakeProvider("newsapi", [story("newsapi", 1, url=shared), story("newsapi", 2)]),
        FakeProvider("guardian", [story("guardian", 3, url=shared)]),
        FakeProvider("hackernews", [story("hackernews", 4, url=shared)]),
    )
    page = r.page()
    by_url = {item.article.url: item for item in page.items}
    assert len(page.items) == 2
    assert by_url[shared].article.source == "guardian"
    # Each provider's articles in this page: the shared story counts for the Guardian.
    assert [s.article_count for s in page.sources] == [1, 1, 0]


def test_newest_first_and_pages_walk_the_whole_feed_without_repeats(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", n) for n in range(1, 8)]))
    first = r.page(limit=3)
    assert [i.article.title for i in first.items] == [f"newsapi story {n}" for n in (1, 2, 3)]
    seen, cursor = [i.id for i in first.items], first.next_cursor
    while cursor is not None:
        page = r.page(limit=3, cursor=cursor)
        seen += [i.id for i in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 7


def test_a_cursor_belongs_to_its_query(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", n) for n in range(1, 5)]))
    cursor = r.page(limit=2).next_cursor
    with pytest.raises(InvalidInput, match="different query"):
        r.page(limit=2, cursor=cursor, q="other")
    with pytest.raises(InvalidInput, match="cursor"):
        r.page(limit=2, cursor=cursor[:-2] + "xx")


def test_a_client_window_needs_offsets_and_order(rig):
    r = rig(FakeProvider("newsapi"))
    with pytest.raises(InvalidInput, match="from"):
        r.page(published_from="2026-11-25T08:00:00")  # no offset: which 08:00?
    with pytest.raises(InvalidInput, match="later than"):
        r.page(published_from="2026-11-25T09:00:00Z", published_to="2026-11-25T08:00:00Z")


def test_a_cache_hit_never_suspends_and_is_remembered(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", 1)]))
    request = FeedRequest.parse(limit=5)
    first = r.page(limit=5)
    assert first.cache_status == "miss" and first.key is None
    hit = r.page(limit=5)  # searched off the event loop once, then remembered
    assert hit.cache_status == "hit" and hit.key is not None
    # A remembered hit completes on its first step: it never gives the event loop away.
    coroutine = r.feed.page(request)
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value is hit  # merged and cut once, then remembered
    assert r.providers["newsapi"].calls == 1


def test_an_expired_result_is_served_stale_when_its_provider_fails(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", 1)]), ttl=60, max_stale=600)
    assert r.page().cache_status == "miss"
    r.clock.now += 61  # expired, still kept
    r.providers["newsapi"].error = UpstreamError("upstream_unreachable", "newsapi is down")
    page = r.page()
    assert page.cache_status == "stale"
    assert (
        page.sources[0].status == "stale" and page.sources[0].error.code == "upstream_unreachable"
    )
    assert len(page.items) == 1


def test_no_provider_and_no_cache_is_unavailable_with_a_retry_hint(rig):
    r = rig(
        FakeProvider("newsapi", error=UpstreamError("upstream_rate_limited", "slow", 12.5)),
        FakeProvider("guardian", error=UpstreamError("upstream_timeout", "late")),
    )
    with pytest.raises(Unavailable) as refused:
        r.page()
    assert refused.value.retry_after_seconds == 12  # the upstream's own hint
    assert "newsapi: upstream_rate_limited" in refused.value.detail


def test_a_disabled_or_skipped_provider_does_not_make_the_feed_fail(rig):
    r = rig(
        FakeProvider("newsapi", enabled=False),
        FakeProvider("hackernews", [story("hackernews", 1)], categories=frozenset({"general"})),
    )
    page = r.page(category="sports")
    assert [s.status for s in page.sources] == ["disabled", "disabled", "skipped"]
    assert page.items == [] and page.cache_status == "hit"  # nothing needed fetching


def test_an_open_breaker_stops_calls_until_one_probe_goes_through(rig):
    failing = FakeProvider("guardian", error=UpstreamError("upstream_unreachable", "down"))
    r = rig(failing, FakeProvider("newsapi", [story("newsapi", 1)]))
    for q in ("a", "b"):  # two failures: the threshold of this rig
        assert report(r.page(q=q), "guardian").error.code == "upstream_unreachable"
    assert report(r.page(q="c"), "guardian").error.code == "circuit_open"
    assert failing.calls == 2  # refused without a call
    r.clock.now += 31  # open period over: half-open, one probe
    failing.error = None
    failing.articles = [story("guardian", 2)]
    assert report(r.page(q="d"), "guardian").status == "ok"
    assert r.health.breaker("guardian").state == "closed"
    assert failing.calls == 3


def test_failed_fetches_leave_one_warning_and_no_unread_future(rig, caplog):
    r = rig(FakeProvider("newsapi", error=UpstreamError("upstream_error", "newsapi answered 500")))
    caplog.set_level(logging.DEBUG)
    for q in ("x", "y"):
        with pytest.raises(Unavailable):
            r.page(q=q)
    gc.collect()  # asyncio reports an unread exception when the future is collected
    assert "never retrieved" not in caplog.text
    warnings = [rec for rec in caplog.records if rec.name == "newsagg.fetcher"]
    assert [rec.levelname for rec in warnings] == ["WARNING", "WARNING"]
    assert all(rec.exc_info is None for rec in warnings)


def test_a_query_every_provider_refuses_is_an_empty_page_not_a_503(rig):
    refused = UpstreamError("upstream_rejected_query", "newsapi answered 400 (parameterInvalid)")
    r = rig(FakeProvider("newsapi", error=refused), FakeProvider("guardian", error=refused))
    page = r.page(q="x")  # retrying cannot help: no 503 inviting clients to try again
    assert page.items == [] and {s.status for s in page.sources} == {"error", "disabled"}
    r.providers["guardian"].error = UpstreamError("upstream_timeout", "late")
    with pytest.raises(Unavailable):
        r.page(q="y")  # one provider may answer later: that is worth a retry


def test_a_story_fetched_once_is_found_by_a_later_search_while_every_upstream_fails(rig):
    r = rig(
        FakeProvider("newsapi", [story("newsapi", 1), story("newsapi", 2)]),
        FakeProvider("hackernews", [story("hackernews", 3)]),
    )
    r.page(category="technology")
    for provider in r.providers.values():
        provider.error = UpstreamError("upstream_unreachable", "down")
    page = r.page(q="story 2")  # never asked before: the archive answers it
    assert [i.article.title for i in page.items] == ["newsapi story 2"]
    assert page.cache_status == "stale"
    assert {s.status for s in page.sources if s.name != "guardian"} == {"error"}


def test_every_filter_applies_to_the_whole_archive_not_to_one_answer(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", n) for n in range(1, 5)]))
    r.page(q="story")
    r.providers["newsapi"].articles = [story("newsapi", n) for n in range(5, 7)]
    page = r.page(q="story 2 OR story 6")  # one was fetched earlier, one now
    assert [i.article.title for i in page.items] == ["newsapi story 2", "newsapi story 6"]


def test_an_upstream_answer_to_the_very_query_is_a_match_of_it(rig):
    """NewsAPI and the Guardian asked exactly a query: whatever they answer matches it from
    then on, in the archive alone too, ranked after what the archive matches itself.
    Hacker News' answers never count (its search forgives typos); nor does an answer to a
    broader rendering (a prefix, `title:`)."""
    unseen = story("newsapi", 1, title="Markets fall", description="Shares slid")
    own = story("newsapi", 3, title="Economies grow")
    r = rig(
        FakeProvider("newsapi", [unseen, story("newsapi", 2), own], searches=False),
        FakeProvider("hackernews", [story("hackernews", 3, title="Nothing alike")], searches=False),
    )
    answered = ["Markets fall", "newsapi story 2", "Economies grow"]
    assert titles(r.page(q="economy")) == answered
    for provider in r.providers.values():
        provider.error = UpstreamError("upstream_unreachable", "down")
    r.clock.now += 3600  # past the cache: the archive alone answers
    assert titles(r.page(q="economy")) == answered
    by_relevance = titles(r.page(q="economy", sort="relevance"))
    assert by_relevance[0] == "Economies grow" and sorted(by_relevance) == sorted(answered)
    earlier = (NOW - timedelta(minutes=2)).isoformat()  # its filters still apply
    assert titles(r.page(q="economy", published_to=earlier)) == answered[1:]
    assert titles(r.page(q="economies OR story")) == ["newsapi story 2", "Economies grow"]


def test_an_answer_to_a_broader_rendering_is_no_match(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", 1, title="Markets fall")], searches=False))
    assert titles(r.page(q="econ*")) == []
    assert titles(r.page(q="title:economy")) == []


def test_relevance_needs_q_and_ranks_the_best_match_first(rig):
    with pytest.raises(InvalidInput, match="sort: relevance needs q"):
        FeedRequest.parse(sort="relevance")
    with pytest.raises(InvalidInput, match="q: unclosed quote at character 1"):
        FeedRequest.parse(q='"climate')
    r = rig(FakeProvider("newsapi", [story("newsapi", n) for n in range(1, 4)]))
    by_date = r.page(q="story 2 OR story")
    by_relevance = r.page(q="story 2 OR story", sort="relevance")
    assert sorted(i.id for i in by_relevance.items) == sorted(i.id for i in by_date.items)
    assert by_relevance.items[0].article.title == "newsapi story 2"  # it matches both


def test_a_covered_query_makes_no_upstream_call(rig):
    provider = FakeProvider("newsapi", [story("newsapi", 1)])
    r = rig(provider, covered=lambda name, query: name == "newsapi")
    page = r.page()
    assert provider.calls == 0 and page.cache_status == "hit"
    assert report(page, "newsapi").status == "ok"


def test_a_spent_budget_makes_no_call_and_the_archive_still_answers(rig):
    provider = FakeProvider("newsapi", [story("newsapi", n) for n in range(1, 4)])
    r = rig(provider, quotas={"newsapi": "10/day", "guardian": "10/day", "hackernews": "10/day"})
    basic = Caller(key_id=1, tier="basic")  # its part: 1 call of the 2 left for clients
    r.page(basic, q="story")
    page = r.page(basic, q="newsapi")  # another query: it needs a call the key cannot pay
    assert provider.calls == 1
    assert report(page, "newsapi").error.code == "upstream_budget_spent"
    assert len(page.items) == 3 and page.cache_status == "stale"
    assert r.health.breaker("newsapi").state == "closed"  # not the upstream's fault
    r.page(Caller(key_id=2, tier="basic"), q="newsapi")  # another key has its own part
    assert provider.calls == 2


def test_a_cursor_stays_put_while_articles_arrive(rig):
    r = rig(FakeProvider("newsapi", [story("newsapi", n) for n in range(10, 16)]), ttl=0)
    first = r.page(limit=3)
    r.providers["newsapi"].articles = [story("newsapi", n) for n in range(1, 4)]  # newer ones
    second = r.page(limit=3, cursor=first.next_cursor)
    assert [i.article.title for i in second.items] == [f"newsapi story {n}" for n in (13, 14, 15)]
