"""GET /articles and GET /articles/{article_id}."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from connexion.lifecycle import ConnexionResponse

from edge.replies import cacheable_reply, json_bytes, service, weak_etag
from newsagg.aggregate import FeedPage, FeedRequest, SourceReport
from newsagg.errors import InvalidInput, NotFound
from providers.base import Query

ALL_SOURCES = ("newsapi", "guardian", "hackernews")


def _instant(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 date-time with an offset, as UTC; a 400 for anything else."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value.upper():
        raise InvalidInput(
            f"{name}: {value!r} is not an RFC 3339 date-time such as 2026-11-25T08:00:00Z"
        )
    return parsed.astimezone(UTC)


def _source_json(report: SourceReport) -> dict:
    body: dict = {"name": report.name, "status": report.status}
    if report.article_count is not None:
        body["article_count"] = report.article_count
    if report.error is not None:
        body["error"] = {"code": report.error.code, "message": report.error.message}
    return body


def _page_content(page: FeedPage) -> bytes:
    """The page as JSON without its closing brace and `cache_status` (see cacheable_reply).

    Articles were serialised once when fetched; a cache hit only joins their bytes.
    """
    rest = json.dumps(
        {
            "count": len(page.items),
            "next_cursor": page.next_cursor,
            "sources": [_source_json(report) for report in page.sources],
        },
        separators=(",", ":"),
    )
    return (
        b'{"articles":[' + b",".join(item.json for item in page.items) + b"]," + rest[1:-1].encode()
    )


def _render(page: FeedPage) -> tuple[bytes, str]:
    """(the body, its ETag)."""
    content = _page_content(page)
    body = content + b',"cache_status":"%s"}' % page.cache_status.encode()
    return body, weak_etag(content)


async def list_articles(
    category: str | None = None,
    q: str | None = None,
    source: list[str] | None = None,
    from_: str | None = None,
    to: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> ConnexionResponse:
    published_from, published_to = _instant("from", from_), _instant("to", to)
    if published_from and published_to and published_from > published_to:
        raise InvalidInput("from: must not be later than to")
    requested = tuple(name for name in ALL_SOURCES if name in (source or ALL_SOURCES))
    query = Query(category, q, published_from, published_to)
    aggregator = service().aggregator
    # Cache hits never leave the event loop; misses are awaited without holding a thread.
    gathering = aggregator.start(FeedRequest(query, requested, limit, cursor))
    if gathering.pending:
        await asyncio.wait(
            [asyncio.wrap_future(f) for f in gathering.pending.values()],
            timeout=aggregator.wait_seconds,
        )
    body, etag = aggregator.finish_rendered(gathering, _render)
    return cacheable_reply(body, etag)


def get_article(article_id: int) -> ConnexionResponse:
    article = service().aggregator.article(article_id)
    if article is None:
        raise NotFound(f"No article with id {article_id}.")
    body = json_bytes(article)
    return cacheable_reply(body, weak_etag(body))
