"""The service keeps its database fast by itself (newsagg.upkeep): on SQLite, planner
statistics, full-text merges and WAL checkpoints in short steps, in one process at a time;
on PostgreSQL, autovacuum with the storage parameters of migration 10. And no search runs
on the event loop: a search is made from a thread on every engine, a point lookup inline,
and a remembered page takes no thread hop at all."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.app import create_app
from newsagg.query.syntax import parse
from newsagg.request import FeedRequest
from newsagg.service import Service
from newsagg.store import UpkeepStep, sqlite_upkeep, without_blocking
from newsagg.store.archive import ArchiveQuery
from newsagg.store.postgres import PostgresStore
from newsagg.store.sqlite import SqliteStore
from newsagg.store.sqlite_upkeep import ANALYZE_FROM
from newsagg.upkeep import UPKEEP_LEASE, Upkeep

CATEGORIES = ("business", "general", "health", "science", "sports", "technology")
WORDS = [
    *("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"),
    *("lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi"),
    *("chi", "psi", "omega"),
]
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def article(n: int, own_words: int = 0) -> tuple[str, int, dict[str, Any]]:
    """Article `n`: a few words of WORDS in a pattern of its own, and words of its own (one
    in the title, `own_words` more in the description)."""
    url = f"https://example.org/story/{n}"
    pick = [WORDS[(n * 7 + k * (n % 5 + 1)) % len(WORDS)] for k in range(14)]
    pick += [f"own{n}x{k}" for k in range(own_words)]
    return (
        url,
        0,
        {
            "title": f"{' '.join(pick[:5])} story{n}",
            "description": " ".join(pick[5:]),
            "url": url,
            "source": "newsapi",
            "publisher": None,
            "author": None,
            "image_url": None,
            "category": CATEGORIES[n % len(CATEGORIES)],
            "published_at": (BASE + timedelta(minutes=n)).isoformat(),
        },
    )


def save(store: SqliteStore, first: int, count: int, batch: int = 500) -> None:
    for start in range(first, first + count, batch):
        store.save_articles(article(n) for n in range(start, min(start + batch, first + count)))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[], SqliteStore]]:
    """Stores on one SQLite file, as processes would open it; all closed afterwards."""
    opened: list[SqliteStore] = []

    def open_one() -> SqliteStore:
        store = SqliteStore(str(tmp_path / "upkeep.sqlite3"))
        store.migrate()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def raw(store: SqliteStore) -> sqlite3.Connection:
    """A plain connection to the store's file (autocommit), for looking inside."""
    return sqlite3.connect(store.path, isolation_level=None)


def statistics_of(store: SqliteStore, table: str) -> list[tuple[Any, ...]]:
    with closing(raw(store)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return []
        return db.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = ?", (table,)).fetchall()


def segments(db: sqlite3.Connection) -> int:
    """FTS5 segments of the archive's index: each has its rows in the %_idx table."""
    return db.execute("SELECT count(DISTINCT segid) FROM articles_fts_idx").fetchone()[0]


def works(steps: list[UpkeepStep]) -> list[str]:
    return [step.work for step in steps]


# -- SQLite: statistics --------------------------------------------------------------------


def test_statistics_come_with_enough_articles_and_reach_open_connections(stores):
    store, other = stores(), stores()
    upkeep = Upkeep(store)
    save(store, 0, ANALYZE_FROM - 1)
    assert "analyze" not in works(upkeep.catch_up())  # too few to matter
    assert statistics_of(store, "articles") == []
    other.search(ArchiveQuery(match=parse("alpha")))  # this connection has read the schema
    with closing(raw(store)) as db:
        schema_before = db.execute("PRAGMA schema_version").fetchone()[0]
        save(store, ANALYZE_FROM - 1, 1)
        steps = upkeep.catch_up()
        assert works(steps)[0] == "analyze" and steps[-1].more is False
        # The change of schema that makes every open connection load the statistics.
        assert db.execute("PRAGMA schema_version").fetchone()[0] > schema_before
    indexes = dict(statistics_of(store, "articles"))
    assert {"articles_category_published", "articles_published"} <= set(indexes)
    assert int(indexes["articles_published"].split()[0]) > 0  # rows, as sampled
    assert "analyze" not in works(upkeep.catch_up())  # nothing new: nothing to do


def test_statistics_follow_the_archive_as_it_grows_by_a_tenth(stores):
    store = stores()
    upkeep = Upkeep(store)
    save(store, 0, 2000)
    assert "analyze" in works(upkeep.catch_up())
    save(store, 2000, 150)  # 7.5 %
    assert "analyze" not in works(upkeep.catch_up())
    save(store, 2150, 60)  # 10.5 % since the last ANALYZE
    with closing(raw(store)) as db:
        schema_before = db.execute("PRAGMA schema_version").fetchone()[0]
        assert "analyze" in works(upkeep.catch_up())
        # sqlite_stat1 was there already: the upkeep itself changed the schema, so that
        # connections open meanwhile load the new statistics.
        assert db.execute("PRAGMA schema_version").fetchone()[0] > schema_before
        mark = db.execute("SELECT value FROM meta WHERE name = 'upkeep_analyzed'").fetchone()
    assert mark[0].split()[0] == "2210"  # the newest article id it analyzed at


# -- SQLite: full-text merges --------------------------------------------------------------


def test_merges_bring_the_segments_down_in_bounded_steps(stores):
    store = stores()
    with closing(raw(store)) as db:
        # Many segments, deterministically: the writers' own merging off, and each save a
        # segment (at least) of its own.
        db.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('automerge', 0)")
        db.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('crisismerge', 1000)")
        for n in range(400):
            store.save_articles([article(n, own_words=200)])
        before = segments(db)
        assert before >= 300
        query = ArchiveQuery(match=parse("alpha OR omega"), limit=100)
        found = [row.id for row in store.search(query)]
        upkeep = Upkeep(store, budget_seconds=0.0001)  # the smallest step: 16 pages
        steps = upkeep.catch_up()
        merges = [step for step in steps if step.work == "merge"]
        after = segments(db)
        assert after <= 3, (before, after)
        # In steps: many of them, each short (about a millisecond here), where one step
        # taking it all would have been as long as all of them.
        assert len(merges) >= 10, len(merges)
        assert max(step.seconds for step in merges) < 0.1
        # The index is sound (this raises if not) and answers as before.
        db.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('integrity-check', 1)")
        assert [row.id for row in store.search(query)] == found
        assert works(upkeep.catch_up()) in (["checkpoint"], ["truncate"], [""])


def test_a_step_never_waits_long_for_a_reader_to_let_go_of_the_wal(stores, monkeypatch):
    store = stores()
    monkeypatch.setattr(sqlite_upkeep, "TRUNCATE_ABOVE_BYTES", 0)
    upkeep = Upkeep(store)
    save(store, 0, 200)
    assert upkeep.catch_up()[-1].work == "truncate"
    assert os.path.getsize(store.path + "-wal") == 0
    save(store, 200, 200)
    monkeypatch.setattr(sqlite_upkeep, "TRUNCATE_ABOVE_BYTES", 2**40)
    assert upkeep.catch_up()[-1].work == "checkpoint"  # merged, copied back, not cut
    monkeypatch.setattr(sqlite_upkeep, "TRUNCATE_ABOVE_BYTES", 0)
    store.secret("written", lambda: "after the checkpoint")  # in the WAL only, so far
    with closing(raw(store)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM meta").fetchone()  # reads from the WAL
        step = upkeep.step()
        reader.execute("COMMIT")
    # The truncation waited its 20 ms for the reader, not the 10 s busy timeout, and gave up.
    assert step.work == "checkpoint" and step.seconds < 1.0
    assert os.path.getsize(store.path + "-wal") > 0
    assert upkeep.step().work == "truncate"
    assert os.path.getsize(store.path + "-wal") == 0


# -- the archive's churn --------------------------------------------------------------------


def test_a_save_indexes_its_batch_as_one_segment_and_an_unchanged_story_writes_nothing(stores):
    store = stores()
    with closing(raw(store)) as db:
        db.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('automerge', 0)")
        ids = store.save_articles(article(n) for n in range(100))
        assert segments(db) == 1  # a statement per article made a segment per article
        assert store.save_articles(article(n) for n in range(100)) == ids  # seen again
        assert segments(db) == 1  # no delete and re-insert in the full-text index
        changed = article(7)
        changed[2]["title"] = "a corrected title"
        assert store.save_articles([changed]) == [ids[7]]
        assert segments(db) == 2
    assert store.article(ids[7])["title"] == "a corrected title"
    found = store.search(ArchiveQuery(match=parse("corrected")))
    assert [row.id for row in found] == [ids[7]]


def test_postgres_leaves_an_unchanged_story_alone(pg_url):
    store = PostgresStore(pg_url)
    try:
        store.migrate()
        ids = store.save_articles(article(n) for n in range(20))
        with psycopg.connect(pg_url, autocommit=True) as db:

            def versions() -> dict[int, str]:  # a row's xmin changes with every update
                return dict(db.execute("SELECT id, xmin::text FROM articles").fetchall())

            before = versions()
            assert store.save_articles(article(n) for n in range(20)) == ids
            assert versions() == before  # no dead rows for autovacuum to clear
            changed = article(3)
            changed[2]["description"] = "updated"
            assert store.save_articles([changed, article(4)]) == [ids[3], ids[4]]
            after = versions()
        assert [i for i in ids if after[i] != before[i]] == [ids[3]]
    finally:
        store.close()


# -- one process at a time -----------------------------------------------------------------


class Stepping:
    """Counts the upkeep steps a store takes, and lets a test wait for them (`seen`: one
    condition shared by several stores, to wait for whichever steps first)."""

    def __init__(self, store: SqliteStore, seen: threading.Condition | None = None) -> None:
        self.count = 0
        self._seen = seen or threading.Condition()
        step = store.upkeep_step

        def counted(budget_seconds: float) -> UpkeepStep:
            taken = step(budget_seconds)
            with self._seen:
                self.count += 1
                self._seen.notify_all()
            return taken

        store.upkeep_step = counted  # type: ignore[method-assign]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._seen:
            return self._seen.wait_for(lambda: self.count >= count, timeout)


def quick(store: SqliteStore) -> Upkeep:
    """An upkeep whose turns come at once and often: the lease alone keeps them apart."""
    return Upkeep(store, first_wait_seconds=0, idle_seconds=0.01, retry_seconds=(0.01, 0.02))


def lease_holder(store: SqliteStore) -> str | None:
    with closing(raw(store)) as db:
        row = db.execute(
            "SELECT holder FROM harvest_leases WHERE name = ?", (UPKEEP_LEASE,)
        ).fetchone()
    return row and row[0]


def test_only_the_process_holding_the_lease_takes_steps_and_another_takes_over(stores):
    a, b = stores(), stores()
    save(a, 0, 50)
    seen = threading.Condition()
    counts = {"a": Stepping(a, seen), "b": Stepping(b, seen)}
    upkeeps = {"a": quick(a), "b": quick(b)}
    for upkeep in upkeeps.values():
        upkeep.start()
    try:
        with seen:
            assert seen.wait_for(lambda: counts["a"].count + counts["b"].count >= 5, 10)
        leader = "a" if counts["a"].count else "b"
        other = "b" if leader == "a" else "a"
        assert counts[leader].wait_for(counts[leader].count + 20)  # many turns each...
        assert counts[other].count == 0  # ... tried by the other too: refused the lease
        assert lease_holder(a) == upkeeps[leader].leadership.holder
        upkeeps[leader].stop()  # gives the lease up: the other takes it at its next try
        assert counts[other].wait_for(3)
        assert lease_holder(a) == upkeeps[other].leadership.holder
    finally:
        for upkeep in upkeeps.values():
            upkeep.stop()
    assert lease_holder(a) is None


def test_the_app_starts_the_services_upkeep_and_stops_it(make_service):
    service: Service = make_service()
    assert isinstance(service.upkeep, Upkeep)
    store = service.store
    assert isinstance(store, SqliteStore)
    service.upkeep = quick(store)
    steps = Stepping(store)
    with create_app(service=service).test_client() as client:
        assert client.get("/health").status_code == 200
        assert steps.wait_for(2)
        assert lease_holder(store) == service.upkeep.leadership.holder
    assert lease_holder(store) is None  # stopped with the app, the lease given up


# -- PostgreSQL ----------------------------------------------------------------------------


def test_postgres_keeps_itself_with_the_storage_parameters_of_migration_10(pg_url):
    store = PostgresStore(pg_url)
    try:
        store.migrate()
        assert store.upkeep_step(0.02) == UpkeepStep()  # autovacuum's work
        assert Upkeep(store).step() == UpkeepStep()  # no body text is due to leave
    finally:
        store.close()
    with psycopg.connect(pg_url) as db:
        options = dict(
            db.execute(
                "SELECT relname, reloptions FROM pg_class"
                " WHERE relname IN ('articles', 'articles_search', 'articles_pairs')"
            ).fetchall()
        )
        assert db.execute("SELECT count(*) FROM harvest_leases").fetchone()[0] == 0
    assert options["articles_search"] == ["gin_pending_list_limit=256"]
    assert options["articles_pairs"] == ["gin_pending_list_limit=256"]


def test_sqlite_migration_10_lets_the_upkeep_merge_any_level_of_two(stores):
    with closing(raw(stores())) as db:
        assert db.execute("SELECT v FROM articles_fts_config WHERE k = 'usermerge'").fetchone() == (
            2,
        )


# -- no search on the event loop -----------------------------------------------------------


def test_a_search_runs_off_the_event_loop_and_a_point_lookup_on_it(stores):
    store = stores()
    save(store, 0, 30)
    threads: list[int] = []
    read = store.db.read

    def recorded(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        threads.append(threading.get_ident())
        return read(sql, params)

    store.db.read = recorded  # type: ignore[method-assign]

    async def main() -> int:
        rows = await without_blocking(store, store.search, ArchiveQuery(match=parse("alpha")))
        assert rows
        searched = set(threads)
        threads.clear()
        assert await without_blocking(store, store.article, rows[0].id) is not None
        assert threads == [threading.get_ident()]  # the lookup: inline, on the loop
        return searched.pop() if len(searched) == 1 else -1

    searched_on = asyncio.run(main())
    assert searched_on not in (-1, threading.get_ident())


def test_the_event_loop_goes_on_while_a_search_runs(stores):
    store = stores()
    save(store, 0, 30)
    loop_ran = threading.Event()
    waited: list[bool] = []
    read = store.db.read

    def slow(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        # Goes on once the event loop has run something else meanwhile (inline, it could
        # not: the wait would run out).
        waited.append(loop_ran.wait(timeout=5))
        return read(sql, params)

    store.db.read = slow  # type: ignore[method-assign]

    async def main() -> None:
        search = asyncio.ensure_future(
            without_blocking(store, store.search, ArchiveQuery(match=parse("alpha")))
        )
        await asyncio.sleep(0)  # the search has started
        loop_ran.set()
        await search

    asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert waited and all(waited)


def test_a_remembered_page_takes_no_thread_hop(service: Service):
    request = FeedRequest.parse(limit=5)

    async def page() -> Any:
        return await service.feed.page(request)

    assert asyncio.run(page()).cache_status == "miss"
    hit = asyncio.run(page())  # searched on a thread, then remembered
    assert hit.cache_status == "hit" and hit.key is not None
    coroutine = service.feed.page(request)
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)  # completes on its first step: it never gives the loop away
    assert done.value.value is hit
