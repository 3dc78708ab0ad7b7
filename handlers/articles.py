"""GET /articles and GET /articles/{article_id}."""

from __future__ import annotations

import json
from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import RenderMemo, cacheable_reply, json_bytes, weak_etag
from newsagg.budget import Caller
from newsagg.errors import NotFound
from newsagg.feed_page import FeedPage, SourceReport
from newsagg.request import FeedRequest, Group
from newsagg.service import Service
from newsagg.store.archive import Sort


def _source_json(report: SourceReport) -> dict:
    body: dict = {"name": report.name, "status": report.status}
    if report.article_count is not None:
        body["article_count"] = report.article_count
    if report.error is not None:
        body["error"] = {"code": report.error.code, "message": report.error.message}
    return body


def render_page(page: FeedPage) -> tuple[bytes, str]:
    """(the body, its ETag). Articles were serialised once when fetched: only joined here.

    The ETag covers all but `cache_status`, which comes last so the content can be hashed
    as one prefix of the body."""
    rest = json.dumps(
        {
            "count": len(page.items),
            "next_cursor": page.next_cursor,
            "sources": [_source_json(report) for report in page.sources],
        },
        separators=(",", ":"),
    )
    content = (
        b'{"articles":[' + b",".join(item.json for item in page.items) + b"]," + rest[1:-1].encode()
    )
    body = content + b',"cache_status":"%s"}' % page.cache_status.encode()
    return body, weak_etag(content)


async def list_articles(
    service: Service,
    renderings: RenderMemo,
    if_none_match: str | None,
    token_info: dict[str, Any],
    category: str | None = None,
    q: str | None = None,
    source: list[str] | None = None,
    from_: str | None = None,
    to: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    sort: Sort = "published",
    group: Group | None = None,
) -> ConnexionResponse:
    request = FeedRequest.parse(
        category=category,
        q=q,
        sources=source,
        published_from=from_,
        published_to=to,
        limit=limit,
        cursor=cursor,
        sort=sort,
        group=group,
    )
    key = token_info["key"]
    page = await service.feed.page(request, Caller(key.id, key.tier))
    body, etag = renderings.get(page.key, lambda: render_page(page))
    return cacheable_reply(body, etag, int(service.settings.cache_ttl), if_none_match)


def get_article(service: Service, if_none_match: str | None, article_id: int) -> ConnexionResponse:
    """A plain function: it waits on the store, so Connexion runs it off the event loop."""
    article = service.feed.article(article_id)
    if article is None:
        raise NotFound(f"No article with id {article_id}.")
    body = json_bytes(article)
    return cacheable_reply(body, weak_etag(body), int(service.settings.cache_ttl), if_none_match)
