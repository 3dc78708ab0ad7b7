"""GET /searches/{search_id}/events: a saved search's matches as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from newsagg.articles import archived_json
from newsagg.push.stream import RETRY_MS
from newsagg.service import Service
from newsagg.store import without_blocking


async def stream_search_events(
    service: Service, token_info: dict[str, Any], search_id: int, last_event_id: str | None
) -> StreamingResponse:
    """One `article` event per match (its id the match's), heartbeat comments, and an end
    after NEWSAGG_STREAM_SECONDS, when EventSource reconnects with Last-Event-ID. A key
    holds at most NEWSAGG_STREAM_LIMIT_<TIER> streams at once (429 past it)."""
    key, seconds = token_info["key"], service.settings.stream_seconds
    await without_blocking(service.store, service.searches.get, key, search_id)
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


async def _events(matches: AsyncIterator[tuple[int, int, str] | None]) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % RETRY_MS
    async for match in matches:
        if match is None:
            yield b": keep-alive\n\n"
            continue
        match_id, article_id, data = match
        # One line: the archive's JSON has no raw newline (json escapes it).
        article = archived_json(article_id, data)
        yield b"id: %d\nevent: article\ndata: %s\n\n" % (match_id, article)
