"""GET /stories and GET /stories/{story_id}.

Plain functions: the story book reads the store (a listing scans the newest articles),
so Connexion runs them off the event loop. Articles were serialised once when archived:
their JSON is only joined here, as GET /articles does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connexion.lifecycle import ConnexionResponse

from edge.replies import cacheable_reply, json_bytes, weak_etag
from newsagg.articles import FeedItem
from newsagg.errors import NotFound
from newsagg.request import FeedRequest
from newsagg.service import Service
from newsagg.stories.listing import StoryArticles, StorySort
from newsagg.stories.model import StoryRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_LIMIT = 20  # the spec's default for `limit`: left out of a redirect


def published_at(us: int) -> str:
    """A story's instant as articles write `published_at`: ISO 8601 in UTC, `+00:00`
    (exact to the microsecond: no float on the way)."""
    return (EPOCH + timedelta(microseconds=us)).isoformat()


def _story_fields(story: StoryRecord) -> bytes:
    """The story's own fields as a JSON object's members (no braces), `articles` aside."""
    fields = json_bytes(
        {
            "id": story.id,
            "title": story.title,
            "size": story.size,
            "publishers": story.publishers,
            "providers": list(story.providers),
            "first_published_at": published_at(story.first_us),
            "last_published_at": published_at(story.last_us),
        }
    )
    return fields[1:-1]


def _articles(items: list[FeedItem]) -> bytes:
    return b'"articles":[' + b",".join(item.json for item in items) + b"]"


def list_stories(
    service: Service,
    if_none_match: str | None,
    category: str | None = None,
    q: str | None = None,
    source: list[str] | None = None,
    from_: str | None = None,
    to: str | None = None,
    sort: StorySort = "trending",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ConnexionResponse:
    request = FeedRequest.parse(
        category=category,
        q=q,
        sources=source,
        published_from=from_,
        published_to=to,
        limit=limit,
        cursor=cursor,
    )
    listing = service.stories.list(request, sort)
    stories = b",".join(
        b"{" + _story_fields(listed.story) + b"," + _articles(listed.articles) + b"}"
        for listed in listing.stories
    )
    content = b'{"stories":[' + stories + b'],"count":%d' % len(listing.stories)
    body = content + b',"next_cursor":' + json_bytes(listing.next_cursor) + b"}"
    # The ETag leaves out the cursor's value: it holds the instant the page was ranked at,
    # new on every request. A client answered 304 keeps its page and its cursor, which
    # goes on with the ranking that page was made by.
    more = b"+" if listing.next_cursor is not None else b""
    return cacheable_reply(
        body, weak_etag(content + more), int(service.settings.cache_ttl), if_none_match
    )


def get_story(
    service: Service,
    if_none_match: str | None,
    story_id: int,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ConnexionResponse:
    found = service.stories.story(story_id, limit, cursor)
    if found is None:
        raise NotFound(f"No story with id {story_id}.")
    if not isinstance(found, StoryArticles):
        # Merged into story `found`: the same request there, but for the cursor, which
        # belongs to the story that gave it (the survivor's would refuse it).
        location = f"/stories/{found}" + ("" if limit == DEFAULT_LIMIT else f"?limit={limit}")
        return ConnexionResponse(status_code=308, headers={"Location": location})
    body = b"{%s,%s,%s}" % (
        _story_fields(found.story),
        _articles(found.articles),
        json_bytes({"count": len(found.articles), "next_cursor": found.next_cursor})[1:-1],
    )
    # A story's cursor is a plain position: the whole body is its content.
    return cacheable_reply(body, weak_etag(body), int(service.settings.cache_ttl), if_none_match)
