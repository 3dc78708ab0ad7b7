"""SQLite persistence, the embedded default: one file, no server.

One connection per thread (sqlite3 connections must not be shared across threads), WAL so
readers never wait for the writer, and a busy timeout so several worker processes can share
one database file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

from newsagg.store.archive import (
    COLUMNS,
    COUNT_CAP,
    ArchivedRow,
    ArchiveQuery,
    column_values,
    ranked_search,
    search_sql,
    upsert_set,
    windows_for,
)
from newsagg.store.base import (
    KEY_COLUMNS,
    ArchivePruning,
    BudgetCheck,
    BudgetVerdict,
    DuplicateDigest,
    HarvestRecords,
    KeyLookups,
    KeyRecord,
    Rows,
    Window,
    count_budget,
    key_record,
    lease_sql,
    take_budget,
)
from newsagg.store.fulltext import to_fts5
from newsagg.store.migrations import CURRENT_VERSION, MIGRATIONS, Migration, apply_pending
from newsagg.store.push import PushRecords

BUSY_TIMEOUT_SECONDS = 10.0
# The wall clock in microseconds, in SQL (julianday has millisecond precision).
SQLITE_NOW_US = "CAST(ROUND((julianday('now') - 2440587.5) * 86400000000) AS INTEGER)"


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


def _rows(db: sqlite3.Connection) -> Rows:
    """Run one statement on `db`: its rows (none for a statement that returns none)."""
    return lambda sql, params: db.execute(sql, params).fetchall()


class SqliteStore(KeyLookups, HarvestRecords, PushRecords, ArchivePruning):
    PARAM = "?"
    waits_on_network = False  # a local file: microseconds, cheaper inline than a thread hop

    def __init__(self, path: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path = path
        self._migrations = migrations
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def change_stamp(self) -> tuple[sqlite3.Connection, int]:
        """Equal to this thread's previous stamp only if nothing was committed to the file
        since, through any other connection (another thread or process): this thread's
        connection and its `PRAGMA data_version`. The connection's own commits do not count."""
        db = self._connection()
        return db, db.execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        with db:  # commits, or rolls back on an exception
            yield db

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

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
        db = self._connection()
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        return 0 if found is None else db.execute(CURRENT_VERSION).fetchone()[0]

    # -- service secrets -------------------------------------------------------------

    def secret(self, name: str, make: Callable[[], str]) -> str:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta(name, value) VALUES (?, ?)", (name, make()))
            return db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    # -- articles --------------------------------------------------------------------

    def save_articles(self, articles: Iterable[tuple[str, int, dict[str, Any]]]) -> list[int]:
        with self._transaction() as db:
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
                        time.time_ns() // 1000,
                    ),
                )
                ids.append(
                    db.execute("SELECT id FROM articles WHERE url = ?", (url,)).fetchone()[0]
                )
            return ids

    def article(self, article_id: int) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT data FROM articles WHERE id = ?", (article_id,))
            .fetchone()
        )
        return None if row is None else json.loads(row[0])

    def search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        db = self._connection()
        if query.match is not None and query.sort == "relevance":
            return ranked_search(query, "sqlite", lambda sql, ps: db.execute(sql, ps).fetchall())
        if query.match is not None:
            # Newest first, a frequent word fills its page from the newest few articles,
            # and a rare one is cheaper to collect: how many match decides (windows_for).
            matches, articles = db.execute(
                "SELECT (SELECT count(*) FROM (SELECT rowid FROM articles_fts"
                " WHERE articles_fts MATCH ? LIMIT ?)), (SELECT max(id) FROM articles)",
                (to_fts5(query.match), COUNT_CAP),
            ).fetchone()
            if not matches:
                return []
            for window in windows_for(matches, articles, query.limit):
                sql, params = search_sql(query, "sqlite", window)
                rows = db.execute(sql, params).fetchall()
                if len(rows) == query.limit:
                    return [ArchivedRow(*row) for row in rows]
        sql, params = search_sql(query, "sqlite")
        return [ArchivedRow(*row) for row in db.execute(sql, params)]

    # -- API keys --------------------------------------------------------------------

    def add_key(
        self, *, name: str, tier: str, admin: bool, prefix: str, digest: str, created_at: str
    ) -> KeyRecord:
        try:
            with self._transaction() as db:
                row = db.execute(
                    "INSERT INTO api_keys(name, tier, admin, prefix, digest, created_at) "
                    f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {KEY_COLUMNS}",
                    (name, tier, int(admin), prefix, digest, created_at),
                ).fetchone()
        except sqlite3.IntegrityError as exc:
            if "api_keys.digest" in str(exc):  # the one UNIQUE column a caller supplies
                raise DuplicateDigest from None
            raise
        return key_record(row)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, params).fetchall()

    def revoke_key(self, key_id: int, revoked_at: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (revoked_at, key_id),
            )
            return cursor.rowcount == 1

    # -- rate-limit windows ----------------------------------------------------------
    # Every process on this file shares them. The clock is the machine's wall clock, the
    # same in every process (a monotonic clock would not survive a restart in the table).

    def _window(self, db: sqlite3.Connection, key_id: int, now_us: int, window_us: int) -> Window:
        count, oldest = db.execute(
            "SELECT COUNT(*), MIN(at_us) FROM rate_limit_hits WHERE key_id = ? AND at_us > ?",
            (key_id, now_us - window_us),
        ).fetchone()
        return Window(count, None if oldest is None else oldest / 1e6, now_us / 1e6)

    def window_hit(self, key_id: int, limit: int, window_seconds: float) -> Window:
        window_us = int(window_seconds * 1e6)
        with self._transaction() as db:
            # The write lock up front: a transaction that read first and then asked for it
            # could fail with "database is locked" instead of waiting its turn.
            db.execute("BEGIN IMMEDIATE")
            now_us = time.time_ns() // 1000
            db.execute(
                "DELETE FROM rate_limit_hits WHERE key_id = ? AND at_us <= ?",
                (key_id, now_us - window_us),
            )
            window = self._window(db, key_id, now_us, window_us)
            if window.count >= limit:
                return window
            (entry,) = db.execute(
                "INSERT INTO rate_limit_hits(key_id, at_us) VALUES (?, ?) RETURNING id",
                (key_id, now_us),
            ).fetchone()
            oldest = now_us / 1e6 if window.oldest is None else window.oldest
            return Window(window.count + 1, oldest, window.now, str(entry))

    def window_peek(self, key_id: int, window_seconds: float) -> Window:
        now_us = time.time_ns() // 1000
        return self._window(self._connection(), key_id, now_us, int(window_seconds * 1e6))

    def window_refund(self, key_id: int, entry: str, window_seconds: float) -> Window:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM rate_limit_hits WHERE id = ? AND key_id = ?", (int(entry), key_id)
            )
            now_us = time.time_ns() // 1000
            return self._window(db, key_id, now_us, int(window_seconds * 1e6))

    # -- upstream budgets --------------------------------------------------------------
    # The ledger of upstream calls (newsagg.budget), shared by every process on this file,
    # on the machine's wall clock like the rate-limit windows.

    def budget_take(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        with self._transaction() as db:
            # The write lock before counting: processes sharing the file count one by one.
            db.execute("BEGIN IMMEDIATE")
            now = time.time_ns() // 1000 if now_us is None else now_us
            return take_budget(_rows(db), "?", provider, purpose, key_id, checks, now)

    def budget_peek(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        db = self._connection()
        now = time.time_ns() // 1000 if now_us is None else now_us
        return count_budget(_rows(db), "?", provider, purpose, key_id, checks, now)

    # -- harvest -----------------------------------------------------------------------
    # The harvester's state and its lease (newsagg.harvest); the lease on the machine's
    # wall clock, as SQLite sees it (to the millisecond), the same in every process.

    def lease_take(self, name: str, holder: str, seconds: float) -> bool:
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: contenders take turns
            row = db.execute(
                lease_sql("?", SQLITE_NOW_US), (name, holder, round(seconds * 1e6))
            ).fetchone()
            return row is not None

    def newest_article_id(self) -> int:
        return self._read("SELECT COALESCE(MAX(id), 0) FROM articles")[0][0]
