"""Matching: which saved searches each new article of the archive satisfies.

Article ids are the archive's arrival order (both stores commit them in order), so the
matcher keeps one watermark, the newest id it has looked at, and reads what is above it.
Each article is analysed once (with the archive's analyzer: the same stems) and tested
against every active search in Python with the query language's reference semantics
(`newsagg.query.matching.matches_fields`), which the archive's engines are tested to agree
with, or found among an upstream's answers to the search's query: a match is exactly what
GET /searches/{id}/articles would show. A search takes only articles newer than itself.
Matches, their webhook deliveries and the new watermark are stored in one transaction.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from newsagg.articles import archived_json
from newsagg.metrics import Metrics
from newsagg.push.searches import event_body, new_message_id
from newsagg.query.analysis import Analyzer
from newsagg.query.matching import fields_of, matches_fields
from newsagg.query.syntax import Node, parse
from newsagg.query.upstream import answer_key
from newsagg.store import Store
from newsagg.store.archive import NewArticle
from newsagg.store.push import DeliveryDraft, SearchRecord

log = logging.getLogger(__name__)

BATCH = 500  # articles read and matched per transaction
# A search grouped by story is sent a story when it first matches, then again when the
# story has grown to one of these sizes (then to each further doubling) since: news of
# the story's reach, not of every relay.
GROWTH = (3, 5, 10, 20, 50, 100)
ARTICLES_PER_DELIVERY = 100  # a webhook message carries at most this many


@functools.lru_cache(maxsize=4096)
def _compiled(q: str, analyzer: Analyzer) -> tuple[Node, str | None]:
    """A search's query as stems, and the key of the upstream answers that count."""
    node = parse(q)
    return analyzer.query(node), answer_key(node)


def _passes_filters(search: SearchRecord, article: NewArticle) -> bool:
    """The cheap tests, before the query: newer than the search, its category and sources."""
    return (
        article.id > search.after_id
        and (search.category is None or article.category == search.category)
        and (not search.sources or article.source in search.sources)
    )


def next_milestone(sent_size: int) -> int:
    """The size a story sent at `sent_size` must reach to be sent again."""
    for size in GROWTH:
        if size > sent_size:
            return size
    return 2 * sent_size


class Matcher:
    def __init__(
        self, store: Store, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock

    def run_once(self) -> int | None:
        """Match one batch of new articles; how many articles it covered (None when
        another matcher moved the watermark first, 0 when nothing is new)."""
        store = self._store
        watermark = store.push_watermark()
        start = self._first_start() if watermark is None else watermark
        articles = store.articles_after(start, BATCH)  # the one read while nothing is new
        if not articles:
            if watermark is None:
                store.record_matches(None, start, [], [], self._now_us())
            return 0
        searches = store.active_searches()
        found: dict[int, list[NewArticle]] = defaultdict(list)
        for article in articles:
            fields = None  # tokenised when a search first needs it, once per article
            for search in searches:
                if not _passes_filters(search, article):
                    continue
                if search.q is not None:
                    node, key = _compiled(search.q, store.analyzer)
                    if key not in article.answers:
                        if fields is None:
                            fields = fields_of(
                                store.analyzer.document(
                                    article.title, article.description, article.body
                                )
                            )
                        if not matches_fields(node, fields):
                            continue
                found[search.id].append(article)
        by_id = {search.id: search for search in searches}
        sent: list[tuple[int, int, int]] = []
        for search_id, matched in found.items():
            if by_id[search_id].group_by == "story":
                found[search_id], told = self._story_news(search_id, matched)
                sent += told
        now = self._now_us()
        matches = [(sid, a.id) for sid, matched in found.items() for a in matched]
        deliveries = [
            draft
            for sid, matched in found.items()
            if by_id[sid].webhook_url and by_id[sid].webhook_disabled_us is None
            for draft in self._drafts(sid, matched, now)
        ]
        if not store.record_matches(
            watermark, articles[-1].id, matches, deliveries, now, stories_sent=sent
        ):
            log.info("push: another matcher moved the watermark first; nothing recorded")
            return None
        self._metrics.push_matches.inc(len(matches))
        return len(articles)

    def _story_news(
        self, search_id: int, matched: list[NewArticle]
    ) -> tuple[list[NewArticle], list[tuple[int, int, int]]]:
        """Of a story-grouped search's matches, those that are news: the first article of a
        story it was not sent yet, or one of a story grown to a milestone since it was last
        sent (GROWTH); and (search, story, size) of each story sent."""
        stories = sorted({a.story.id for a in matched if a.story is not None})
        sizes = self._store.stories_sent(search_id, stories)
        news, told = [], []
        for article in matched:
            story = article.story
            if story is None:
                news.append(article)
                continue
            last = sizes.get(story.id)
            if last is None or story.size >= next_milestone(last):
                sizes[story.id] = story.size
                news.append(article)
                told.append((search_id, story.id, story.size))
        return news, told

    def _first_start(self) -> int:
        """Where the first run starts: at the oldest search's start, or now without one."""
        after = [search.after_id for search in self._store.active_searches()]
        return min(after, default=self._store.newest_article_id())

    def run_until_caught_up(self, go_on: Callable[[], bool]) -> int:
        """Batches until nothing is new (or `go_on()` says stop); articles covered."""
        covered = 0
        while go_on():
            done = self.run_once()
            if not done:
                break
            covered += done
            if done < BATCH:
                break
        return covered

    def _drafts(
        self, search_id: int, matched: list[NewArticle], now_us: int
    ) -> list[DeliveryDraft]:
        drafts = []
        for i in range(0, len(matched), ARTICLES_PER_DELIVERY):
            part = matched[i : i + ARTICLES_PER_DELIVERY]
            body = event_body(
                "articles.matched",
                search_id,
                [archived_json(a.id, a.data, a.story) for a in part],
                now_us,
            )
            drafts.append(
                DeliveryDraft(new_message_id(), search_id, "articles.matched", body, len(part))
            )
        return drafts

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)
