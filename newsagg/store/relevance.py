"""sort=relevance, the same on both engines: which matches are ranked, and by which of the
archive's statements (newsagg.store.archive_sql)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from newsagg.store.archive import ArchivedRow, ArchiveQuery
from newsagg.store.archive_sql import (
    best_scored_sql,
    floor_sql,
    fts5_count_sql,
    fts5_ranked_sql,
    fts5_span_sql,
    ranked_sql,
    ranked_within_sql,
)
from newsagg.store.dialect import Engine

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


Read = Callable[[str, list[object]], list[tuple[Any, ...]]]


def ranked_search(query: ArchiveQuery, dialect: Engine, read: Read) -> list[ArchivedRow]:
    """sort=relevance on either engine (`read` runs a statement): the page, ranked within
    the query's horizon, or on a first page within the first window that holds enough
    matches (RELEVANCE_WINDOWS). Every row carries the horizon, for the next page's cursor."""
    horizon = query.horizon
    if horizon is None:
        for window in RELEVANCE_WINDOWS:
            found = read(*floor_sql(query, dialect, window))
            if not found:  # fewer articles pass the filters: the window is all of them
                break
            floor = (int(found[0][0]), int(found[0][1]))
            # The first window is walked (see ranked_within_sql); a larger one may not be.
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
        rows = read(*best_scored_sql(query, max(RANKED_WINDOW, query.limit)))
        if len(rows) == query.limit:
            return [ArchivedRow(*row, EVERY_MATCH) for row in rows]
    return [ArchivedRow(*row, EVERY_MATCH) for row in read(*ranked_sql(query, dialect))]


def _ranked(
    query: ArchiveQuery, dialect: Engine, read: Read, least: int = 0, walk: bool = False
) -> list[tuple[Any, ...]] | None:
    """The page by relevance among the matches at or after `query.horizon`, as (id, score,
    data) rows; None when the horizon holds fewer than `least` matches."""
    if dialect == "postgres":
        rows = read(*ranked_within_sql(query, walk))
        if least and (rows[0][3] if rows else 0) < least:
            return None
        return [row[:3] for row in rows]
    ((low, high),) = read(*fts5_span_sql(query))
    if low is None:
        return None if least else []
    if least and read(*fts5_count_sql(query, (low, high)))[0][0] < least:
        return None
    return read(*fts5_ranked_sql(query, (low, high)))
