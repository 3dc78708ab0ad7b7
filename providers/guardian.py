"""The Guardian Open Platform: /search, sections mapped to categories."""

from __future__ import annotations

from datetime import UTC, datetime
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

NAME = "guardian"
PUBLISHER = "The Guardian"
PAGE_SIZE = 50
HARVEST_PAGE_SIZE = 200  # the Guardian's maximum page-size
SHOW_FIELDS = "trailText,byline,thumbnail"

SECTION_CATEGORY = {
    "technology": "technology",
    "business": "business",
    "money": "business",
    "science": "science",
    "environment": "science",
    "sport": "sports",
    "football": "sports",
    "culture": "entertainment",
    "film": "entertainment",
    "music": "entertainment",
    "tv-and-radio": "entertainment",
    "books": "entertainment",
    "stage": "entertainment",
    "artanddesign": "entertainment",
    "games": "entertainment",
    "society": "health",
}


def category_of(section_id: str | None) -> str:
    """The category of a Guardian section; sections not in the table are general news."""
    return SECTION_CATEGORY.get(section_id or "", "general")


def sections_for(category: str) -> str | None:
    """The `section` filter for a category (`a|b` is OR); None for general (no filter)."""
    sections = [s for s, c in SECTION_CATEGORY.items() if c == category]
    return "|".join(sections) or None


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return html_to_text(value) if isinstance(value, str) else None


def _article(item: Any) -> Article | None:
    if not isinstance(item, dict):
        return None
    fields = item.get("fields") if isinstance(item.get("fields"), dict) else {}
    title, url = item.get("webTitle"), item.get("webUrl")
    if not isinstance(title, str) or not isinstance(url, str) or not title.strip():
        return None
    try:
        return Article(
            title=html_to_text(title) or title,
            description=_text(fields, "trailText"),
            url=canonical_url(url),
            source=NAME,
            publisher=PUBLISHER,
            author=_text(fields, "byline"),
            image_url=optional_url(fields.get("thumbnail")),
            category=category_of(item.get("sectionId")),
            published_at=parse_timestamp(item.get("webPublicationDate")),
            body=fields.get("bodyText") if isinstance(fields.get("bodyText"), str) else None,
        )
    except ValueError:
        return None


def normalize(payload: Any) -> list[Article]:
    """A success body as articles, each categorised by its section."""
    response = payload.get("response") if isinstance(payload, dict) else None
    results = response.get("results") if isinstance(response, dict) else None
    if not isinstance(results, list) or response.get("status") != "ok":
        raise UpstreamError("upstream_bad_response", f"{NAME} sent an unexpected answer")
    return [a for a in (_article(item) for item in results) if a is not None]


class GuardianProvider(HTTPProvider):
    """/search, filtered to the sections of the asked category."""

    name = NAME
    categories = frozenset(CATEGORIES)

    def __init__(self, base_url: str, api_key: str | None = None, *, bodies: bool = True) -> None:
        """`bodies`: ask for each article's body text (plain text, to search)."""
        super().__init__(base_url, api_key)
        self._fields = SHOW_FIELDS + (",bodyText" if bodies else "")

    def _search(
        self, params: dict[str, Any], timeout: float, before_call: BeforeCall
    ) -> dict[str, Any]:
        """The answer's `response` envelope; raises UpstreamError for gateway errors and
        in-envelope errors alike."""
        # The Guardian only takes its key as a query parameter: UpstreamClient never puts a
        # URL into a message, so it stays out of errors and logs.
        params = {
            "api-key": self._api_key or "",
            "order-by": "newest",
            "show-fields": self._fields,
            **params,
        }
        reply = self._client.get_json("/search", params, {}, timeout, before_call)
        envelope = reply.payload.get("response") if isinstance(reply.payload, dict) else None
        in_envelope = isinstance(envelope, dict) and envelope.get("status") == "error"
        if reply.status != 200 or in_envelope:
            # Its message can quote our parameters: say only where the error was.
            raise status_error(NAME, reply, "error" if in_envelope else None)
        return reply.payload

    def fetch(self, query: Query, timeout: float, before_call: BeforeCall) -> list[Article]:
        """Raises UpstreamError for gateway errors and in-envelope errors alike."""
        params: dict[str, Any] = {"page-size": PAGE_SIZE}
        if query.q:
            params["q"] = query.q
        if query.category and (sections := sections_for(query.category)):
            params["section"] = sections
        if query.published_from:
            params["from-date"] = query.published_from.date().isoformat()
        if query.published_to:
            params["to-date"] = query.published_to.date().isoformat()
        articles = normalize(self._search(params, timeout, before_call))
        if query.category:
            articles = [a for a in articles if a.category == query.category]
        return window_filter(articles, query)

    def harvest_page(
        self,
        since: datetime | None,
        cursor: HarvestCursor,
        timeout: float,
        before_call: BeforeCall,
        category: Category | None = None,
    ) -> HarvestPage:
        """Everything published at or after `since` (to `cursor.until`), newest first, in
        every section; `category` is unused (each story is categorised by its section)."""
        params: dict[str, Any] = {"page-size": HARVEST_PAGE_SIZE, "page": cursor.page + 1}
        if since is not None:
            params["from-date"] = _timestamp(since)
        if cursor.until is not None:
            params["to-date"] = _timestamp(cursor.until)
        payload = self._search(params, timeout, before_call)
        articles = [
            a
            for a in normalize(payload)
            if (since is None or a.published_at >= since)
            and (cursor.until is None or a.published_at <= cursor.until)
        ]
        pages = payload["response"].get("pages")
        if isinstance(pages, int) and cursor.page + 1 < pages:
            return HarvestPage(articles, HarvestCursor(cursor.page + 1, cursor.until))
        return HarvestPage(articles)


def _timestamp(moment: datetime) -> str:
    """A from-date/to-date to the second: the Guardian takes ISO 8601 date-times too."""
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
