"""GET /feeds/{search_id}: a saved search as an Atom or JSON feed, read with its token.

No API key (feed readers cannot send one): the token in the URL stands for this one
search, read-only. The page comes from the archive alone, so a reader polling it spends
no upstream call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

from connexion.lifecycle import ConnexionResponse

from edge.feeds import ATOM, FeedPage, negotiate, render_atom, render_json_feed, tag_authority
from edge.replies import cacheable_reply, weak_etag
from newsagg.service import Service
from newsagg.store import without_blocking

FEED_PAGE = 50


async def get_feed(
    service: Service,
    if_none_match: str | None,
    accept: str | None,
    base_url: str,
    search_id: int,
    token: str,
    format_: str | None = None,
    cursor: str | None = None,
) -> ConnexionResponse:
    searches = service.searches
    search, _owner = await without_blocking(
        service.store, searches.by_token, search_id, token, f"/feeds/{search_id}"
    )
    page = await service.feed.archived(searches.request(search, FEED_PAGE, cursor))
    media_type = negotiate(format_, accept)
    base = f"{base_url}/feeds/{search_id}"

    def url(page_cursor: str | None) -> str:
        query = {"token": token, "format": format_, "cursor": page_cursor}
        return f"{base}?{urlencode({k: v for k, v in query.items() if v})}"

    articles = [json.loads(item.json) for item in page.items]  # its story among the fields
    newest = max((item.article.published_at for item in page.items), default=None)
    feed = FeedPage(
        authority=tag_authority(base_url, service.installed_on),
        search_id=search.id,
        title=search.name,
        self_url=url(cursor),
        alternate_url=None,
        next_url=url(page.next_cursor) if page.next_cursor else None,
        articles=articles,
        updated=newest or datetime.fromtimestamp(search.updated_us / 1e6, UTC),
    )
    body = render_atom(feed) if media_type == ATOM else render_json_feed(feed)
    max_age = int(service.settings.cache_ttl)
    return cacheable_reply(body, weak_etag(body), max_age, if_none_match, media_type)
