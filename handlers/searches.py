"""/searches: saved searches, their articles, webhook deliveries and tokens.

Plain functions wait on the store, so Connexion runs them off the event loop; the one
that may refresh from the upstreams (the search's articles) awaits the feed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import RenderMemo, cacheable_reply, json_reply
from handlers.articles import render_page
from newsagg.budget import Caller
from newsagg.push.searches import Searches, Shown, webhook_status
from newsagg.service import Service
from newsagg.store import without_blocking
from newsagg.store.archive import Sort
from newsagg.store.push import DeliveryRecord, SearchRecord


def timestamp(us: int | None) -> str | None:
    """RFC 3339 in UTC, as the API writes every time it made itself."""
    if us is None:
        return None
    return (
        datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def search_json(
    searches: Searches, base_url: str, search: SearchRecord, secret: str | None = None
) -> dict:
    token = searches.feed_token(search)
    body: dict[str, Any] = {
        "id": search.id,
        "name": search.name,
        "q": search.q,
        "category": search.category,
        "source": list(search.sources) or None,
        "paused": search.paused,
        "group": search.group_by,
        "key_id": search.key_id,
        "created_at": timestamp(search.created_us),
        "updated_at": timestamp(search.updated_us),
        "articles_url": f"/searches/{search.id}/articles",
        # Absolute, with the search's token: a feed reader, or a browser's EventSource (which
        # cannot send a header), is given it alone.
        "events_url": f"{base_url}/searches/{search.id}/events?token={token}",
        "feed_url": f"{base_url}/feeds/{search.id}?token={token}",
        "webhook_url": search.webhook_url,
        "webhook_status": webhook_status(search),
        "webhook_disabled_reason": search.webhook_disabled_reason,
    }
    if secret is not None:
        body["webhook_secret"] = secret  # shown in this answer only
    return body


def delivery_json(delivery: DeliveryRecord) -> dict:
    return {
        "id": delivery.msg_id,
        "type": delivery.kind,
        "created_at": timestamp(delivery.created_us),
        "status": delivery.status,
        "article_count": delivery.article_count,
        "next_attempt_at": timestamp(delivery.next_us) if delivery.status == "pending" else None,
        "attempts": [
            {
                "at": timestamp(attempt.at_us),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
            }
            for attempt in delivery.attempts
        ],
    }


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body in the core's names (`source` is a list of providers: `sources`; `group`
    is `group_by`)."""
    fields = {name: value for name, value in body.items() if name not in ("source", "group")}
    if "source" in body:
        fields["sources"] = body["source"]
    if "group" in body:
        fields["group_by"] = body["group"]
    return fields


def _shown(
    service: Service, base_url: str, shown: Shown, status: int = 200, **headers: str
) -> ConnexionResponse:
    body = search_json(service.searches, base_url, shown.search, shown.webhook_secret)
    return json_reply(body, status=status, headers=headers or None)


def create_search(
    service: Service, base_url: str, token_info: dict[str, Any], body: dict[str, Any]
) -> ConnexionResponse:
    shown = service.searches.create(token_info["key"], _fields(body))
    return _shown(service, base_url, shown, 201, Location=f"/searches/{shown.search.id}")


def list_searches(service: Service, base_url: str, token_info: dict[str, Any]) -> ConnexionResponse:
    searches = service.searches
    found = searches.visible(token_info["key"])
    return json_reply(
        {"count": len(found), "searches": [search_json(searches, base_url, s) for s in found]}
    )


def get_search(
    service: Service, base_url: str, token_info: dict[str, Any], search_id: int
) -> ConnexionResponse:
    searches = service.searches
    return json_reply(search_json(searches, base_url, searches.get(token_info["key"], search_id)))


def update_search(
    service: Service,
    base_url: str,
    token_info: dict[str, Any],
    search_id: int,
    body: dict[str, Any],
) -> ConnexionResponse:
    return _shown(
        service, base_url, service.searches.update(token_info["key"], search_id, _fields(body))
    )


def delete_search(
    service: Service, token_info: dict[str, Any], search_id: int
) -> ConnexionResponse:
    service.searches.delete(token_info["key"], search_id)
    return ConnexionResponse(status_code=204)


async def list_search_articles(
    service: Service,
    renderings: RenderMemo,
    if_none_match: str | None,
    token_info: dict[str, Any],
    search_id: int,
    limit: int = 20,
    cursor: str | None = None,
    sort: Sort = "published",
) -> ConnexionResponse:
    """The search run as GET /articles would run it, on the owner's budget share."""
    searches, key = service.searches, token_info["key"]
    search = await without_blocking(service.store, searches.get, key, search_id)
    owner = Caller(key.id, key.tier)
    page = await service.feed.page(searches.request(search, limit, cursor, sort), owner)
    body, etag = renderings.get(page.key, lambda: render_page(page))
    return cacheable_reply(body, etag, int(service.settings.cache_ttl), if_none_match)


def list_search_deliveries(
    service: Service, token_info: dict[str, Any], search_id: int, limit: int = 20
) -> ConnexionResponse:
    found = service.searches.deliveries(token_info["key"], search_id, limit)
    return json_reply({"count": len(found), "deliveries": [delivery_json(d) for d in found]})


def rotate_webhook_secret(
    service: Service, base_url: str, token_info: dict[str, Any], search_id: int
) -> ConnexionResponse:
    return _shown(service, base_url, service.searches.rotate_secret(token_info["key"], search_id))


def ping_webhook(service: Service, token_info: dict[str, Any], search_id: int) -> ConnexionResponse:
    queued = service.searches.ping(token_info["key"], search_id)
    return json_reply(delivery_json(queued), status=202)


def rotate_feed_token(
    service: Service, base_url: str, token_info: dict[str, Any], search_id: int
) -> ConnexionResponse:
    return _shown(
        service, base_url, service.searches.rotate_feed_token(token_info["key"], search_id)
    )
