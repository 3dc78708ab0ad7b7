"""SQLite: the archive's full-text index, a contentless FTS5 table written by the store.

The stems come from Python's stemmer (newsagg.query.analysis), so the index is written
from Python, not by triggers, and holds no text of its own: FTS5 removes an entry only
when given the very values it was made of, which the store makes again from the article's
columns and its upstream answers (IndexedText) with the same analyzer. An index made by
another analyzer is refused at start (`newsagg reindex` makes it anew), since its entries
could not be removed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from newsagg.query.analysis import Analyzer
from newsagg.store.archive import IndexedText
from newsagg.store.fulltext import FTS5_COLUMNS, fts5_row

ROWS = 500  # entries per statement: FTS5 makes a segment of each statement's entries
REBUILD_ROWS = 2_000  # articles read at a time by `rebuild`
_COLUMNS = ", ".join(FTS5_COLUMNS)
# Reads what the index entries of these articles are made of (Archive._texts).
Texts = Callable[[sqlite3.Connection, list[int]], dict[int, IndexedText]]
_ROW = f"({', '.join(['?'] * (2 + len(FTS5_COLUMNS)))})"


def add_entries(
    db: sqlite3.Connection, analyzer: Analyzer, entries: Iterable[tuple[int, IndexedText]]
) -> None:
    """Index these articles (none indexed yet)."""
    _write(db, analyzer, "INSERT INTO articles_fts(articles_fts, rowid, ", entries, None)


def remove_entries(
    db: sqlite3.Connection, analyzer: Analyzer, entries: Iterable[tuple[int, IndexedText]]
) -> None:
    """Remove these articles' entries, each given what it was indexed from."""
    _write(db, analyzer, "INSERT INTO articles_fts(articles_fts, rowid, ", entries, "delete")


def _write(
    db: sqlite3.Connection,
    analyzer: Analyzer,
    head: str,
    entries: Iterable[tuple[int, IndexedText]],
    command: str | None,
) -> None:
    rows = list(entries)
    for start in range(0, len(rows), ROWS):
        part = rows[start : start + ROWS]
        # An ordinary insert names the table's hidden column too, with NULL.
        db.execute(
            f"{head}{_COLUMNS}) VALUES {', '.join([_ROW] * len(part))}",
            [
                value
                for article_id, text in part
                for value in (
                    command,
                    article_id,
                    *fts5_row(
                        analyzer.document(text.title, text.description, text.body),
                        list(text.answers),
                    ),
                )
            ],
        )


def rebuild_index(db: sqlite3.Connection, analyzer: Analyzer, texts: Texts) -> int:
    """The whole index made anew from the articles (`texts` reads what each entry is made
    of); how many were indexed."""
    db.execute("INSERT INTO articles_fts(articles_fts) VALUES ('delete-all')")
    done, after = 0, 0
    while True:
        ids = [
            row[0]
            for row in db.execute(
                "SELECT id FROM articles WHERE id > ? ORDER BY id LIMIT ?", (after, REBUILD_ROWS)
            ).fetchall()
        ]
        if not ids:
            return done
        add_entries(db, analyzer, texts(db, ids).items())
        done += len(ids)
        after = ids[-1]
