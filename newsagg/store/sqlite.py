"""SQLite persistence, the embedded default: one file, no server.

One connection per thread (sqlite3 connections must not be shared across threads), WAL so
readers never wait for the writer, and a busy timeout so several worker processes can share
one database file. The clock is the machine's wall clock, the same in every process (a
monotonic clock would not survive a restart in the tables).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

from newsagg.store.archive import (
    COLUMNS,
    COUNT_CAP,
    Archive,
    ArchivedRow,
    ArchiveQuery,
    column_values,
    upsert_set,
    windows_for,
)
from newsagg.store.archive_sql import fts5_window_sql, newest_sql
from newsagg.store.fulltext import to_fts5
from newsagg.store.keys import Keys
from newsagg.store.leases import Leases
from newsagg.store.ledger import Ledger
from newsagg.store.migrations import (
    CURRENT_VERSION,
    DIALECTS,
    MIGRATIONS,
    Migration,
    apply_pending,
)
from newsagg.store.push import Push
from newsagg.store.relevance import ranked_search

BUSY_TIMEOUT_SECONDS = 10.0


def _connect(path: str, isolation_level: str | None = "") -> sqlite3.Connection:
    # check_same_thread=False only so close() can close every thread's connection.
    db = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_SECONDS,
        check_same_thread=False,
        isolation_level=isolation_level,
    )
    # Switching a new file to WAL needs a moment alone with it, and SQLite answers "locked"
    # at once, without waiting, to a second process starting up at the same time.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _now_us() -> int:
    return time.time_ns() // 1000


class SqliteDialect:
    param = DIALECTS["sqlite"]["param"]
    # SQLite's own clock (julianday) has millisecond precision: the wall clock in
    # microseconds is Python's, as an SQL function of every connection.
    now = "newsagg_now_us()"
    skip_locked = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            db.create_function("newsagg_now_us", 0, _now_us)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.connection().execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.connection()
        with db:  # commits, or rolls back on an exception
            yield db

    def take_turns(self, db: sqlite3.Connection, lock: tuple[int, int] | None) -> None:
        db.execute("BEGIN IMMEDIATE")  # one writer at a time per file, whatever the lock

    def is_unique_violation(self, error: Exception, column: str) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and column in str(error)

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()


class SqliteStore(Keys, Ledger, Archive, Push, Leases):
    waits_on_network = False  # a local file: microseconds, cheaper inline than a thread hop
    db: SqliteDialect

    def __init__(self, path: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        super().__init__(SqliteDialect(path))
        self.path = path
        self._migrations = migrations

    def change_stamp(self) -> tuple[sqlite3.Connection, int]:
        """Equal to this thread's previous stamp only if nothing was committed to the file
        since, through any other connection (another thread or process): this thread's
        connection and its `PRAGMA data_version`. The connection's own commits do not count."""
        db = self.db.connection()
        return db, db.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    # -- schema ----------------------------------------------------------------------

    def migrate(self) -> list[Migration]:
        # Autocommit mode, so that BEGIN IMMEDIATE (the write lock, taken before reading
        # the version) and COMMIT are ours; DDL is transactional in SQLite.
        with closing(_connect(self.path, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                applied = apply_pending(
                    lambda sql, params: db.execute(sql, params or ()), "sqlite", self._migrations
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return applied

    def schema_version(self) -> int:
        db = self.db.connection()
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        return 0 if found is None else db.execute(CURRENT_VERSION).fetchone()[0]

    # -- articles --------------------------------------------------------------------

    def save_articles(self, articles: Iterable[tuple[str, int, dict[str, Any]]]) -> list[int]:
        with self.db.transaction() as db:
            ids = []
            for url, rank, data in articles:
                db.execute(
                    f"INSERT INTO articles(url, rank, data, {', '.join(COLUMNS)}, published_us,"
                    " added_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT(url) DO UPDATE SET {upsert_set()} "
                    "WHERE excluded.rank <= articles.rank",
                    (
                        url,
                        rank,
                        json.dumps(data, separators=(",", ":")),
                        *column_values(data),
                        _now_us(),
                    ),
                )
                ids.append(
                    db.execute("SELECT id FROM articles WHERE url = ?", (url,)).fetchone()[0]
                )
            return ids

    def search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        read = self.db.read
        if query.match is not None and query.sort == "relevance":
            return ranked_search(query, "sqlite", read)
        if query.match is not None:
            # Newest first, a frequent word fills its page from the newest few articles,
            # and a rare one is cheaper to collect: how many match decides (windows_for).
            ((matches, articles),) = read(
                "SELECT (SELECT count(*) FROM (SELECT rowid FROM articles_fts"
                " WHERE articles_fts MATCH ? LIMIT ?)), (SELECT max(id) FROM articles)",
                (to_fts5(query.match), COUNT_CAP),
            )
            if not matches:
                return []
            for window in windows_for(matches, articles, query.limit):
                rows = read(*fts5_window_sql(query, window))
                if len(rows) == query.limit:
                    return [ArchivedRow(*row) for row in rows]
        return [ArchivedRow(*row) for row in read(*newest_sql(query, "sqlite"))]
