"""Hacker News through Algolia's search API: latest stories, technology and general only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from providers.base import Article, Query, UpstreamError
from providers.http import HTTPProvider, status_error
from providers.text import canonical_url, html_to_text, parse_timestamp, window_filter

NAME = "hackernews"
PUBLISHER = "Hacker News"
ITEM_URL = "https://news.ycombinator.com/item?id={}"
HITS_PER_PAGE = 100


def _published(hit: dict[str, Any]) -> datetime:
    created = hit.get("created_at")
    if isinstance(created, str):
        return parse_timestamp(created)
    epoch = hit.get("created_at_i")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise ValueError("no timestamp")
    return datetime.fromtimestamp(epoch, UTC)


def _article(hit: Any, category: str) -> Article | None:
    if not isinstance(hit, dict):
        return None
    title, object_id = hit.get("title"), hit.get("objectID")
    if not isinstance(title, str) or not title.strip() or not object_id:
        return None  # comments come back with a null title
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
    except ValueError:
        return None


def normalize(payload: Any, category: str) -> list[Article]:
    hits = payload.get("hits") if isinstance(payload, dict) else None
    if not isinstance(hits, list):
        raise UpstreamError("upstream_bad_response", f"{NAME} sent an unexpected answer")
    return [a for a in (_article(hit, category) for hit in hits) if a is not None]


class HackerNewsProvider(HTTPProvider):
    name = NAME
    categories = frozenset({"technology", "general"})

    @property
    def enabled(self) -> bool:
        return True  # Algolia's HN search needs no key

    def fetch(self, query: Query, timeout: float) -> list[Article]:
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
        reply = self._client.get_json("/api/v1/search_by_date", params, {}, timeout)
        if reply.status != 200:
            raise status_error(NAME, reply)
        return window_filter(normalize(reply.payload, query.category or "technology"), query)
