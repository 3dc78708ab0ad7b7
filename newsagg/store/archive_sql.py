"""The archive's search statements, one builder per shape, each answering (sql, parameters).

Every shape filters on the article columns (category, provider, published window) and
matches the query tree against the full-text index (SQLite FTS5, PostgreSQL `tsvector`);
they differ in how they avoid reading every match. Which shape runs when is the search's
strategy: newsagg.store.sqlite and newsagg.store.postgres (newest first),
newsagg.store.relevance (by relevance). The user's text reaches the engine
only as a bound parameter rendered from the parsed tree, never spliced into SQL.
"""

from __future__ import annotations

from newsagg.store.archive import ArchiveQuery, to_us
from newsagg.store.dialect import Engine
from newsagg.store.fulltext import answer_tsquery, fts5_match, to_pairs, tsquery_text
from newsagg.store.migrations import DIALECTS

Statement = tuple[str, list[object]]

# Relevance weighs a title match above one in the description or the body: FTS5's bm25
# by column weights (newsagg.store.fulltext.FTS5_COLUMNS); PostgreSQL's ts_rank by the
# labels of the tsvector ({D, C, B, A}: answers, body, description, title). An upstream's
# answer weighs nothing: an article matched only that way ranks after every article the
# archive matched itself, the upstream's reasons being unknown.
SCORE = {
    "sqlite": "-bm25(articles_fts, 2.0, 1.0, 1.0, 2.0, 1.0, 0.0)",  # lower is better
    # float8: a float4 read back as text is not the same number, and keyset pages compare it
    "postgres": "ts_rank('{0, 0.4, 0.4, 1}', a.search, tsq)::float8",
}
# PostgreSQL: a query holding a phrase also requires its adjacent word pairs, looked up
# exactly in their own GIN index (migration 9), before `@@` rechecks each candidate's word
# positions (see newsagg.store.fulltext.to_pairs).
PAIRS = "newsagg_pairs(a.search) @@ %s::tsquery"
# ... or the upstream answered the query with the article.
PAIRS_OR_ANSWER = f"({PAIRS} OR a.search @@ %s::tsquery)"
# With PAIRS, `@@` on `search` is only a recheck of what the pairs index found: written
# so that the planner does not also build the search index's bitmap (for two frequent
# words, 57,000 articles), it is checked on each candidate.
CHECKED = "(a.search @@ tsq) IS TRUE"
NEWEST_FIRST = "ORDER BY a.published_us DESC, a.id DESC"


def _mark(dialect: Engine) -> str:
    return DIALECTS[dialect]["param"]


def _filters(query: ArchiveQuery, dialect: Engine) -> tuple[list[str], list[object]]:
    """The conditions on the article columns (not the match, not the keyset) and their
    parameters."""
    mark = _mark(dialect)
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


def _after(query: ArchiveQuery, dialect: Engine) -> tuple[list[str], list[object]]:
    """Newest first: the filters, and the keyset of a page after the first."""
    mark = _mark(dialect)
    where, params = _filters(query, dialect)
    if query.after is not None:
        where.append(f"(a.published_us, a.id) < ({mark}, {mark})")
        params.extend((int(query.after[0]), query.after[1]))
    return where, params


def _matching(
    query: ArchiveQuery, dialect: Engine, walk: bool = False
) -> tuple[str, list[str], list[object]]:
    """The full-text match: its join, its conditions and their parameters (the join's
    first), to go before the other filters. `walk` (PostgreSQL): `@@` is checked on each
    article the rest of the statement reads, never turned into a GIN bitmap."""
    assert query.match is not None
    if dialect == "sqlite":
        return (
            " JOIN articles_fts ON articles_fts.rowid = a.id",
            ["articles_fts MATCH ?"],
            [fts5_match(query.match, query.answer)],
        )
    joins = " CROSS JOIN (SELECT %s::tsquery) AS q(tsq)"
    matched = tsquery_text(query.match, query.answer)
    pairs = to_pairs(query.match)
    if pairs is None:
        return joins, [CHECKED if walk else "a.search @@ tsq"], [matched]
    if query.answer is None:
        return joins, [CHECKED, PAIRS], [matched, pairs]
    return joins, [CHECKED, PAIRS_OR_ANSWER], [matched, pairs, answer_tsquery(query.answer)]


def _nth_newest(where: list[str], window: int, columns: str) -> str:
    """`columns` of the `window`-th newest article passing `where` (an index-only scan of a
    date index); no row when fewer do."""
    return (
        f"SELECT {columns} FROM articles a WHERE {' AND '.join(where)}"
        f" {NEWEST_FIRST} LIMIT 1 OFFSET {int(window) - 1}"
    )


# -- newest first ----------------------------------------------------------------------


def _newest(query: ArchiveQuery, dialect: Engine, order: str) -> Statement:
    joins, conditions, matched = "", [], []
    if query.match is not None:
        joins, conditions, matched = _matching(query, dialect)
    where, params = _after(query, dialect)
    sql = (
        f"SELECT a.id, a.published_us, a.data FROM articles a{joins}"
        f" WHERE {' AND '.join(conditions + where)}"
        f" ORDER BY {order} DESC, a.id DESC LIMIT {_mark(dialect)}"
    )
    return sql, [*matched, *params, query.limit]


def newest_sql(query: ArchiveQuery, dialect: Engine) -> Statement:
    """At most `limit` articles passing the filters (and the match), newest first, read
    however the planner chooses."""
    return _newest(query, dialect, "a.published_us")


def collect_sql(query: ArchiveQuery) -> Statement:
    """PostgreSQL, newest first after a window that did not fill: every match collected
    from the GIN index, then sorted, instead of letting the planner walk the date index
    newest first re-checking each article (a phrase: GIN cannot check positions, so the
    planner's guess is far off and it discards 100,000s of articles); newest_sql's rows."""
    # `+ 0`: an order no index provides, so the planner collects the matches first.
    return _newest(query, "postgres", "a.published_us + 0")


# A window (sort=published with a match): check just the `window` newest articles that
# pass the other filters instead of collecting every match and sorting it (a word in 30 %
# of a million articles: 300,000 rows looked up for 20). Exact whenever it returns `limit`
# rows: every match outside the window is older than all of them. Fewer: ask again.


def fts5_window_sql(query: ArchiveQuery, window: int) -> Statement:
    """SQLite: the window's articles from the (category,) published_us index, newest first,
    and FTS5 read only over their id range (the MATCH in an IN list, not a join)."""
    assert query.match is not None
    where, params = _after(query, "sqlite")
    sql = (
        f"WITH c AS (SELECT a.id, a.published_us FROM articles a"
        f" WHERE {' AND '.join(where)} {NEWEST_FIRST} LIMIT {int(window)})"
        " SELECT a.id, a.published_us, a.data FROM c JOIN articles a ON a.id = c.id"
        " WHERE c.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
        " AND rowid BETWEEN (SELECT min(id) FROM c) AND (SELECT max(id) FROM c))"
        " ORDER BY c.published_us DESC, c.id DESC LIMIT ?"
    )
    return sql, [*params, fts5_match(query.match, query.answer), query.limit]


def dated_window_sql(query: ArchiveQuery, window: int) -> Statement:
    """PostgreSQL: only articles at least as new as the `window`-th newest that passes the
    other filters (an index-only scan of the (category,) published_us index); every
    article of that date or newer is a prefix of the order, so the page it fills is exact.
    The planner may walk the date index or intersect the GIN index with the date range:
    either way at most `window` articles are read."""
    assert query.match is not None
    joins, conditions, matched = _matching(query, "postgres")
    where, params = _after(query, "postgres")
    bound = _nth_newest(where, window, "a.published_us")
    sql = (
        f"SELECT a.id, a.published_us, a.data FROM articles a{joins}"
        f" WHERE {' AND '.join(conditions + where)} AND a.published_us >= ({bound})"
        f" {NEWEST_FIRST} LIMIT %s"
    )
    return sql, [*matched, *params, *params, query.limit]


# -- by relevance ----------------------------------------------------------------------


def ranked_sql(query: ArchiveQuery, dialect: Engine) -> Statement:
    """Every match scored, the page by relevance: the last resort of ranked_search."""
    assert query.match is not None
    mark = _mark(dialect)
    joins, conditions, matched = _matching(query, dialect)
    where, params = _filters(query, dialect)
    keyset = ""
    if query.after is not None:
        keyset = f" WHERE (ranked.position, ranked.id) < ({mark}, {mark})"
    sql = (
        f"SELECT ranked.id, ranked.position, ranked.data FROM (SELECT a.id,"
        f" {SCORE[dialect]} AS position, a.data FROM articles a{joins}"
        f" WHERE {' AND '.join(conditions + where)}) AS ranked{keyset}"
        f" ORDER BY ranked.position DESC, ranked.id DESC LIMIT {mark}"
    )
    return sql, [*matched, *params, *(query.after or ()), query.limit]


def best_scored_sql(query: ArchiveQuery, window: int) -> Statement:
    """SQLite: the best `window` matches by score from the full-text index alone, then
    their articles and the other filters: no article is read for the other matches."""
    assert query.match is not None
    where, params = _filters(query, "sqlite")
    keyset = ""
    if query.after is not None:
        keyset = " WHERE (s.position, s.id) < (?, ?)"
    top = (
        f"SELECT s.id, s.position FROM (SELECT rowid AS id, {SCORE['sqlite']} AS position"
        f" FROM articles_fts WHERE articles_fts MATCH ?) AS s{keyset}"
        f" ORDER BY s.position DESC, s.id DESC LIMIT {int(window)}"
    )
    sql = (
        f"WITH top AS ({top}) SELECT a.id, top.position, a.data FROM top"
        f" JOIN articles a ON a.id = top.id WHERE {' AND '.join(where)}"
        " ORDER BY top.position DESC, top.id DESC LIMIT ?"
    )
    return sql, [fts5_match(query.match, query.answer), *(query.after or ()), *params, query.limit]


def floor_sql(query: ArchiveQuery, dialect: Engine, window: int) -> Statement:
    """(published_us, id) of the `window`-th newest article passing the other filters: the
    oldest a ranking within that window reaches (an index-only scan); no row when fewer
    articles pass."""
    where, params = _filters(query, dialect)
    return _nth_newest(where, window, "a.published_us, a.id"), params


def _horizon(query: ArchiveQuery, dialect: Engine) -> tuple[str, list[object]]:
    """The condition selecting the articles a ranking reaches (the filters, from the
    horizon on), and its parameters."""
    assert query.horizon is not None
    mark = _mark(dialect)
    where, params = _filters(query, dialect)
    where.append(f"(a.published_us, a.id) >= ({mark}, {mark})")
    return " AND ".join(where), [*params, *query.horizon]


def ranked_within_sql(query: ArchiveQuery, walk: bool) -> Statement:
    """PostgreSQL: the page by relevance within the horizon, each row with the number of
    matches the horizon holds (ranking what a window holds costs little more than
    counting it). `walk`: check the match on each article of the window, read from the
    date index, instead of letting the planner intersect it with the GIN index: for a word
    in 30 % of a million articles, building that index's bitmap took 46 ms and walking
    5,000 articles 5."""
    assert query.match is not None
    joins, conditions, matched = _matching(query, "postgres", walk)
    where, params = _horizon(query, "postgres")
    keyset, after = "", list(query.after or ())
    if after:
        keyset = " WHERE (ranked.position, ranked.id) < (%s, %s)"
    sql = (
        "SELECT ranked.id, ranked.position, ranked.data, ranked.matches FROM"
        f" (SELECT a.id, {SCORE['postgres']} AS position, a.data, count(*) OVER () AS matches"
        f" FROM articles a{joins} WHERE {' AND '.join(conditions)} AND {where}) AS ranked"
        f"{keyset} ORDER BY ranked.position DESC, ranked.id DESC LIMIT %s"
    )
    return sql, [*matched, *params, *after, query.limit]


# SQLite within a horizon: FTS5 reads only a rowid range given as values (a subquery there
# is evaluated for every match), so the horizon's id range is read first (fts5_span_sql),
# then the matches in it are counted (without scoring them) or ranked.


def fts5_span_sql(query: ArchiveQuery) -> Statement:
    """The lowest and highest id within the horizon, from the date index."""
    where, params = _horizon(query, "sqlite")
    return f"SELECT min(a.id), max(a.id) FROM articles a WHERE {where}", params


def _fts5_within(query: ArchiveQuery, span: tuple[int, int]) -> Statement:
    assert query.match is not None
    where, params = _horizon(query, "sqlite")
    matched = (
        "FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid"
        f" WHERE articles_fts MATCH ? AND articles_fts.rowid BETWEEN ? AND ? AND {where}"
    )
    return matched, [fts5_match(query.match, query.answer), *span, *params]


def fts5_count_sql(query: ArchiveQuery, span: tuple[int, int]) -> Statement:
    """How many match within the horizon (its id `span`)."""
    matched, params = _fts5_within(query, span)
    return f"SELECT count(*) {matched}", params


def fts5_ranked_sql(query: ArchiveQuery, span: tuple[int, int]) -> Statement:
    """The page by relevance among the matches within the horizon (its id `span`)."""
    matched, params = _fts5_within(query, span)
    keyset, after = "", list(query.after or ())
    if after:
        keyset = " WHERE (r.position, r.id) < (?, ?)"
    sql = (
        f"WITH r AS (SELECT articles_fts.rowid AS id, {SCORE['sqlite']} AS position {matched})"
        f" SELECT r.id, r.position, a.data FROM r JOIN articles a ON a.id = r.id{keyset}"
        " ORDER BY r.position DESC, r.id DESC LIMIT ?"
    )
    return sql, [*params, *after, query.limit]
