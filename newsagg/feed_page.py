"""What the feed answers: one page of the archive, and each provider's report on its part
of the query."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from newsagg.articles import FeedItem
from newsagg.cursor import CursorCodec, Position
from newsagg.request import FeedRequest
from newsagg.store.archive import ArchivedRow
from providers.base import ProviderName, UpstreamError

SourceStatus = Literal["ok", "stale", "error", "skipped", "disabled"]
CacheStatus = Literal["hit", "miss", "stale"]


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: ProviderName
    status: SourceStatus
    article_count: int | None = None
    error: UpstreamError | None = None
    from_cache: bool = False


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: list[FeedItem]
    cache_status: CacheStatus
    next_cursor: str | None
    sources: list[SourceReport]
    # Identifies the page while the cached results it was made of last; None when any part
    # was fetched now or failed (such a page is not remembered).
    key: Hashable | None = None

    @classmethod
    def cut(
        cls,
        request: FeedRequest,
        reports: Sequence[SourceReport],
        rows: Sequence[ArchivedRow],
        cursors: CursorCodec,
        showing: Sequence[FeedItem] | None = None,
    ) -> FeedPage:
        """The page of the archive's `rows` (one more than the page, when another page
        follows), each report counting its provider's articles in it. `showing`: what each
        row shows, when not its own article (a story's best, grouped by story)."""
        if showing is None:
            showing = [FeedItem.archived(row.id, row.data, row.story) for row in rows]
        items = list(showing[: request.limit])
        next_cursor = None
        if len(rows) > request.limit:
            last = rows[request.limit - 1]
            next_cursor = cursors.encode(
                request.fingerprint(), Position(last.position, last.id, last.horizon)
            )
        counts = Counter(item.article.source for item in items)
        shown = [
            r if r.status in ("skipped", "disabled") else replace(r, article_count=counts[r.name])
            for r in reports
        ]
        return cls(items, overall_cache_status(shown), next_cursor, shown)


def overall_cache_status(reports: Sequence[SourceReport]) -> CacheStatus:
    """`stale` when a refresh was needed and could not be made, `miss` when one was made
    for this request, else `hit`."""
    if any(r.error is not None for r in reports):
        return "stale"
    if any(r.status == "ok" and not r.from_cache for r in reports):
        return "miss"
    return "hit"
