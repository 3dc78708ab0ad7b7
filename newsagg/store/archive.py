"""The archive's reads, written once for both stores: one search, rendered per dialect.

A search filters on the article columns (category, provider, published window), matches
the query tree against the full-text index (SQLite FTS5, PostgreSQL `tsvector`), and
orders newest first or by relevance, resuming after a keyset position so that pages stay
put while articles arrive. The user's text reaches the engine only as a bound parameter
rendered from the parsed tree, never spliced into SQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from newsagg.query.syntax import Node
from newsagg.store.fulltext import to_fts5, to_pairs, to_tsquery
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
# By relevance, every match is scored: for a word in 30 % of a million articles that is
# 300,000 scores (330-530 ms on either engine). So relevance ranks the matches among the
# newest RELEVANCE_WINDOWS articles that pass the other filters, the first window holding at
# least RELEVANCE_MATCHES of them, and every match only when none does (then there are
# few: under 200 for each 50,000 articles). The pages of one ranking keep its window.
RELEVANCE_WINDOWS = (5_000, 50_000)
RELEVANCE_MATCHES = 200
EVERY_MATCH = (-(2**62), 0)  # a horizon older than every article


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


MARK = {"sqlite": "?", "postgres": "%s"}
# PostgreSQL: a query holding a phrase also requires its adjacent word pairs, looked up
# exactly in their own GIN index (migration 9), before `@@` rechecks each candidate's word
# positions (see newsagg.store.fulltext.to_pairs).
PAIRS = "newsagg_pairs(a.search) @@ %s::tsquery"
# With PAIRS, `@@` on `search` is only a recheck of what the pairs index found: written
# so that the planner does not also build the search index's bitmap (for two frequent
# words, 57,000 articles), it is checked on each candidate.
CHECKED = "(a.search @@ tsq) IS TRUE"


def _filters(query: ArchiveQuery, dialect: Dialect) -> tuple[list[str], list[object]]:
    """The conditions on the article columns (not the match, not the keyset) and their
    parameters."""
    mark = MARK[dialect]
    where: list[str] = ["a.published_us IS NOT NULL"]
    params: list[object] = []
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
    return where, params


Read = Callable[[str, list[object]], list[tuple[Any, ...]]]


def _matching(
    match: Node, dialect: Dialect, walk: bool = False
) -> tuple[str, list[str], list[object]]:
    """The full-text match: its join, its conditions and their parameters (the join's
    first), to go before the other filters. `walk` (PostgreSQL): `@@` is checked on each
    article the rest of the statement reads, never turned into a GIN bitmap."""
    if dialect == "sqlite":
        return (
            " JOIN articles_fts ON articles_fts.rowid = a.id",
            ["articles_fts MATCH ?"],
            [to_fts5(match)],
        )
    joins = " CROSS JOIN to_tsquery('simple', %s) AS tsq"
    pairs = to_pairs(match)
    if pairs is None:
        return joins, [CHECKED if walk else "a.search @@ tsq"], [to_tsquery(match)]
    return joins, [CHECKED, PAIRS], [to_tsquery(match), pairs]


def _nth_newest(where: list[str], window: int, columns: str) -> str:
    """`columns` of the `window`-th newest article passing `where` (an index-only scan of a
    date index); no row when fewer do."""
    return (
        f"SELECT {columns} FROM articles a WHERE {' AND '.join(where)}"
        f" ORDER BY a.published_us DESC, a.id DESC LIMIT 1 OFFSET {int(window) - 1}"
    )


def ranked_search(query: ArchiveQuery, dialect: Dialect, read: Read) -> list[ArchivedRow]:
    """sort=relevance on either engine (`read` runs a statement): the page, ranked within
    the query's horizon, or on a first page within the first window that holds enough
    matches (RELEVANCE_WINDOWS). Every row carries the horizon, for the next page's cursor."""
    horizon = query.horizon
    if horizon is None:
        for window in RELEVANCE_WINDOWS:
            found = read(*_floor_sql(query, dialect, window))
            if not found:  # fewer articles pass the filters: the window is all of them
                break
            floor = (int(found[0][0]), int(found[0][1]))
            # The first window is walked (see _ranked_sql); a larger one may not be.
            first = window == RELEVANCE_WINDOWS[0]
            rows = _ranked(replace(query, horizon=floor), dialect, read, RELEVANCE_MATCHES, first)
            if rows is not None:
                return [ArchivedRow(*row, floor) for row in rows]
        horizon = EVERY_MATCH
    if horizon != EVERY_MATCH:
        rows = _ranked(replace(query, horizon=horizon), dialect, read) or []
        return [ArchivedRow(*row, horizon) for row in rows]
    if dialect == "sqlite":
        # The best matches by score first (no article read for the others); if the other
        # filters leave a full page of them, that page is the answer.
        rows = read(*search_sql(query, dialect, max(RANKED_WINDOW, query.limit)))
        if len(rows) == query.limit:
            return [ArchivedRow(*row, EVERY_MATCH) for row in rows]
    return [ArchivedRow(*row, EVERY_MATCH) for row in read(*search_sql(query, dialect))]


def _floor_sql(query: ArchiveQuery, dialect: Dialect, window: int) -> tuple[str, list[object]]:
    """(published_us, id) of the `window`-th newest article passing the other filters (an
    index-only scan); no row when fewer do."""
    where, params = _filters(query, dialect)
    return _nth_newest(where, window, "a.published_us, a.id"), params


def _ranked(
    query: ArchiveQuery, dialect: Dialect, read: Read, least: int = 0, walk: bool = False
) -> list[tuple[Any, ...]] | None:
    """The page by relevance among the matches at or after `query.horizon`, as (id, score,
    data) rows; None when the horizon holds fewer than `least` matches."""
    where, params = _horizon(query, dialect)
    if dialect == "postgres":
        # One statement: ranking what a window holds costs little more than counting it.
        rows = read(*_ranked_sql(query, dialect, where, params, walk))
        if least and (rows[0][3] if rows else 0) < least:
            return None
        return [row[:3] for row in rows]
    # FTS5 reads only a rowid range given as values (a subquery there is evaluated for
    # every match): the horizon's id range first, from the date index; then how many
    # match in it, without scoring them.
    ((low, high),) = read(f"SELECT min(a.id), max(a.id) FROM articles a WHERE {where}", params)
    if low is None:
        return None if least else []
    matched = (
        "FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid"
        f" WHERE articles_fts MATCH ? AND articles_fts.rowid BETWEEN ? AND ? AND {where}"
    )
    match = [to_fts5(query.match), low, high, *params]  # type: ignore[arg-type]
    if least and read(f"SELECT count(*) {matched}", match)[0][0] < least:
        return None
    keyset, after = "", list(query.after or ())
    if after:
        keyset = " WHERE (r.position, r.id) < (?, ?)"
    sql = (
        f"WITH r AS (SELECT articles_fts.rowid AS id, {SCORE[dialect]} AS position {matched})"
        f" SELECT r.id, r.position, a.data FROM r JOIN articles a ON a.id = r.id{keyset}"
        " ORDER BY r.position DESC, r.id DESC LIMIT ?"
    )
    return read(sql, [*match, *after, query.limit])


def _horizon(query: ArchiveQuery, dialect: Dialect) -> tuple[str, list[object]]:
    """The condition selecting the articles a ranking reaches (the filters, from the
    horizon on), and its parameters."""
    assert query.horizon is not None
    mark = MARK[dialect]
    where, params = _filters(query, dialect)
    where.append(f"(a.published_us, a.id) >= ({mark}, {mark})")
    return " AND ".join(where), [*params, *query.horizon]


def _ranked_sql(
    query: ArchiveQuery, dialect: Dialect, where: str, params: list[object], walk: bool
) -> tuple[str, list[object]]:
    """PostgreSQL: the page by relevance within `where`, each row with the number of
    matches `where` holds. `walk`: check the match on each article of the window, read
    from the date index, instead of letting the planner intersect it with the GIN index:
    for a word in 30 % of a million articles, building that index's bitmap took 46 ms and
    walking 5,000 articles 5."""
    assert query.match is not None
    joins, matching, matched = _matching(query.match, dialect, walk)
    keyset, after = "", list(query.after or ())
    if after:
        keyset = " WHERE (ranked.position, ranked.id) < (%s, %s)"
    sql = (
        "SELECT ranked.id, ranked.position, ranked.data, ranked.matches FROM"
        f" (SELECT a.id, {SCORE[dialect]} AS position, a.data, count(*) OVER () AS matches"
        f" FROM articles a{joins} WHERE {' AND '.join(matching)} AND {where}) AS ranked{keyset}"
        " ORDER BY ranked.position DESC, ranked.id DESC LIMIT %s"
    )
    return sql, [*matched, *params, *after, query.limit]


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
    mark = MARK[dialect]
    joins, matching, matched = "", [], []
    if query.match is not None:
        joins, matching, matched = _matching(query.match, dialect)
    where, params = _filters(query, dialect)
    if query.sort == "relevance" and query.match is not None and window is not None:
        if dialect != "sqlite":
            raise ValueError("a window is SQLite's")
        # The best `window` matches by score from the full-text index alone, then their
        # articles and the other filters: no article is read for the other matches.
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
        return sql, [*matched, *(query.after or ()), *params, query.limit]
    if query.sort == "relevance" and query.match is not None:
        inner = (
            f"SELECT a.id, {SCORE[dialect]} AS position, a.data FROM articles a{joins}"
            f" WHERE {' AND '.join(matching + where)}"
        )
        keyset = ""
        if query.after is not None:
            keyset = f" WHERE (ranked.position, ranked.id) < ({mark}, {mark})"
        sql = (
            f"SELECT ranked.id, ranked.position, ranked.data FROM ({inner}) AS ranked{keyset}"
            f" ORDER BY ranked.position DESC, ranked.id DESC LIMIT {mark}"
        )
        return sql, [*matched, *params, *(query.after or ()), query.limit]
    if query.after is not None:
        where.append(f"(a.published_us, a.id) < ({mark}, {mark})")
        params.extend((int(query.after[0]), query.after[1]))
    if window is not None and dialect == "postgres" and query.match is not None:
        # Only articles at least as new as the `window`-th newest that passes the other
        # filters (found by an index-only scan of the (category,) published_us index);
        # every article of that date or newer is a prefix of the order, so the page it
        # fills is exact. The planner may walk the date index or intersect the GIN
        # index with the date range: either way at most `window` articles are read.
        bound = _nth_newest(where, window, "a.published_us")
        sql = (
            f"SELECT a.id, a.published_us, a.data FROM articles a{joins}"
            f" WHERE {' AND '.join(matching + where)} AND a.published_us >= ({bound})"
            f" ORDER BY a.published_us DESC, a.id DESC LIMIT {mark}"
        )
        return sql, [*matched, *params, *params, query.limit]
    if window is not None and dialect == "sqlite" and query.match is not None:
        # The MATCH moves from the join into the IN list; the other filters pick the
        # window from the (category,) published_us index, newest first.
        sql = (
            f"WITH c AS (SELECT a.id, a.published_us FROM articles a"
            f" WHERE {' AND '.join(where)}"
            f" ORDER BY a.published_us DESC, a.id DESC LIMIT {int(window)})"
            " SELECT a.id, a.published_us, a.data FROM c JOIN articles a ON a.id = c.id"
            " WHERE c.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
            " AND rowid BETWEEN (SELECT min(id) FROM c) AND (SELECT max(id) FROM c))"
            " ORDER BY c.published_us DESC, c.id DESC LIMIT ?"
        )
        return sql, [*params, *matched, query.limit]
    # `+ 0`: an order no index provides, so the planner collects the matches first.
    order = "a.published_us + 0" if collect and dialect == "postgres" else "a.published_us"
    sql = (
        f"SELECT a.id, a.published_us, a.data FROM articles a{joins}"
        f" WHERE {' AND '.join(matching + where)}"
        f" ORDER BY {order} DESC, a.id DESC LIMIT {mark}"
    )
    return sql, [*matched, *params, query.limit]


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
