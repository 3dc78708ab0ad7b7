"""GET /searches/{search_id}/events: a saved search's matches as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from connexion.exceptions import Unauthorized
from starlette.responses import StreamingResponse

from newsagg.articles import archived_json
from newsagg.push.stream import RETRY_MS
from newsagg.service import Service
from newsagg.store import without_blocking
from newsagg.stories.model import StoryRef


async def stream_search_events(
    service: Service,
    search_id: int,
    last_event_id: str | None,
    token_info: dict[str, Any] | None = None,
    token: str | None = None,
) -> StreamingResponse:
    """One `article` event per match (its id the match's), heartbeat comments, and an end
    after NEWSAGG_STREAM_SECONDS, when EventSource reconnects with Last-Event-ID. Opened
    with the owner's key, or with the search's token (`events_url`: a browser's
    EventSource sends no header). A key holds at most NEWSAGG_STREAM_LIMIT_<TIER> streams
    at once (429 past it), those opened with its searches' tokens included."""
    seconds, searches = service.settings.stream_seconds, service.searches
    if token_info:  # empty when no key was sent (the security alternative `{}`)
        key = token_info["key"]
        await without_blocking(service.store, searches.get, key, search_id)
    elif token is not None:
        path = f"/searches/{search_id}/events"
        _search, key = await without_blocking(
            service.store, searches.by_token, search_id, token, path
        )
    else:
        raise Unauthorized(
            detail="A valid API key is required, or the `token` of the search's `events_url`."
        )
    slot = service.hub.admit(key.id, service.settings.stream_limit(key.tier), seconds)
    try:
        if last_event_id:  # digits only: Connexion checked it against the contract
            after = int(last_event_id)
        else:  # from the next match on, fixed now: the answer starts before the stream does
            after = await without_blocking(service.store, service.store.newest_match_id)
    except BaseException:
        slot.release()
        raise
    matches = service.hub.stream(search_id, after, seconds, slot=slot)
    service.metrics.event_streams.inc()
    return StreamingResponse(
        _events(matches),
        media_type="text/event-stream",
        # no-cache: each connection is new; X-Accel-Buffering: nginx passes events at once.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    matches: AsyncIterator[tuple[int, int, str, StoryRef | None] | None],
) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % RETRY_MS
    async for match in matches:
        if match is None:
            yield b": keep-alive\n\n"
            continue
        match_id, article_id, data, story = match
        # One line: the archive's JSON has no raw newline (json escapes it).
        article = archived_json(article_id, data, story)
        yield b"id: %d\nevent: article\ndata: %s\n\n" % (match_id, article)
