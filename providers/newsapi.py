"""NewsAPI.org v2: top-headlines for categories, everything for free-text searches."""

from __future__ import annotations

from typing import Any

from providers.base import CATEGORIES, Article, Query, UpstreamError
from providers.http import HTTPProvider, status_error
from providers.text import canonical_url, html_to_text, parse_timestamp, window_filter

NAME = "newsapi"
REMOVED = "[Removed]"
PAGE_SIZE = 100


def _strip_publisher(title: str, publisher: str | None) -> str:
    """Top-headlines titles end with ' - <Publisher>'."""
    if publisher and title.endswith(f" - {publisher}"):
        return title[: -len(publisher) - 3].rstrip()
    return title


def _article(item: Any, category: str) -> Article | None:
    if not isinstance(item, dict):
        return None
    source = item.get("source") if isinstance(item.get("source"), dict) else {}
    publisher = source.get("name") if isinstance(source.get("name"), str) else None
    title, url = item.get("title"), item.get("url")
    if not isinstance(title, str) or not isinstance(url, str) or REMOVED in (title, publisher):
        return None
    try:
        return Article(
            title=_strip_publisher(title.strip(), publisher),
            description=html_to_text(item.get("description")),
            url=canonical_url(url),
            source=NAME,
            publisher=publisher,
            author=html_to_text(item.get("author")),
            image_url=item.get("urlToImage") if isinstance(item.get("urlToImage"), str) else None,
            category=category,
            published_at=parse_timestamp(item.get("publishedAt")),
        )
    except ValueError:
        return None  # one bad item does not sink the batch


def normalize(payload: Any, category: str) -> list[Article]:
    articles = payload.get("articles") if isinstance(payload, dict) else None
    if not isinstance(articles, list) or payload.get("status") != "ok":
        raise UpstreamError("upstream_bad_response", f"{NAME} sent an unexpected answer")
    return [a for a in (_article(item, category) for item in articles) if a is not None]


class NewsAPIProvider(HTTPProvider):
    name = NAME
    categories = frozenset(CATEGORIES)

    def _request(self, query: Query) -> tuple[str, dict[str, Any], str]:
        if query.category or not query.q:
            params: dict[str, Any] = {"language": "en", "pageSize": PAGE_SIZE}
            if query.category:
                params["category"] = query.category
            if query.q:
                params["q"] = query.q
            return "/v2/top-headlines", params, query.category or "general"
        params = {"q": query.q, "language": "en", "sortBy": "publishedAt", "pageSize": PAGE_SIZE}
        if query.published_from:
            params["from"] = query.published_from.isoformat()
        if query.published_to:
            params["to"] = query.published_to.isoformat()
        return "/v2/everything", params, "general"

    def fetch(self, query: Query, timeout: float) -> list[Article]:
        path, params, category = self._request(query)
        # The key goes in a header: as the apiKey parameter it would leak into URLs and logs.
        reply = self._client.get_json(path, params, {"X-Api-Key": self._api_key or ""}, timeout)
        payload = reply.payload if isinstance(reply.payload, dict) else {}
        if reply.status != 200 or payload.get("status") == "error":
            code = payload.get("code") if isinstance(payload.get("code"), str) else None
            # Never echo NewsAPI's message: for apiKeyInvalid it quotes the key.
            raise status_error(NAME, reply, code)
        return window_filter(normalize(reply.payload, category), query)
