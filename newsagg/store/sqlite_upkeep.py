"""The SQLite file's upkeep, which newsagg.upkeep runs in one process at a time: the
planner's statistics, the full-text index's merges and the WAL's checkpoints, each step
one short write transaction (or a checkpoint, which holds no lock).

Readers never wait for a step (WAL); writers (the harvester, on-demand saves, rate-limit
windows kept in the file) wait for it as for any other writer, so a step is sized to hold
the write lock a few milliseconds (newsagg.upkeep.STEP_SECONDS).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from newsagg.store.base import UpkeepStep
from newsagg.store.migrations import NEWEST_ARTICLE_ID

T = TypeVar("T")

# Planner statistics (sqlite_stat1) of the tables that grow with the archive. Without them
# the planner guessed from the query's shape alone: word + category at 200,000 articles,
# p99 110-150 ms, about 2 ms with them. ANALYZE reads each index's first ANALYZE_LIMIT
# entries (PRAGMA analysis_limit): about 1 ms at any size, and every kind of query of the
# archive benchmark ran as fast as after a full ANALYZE (which took 28-79 ms there).
ANALYZED = ("articles", "search_matches")
ANALYZE_LIMIT = 1000
ANALYZE_FROM = 1000  # articles: a smaller archive is fast with any plan
ANALYZE_GROWTH = 0.1  # again once the newest article id has grown by a tenth since,
ANALYZE_EVERY_US = 24 * 3600 * 1_000_000  # or a day has passed and anything was added
# Full-text merges. FTS5 writes each statement's postings as a new segment (one per save
# of a batch), and a writer merges 4 segments of a level in its own transaction (automerge,
# the floor when nothing else merges): saves of 20 articles, 14 segments on average, save
# p99 24 ms. The upkeep merges every level holding 2 or more (usermerge 2, migration 10)
# between saves: 8 segments, p99 9 ms. A step writes about `budget x pace` pages (the pace
# measured on full steps, 16-4000 pages); it ends between two words, so a frequent word's
# postings can lengthen a step beyond its budget.
MERGE_PAGES = (16, 4000)
FIRST_PAGES_PER_SECOND = 10_000.0  # 20,000 measured on 2 shared cores
# The WAL: the upkeep copies it back into the file (a passive checkpoint waits for no one
# and no one waits for it), so that writers rarely reach SQLite's own checkpoint at 1000
# pages (about 4 MiB) in their commit; and after its own steps once the WAL passes
# COPY_ABOVE_BYTES. A WAL grown past TRUNCATE_ABOVE_BYTES (a reader held it while writers
# went on) is cut back to nothing once everything is copied, waiting at most
# TRUNCATE_WAIT_MS for readers to move on; writers wait meanwhile, and for the cut itself,
# which grows with the file: 8 ms for 8 MiB, 26 ms for 32, 40 ms for 127.
COPY_ABOVE_BYTES = 4 * 2**20
TRUNCATE_ABOVE_BYTES = 8 * 2**20
TRUNCATE_WAIT_MS = 20
# meta rows: "<newest article id> <when, us>" at the last ANALYZE; the newest article id
# when merges last found nothing to do.
ANALYZED_MARK = "upkeep_analyzed"
MERGED_MARK = "upkeep_merged"


class SqliteUpkeep:
    """The file's upkeep, one step at a time, each one short write transaction (or a
    checkpoint, which holds no lock) on a connection of its own: autocommit, its own
    analysis limit, and no checkpoint inside its commits (a step's time is its hold on the
    write lock; the WAL is copied back after it, lock given back). Which step is due:
    statistics first, then merges while the archive has articles they have not seen and
    FTS5 finds work, then the WAL."""

    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._path = path
        self._connect = connect  # a new autocommit connection to the file
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one step at a time, whichever thread takes it
        self._pages_per_second = FIRST_PAGES_PER_SECOND

    def step(self, budget_seconds: float) -> UpkeepStep:
        with self._lock:
            db = self._connection()
            newest = db.execute(NEWEST_ARTICLE_ID).fetchone()[0]
            marks = dict(
                db.execute(
                    "SELECT name, value FROM meta WHERE name IN (?, ?)",
                    (ANALYZED_MARK, MERGED_MARK),
                ).fetchall()
            )
            if self._analysis_due(db, newest, marks.get(ANALYZED_MARK)):
                step = self._analyze(db, newest)
            elif marks.get(MERGED_MARK) != str(newest):
                step = self._merge(db, budget_seconds, newest)
            else:
                return self._checkpoint(db)
            if _wal_bytes(self._path) > COPY_ABOVE_BYTES:
                # What SQLite's own checkpoint does at 1000 pages, after the lock is given
                # back: the WAL stays small, and so does cutting it back later.
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            return step

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._connect()
            self._db.execute(f"PRAGMA analysis_limit = {ANALYZE_LIMIT}")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
        return self._db

    def _analysis_due(self, db: sqlite3.Connection, newest: int, mark: str | None) -> bool:
        if newest < ANALYZE_FROM:
            return False
        if mark is None or not _has_statistics(db):
            return True
        analyzed_id, analyzed_us = map(int, mark.split())
        return newest - analyzed_id >= ANALYZE_GROWTH * analyzed_id or (
            newest != analyzed_id and time.time_ns() // 1000 - analyzed_us >= ANALYZE_EVERY_US
        )

    def _analyze(self, db: sqlite3.Connection, newest: int) -> UpkeepStep:
        def analyze() -> None:
            for table in ANALYZED:
                db.execute(f"ANALYZE {table}")
            # A connection reads the statistics with the schema, and an ANALYZE elsewhere
            # does not make it read them again (measured: its plans stayed as they were): a
            # change of schema makes every connection of every process reload it.
            db.execute("CREATE VIEW newsagg_upkeep_reload AS SELECT 1")
            db.execute("DROP VIEW newsagg_upkeep_reload")
            _mark(db, ANALYZED_MARK, f"{newest} {time.time_ns() // 1000}")

        _none, seconds = _write(db, analyze)
        return UpkeepStep("analyze", seconds, more=True)

    def _merge(self, db: sqlite3.Connection, budget_seconds: float, newest: int) -> UpkeepStep:
        low, high = MERGE_PAGES
        pages = round(min(max(self._pages_per_second * budget_seconds, low), high))

        def merge() -> int:
            before = db.total_changes
            db.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('merge', ?)", (pages,))
            changes = db.total_changes - before
            if changes < 2:  # FTS5's sign that there was nothing to merge
                _mark(db, MERGED_MARK, str(newest))
            return changes

        changes, seconds = _write(db, merge)
        if changes >= 2 * pages and seconds > 0:  # a full step (~2.7 changes a page): its pace
            self._pages_per_second = (self._pages_per_second + pages / seconds) / 2
        # Either more to merge, or the checkpoint next.
        return UpkeepStep("merge", seconds, more=True)

    def _checkpoint(self, db: sqlite3.Connection) -> UpkeepStep:
        began = time.perf_counter()
        busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames <= 0:
            return UpkeepStep()
        seconds = time.perf_counter() - began
        if busy or copied < frames or _wal_bytes(self._path) <= TRUNCATE_ABOVE_BYTES:
            return UpkeepStep("checkpoint", seconds)
        waits_ms = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}")
        try:
            began = time.perf_counter()
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            return UpkeepStep("checkpoint" if busy else "truncate", time.perf_counter() - began)
        finally:
            db.execute(f"PRAGMA busy_timeout = {waits_ms}")


def _write(db: sqlite3.Connection, work: Callable[[], T]) -> tuple[T, float]:
    """`work()` in one write transaction on an autocommit connection; its result, and how
    long the transaction held the write lock (from taking it to committing)."""
    db.execute("BEGIN IMMEDIATE")
    began = time.perf_counter()
    try:
        result = work()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result, time.perf_counter() - began


def _mark(db: sqlite3.Connection, name: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta(name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def _has_statistics(db: sqlite3.Connection) -> bool:
    """Whether sqlite_stat1 holds the archive's statistics."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
        return False
    return bool(db.execute("SELECT 1 FROM sqlite_stat1 WHERE tbl = 'articles'").fetchone())


def _wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0
