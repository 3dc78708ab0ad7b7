"""SQLite persistence, the embedded default: one file, no server.

One connection per thread (sqlite3 connections must not be shared across threads), WAL so
readers never wait for the writer, and a busy timeout so several worker processes can share
one database file. The clock is the machine's wall clock, the same in every process (a
monotonic clock would not survive a restart in the tables). The file's upkeep (planner
statistics, full-text merges, WAL checkpoints): newsagg.store.sqlite_upkeep.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from typing import Any, TypeVar

from newsagg.query.analysis import Analyzer
from newsagg.store.archive import (
    COLUMNS,
    COUNT_CAP,
    UPSERT_WHEN,
    Answer,
    Archive,
    ArchivedRow,
    ArchiveQuery,
    ArticleRecord,
    IndexedText,
    arrivals,
    column_values,
    upsert_set,
    windows_for,
)
from newsagg.store.archive_sql import fts5_window_sql, newest_sql
from newsagg.store.base import UpkeepStep
from newsagg.store.fulltext import fts5_match
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
from newsagg.store.sqlite_index import add_entries, rebuild_index, remove_entries
from newsagg.store.sqlite_upkeep import SqliteUpkeep
from newsagg.stories.clustering import StoryRules

BUSY_TIMEOUT_SECONDS = 10.0
SEARCH_THREADS = 4
SAVE_ROWS = 500  # rows a statement of save_articles (15 parameters each)
T = TypeVar("T")


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
    db.create_function("newsagg_now_us", 0, _now_us)  # SqliteDialect.now
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


def _parts(items: list[T]) -> Iterator[list[T]]:
    """`items` in parts of at most SAVE_ROWS, each within SQLite's 32,766 parameters."""
    for start in range(0, len(items), SAVE_ROWS):
        yield items[start : start + SAVE_ROWS]


class SqliteStore(Keys, Ledger, Archive, Push, Leases):
    # A local file: a point lookup takes microseconds, less than a hop to a thread; a
    # search (`scans`) is made on one of the store's threads (store.without_blocking).
    waits_on_network = False
    db: SqliteDialect

    def __init__(
        self,
        path: str,
        migrations: Sequence[Migration] = MIGRATIONS,
        analyzer: Analyzer | None = None,
        story_rules: StoryRules | None = None,
    ) -> None:
        super().__init__(SqliteDialect(path))
        self.path = path
        self.analyzer = analyzer or Analyzer()
        self.story_rules = story_rules or StoryRules()
        self._migrations = migrations
        self._upkeep = SqliteUpkeep(path, lambda: _connect(path, isolation_level=None))
        # Threads of the store's own, whichever event loop asks (each keeps a connection
        # for the store's life): searches run on at most SEARCH_THREADS at once, each one
        # core's work while it runs (sqlite3 lets go of the GIL).
        self.threads = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="sqlite-search")

    def change_stamp(self) -> tuple[sqlite3.Connection, int]:
        """Equal to this thread's previous stamp only if nothing was committed to the file
        since, through any other connection (another thread or process): this thread's
        connection and its `PRAGMA data_version`. The connection's own commits do not count."""
        db = self.db.connection()
        return db, db.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self.threads.shutdown()  # searches under way end first: their connections close next
        self._upkeep.close()
        self.db.close()

    def upkeep_step(self, budget_seconds: float) -> UpkeepStep:
        """The next step of the file's upkeep (SqliteUpkeep)."""
        return self._upkeep.step(budget_seconds)

    # -- schema ----------------------------------------------------------------------

    def migrate(self) -> list[Migration]:
        return self._alone(
            lambda db: apply_pending(
                lambda sql, params: db.execute(sql, params or ()),
                "sqlite",
                lambda: self._reindex(db),
                lambda: self._rebuild_stories(db),
                self._migrations,
            )
        )

    def _alone(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in one transaction holding the file's write lock from its start.
        Autocommit mode, so that BEGIN IMMEDIATE (the lock, taken before anything is read)
        and COMMIT are ours; DDL is transactional in SQLite."""
        with closing(_connect(self.path, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                done = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return done

    def schema_version(self) -> int:
        db = self.db.connection()
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        return 0 if found is None else db.execute(CURRENT_VERSION).fetchone()[0]

    # -- articles --------------------------------------------------------------------

    def reindex(self) -> int:
        """The full-text index made anew with the store's analyzer; how many articles."""
        return self._alone(self._reindex)

    def _reindex(self, db: sqlite3.Connection) -> int:
        done = rebuild_index(db, self.analyzer, self._texts)
        self._record_identity(db)
        return done

    def rebuild_stories(self) -> int:
        """Every article placed in a story anew; how many."""
        return self._alone(self._rebuild_stories)

    def _articles_turn(self, db: sqlite3.Connection) -> None:
        self.db.take_turns(db, None)

    def _rewrite_index(
        self, db: sqlite3.Connection, ids: Iterable[int], old: Mapping[int, IndexedText]
    ) -> None:
        ids = list(dict.fromkeys(ids))
        remove_entries(db, self.analyzer, ((i, old[i]) for i in ids if i in old))
        add_entries(db, self.analyzer, self._texts(db, ids).items())

    def _unindex(self, db: sqlite3.Connection, ids: Sequence[int]) -> None:
        remove_entries(db, self.analyzer, self._texts(db, ids).items())

    # -- articles --------------------------------------------------------------------

    def save_articles(
        self,
        articles: Iterable[ArticleRecord | tuple[str, int, dict[str, Any]]],
        answer: Answer | None = None,
    ) -> list[int]:
        batch = [ArticleRecord(*item) for item in articles]
        urls = list(dict.fromkeys(record.url for record in batch))
        # One statement for many rows: FTS5 writes what a statement indexed as a segment
        # of its own, so a statement per article made a segment per article, and writers
        # spent their time merging them (500 articles a batch: 8,900 -> 17,000 a second).
        # SQLite applies the rows in order, a url given twice included.
        row = f"({', '.join(['?'] * (6 + len(COLUMNS)))}, ? + ?)"
        with self.db.transaction() as db:
            self.db.take_turns(db, None)  # what is read below is what the index holds
            now = _now_us()
            kept = self._ids(db, urls)
            # The index entries of articles already kept are removed with what they were
            # made of: read before it changes.
            old = self._texts(db, kept.values())
            changed: list[int] = []
            for part in _parts(batch):
                changed.extend(
                    article_id
                    for (article_id,) in db.execute(
                        f"INSERT INTO articles(url, rank, data, {', '.join(COLUMNS)},"
                        f" published_us, body, added_us, body_until_us)"
                        f" VALUES {', '.join([row] * len(part))} "
                        f"ON CONFLICT(url) DO UPDATE SET {upsert_set()} WHERE {UPSERT_WHEN}"
                        " RETURNING id",
                        [
                            value
                            for record in part
                            for value in (
                                record.url,
                                record.rank,
                                json.dumps(record.data, separators=(",", ":")),
                                *column_values(record),
                                now,
                                now,
                                record.body_for_us if record.body is not None else None,
                            )
                        ],
                    ).fetchall()
                )
            ids = kept | self._ids(db, [url for url in urls if url not in kept])
            answered = self._answered(db, list(ids.values()), answer)
            self._rewrite_index(db, [*changed, *answered], old)
            self._place_all(db, arrivals(batch, ids, ids.keys() - kept.keys()))
            replaced = set(changed) & set(kept.values())
            self._replaced(db, arrivals(batch, ids, {u for u, i in kept.items() if i in replaced}))
            return [ids[record.url] for record in batch]

    def _ids(self, db: sqlite3.Connection, urls: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part in _parts(urls):
            found.update(
                db.execute(
                    f"SELECT url, id FROM articles WHERE url IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
            )
        return found

    def _search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        read = self.db.read
        if query.match is not None and query.sort == "relevance":
            return ranked_search(query, "sqlite", read)
        if query.match is not None:
            # Newest first, a frequent word fills its page from the newest few articles,
            # and a rare one is cheaper to collect: how many match decides (windows_for).
            ((matches, articles),) = read(
                "SELECT (SELECT count(*) FROM (SELECT rowid FROM articles_fts"
                " WHERE articles_fts MATCH ? LIMIT ?)), (SELECT max(id) FROM articles)",
                (fts5_match(query.match, query.answer), COUNT_CAP),
            )
            if not matches:
                return []
            for window in windows_for(matches, articles, query.limit):
                rows = read(*fts5_window_sql(query, window))
                if len(rows) == query.limit:
                    return [ArchivedRow(*row) for row in rows]
        return [ArchivedRow(*row) for row in read(*newest_sql(query, "sqlite"))]
