"""NewsAPI.org v2: top-headlines for categories, everything for free-text searches."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.base import (
    CATEGORIES,
    Article,
    BeforeCall,
    Category,
    HarvestCursor,
    HarvestPage,
    Query,
    UpstreamError,
)
from providers.http import HTTPProvider, status_error
from providers.text import (
    canonical_url,
    html_to_text,
    optional_url,
    parse_timestamp,
    window_filter,
)

NAME = "newsapi"
REMOVED = "[Removed]"
PAGE_SIZE = 100
LAST_WHOLE_SECOND = datetime.max.replace(microsecond=0)
# NewsAPI cuts `content` at 200 characters and says how much it left out.
_CUT_MARK = re.compile(r"\s*(?:…|\.\.\.)?\s*\[\+\d+ chars\]\s*$")
# NewsAPI's error codes that fault the request's parameters, not NewsAPI (see
# providers.http.status_error); maximumResultsReached comes with a 426, not a 400.
QUERY_REJECTIONS = frozenset(
    {"parameterInvalid", "parametersMissing", "parametersIncompatible", "maximumResultsReached"}
)


def _strip_publisher(title: str, publisher: str | None) -> str:
    """Top-headlines titles end with ' - <Publisher>'; other ' - ' parts are the headline's."""
    padded = " " + title.strip()  # so a title that is nothing but the suffix ends up empty
    if publisher and padded.endswith(f" - {publisher}"):
        return padded[: -len(publisher) - 3].strip()
    return padded.strip()


def _article(item: Any, category: str) -> Article | None:
    if not isinstance(item, dict):
        return None
    source = item.get("source") if isinstance(item.get("source"), dict) else {}
    publisher = source.get("name") if isinstance(source.get("name"), str) else None
    title, url = item.get("title"), item.get("url")
    if not isinstance(title, str) or not isinstance(url, str) or REMOVED in (title, publisher):
        return None
    title = _strip_publisher(title, publisher)
    if not title:
        return None
    try:
        return Article(
            title=title,
            description=html_to_text(item.get("description")),
            url=canonical_url(url),
            source=NAME,
            publisher=publisher,
            author=html_to_text(item.get("author")),
            image_url=optional_url(item.get("urlToImage")),
            category=category,
            published_at=parse_timestamp(item.get("publishedAt")),
            body=_content(item.get("content")),
        )
    except ValueError:
        return None  # one bad item does not sink the batch


def _content(value: object) -> str | None:
    """`content` as text, without NewsAPI's "… [+1234 chars]" mark."""
    return html_to_text(_CUT_MARK.sub("", value)) if isinstance(value, str) else None


def normalize(payload: Any, category: str) -> list[Article]:
    """A success body as articles of `category`; `content` (cut at 200 characters) is
    their body text."""
    articles = payload.get("articles") if isinstance(payload, dict) else None
    if not isinstance(articles, list) or payload.get("status") != "ok":
        raise UpstreamError("upstream_bad_response", f"{NAME} sent an unexpected answer")
    return [a for a in (_article(item, category) for item in articles) if a is not None]


def _whole_second(moment: datetime, up: bool) -> str:
    """A UTC time as NewsAPI's from/to take it, widened to whole seconds (we filter exactly)."""
    moment = moment.astimezone(UTC)
    whole = moment.replace(microsecond=0, tzinfo=None)
    # In the last second of year 9999 there is no next one: that fraction stays unasked.
    if up and moment.microsecond and whole < LAST_WHOLE_SECOND:
        whole += timedelta(seconds=1)
    # isoformat, not strftime: glibc's %Y writes year 366 as "366", which is no RFC 3339.
    return whole.isoformat() + "Z"


class NewsAPIProvider(HTTPProvider):
    """top-headlines (US) for a category or for nothing at all, everything for a bare search."""

    name = NAME
    categories = frozenset(CATEGORIES)

    def _request(self, query: Query) -> tuple[str, dict[str, Any], str]:
        """(path, parameters, category of the results): a shape NewsAPI answers for every query.

        top-headlines takes no `language` (since 2023 the live service answers any request
        carrying one with `ok` and zero articles) and, without `sources`, returns articles only
        for `country=us`: so always `country=us`, which also gives the uncategorised feed the
        one parameter top-headlines demands (none of country/category/sources/q is a 400
        parametersMissing). /v2/everything needs `q`, so it serves only searches without a
        category; `language` is one of its documented parameters. top-headlines has no
        from/to: those windows are applied here (window_filter) after the fetch.
        """
        q = (query.q or "").strip() or None  # a blank search is no search: everything needs q
        if query.category or q is None:
            params: dict[str, Any] = {"country": "us", "pageSize": PAGE_SIZE}
            if query.category:
                params["category"] = query.category
            if q is not None:
                params["q"] = q
            return "/v2/top-headlines", params, query.category or "general"
        params = {"q": q, "language": "en", "sortBy": "publishedAt", "pageSize": PAGE_SIZE}
        if query.published_from:
            params["from"] = _whole_second(query.published_from, up=False)
        if query.published_to:
            params["to"] = _whole_second(query.published_to, up=True)
        return "/v2/everything", params, "general"

    def fetch(self, query: Query, timeout: float, before_call: BeforeCall) -> list[Article]:
        """Raises UpstreamError; never quotes NewsAPI's message text."""
        path, params, category = self._request(query)
        return window_filter(self._get(path, params, category, timeout, before_call), query)

    def harvest_page(
        self,
        since: datetime | None,
        cursor: HarvestCursor,
        timeout: float,
        before_call: BeforeCall,
        category: Category | None = None,
    ) -> HarvestPage:
        """The US top headlines of `category` (None: of no category), one page: the free
        plan serves 100 results a query, one page. top-headlines takes no time bounds, so
        `since` and the cursor are unused."""
        params: dict[str, Any] = {"country": "us", "pageSize": PAGE_SIZE}
        if category:
            params["category"] = category
        path = "/v2/top-headlines"
        return HarvestPage(self._get(path, params, category or "general", timeout, before_call))

    def _get(
        self,
        path: str,
        params: dict[str, Any],
        category: str,
        timeout: float,
        before_call: BeforeCall,
    ) -> list[Article]:
        # The key goes in a header: as the apiKey parameter it would leak into URLs and logs.
        headers = {"X-Api-Key": self._api_key or ""}
        reply = self._client.get_json(path, params, headers, timeout, before_call)
        payload = reply.payload if isinstance(reply.payload, dict) else {}
        if reply.status != 200 or payload.get("status") == "error":
            code = payload.get("code") if isinstance(payload.get("code"), str) else None
            # Never echo NewsAPI's message: for apiKeyInvalid it quotes the key.
            raise status_error(NAME, reply, code, QUERY_REJECTIONS)
        return normalize(reply.payload, category)
