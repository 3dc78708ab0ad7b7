"""The archive's reads, written once for both stores: one search, rendered per dialect.

A search filters on the article columns (category, provider, published window), matches
the query tree against the full-text index (SQLite FTS5, PostgreSQL `tsvector`), and
orders newest first or by relevance, resuming after a keyset position so that pages stay
put while articles arrive. The user's text reaches the engine only as a bound parameter
rendered from the parsed tree, never spliced into SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from newsagg.archive.query import Node, to_fts5, to_tsquery
from newsagg.store.migrations import TEXT_FIELDS

Sort = Literal["published", "relevance"]
Dialect = Literal["sqlite", "postgres"]

# Relevance weighs a title match above one in the description: FTS5's bm25 by column
# weights (title, description); PostgreSQL's ts_rank by the A/B labels of the tsvector.
SCORE = {
    "sqlite": "-bm25(articles_fts, 2.0, 1.0)",  # bm25 is lower for better matches
    # float8: a float4 read back as text is not the same number, and keyset pages compare it
    "postgres": "ts_rank(a.search, tsq)::float8",
}


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


@dataclass(frozen=True, slots=True)
class ArchivedRow:
    id: int
    position: float  # what the order sorts by: published_us, or the relevance score
    data: str  # the article's public JSON, without its id


def to_us(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


# SQLite, newest first with a match: a try checks only the newest articles that pass the
# other filters against the full-text index (see search_sql's `window`); a try that fills
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
# SQLite, by relevance: the best this many matches by score are joined to their articles
# first; if the other filters leave a full page of them, that page is the answer.
RANKED_WINDOW = 1_000


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


def search_sql(
    query: ArchiveQuery, dialect: Dialect, window: int | None = None, collect: bool = False
) -> tuple[str, list[object]]:
    """The statement and its parameters: at most `limit` rows, in order.

    `window` (sort=published with a match only): check just the `window` newest articles
    that pass the other filters (SQLite: reading the full-text index only over their id
    range; PostgreSQL: `@@` on each of them, in the LIMITed subquery's order), instead of
    collecting every match and sorting it (a word in 30 % of a million articles: 300,000
    rows looked up for 20). Exact whenever it returns `limit` rows: every match outside
    the window is older than all of them. Fewer: ask again.

    `collect` (PostgreSQL, sort=published): after a window that did not fill, collect every
    match from the GIN index and sort them, instead of letting the planner walk the date
    index newest first re-checking each article (a phrase: GIN cannot check positions, so
    the planner's guess is far off and it discards 100,000s of articles); the same rows."""
    mark = "?" if dialect == "sqlite" else "%s"
    joins, params = "", []
    where = ["a.published_us IS NOT NULL"]
    if query.match is not None:
        if dialect == "sqlite":
            joins = " JOIN articles_fts ON articles_fts.rowid = a.id"
            where.append(f"articles_fts MATCH {mark}")
            params.append(to_fts5(query.match))
        else:
            joins = f" CROSS JOIN to_tsquery('simple', {mark}) AS tsq"
            where.append("a.search @@ tsq")
            params.insert(0, to_tsquery(query.match))
    if query.category is not None:
        where.append(f"a.category = {mark}")
        params.append(query.category)
    if query.sources:
        where.append(f"a.source IN ({', '.join([mark] * len(query.sources))})")
        params.extend(query.sources)
    if query.published_from is not None:
        where.append(f"a.published_us >= {mark}")
        params.append(to_us(query.published_from))
    if query.published_to is not None:
        where.append(f"a.published_us <= {mark}")
        params.append(to_us(query.published_to))
    if query.sort == "relevance" and query.match is not None and window is not None:
        if dialect != "sqlite":
            raise ValueError("a window is SQLite's")
        # The best `window` matches by score from the full-text index alone, then their
        # articles and the other filters: no article is read for the other matches.
        match = params.pop(0)
        where.remove(f"articles_fts MATCH {mark}")
        keyset = ""
        if query.after is not None:
            keyset = " WHERE (s.position, s.id) < (?, ?)"
        top = (
            f"SELECT s.id, s.position FROM (SELECT rowid AS id, {SCORE[dialect]} AS position"
            f" FROM articles_fts WHERE articles_fts MATCH ?) AS s{keyset}"
            f" ORDER BY s.position DESC, s.id DESC LIMIT {int(window)}"
        )
        sql = (
            f"WITH top AS ({top}) SELECT a.id, top.position, a.data FROM top"
            f" JOIN articles a ON a.id = top.id WHERE {' AND '.join(where)}"
            " ORDER BY top.position DESC, top.id DESC LIMIT ?"
        )
        return sql, [match, *(query.after or ()), *params, query.limit]
    if query.sort == "relevance" and query.match is not None:
        inner = (
            f"SELECT a.id, {SCORE[dialect]} AS position, a.data FROM articles a{joins}"
            f" WHERE {' AND '.join(where)}"
        )
        keyset = ""
        if query.after is not None:
            keyset = f" WHERE (ranked.position, ranked.id) < ({mark}, {mark})"
            params.extend(query.after)
        sql = (
            f"SELECT ranked.id, ranked.position, ranked.data FROM ({inner}) AS ranked{keyset}"
            f" ORDER BY ranked.position DESC, ranked.id DESC LIMIT {mark}"
        )
    else:
        if query.after is not None:
            where.append(f"(a.published_us, a.id) < ({mark}, {mark})")
            params.extend((int(query.after[0]), query.after[1]))
        if window is not None and dialect == "postgres" and query.match is not None:
            # Only articles at least as new as the `window`-th newest that passes the other
            # filters (found by an index-only scan of the (category,) published_us index);
            # every article of that date or newer is a prefix of the order, so the page it
            # fills is exact. The planner may walk the date index or intersect the GIN
            # index with the date range: either way at most `window` articles are read.
            others = [condition for condition in where if condition != "a.search @@ tsq"]
            bound = (
                f"SELECT a.published_us FROM articles a WHERE {' AND '.join(others)}"
                f" ORDER BY a.published_us DESC, a.id DESC OFFSET {int(window) - 1} LIMIT 1"
            )
            bound_params = params[1:]
            sql = (
                f"SELECT a.id, a.published_us, a.data FROM articles a{joins}"
                f" WHERE {' AND '.join(where)} AND a.published_us >= ({bound})"
                f" ORDER BY a.published_us DESC, a.id DESC LIMIT {mark}"
            )
            return sql, [*params, *bound_params, query.limit]
        if window is not None and dialect == "sqlite" and query.match is not None:
            # The MATCH moves from the join into the IN list; the other filters pick the
            # window from the (category,) published_us index, newest first.
            match = params.pop(0)
            where.remove(f"articles_fts MATCH {mark}")
            sql = (
                f"WITH c AS (SELECT a.id, a.published_us FROM articles a"
                f" WHERE {' AND '.join(where)}"
                f" ORDER BY a.published_us DESC, a.id DESC LIMIT {int(window)})"
                " SELECT a.id, a.published_us, a.data FROM c JOIN articles a ON a.id = c.id"
                " WHERE c.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
                " AND rowid BETWEEN (SELECT min(id) FROM c) AND (SELECT max(id) FROM c))"
                " ORDER BY c.published_us DESC, c.id DESC LIMIT ?"
            )
            return sql, [*params, match, query.limit]
        # `+ 0`: an order no index provides, so the planner collects the matches first.
        order = "a.published_us + 0" if collect and dialect == "postgres" else "a.published_us"
        sql = (
            f"SELECT a.id, a.published_us, a.data FROM articles a{joins}"
            f" WHERE {' AND '.join(where)}"
            f" ORDER BY {order} DESC, a.id DESC LIMIT {mark}"
        )
    params.append(query.limit)
    return sql, params


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
