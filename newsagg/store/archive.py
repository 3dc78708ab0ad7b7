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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

from newsagg.query.analysis import Analyzer
from newsagg.query.syntax import Node
from newsagg.query.upstream import answer_key
from newsagg.store.dialect import Connection, scans
from newsagg.store.migrations import NEWEST_ARTICLE_ID, TEXT_FIELDS
from newsagg.store.stories import Arrival
from newsagg.store.story_upkeep import StoryUpkeep
from newsagg.stories.model import StoryRef, story_ref

Sort = Literal["published", "relevance"]


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
    # Set by the store before its statements are built (Archive.analysed): `match` then
    # holds stems (Analyzer.query), and `answer` the key of the upstream answers that count
    # as matches (newsagg.query.upstream.answer_key), if any can.
    answer: str | None = None


class ArticleRecord(NamedTuple):
    """An article to save: (canonical url, rank, public fields), and its body text."""

    url: str
    rank: int
    data: dict[str, Any]
    body: str | None = None  # searched, never shown
    body_for_us: int | None = None  # how long the body stays; None: as long as the article


@dataclass(frozen=True, slots=True)
class Answer:
    """The articles of a save are `provider`'s answer to the query of `key`."""

    provider: str
    key: str


@dataclass(frozen=True, slots=True)
class NewArticle:
    """An archived article as the matcher reads it."""

    id: int
    data: str  # its public JSON without the id
    title: str | None
    description: str | None
    category: str | None
    source: str | None
    body: str | None = None
    story: StoryRef | None = None
    answers: frozenset[str] = frozenset()  # keys of the queries an upstream answered with it


class IndexedText(NamedTuple):
    """What an article's entry in the full-text index is made of."""

    title: str | None
    description: str | None
    body: str | None
    answers: tuple[str, ...]  # answer keys, sorted


@dataclass(frozen=True, slots=True)
class ArchivedRow:
    id: int
    position: float  # what the order sorts by: published_us, or the relevance score
    data: str  # the article's public JSON, without its id
    horizon: tuple[int, int] | None = None  # sort=relevance: what its page was ranked within
    story: StoryRef | None = None


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
# the archive migration made; published_us and the body follow them, then body_until_us).
COLUMNS = TEXT_FIELDS
# An upsert replaces these with the better-ranked record's (added_us keeps the first time).
UPDATED = ("rank", "data", *COLUMNS, "published_us", "body", "body_until_us")


def column_values(record: ArticleRecord) -> tuple[object, ...]:
    """The column values of an article: COLUMNS, published_us and body (body_until_us is
    the store's clock plus `record.body_for_us`)."""
    published = datetime.fromisoformat(str(record.data["published_at"]))
    return (*(record.data.get(name) for name in COLUMNS), to_us(published), record.body)


def arrivals(
    batch: Sequence[ArticleRecord], ids: Mapping[str, int], urls: Collection[str]
) -> list[Arrival]:
    """The articles of a save at `urls`, each as the record the upsert kept for it (the
    best-ranked; of equals, the last)."""
    chosen: dict[str, ArticleRecord] = {}
    for record in batch:
        held = chosen.get(record.url)
        if record.url in urls and (held is None or record.rank <= held.rank):
            chosen[record.url] = record
    return [
        Arrival.of(ids[url], record.rank, record.data, column_values(record)[len(COLUMNS)])
        for url, record in chosen.items()
    ]


def upsert_set(extra: tuple[str, ...] = ()) -> str:
    """The SET list of the upsert: the better-ranked record replaces the kept one."""
    return ", ".join(f"{name} = excluded.{name}" for name in (*UPDATED, *extra))


# When the upsert replaces the kept record: by one of equal or better rank, unless it is the
# same record (a story seen again, unchanged: every column derives from `data` and the
# body), which then writes nothing (no dead row on PostgreSQL, no full-text delete and
# re-insert on SQLite). A body seen again unchanged keeps the time it leaves at.
UPSERT_WHEN = (
    "excluded.rank <= articles.rank"
    " AND (excluded.data <> articles.data OR excluded.body IS DISTINCT FROM articles.body)"
)
# The index's analyzer is recorded here (table `meta`): an index made by another cannot be
# searched with this one's terms, nor, on SQLite, have its entries removed.
INDEX_IDENTITY = "search_index"
IN_LIST = 500  # ids per `IN (...)` list


class Archive(StoryUpkeep):
    """The archive's reads and deletions alike on both engines; saving, searching and
    writing the full-text index are each engine's own (newsagg.store.sqlite,
    newsagg.store.postgres)."""

    analyzer: Analyzer

    def analysed(self, query: ArchiveQuery) -> ArchiveQuery:
        """`query` as the engines' statements read it: its match as stems, the key of the
        upstream answers that count."""
        if query.match is None:
            return query
        return replace(
            query, match=self.analyzer.query(query.match), answer=answer_key(query.match)
        )

    @scans
    def search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        """The rows of a search, each with its story."""
        rows = self._search(self.analysed(query))
        stories = self.story_refs([row.id for row in rows])
        return [replace(row, story=stories.get(row.id)) for row in rows]

    @scans
    def stories_found(self, query: ArchiveQuery) -> list[int]:
        """The ids of the stories of a search's rows, without the rows (GET /stories)."""
        ids = [row.id for row in self._search(self.analysed(query))]
        found: set[int] = set()
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            found.update(
                row[0]
                for row in self.db.read(
                    "SELECT DISTINCT story_id FROM story_members WHERE article_id IN"
                    f" ({', '.join([self.db.param] * len(part))})",
                    part,
                )
            )
        return sorted(found)

    def _search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        """The rows of an analysed search (the engine's own)."""
        raise NotImplementedError

    def _rewrite_index(
        self, db: Connection, ids: Iterable[int], old: Mapping[int, IndexedText]
    ) -> None:
        """The index entries of articles `ids` made anew from what they now hold (`old`:
        what those already indexed held before)."""
        raise NotImplementedError

    def _unindex(self, db: Connection, ids: Sequence[int]) -> None:
        """Articles `ids`, about to be deleted, leave the index."""
        raise NotImplementedError

    def _texts(self, db: Connection, ids: Iterable[int]) -> dict[int, IndexedText]:
        """What the index entries of articles `ids` are made of, as the database holds it."""
        found: dict[int, IndexedText] = {}
        ids = list(ids)
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            marks = ", ".join([self.db.param] * len(part))
            answers: dict[int, list[str]] = {}
            for article_id, key in db.execute(
                "SELECT DISTINCT article_id, answer_key FROM upstream_answers"
                f" WHERE article_id IN ({marks}) ORDER BY article_id, answer_key",
                part,
            ).fetchall():
                answers.setdefault(article_id, []).append(key)
            for article_id, title, description, body in db.execute(
                f"SELECT id, title, description, body FROM articles WHERE id IN ({marks})", part
            ).fetchall():
                found[article_id] = IndexedText(
                    title, description, body, tuple(answers.get(article_id, ()))
                )
        return found

    def _answered(self, db: Connection, ids: Sequence[int], answer: Answer | None) -> list[int]:
        """Record articles `ids` as `answer`; those it is new for (their index entries are
        then made anew: one another provider already answered the same query with is
        rewritten as it was)."""
        if answer is None:
            return []
        p, new = self.db.param, []
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            new += [
                row[0]
                for row in db.execute(
                    "INSERT INTO upstream_answers(article_id, provider, answer_key) VALUES "
                    + ", ".join([f"({p}, {p}, {p})"] * len(part))
                    + " ON CONFLICT DO NOTHING RETURNING article_id",
                    [
                        value
                        for article_id in part
                        for value in (article_id, answer.provider, answer.key)
                    ],
                ).fetchall()
            ]
        return list(dict.fromkeys(new))

    def expire_bodies(self, limit: int) -> int:
        """Body texts past their time leave the index and the database, at most `limit`
        of them; how many left."""
        p = self.db.param
        with self.db.transaction() as db:
            self.db.take_turns(db, None)
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM articles WHERE body_until_us IS NOT NULL AND body_until_us"
                    f" <= {self.db.now} ORDER BY body_until_us LIMIT {p}",
                    (limit,),
                ).fetchall()
            ]
            if ids:
                old = self._texts(db, ids)
                db.execute(
                    "UPDATE articles SET body = NULL, body_until_us = NULL"
                    f" WHERE id IN ({', '.join([p] * len(ids))})",
                    ids,
                )
                self._rewrite_index(db, ids, old)
            return len(ids)

    def articles_after(self, article_id: int, limit: int) -> list[NewArticle]:
        """The archived articles with an id above `article_id`, in id (arrival) order."""
        p = self.db.param
        rows = self.db.read(
            "SELECT a.id, a.data, a.title, a.description, a.category, a.source, a.body,"
            " s.id, s.size, s.publishers, s.providers FROM articles a"
            " LEFT JOIN story_members m ON m.article_id = a.id LEFT JOIN stories s"
            f" ON s.id = m.story_id WHERE a.id > {p} ORDER BY a.id LIMIT {p}",
            (article_id, limit),
        )
        if not rows:
            return []
        answers: dict[int, set[str]] = {}
        for answered, key in self.db.read(
            "SELECT article_id, answer_key FROM upstream_answers"
            f" WHERE article_id BETWEEN {p} AND {p}",
            (rows[0][0], rows[-1][0]),
        ):
            answers.setdefault(answered, set()).add(key)
        return [
            NewArticle(*row[:7], story_ref(*row[7:]), frozenset(answers.get(row[0], ())))
            for row in rows
        ]

    def index_identity(self) -> str | None:
        """The analyzer the archive's full-text index was made with (Analyzer.identity)."""
        rows = self.db.read(
            f"SELECT value FROM meta WHERE name = {self.db.param}", (INDEX_IDENTITY,)
        )
        return rows[0][0] if rows else None

    def _record_identity(self, db: Connection) -> None:
        p = self.db.param
        db.execute(f"DELETE FROM meta WHERE name = {p}", (INDEX_IDENTITY,))
        db.execute(
            f"INSERT INTO meta(name, value) VALUES ({p}, {p})",
            (INDEX_IDENTITY, self.analyzer.identity),
        )

    def article(self, article_id: int) -> dict[str, Any] | None:
        """An article's public fields without its id, its story among them."""
        rows = self.db.read(
            "SELECT a.data, s.id, s.size, s.publishers, s.providers FROM articles a"
            " LEFT JOIN story_members m ON m.article_id = a.id LEFT JOIN stories s"
            f" ON s.id = m.story_id WHERE a.id = {self.db.param}",
            (article_id,),
        )
        if not rows:
            return None
        fields, story = json.loads(rows[0][0]), story_ref(*rows[0][1:])
        return {**fields, "story": None if story is None else story.public()}

    def prune_articles(self, published_before: datetime) -> int:
        """Forget the articles published before then; answer how many."""
        p, before = self.db.param, to_us(published_before)
        with self.db.transaction() as db:
            self.db.take_turns(db, None)
            doomed = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM articles WHERE published_us < {p}", (before,)
                ).fetchall()
            ]
            if not doomed:
                return 0
            self._unindex(db, doomed)
            # Their matches first: a stream or a feed never points at a missing article.
            for table in ("search_matches", "upstream_answers"):
                db.execute(
                    f"DELETE FROM {table} WHERE article_id IN"
                    f" (SELECT id FROM articles WHERE published_us < {p})",
                    (before,),
                )
            gone = db.execute(f"DELETE FROM articles WHERE published_us < {p}", (before,)).rowcount
            self._prune_stories(db, before)
            return gone

    def newest_article_id(self) -> int:
        """The highest article id (0 when the archive is empty): ids above it are new."""
        return self.db.read(NEWEST_ARTICLE_ID)[0][0]
