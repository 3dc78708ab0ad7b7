"""What GET /stories and GET /stories/{story_id} answer: stories ranked by coverage and
recency, or by their last article; one story with its articles, page by page.

The stories listed are those of the newest SCAN_ARTICLES articles that pass the request's
filters (q, category, source, from, to): a story is in the list when one of its articles
passes them. Ranked:
- `trending` (the default): score = coverage / (age_hours + 2) ** GRAVITY, where coverage
  = distinct publishers + distinct providers - 1 (a single article scores 1; each other
  outlet and each other provider carrying the story adds 1), age_hours = hours from the
  story's last article to the moment the first page was ranked, and GRAVITY = 1.8 (Hacker
  News's). A story keeps trending while outlets keep reporting it.
- `newest`: by the story's last article.
Every page of one listing ranks at the instant its first page was ranked (the cursor
holds it), so scores do not drift between pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from newsagg.articles import FeedItem
from newsagg.cursor import CursorCodec, InvalidCursor, Position
from newsagg.errors import InvalidInput
from newsagg.request import FeedRequest
from newsagg.store import Store
from newsagg.store.archive import ArchiveQuery
from newsagg.stories.model import StoryRecord

StorySort = Literal["trending", "newest"]
GRAVITY = 1.8
HOUR_US = 3_600_000_000
SCAN_ARTICLES = 1_000  # the newest articles passing the filters that stories are drawn from
MEMBERS_SHOWN = 3  # articles shown with each story of a list


def trending_score(story: StoryRecord, now_us: int) -> float:
    coverage = story.publishers + len(story.providers) - 1
    age_hours = max(0.0, (now_us - story.last_us) / HOUR_US)
    return max(coverage, 1) / (age_hours + 2) ** GRAVITY


@dataclass(frozen=True, slots=True)
class ListedStory:
    story: StoryRecord
    articles: list[FeedItem]  # its newest MEMBERS_SHOWN, or a page of them


@dataclass(frozen=True, slots=True)
class StoryList:
    stories: list[ListedStory]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StoryArticles:
    story: StoryRecord
    articles: list[FeedItem]
    next_cursor: str | None


class StoryBook:
    """The stories of the archive, as clients read them."""

    def __init__(self, store: Store, cursors: CursorCodec) -> None:
        self._store = store
        self._cursors = cursors

    def list(self, request: FeedRequest, sort: StorySort) -> StoryList:
        """A page of stories whose articles pass `request`'s filters. Raises InvalidInput
        for a cursor of another listing."""
        fingerprint = f"stories:{sort}:{request.fingerprint()}"
        after = self._position(request.cursor, fingerprint)
        now_us = after.horizon[0] if after and after.horizon else time.time_ns() // 1000
        story_ids = self._store.stories_found(
            ArchiveQuery(
                match=request.match,
                category=request.query.category,
                sources=request.archive_query(None).sources,
                published_from=request.query.published_from,
                published_to=request.query.published_to,
                limit=SCAN_ARTICLES,
            )
        )
        stories = self._store.stories_by_id(story_ids)

        def position(story: StoryRecord) -> float:
            return trending_score(story, now_us) if sort == "trending" else story.last_us

        ranked = sorted(stories.values(), key=lambda s: (position(s), s.id), reverse=True)
        if after is not None:
            ranked = [s for s in ranked if (position(s), s.id) < (after.value, after.article_id)]
        page = ranked[: request.limit]
        members = self._store.stories_members([s.id for s in page], MEMBERS_SHOWN)
        next_cursor = None
        if len(ranked) > request.limit:
            last = page[-1]
            next_cursor = self._cursors.encode(
                fingerprint, Position(position(last), last.id, (now_us, 0))
            )
        refs = {s.id: s.ref for s in page}
        return StoryList(
            [
                ListedStory(s, [FeedItem.archived(i, d, refs[s.id]) for i, d in members[s.id]])
                for s in page
            ],
            next_cursor,
        )

    def story(self, story_id: int, limit: int, cursor: str | None) -> StoryArticles | int | None:
        """One story with a page of its articles, newest first; the id of the story it was
        merged into; or None when there is no such story."""
        found = self._store.story(story_id)
        if not isinstance(found, StoryRecord):
            return found
        fingerprint = f"story:{story_id}"
        after = self._position(cursor, fingerprint)
        rows = self._store.story_articles(
            story_id, None if after is None else (int(after.value), after.article_id), limit + 1
        )
        next_cursor = None
        if len(rows) > limit:
            article_id, published_us, _ = rows[limit - 1]
            next_cursor = self._cursors.encode(fingerprint, Position(published_us, article_id))
        items = [FeedItem.archived(i, data, found.ref) for i, _, data in rows[:limit]]
        return StoryArticles(found, items, next_cursor)

    def _position(self, cursor: str | None, fingerprint: str) -> Position | None:
        if cursor is None:
            return None
        try:
            return self._cursors.decode(cursor, fingerprint)
        except InvalidCursor as exc:
            raise InvalidInput(f"cursor: {exc}") from None
