"""Hacker News through Algolia's search API: latest stories, technology and general only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from providers.base import (
    Article,
    BeforeCall,
    Category,
    HarvestCursor,
    HarvestPage,
    Query,
    UpstreamError,
)
from providers.http import HTTPProvider, status_error
from providers.text import canonical_url, html_to_text, parse_timestamp, window_filter

NAME = "hackernews"
PUBLISHER = "Hacker News"
ITEM_URL = "https://news.ycombinator.com/item?id={}"
HITS_PER_PAGE = 100
# Algolia serves at most this many hits of one query: a sweep past them asks again for
# the stories older than the oldest it has (slicing by created_at_i).
HITS_PER_QUERY = 1000
HARVEST_HITS_PER_PAGE = 200


def _published(hit: dict[str, Any]) -> datetime:
    """created_at, or the epoch seconds in created_at_i when that is missing or garbled."""
    try:
        return parse_timestamp(hit.get("created_at"))
    except ValueError:
        epoch = hit.get("created_at_i")
        if not isinstance(epoch, int | float) or isinstance(epoch, bool):
            raise
        return datetime.fromtimestamp(epoch, UTC)  # ValueError/OverflowError when absurd


def _article(hit: Any, category: str) -> Article | None:
    if not isinstance(hit, dict):
        return None
    title, object_id = hit.get("title"), hit.get("objectID")
    if not isinstance(title, str) or not title.strip():
        return None  # comments come back with a null title
    if not isinstance(object_id, str | int) or not str(object_id).isdigit():
        return None
    url = hit.get("url") if isinstance(hit.get("url"), str) and hit.get("url") else None
    try:
        return Article(
            title=title.strip(),
            description=html_to_text(hit.get("story_text")),
            url=canonical_url(url or ITEM_URL.format(object_id)),  # Ask HN: no url
            source=NAME,
            publisher=PUBLISHER,
            author=hit.get("author") if isinstance(hit.get("author"), str) else None,
            image_url=None,
            category=category,
            published_at=_published(hit),
        )
    except (ValueError, OverflowError, OSError):
        return None  # one bad hit does not sink the batch


def normalize(payload: Any, category: str) -> list[Article]:
    """A success body as articles of `category`; comments (null title) are dropped."""
    hits = payload.get("hits") if isinstance(payload, dict) else None
    if not isinstance(hits, list):
        raise UpstreamError("upstream_bad_response", f"{NAME} sent an unexpected answer")
    return [a for a in (_article(hit, category) for hit in hits) if a is not None]


class HackerNewsProvider(HTTPProvider):
    """Latest stories by date; no key, and only technology and general news."""

    name = NAME
    categories = frozenset({"technology", "general"})

    @property
    def enabled(self) -> bool:
        """Always: Algolia's HN search needs no key."""
        return True

    def fetch(self, query: Query, timeout: float, before_call: BeforeCall) -> list[Article]:
        """Raises UpstreamError; a page past the end is an empty list, not an error."""
        params: dict[str, Any] = {
            "tags": "story",
            "query": query.q or "",
            "hitsPerPage": HITS_PER_PAGE,
        }
        bounds = []
        if query.published_from:
            bounds.append(f"created_at_i>={int(query.published_from.timestamp())}")
        if query.published_to:
            bounds.append(f"created_at_i<={int(query.published_to.timestamp())}")
        if bounds:
            params["numericFilters"] = ",".join(bounds)
        reply = self._client.get_json("/api/v1/search_by_date", params, {}, timeout, before_call)
        if reply.status != 200:
            raise status_error(NAME, reply)
        return window_filter(normalize(reply.payload, query.category or "technology"), query)

    def harvest_page(
        self,
        since: datetime | None,
        cursor: HarvestCursor,
        timeout: float,
        before_call: BeforeCall,
        category: Category | None = None,
    ) -> HarvestPage:
        """Stories created at or after `since` (and at or before `cursor.until`), newest
        first; `category` is unused (HN stories are technology news here)."""
        bounds = []
        if since is not None:
            bounds.append(f"created_at_i>={int(since.timestamp())}")
        if cursor.until is not None:
            bounds.append(f"created_at_i<={int(cursor.until.timestamp())}")
        params: dict[str, Any] = {
            "tags": "story",
            "query": "",
            "hitsPerPage": HARVEST_HITS_PER_PAGE,
            "page": cursor.page,
        }
        if bounds:
            params["numericFilters"] = ",".join(bounds)
        reply = self._client.get_json("/api/v1/search_by_date", params, {}, timeout, before_call)
        if reply.status != 200:
            raise status_error(NAME, reply)
        articles = normalize(reply.payload, "technology")
        hits = reply.payload.get("hits", [])
        if len(hits) < HARVEST_HITS_PER_PAGE or not articles:
            return HarvestPage(articles)
        if (cursor.page + 2) * HARVEST_HITS_PER_PAGE <= HITS_PER_QUERY:
            return HarvestPage(articles, HarvestCursor(cursor.page + 1, cursor.until))
        # The next page would pass Algolia's 1000 hits: start over below the oldest story
        # seen (inclusive, so its second's other stories are not lost; dedupe is by URL).
        oldest = min(article.published_at for article in articles)
        if cursor.until is not None and oldest >= cursor.until:
            oldest = cursor.until - timedelta(seconds=1)  # a second of 1000+ stories: move on
        return HarvestPage(articles, HarvestCursor(0, oldest))
