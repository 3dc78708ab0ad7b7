"""The archive: what a search asks and answers, how large its newest-first tries are, the
columns an article is saved with, and the reads and deletions alike on both engines.

A search filters on the article columns (category, provider, published window), matches
the query tree against the full-text index (SQLite FTS5, PostgreSQL `tsvector`), and
orders newest first or by relevance, resuming after a keyset position so that pages stay
put while articles arrive. Its statements: newsagg.store.archive_sql; newest first, each
engine's tries: newsagg.store.sqlite, newsagg.store.postgres; by relevance, the same on
both: newsagg.store.relevance.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from newsagg.query.syntax import Node
from newsagg.store.dialect import Repository
from newsagg.store.migrations import TEXT_FIELDS

Sort = Literal["published", "relevance"]
# The newest article id (0 for an empty archive): ids above it are new.
NEWEST_ARTICLE_ID = "SELECT COALESCE(MAX(id), 0) FROM articles"


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """What a search asks of the archive, in the archive's own terms."""

    match: Node | None = None
    category: str | None = None
    sources: tuple[str, ...] = ()  # empty: every provider
    published_from: datetime | None = None  # aware, inclusive
    published_to: datetime | None = None  # aware, inclusive
    sort: Sort = "published"
    after: tuple[float, int] | None = None  # keyset: (sort value, id) of the last row served
    limit: int = 20
    # sort=relevance: (published_us, id) of the oldest article ranked, as the first page
    # chose it (ranked_search); None on a first page.
    horizon: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ArchivedRow:
    id: int
    position: float  # what the order sorts by: published_us, or the relevance score
    data: str  # the article's public JSON, without its id
    horizon: tuple[int, int] | None = None  # sort=relevance: what its page was ranked within


def to_us(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


# SQLite, newest first with a match: a try checks only the newest articles that pass the
# other filters against the full-text index (archive_sql.fts5_window_sql); a try that fills
# the page is the answer, else every match is collected and sorted. What each costs, on a
# million articles (bench/archive.py): ~1 µs an article of a window, ~4.6 µs a match
# collected. How many match is counted first (up to COUNT_CAP: past that a word is frequent
# enough for the smallest window), and the windows are sized from it.
WINDOW_US_PER_ARTICLE = 1.0
COLLECT_US_PER_MATCH = 4.6
COUNT_CAP = 10_000
WINDOW_SLACK = 2  # a window expected to hold 2 pages of matches: one holding less is rare
MAX_WINDOW = 50_000
# PostgreSQL, newest first: the same, each try one statement checking `@@` on the window.
# GIN gives no cheap count, so the first window's yield sizes the second (next_window).
PG_FIRST_WINDOW = 5_000


def windows_for(matches: int, articles: int, limit: int) -> tuple[int, ...]:
    """SQLite, newest first: the windows to try, smallest first, before collecting every
    match: one expected to hold WINDOW_SLACK pages, then the largest; those that cost less
    than collecting the `matches` (of about `articles`).

    Matches are assumed spread evenly over the articles (a window that misses, as with a
    word rare in the category asked for, costs a try, never a wrong answer). Counted up to
    COUNT_CAP, beyond which collecting is never the cheaper way."""
    collect_us = float("inf") if matches >= COUNT_CAP else matches * COLLECT_US_PER_MATCH
    first = max(limit, math.ceil(WINDOW_SLACK * limit * articles / max(matches, 1)))
    tries = (first, MAX_WINDOW) if first < MAX_WINDOW else (MAX_WINDOW,)
    return tuple(window for window in tries if window * WINDOW_US_PER_ARTICLE < collect_us)


def next_window(limit: int, window: int, found: int) -> int | None:
    """PostgreSQL, newest first: after a `window` held `found` matches (fewer than `limit`),
    one expected to hold WINDOW_SLACK pages; None when that is past MAX_WINDOW or nothing
    was found: the matches are then few, and collecting them costs less (on a million
    articles a 50,000 window took 6-33 ms, collecting 2-136 ms, growing with the matches)."""
    if not found:
        return None
    size = math.ceil(WINDOW_SLACK * limit * window / found)
    return size if size <= MAX_WINDOW else None


# What an article saves besides its url, rank and JSON, in this order (the text columns
# the archive migration made; published_us follows them).
COLUMNS = TEXT_FIELDS
# An upsert replaces these with the better-ranked record's (added_us keeps the first time).
UPDATED = ("rank", "data", *COLUMNS, "published_us")


def column_values(data: dict[str, object]) -> tuple[object, ...]:
    """The column values of an article's public fields: COLUMNS, then published_us."""
    published = datetime.fromisoformat(str(data["published_at"]))
    return (*(data.get(name) for name in COLUMNS), to_us(published))


def upsert_set(extra: tuple[str, ...] = ()) -> str:
    """The SET list of the upsert: the better-ranked record replaces the kept one."""
    return ", ".join(f"{name} = excluded.{name}" for name in (*UPDATED, *extra))


# When the upsert replaces the kept record: by one of equal or better rank, unless it is the
# same record (a story seen again, unchanged: every column derives from `data`), which then
# writes nothing (no dead row on PostgreSQL, no full-text delete and re-insert on SQLite).
UPSERT_WHEN = "excluded.rank <= articles.rank AND excluded.data <> articles.data"


class Archive(Repository):
    """The archive's reads and deletions alike on both engines; saving and searching are
    each engine's own (newsagg.store.sqlite, newsagg.store.postgres)."""

    def article(self, article_id: int) -> dict[str, Any] | None:
        rows = self.db.read(f"SELECT data FROM articles WHERE id = {self.db.param}", (article_id,))
        return json.loads(rows[0][0]) if rows else None

    def prune_articles(self, published_before: datetime) -> int:
        """Forget the articles published before then; answer how many."""
        p, before = self.db.param, to_us(published_before)
        with self.db.transaction() as db:
            # Their matches first: a stream or a feed never points at a missing article.
            db.execute(
                "DELETE FROM search_matches WHERE article_id IN"
                f" (SELECT id FROM articles WHERE published_us < {p})",
                (before,),
            )
            return db.execute(f"DELETE FROM articles WHERE published_us < {p}", (before,)).rowcount

    def newest_article_id(self) -> int:
        """The highest article id (0 when the archive is empty): ids above it are new."""
        return self.db.read(NEWEST_ARTICLE_ID)[0][0]
