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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import conninfo, errors
from psycopg_pool import ConnectionPool, PoolTimeout

from newsagg.errors import Unavailable
from newsagg.query.analysis import Analyzer
from newsagg.settings import SettingsError
from newsagg.store.archive import (
    COLUMNS,
    PG_FIRST_WINDOW,
    UPSERT_WHEN,
    Answer,
    Archive,
    ArchivedRow,
    ArchiveQuery,
    ArticleRecord,
    IndexedText,
    arrivals,
    column_values,
    next_window,
    upsert_set,
)
from newsagg.store.archive_sql import collect_sql, dated_window_sql, newest_sql
from newsagg.store.base import UpkeepStep
from newsagg.store.fulltext import ANSWER, tsvector_text
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
from newsagg.stories.clustering import StoryRules

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
REINDEX_ROWS = 2_000  # articles a step of `reindex` reads and rewrites
# An article's upstream answers as tsvector lexemes (as newsagg.store.fulltext writes them):
# a story saved again keeps the answers it had in its new vector.
_KEPT_ANSWERS = (
    "coalesce((SELECT array_to_tsvector(array_agg(DISTINCT '"
    + ANSWER
    + "' || answer_key)) FROM upstream_answers WHERE article_id = articles.id), '')"
)


class _LostConnection(Unavailable):
    """The server closed the connection in hand; another connection may be sound."""


class PostgresDialect:
    param = DIALECTS["postgres"]["param"]
    now = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"  # the server's clock
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        try:
            conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            # The parser's message may quote the URL, password included.
            raise SettingsError("NEWSAGG_DATABASE_URL is not a valid PostgreSQL URL") from None
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
    def transaction(self) -> Iterator[psycopg.Connection]:
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

    def read(
        self, sql: str, params: Sequence[Any] = (), *, prepare: bool | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement, in one round trip. `prepare=False` for a
        statement whose best plan depends on its values (psycopg prepares a statement on
        its 5th run, and PostgreSQL may then keep one generic plan for every value)."""
        for _attempt in range(POOL_SIZE + 1):
            try:
                with self.transaction() as db:
                    db.autocommit = True  # one statement: no BEGIN and COMMIT around it
                    try:
                        return db.execute(sql, params, prepare=prepare).fetchall()
                    finally:
                        db.autocommit = False
            except _LostConnection:
                continue  # the pool drops that connection; the next one may be sound
        raise Unavailable(UNREACHABLE, retry_after_seconds=RETRY_AFTER_SECONDS)

    def take_turns(self, db: psycopg.Connection, lock: tuple[int, int] | None) -> None:
        if lock is not None:  # held until commit
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock)

    def is_unique_violation(self, error: Exception, column: str) -> bool:
        # The constraint a column's UNIQUE makes is named "table_column_key".
        return (
            isinstance(error, errors.UniqueViolation)
            and error.diag.constraint_name == column.replace(".", "_") + "_key"
        )

    def close(self) -> None:
        self._pool.close()


class PostgresStore(Keys, Ledger, Archive, Push, Leases):
    waits_on_network = True
    threads = None  # the event loop's default ones: the pool's connections serve any thread
    db: PostgresDialect

    def __init__(
        self,
        url: str,
        migrations: Sequence[Migration] = MIGRATIONS,
        analyzer: Analyzer | None = None,
        story_rules: StoryRules | None = None,
    ) -> None:
        super().__init__(PostgresDialect(url))
        self._migrations = migrations
        self.analyzer = analyzer or Analyzer()
        self.story_rules = story_rules or StoryRules()

    def close(self) -> None:
        self.db.close()

    def upkeep_step(self, budget_seconds: float) -> UpkeepStep:
        """Nothing: the server's autovacuum keeps the planner's statistics, the visibility
        map and the GIN indexes' pending lists in shape, with the storage parameters
        migration 10 sets for the archive."""
        return UpkeepStep()

    # -- schema ----------------------------------------------------------------------

    def migrate(self) -> list[Migration]:
        with self.db.transaction() as db:
            # A migration, or the wait for another instance's, may take its time.
            db.execute("SET LOCAL statement_timeout = 0")
            # Held until commit: instances starting together migrate one after the other.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return apply_pending(
                db.execute,
                "postgres",
                lambda: self._reindex(db),
                lambda: self._rebuild_stories(db),
                self._migrations,
            )

    def schema_version(self) -> int:
        with self.db.transaction() as db:
            exists = db.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            return db.execute(CURRENT_VERSION).fetchone()[0] if exists[0] else 0

    # -- articles --------------------------------------------------------------------

    def reindex(self) -> int:
        """The full-text index made anew with the store's analyzer; how many articles."""
        with self.db.transaction() as db:
            db.execute("SET LOCAL statement_timeout = 0")
            db.execute("SELECT pg_advisory_xact_lock(%s)", (ARTICLES_LOCK,))
            return self._reindex(db)

    def rebuild_stories(self) -> int:
        """Every article placed in a story anew; how many."""
        with self.db.transaction() as db:
            db.execute("SET LOCAL statement_timeout = 0")
            self._articles_turn(db)
            return self._rebuild_stories(db)

    def _pipelined(self, db: psycopg.Connection) -> AbstractContextManager[object]:
        return db.pipeline()

    def _articles_turn(self, db: psycopg.Connection) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (ARTICLES_LOCK,))

    def _reindex(self, db: psycopg.Connection) -> int:
        done, after = 0, 0
        while True:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM articles WHERE id > %s ORDER BY id LIMIT %s",
                    (after, REINDEX_ROWS),
                ).fetchall()
            ]
            if not ids:
                break
            self._rewrite_index(db, ids, {})
            done += len(ids)
            after = ids[-1]
        self._record_identity(db)
        return done

    def _vector(self, text: IndexedText) -> str:
        document = self.analyzer.document(text.title, text.description, text.body)
        return tsvector_text(document, list(text.answers))

    def _rewrite_index(
        self, db: psycopg.Connection, ids: Iterable[int], old: Mapping[int, IndexedText]
    ) -> None:
        """`old` is not needed: the vector is a column of the article's row."""
        texts = self._texts(db, ids)
        with db.cursor() as cursor:
            cursor.executemany(
                "UPDATE articles SET search = %s::tsvector WHERE id = %s",
                [(self._vector(text), article_id) for article_id, text in texts.items()],
            )

    def _unindex(self, db: psycopg.Connection, ids: Sequence[int]) -> None:
        """Nothing: the vector goes with the article's row."""

    # -- articles --------------------------------------------------------------------

    def save_articles(
        self,
        articles: Iterable[ArticleRecord | tuple[str, int, dict[str, Any]]],
        answer: Answer | None = None,
    ) -> list[int]:
        batch = [ArticleRecord(*item) for item in articles]
        if not batch:
            return []
        # Rows are locked in url order in every transaction, so two instances saving
        # overlapping batches wait for each other instead of deadlocking. The sort is
        # stable: a url given twice is applied in the caller's order.
        ordered = sorted(batch, key=lambda record: record.url)
        ids: dict[str, int] = {}
        now = self.db.now
        with self.db.transaction() as db, db.cursor() as cursor:
            # One saver at a time, until commit: ids are then committed in the order they
            # were drawn, so the push matcher, reading ids above its watermark, never
            # passes one that a slower transaction commits later.
            self._articles_turn(db)
            cursor.executemany(
                f"INSERT INTO articles(url, rank, data, {', '.join(COLUMNS)}, published_us,"
                " body, search, added_us, body_until_us) VALUES"
                f" ({', '.join(['%s'] * (5 + len(COLUMNS)))}, %s::tsvector, {now},"
                f" %s::bigint + {now}) ON CONFLICT (url) DO UPDATE SET {upsert_set()},"
                f" search = excluded.search || {_KEPT_ANSWERS} WHERE {UPSERT_WHEN}"
                " RETURNING id, xmax = 0",  # xmax 0: the row was inserted, not updated
                [
                    (
                        record.url,
                        record.rank,
                        json.dumps(record.data, separators=(",", ":")),
                        *column_values(record),
                        self._vector(
                            IndexedText(
                                record.data.get("title"),
                                record.data.get("description"),
                                record.body,
                                (),
                            )
                        ),
                        record.body_for_us if record.body is not None else None,
                    )
                    for record in ordered
                ],
                returning=True,
            )
            inserted: set[str] = set()
            for record in ordered:
                row = cursor.fetchone()
                if row is not None:
                    ids[record.url] = row[0]
                    if row[1]:
                        inserted.add(record.url)
                cursor.nextset()
            # A row kept (for its better rank, or unchanged) returns nothing above; it
            # exists and is committed (ON CONFLICT waited for its writer), so a new
            # statement sees it.
            replaced = ids.keys() - inserted  # kept records the upsert replaced
            kept = [record.url for record in ordered if record.url not in ids]
            if kept:
                cursor.execute("SELECT url, id FROM articles WHERE url = ANY(%s)", (kept,))
                ids.update(cursor.fetchall())
            answered = self._answered(db, list(ids.values()), answer)
            if answered:
                self._rewrite_index(db, answered, {})
            self._place_all(db, arrivals(batch, ids, inserted))
            self._replaced(db, arrivals(batch, ids, replaced))
        return [ids[record.url] for record in batch]

    def _search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        def read(sql: str, params: list[object]) -> list[tuple[Any, ...]]:
            # Unprepared: the values decide the plan (a 30 % word or a rare one, a 7-day
            # window or none); a generic plan for a 30 % word in a window collected every
            # match and sorted them (10x slower). Planning each time costs ~1 ms.
            return self.db.read(sql, params, prepare=False)

        if query.match is not None and query.sort == "relevance":
            return ranked_search(query, "postgres", read)
        if query.match is None:
            return [ArchivedRow(*row) for row in read(*newest_sql(query, "postgres"))]
        # Newest first, as on SQLite: a frequent word fills its page from the newest few
        # thousand articles that pass the other filters; when they do not, a window sized
        # from what they held, then (the matches are few) collect them from the GIN index
        # and sort them.
        window: int | None = PG_FIRST_WINDOW
        while window is not None:
            rows = read(*dated_window_sql(query, window))
            if len(rows) == query.limit:
                return [ArchivedRow(*row) for row in rows]
            window = next_window(query.limit, window, len(rows))
        return [ArchivedRow(*row) for row in read(*collect_sql(query))]
