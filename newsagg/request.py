"""What a client asks of the feed: its values checked and parsed once (`FeedRequest.parse`),
in the terms the feed, the archive and the cursors use."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from newsagg.cursor import Position
from newsagg.errors import InvalidInput
from newsagg.query.syntax import Node, describe, parse
from newsagg.store.archive import ArchiveQuery, Sort
from providers.base import PROVIDER_NAMES, Category, ProviderName, Query
from providers.text import parse_timestamp

Group = Literal["story"]


def _instant(name: str, value: str | None) -> datetime | None:
    """A client's RFC 3339 date-time, which must carry its offset, as UTC."""
    if value is None:
        return None
    try:
        return parse_timestamp(value, require_offset=True)
    except ValueError:
        raise InvalidInput(
            f"{name}: {value!r} is not an RFC 3339 date-time such as 2026-11-25T08:00:00Z"
        ) from None


@dataclass(frozen=True, slots=True)
class FeedRequest:
    # q in canonical form (query.describe): equal searches share cache entries.
    query: Query
    sources: tuple[ProviderName, ...]  # the providers asked for, in PROVIDER_NAMES order
    limit: int
    cursor: str | None = None
    match: Node | None = None  # q parsed
    sort: Sort = "published"
    group: Group | None = None  # "story": one row per story (newsagg.stories.grouping)

    @classmethod
    def parse(
        cls,
        *,
        category: Category | None = None,
        q: str | None = None,
        sources: Iterable[str] | None = None,
        published_from: str | None = None,
        published_to: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        sort: Sort = "published",
        group: Group | None = None,
    ) -> FeedRequest:
        """A request from a client's values (already checked against the contract).
        Raises InvalidInput for a malformed q or a combination that means nothing."""
        start, end = _instant("from", published_from), _instant("to", published_to)
        if start and end and start > end:
            raise InvalidInput("from: must not be later than to")
        match = None if q is None else parse(q)
        if sort == "relevance" and match is None:
            raise InvalidInput("sort: relevance needs q, the words to rank by")
        if sort == "relevance" and group is not None:
            raise InvalidInput("group: stories are grouped newest first, not with sort=relevance")
        wanted = set(sources or PROVIDER_NAMES)
        return cls(
            Query(category, None if match is None else describe(match), start, end),
            tuple(name for name in PROVIDER_NAMES if name in wanted),
            limit,
            cursor,
            match,
            sort,
            group,
        )

    def archive_query(self, after: Position | None) -> ArchiveQuery:
        """The archive search of this request's page: one row more than the page, to know
        whether another follows."""
        q = self.query
        return ArchiveQuery(
            match=self.match,
            category=q.category,
            sources=() if len(self.sources) == len(PROVIDER_NAMES) else self.sources,
            published_from=q.published_from,
            published_to=q.published_to,
            sort=self.sort,
            after=None if after is None else (after.value, after.article_id),
            limit=self.limit + 1,
            horizon=None if after is None else after.horizon,
        )

    def fingerprint(self) -> str:
        q = self.query
        parts = [
            q.category,
            q.q,
            sorted(self.sources),
            q.published_from and q.published_from.isoformat(),
            q.published_to and q.published_to.isoformat(),
            self.sort,
            *([self.group] if self.group else []),  # a cursor of one way cannot page the other
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
