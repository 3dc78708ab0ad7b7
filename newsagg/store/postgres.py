"""PostgreSQL persistence, for several instances sharing one database.

A connection pool per process. Key checks run on every request, so a read is one round
trip: one statement in autocommit (no BEGIN/COMMIT), and no liveness probe before each
checkout; instead a read that finds its connection broken (a server restart) is tried
again on another, so broken connections are replaced instead of failing a request. Every
write is one transaction. A server that cannot be reached becomes `Unavailable` (the
edge answers 503 with Retry-After) and the pool reconnects by itself once it is back;
meanwhile calls fail at once for a moment after each failed wait, so that an outage costs
each request a 503, not seconds of waiting (key checks run on the event loop).
The connection URL may hold a password: it never appears in an error or a log line.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo, errors
from psycopg_pool import ConnectionPool, PoolTimeout

from newsagg.errors import Unavailable
from newsagg.query.tokens import index_text
from newsagg.settings import SettingsError
from newsagg.store.archive import (
    COLUMNS,
    PG_FIRST_WINDOW,
    ArchivedRow,
    ArchiveQuery,
    column_values,
    next_window,
    ranked_search,
    search_sql,
    upsert_set,
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
from newsagg.store.migrations import CURRENT_VERSION, MIGRATIONS, Migration, apply_pending
from newsagg.store.push import PushRecords

log = logging.getLogger(__name__)

UNREACHABLE = "The database is unreachable; retry shortly."
RETRY_AFTER_SECONDS = 2
# A request waits at most this long for a connection: longer means the server is gone
# (or the pool is exhausted), and a prompt 503 serves the client better than a queue.
WAIT_SECONDS = 2.0
# After a connection failure, calls fail at once for this long while the pool reconnects.
FAIL_FAST_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 2  # libpq's own limit for a host that does not answer at all
# The server cancels a statement that runs (or waits for a lock) longer than this, so a
# stuck transaction elsewhere cannot hold a request, or the event loop, indefinitely.
STATEMENT_TIMEOUT_MS = 5000
POOL_SIZE = 10
# Any fixed number, the same in every instance: it names the lock migrations run under.
MIGRATION_LOCK = 7_265_320_341
ARTICLES_LOCK = 7_265_320_342  # save_articles, likewise
# Likewise for the per-key locks of rate-limit windows: (this class, key id) in the
# two-number lock space, which does not overlap the one-number space above.
WINDOW_LOCK_CLASS = 72_653
# And for the per-provider locks of upstream budgets: (this class, a number per provider).
BUDGET_LOCK_CLASS = 72_654
# The database server's clock in microseconds: one clock for every instance.
NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


def _rows(db: psycopg.Connection) -> Rows:
    """Run one statement on `db`: its rows, or none for a statement that returns none."""

    def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor = db.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    return run


class _LostConnection(Unavailable):
    """The server closed the connection in hand; another connection may be sound."""


class PostgresStore(KeyLookups, HarvestRecords, PushRecords, ArchivePruning):
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    PARAM = "%s"
    waits_on_network = True

    def __init__(self, url: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        try:
            conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            # The parser's message may quote the URL, password included.
            raise SettingsError("NEWSAGG_DATABASE_URL is not a valid PostgreSQL URL") from None
        self._migrations = migrations
        self._failing_until = 0.0  # monotonic time; a plain float, read and set atomically
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=WAIT_SECONDS,
            kwargs={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "newsagg",
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
            name="newsagg",
            open=True,
        )

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection for one transaction: committed, or rolled back on an error."""
        if time.monotonic() < self._failing_until:
            raise Unavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS)
        try:
            with self._pool.connection() as db:
                yield db
        except psycopg.OperationalError as exc:
            if exc.sqlstate is None and not isinstance(exc, PoolTimeout):
                # The server closed this connection (it restarted, say): not yet a sign
                # that it is gone; a read tries another connection.
                raise _LostConnection(
                    UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS
                ) from None
            # A pool wait that timed out, a refused connection (08...) or a server shutting
            # down (57P...) mean the server is gone; a deadlock or a cancelled query does
            # not, and fails only its own call.
            if exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P")):
                self._failing_until = time.monotonic() + FAIL_FAST_SECONDS
            # Only the class name: libpq's message can carry connection details.
            log.warning("PostgreSQL unavailable (%s)", type(exc).__name__)
            raise Unavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS) from None

    def _read(
        self, sql: str, params: Sequence[Any] = (), *, prepare: bool | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement, in one round trip. `prepare=False` for a
        statement whose best plan depends on its values (psycopg prepares a statement on
        its 5th run, and PostgreSQL may then keep one generic plan for every value)."""
        for _attempt in range(POOL_SIZE + 1):
            try:
                with self._transaction() as db:
                    db.autocommit = True  # one statement: no BEGIN and COMMIT around it
                    try:
                        return db.execute(sql, params, prepare=prepare).fetchall()
                    finally:
                        db.autocommit = False
            except _LostConnection:
                continue  # the pool drops that connection; the next one may be sound
        raise Unavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS)

    def close(self) -> None:
        self._pool.close()

    # -- schema ----------------------------------------------------------------------

    def migrate(self) -> list[Migration]:
        with self._transaction() as db:
            # A migration, or the wait for another instance's, may take its time.
            db.execute("SET LOCAL statement_timeout = 0")
            # Held until commit: instances starting together migrate one after the other.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return apply_pending(db.execute, "postgres", self._migrations)

    def schema_version(self) -> int:
        with self._transaction() as db:
            exists = db.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            return db.execute(CURRENT_VERSION).fetchone()[0] if exists[0] else 0

    # -- service secrets -------------------------------------------------------------

    def secret(self, name: str, make: Callable[[], str]) -> str:
        with self._transaction() as db:
            # A concurrent first insert makes this one wait, then do nothing; the SELECT,
            # a new statement, sees the winner's value (READ COMMITTED).
            db.execute(
                "INSERT INTO meta(name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, make()),
            )
            return db.execute("SELECT value FROM meta WHERE name = %s", (name,)).fetchone()[0]

    # -- articles --------------------------------------------------------------------

    def save_articles(self, articles: Iterable[tuple[str, int, dict[str, Any]]]) -> list[int]:
        batch = list(articles)
        if not batch:
            return []
        # Rows are locked in url order in every transaction, so two instances saving
        # overlapping batches wait for each other instead of deadlocking. The sort is
        # stable: a url given twice is applied in the caller's order.
        ordered = sorted(batch, key=lambda item: item[0])
        ids: dict[str, int] = {}
        with self._transaction() as db, db.cursor() as cursor:
            # One saver at a time, until commit: ids are then committed in the order they
            # were drawn, so the push matcher, reading ids above its watermark, never
            # passes one that a slower transaction commits later.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (ARTICLES_LOCK,))
            cursor.executemany(
                f"INSERT INTO articles(url, rank, data, {', '.join(COLUMNS)}, published_us,"
                " search, added_us) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " setweight(to_tsvector('simple', %s), 'A')"
                f" || setweight(to_tsvector('simple', %s), 'B'), {NOW_US}) "
                f"ON CONFLICT (url) DO UPDATE SET {upsert_set(('search',))} "
                "WHERE excluded.rank <= articles.rank RETURNING id",
                [
                    (
                        url,
                        rank,
                        json.dumps(data, separators=(",", ":")),
                        *column_values(data),
                        index_text(data.get("title")),
                        index_text(data.get("description")),
                    )
                    for url, rank, data in ordered
                ],
                returning=True,
            )
            for url, _rank, _data in ordered:
                row = cursor.fetchone()
                if row is not None:
                    ids[url] = row[0]
                cursor.nextset()
            # A row kept for its better rank returns nothing above; it exists and is
            # committed (ON CONFLICT waited for its writer), so a new statement sees it.
            kept = [url for url, _rank, _data in ordered if url not in ids]
            if kept:
                cursor.execute("SELECT url, id FROM articles WHERE url = ANY(%s)", (kept,))
                ids.update(cursor.fetchall())
        return [ids[url] for url, _rank, _data in batch]

    def article(self, article_id: int) -> dict[str, Any] | None:
        rows = self._read("SELECT data FROM articles WHERE id = %s", (article_id,))
        return json.loads(rows[0][0]) if rows else None

    def search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        def read(sql: str, params: list[object]) -> list[tuple[Any, ...]]:
            # Unprepared: the values decide the plan (a 30 % word or a rare one, a 7-day
            # window or none); a generic plan for a 30 % word in a window collected every
            # match and sorted them (10x slower). Planning each time costs ~1 ms.
            return self._read(sql, params, prepare=False)

        if query.match is not None and query.sort == "relevance":
            return ranked_search(query, "postgres", read)
        collect = False
        if query.match is not None:
            # Newest first, as on SQLite: a frequent word fills its page from the newest
            # few thousand articles that pass the other filters; when they do not, a window
            # sized from what they held, then (the matches are few) collect them from the
            # GIN index and sort them.
            collect = True
            window: int | None = PG_FIRST_WINDOW
            while window is not None:
                rows = read(*search_sql(query, "postgres", window))
                if len(rows) == query.limit:
                    return [ArchivedRow(*row) for row in rows]
                window = next_window(query.limit, window, len(rows))
        return [ArchivedRow(*row) for row in read(*search_sql(query, "postgres", collect=collect))]

    # -- API keys --------------------------------------------------------------------

    def add_key(
        self, *, name: str, tier: str, admin: bool, prefix: str, digest: str, created_at: str
    ) -> KeyRecord:
        try:
            with self._transaction() as db:
                row = db.execute(
                    "INSERT INTO api_keys(name, tier, admin, prefix, digest, created_at) "
                    f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {KEY_COLUMNS}",
                    (name, tier, admin, prefix, digest, created_at),
                ).fetchone()
        except errors.UniqueViolation:  # digest is the one UNIQUE column a caller supplies
            raise DuplicateDigest from None
        return key_record(row)

    def revoke_key(self, key_id: int, revoked_at: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (revoked_at, key_id),
            )
            return cursor.rowcount == 1

    # -- rate-limit windows ----------------------------------------------------------
    # Shared by every instance. A transaction-scoped lock per key makes count-then-insert
    # atomic (two instances counting 99 at once would both insert otherwise).

    def _window(self, db: psycopg.Connection, key_id: int, window_us: int) -> Window:
        count, oldest, now_us = db.execute(
            f"SELECT COUNT(*), MIN(at_us), {NOW_US} FROM rate_limit_hits"
            f" WHERE key_id = %s AND at_us > {NOW_US} - %s",
            (key_id, window_us),
        ).fetchone()
        return Window(count, None if oldest is None else oldest / 1e6, now_us / 1e6)

    def window_hit(self, key_id: int, limit: int, window_seconds: float) -> Window:
        window_us = int(window_seconds * 1e6)
        with self._transaction() as db:
            db.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                (WINDOW_LOCK_CLASS, key_id % 2**31),  # keys sharing a number just take turns
            )
            db.execute(
                f"DELETE FROM rate_limit_hits WHERE key_id = %s AND at_us <= {NOW_US} - %s",
                (key_id, window_us),
            )
            window = self._window(db, key_id, window_us)
            if window.count >= limit:
                return window
            (entry,) = db.execute(
                "INSERT INTO rate_limit_hits(key_id, at_us) VALUES (%s, %s) RETURNING id",
                (key_id, int(window.now * 1e6)),
            ).fetchone()
            oldest = window.now if window.oldest is None else window.oldest
            return Window(window.count + 1, oldest, window.now, str(entry))

    def window_peek(self, key_id: int, window_seconds: float) -> Window:
        with self._transaction() as db:
            return self._window(db, key_id, int(window_seconds * 1e6))

    def window_refund(self, key_id: int, entry: str, window_seconds: float) -> Window:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM rate_limit_hits WHERE id = %s AND key_id = %s", (int(entry), key_id)
            )
            return self._window(db, key_id, int(window_seconds * 1e6))

    # -- upstream budgets --------------------------------------------------------------
    # The ledger of upstream calls (newsagg.budget), shared by every instance, on the
    # server's clock. A transaction-scoped lock per provider makes count-then-insert
    # atomic, so instances never overspend an upstream's quota together.

    def budget_take(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (BUDGET_LOCK_CLASS, _lock(provider)))
            # Read after the lock: the previous holder's call is committed and counted.
            now = db.execute(f"SELECT {NOW_US}").fetchone()[0] if now_us is None else now_us
            return take_budget(_rows(db), "%s", provider, purpose, key_id, checks, now)

    def budget_peek(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        with self._transaction() as db:
            now = db.execute(f"SELECT {NOW_US}").fetchone()[0] if now_us is None else now_us
            return count_budget(_rows(db), "%s", provider, purpose, key_id, checks, now)

    # -- harvest -----------------------------------------------------------------------
    # The harvester's state and its lease (newsagg.harvest), the lease on the server's
    # clock: the upsert locks the lease row, so two instances never both get it.

    def lease_take(self, name: str, holder: str, seconds: float) -> bool:
        with self._transaction() as db:
            row = db.execute(
                lease_sql("%s", NOW_US), (name, holder, round(seconds * 1e6))
            ).fetchone()
            return row is not None

    def newest_article_id(self) -> int:
        return self._read("SELECT COALESCE(MAX(id), 0) FROM articles")[0][0]


def _lock(provider: str) -> int:
    """The second number of a provider's budget lock: the same in every instance."""
    return zlib.crc32(provider.encode()) % 2**31
