"""The store, on both backends: SQLite and a real PostgreSQL server the suite starts itself.

`NEWSAGG_TEST_DATABASE_URL` points the PostgreSQL tests at an existing server instead (the
outage test still starts one of its own, since it stops and starts it). With no server to
be had they fail, saying how to get one: they are never skipped. Each test gets a database
of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from conftest import run_cli
from pg_server import NoServer, PostgresServer, new_server

from edge.app import create_app
from newsagg.errors import Unavailable
from newsagg.keys import KeyRing, digest
from newsagg.request import FeedRequest
from newsagg.service import Service
from newsagg.settings import Settings, SettingsError
from newsagg.store import (
    ArchiveStore,
    DuplicateDigest,
    KeyStore,
    LeaseStore,
    LedgerStore,
    PushStore,
    Store,
    UpkeepStore,
    open_store,
    postgres,
)
from newsagg.store.migrations import MIGRATIONS, Migration
from newsagg.store.postgres import PostgresStore
from newsagg.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "pw-Zq81-never-shown"  # trust auth ignores it; it must surface nowhere


# -- servers and databases ---------------------------------------------------------------


@pytest.fixture
def stores(backend_settings: Settings) -> Iterator[Callable[..., Store]]:
    """Open stores on the test's database (each PostgreSQL one with a pool of its own)."""
    opened: list[Store] = []

    def open_one(migrations: tuple[Migration, ...] | None = None, migrate: bool = True) -> Store:
        if migrations is None:
            store = open_store(backend_settings, migrate=migrate)
        elif backend_settings.database_url:
            store = PostgresStore(backend_settings.database_url, migrations)
        else:
            store = SqliteStore(backend_settings.database, migrations)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def _tables(settings: Settings) -> set[str]:
    if settings.database_url:
        with psycopg.connect(settings.database_url) as db:
            rows = db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
    else:
        with closing(sqlite3.connect(settings.database)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows} - {"sqlite_sequence"}


def _count(settings: Settings, table: str) -> int:
    query = f"SELECT COUNT(*) FROM {table}"
    if settings.database_url:
        with psycopg.connect(settings.database_url) as db:
            return db.execute(query).fetchone()[0]
    with closing(sqlite3.connect(settings.database)) as db:
        return db.execute(query).fetchone()[0]


# -- articles ----------------------------------------------------------------------------


def record(**fields: object) -> dict[str, object]:
    """An article's public fields, as the feed saves them; `fields` override the defaults."""
    return {
        "title": "A story",
        "description": None,
        "url": "https://example.org/",
        "source": "newsapi",
        "publisher": None,
        "author": None,
        "image_url": None,
        "category": "general",
        "published_at": "2026-11-25T08:00:00+00:00",
        **fields,
    }


def test_the_same_url_keeps_its_id(stores):
    store = stores()
    a, b = "https://a.example/1", "https://b.example/2"
    first = store.save_articles([(a, 1, record(title="a")), (b, 1, record())])
    assert len(set(first)) == 2
    again = stores().save_articles([(b, 2, record()), (a, 0, record())])
    assert again == first[::-1]  # in the caller's order, from another store instance too
    assert store.save_articles([]) == []


def saved(store: Store, article_id: int) -> dict[str, object]:
    """An article's fields as the store gives them, but its story (newsagg.store.stories),
    which must be there: that of an article alone in it, as every article here is."""
    found = store.article(article_id)
    assert found is not None
    fields = {name: value for name, value in found.items() if name != "story"}
    story = found["story"]
    assert story == {"id": story["id"], "size": 1, "publishers": 1, "providers": ["newsapi"]}
    assert isinstance(story["id"], int)
    return fields


def test_the_stored_record_is_replaced_only_by_equal_or_better_rank(stores):
    store = stores()
    url = "https://example.org/story"
    (article_id,) = store.save_articles([(url, 1, record(title="newsapi"))])
    assert store.save_articles([(url, 2, record(title="hackernews"))]) == [article_id]
    assert saved(store, article_id) == record(title="newsapi")
    store.save_articles([(url, 1, record(title="newsapi, again"))])
    assert saved(store, article_id) == record(title="newsapi, again")
    store.save_articles([(url, 0, record(title="guardian"))])
    assert saved(store, article_id) == record(title="guardian")
    assert store.article(article_id + 10_000) is None


def test_a_url_twice_in_one_batch_is_applied_in_order(stores):
    store = stores()
    url = "https://example.org/twice"
    other = "https://example.org/other"
    ids = store.save_articles(
        [(url, 1, record(title="1")), (other, 1, record()), (url, 1, record(title="2"))]
    )
    assert ids[0] == ids[2] != ids[1]
    assert saved(store, ids[0]) == record(title="2")  # in its story once


def test_a_failed_batch_leaves_nothing_behind(stores, backend_settings):
    store = stores()
    too_big = 2**70  # no backend stores it: the batch fails after its first row
    with pytest.raises((OverflowError, psycopg.DataError)):
        store.save_articles(
            [("https://example.org/a", 1, record()), ("https://b.example/", too_big, record())]
        )
    assert _count(backend_settings, "articles") == 0
    assert len(store.save_articles([("https://example.org/a", 1, record())])) == 1  # still usable


CONCURRENT_SAVER = """
import json, random, sys, threading
from newsagg.settings import Settings
from newsagg.store import open_store

urls, threads, batches, batch_size = (int(arg) for arg in sys.argv[1:5])
settings = Settings(database=sys.argv[5], database_url=sys.argv[6] or None)
store = open_store(settings)
seen = {}
lock = threading.Lock()

def work(seed):
    rng = random.Random(seed)
    for _ in range(batches):
        batch = [f"https://example.org/{n}" for n in rng.sample(range(urls), batch_size)]
        ids = store.save_articles(
            [(url, rng.randint(0, 2), {"url": url, "published_at": "2026-11-25T08:00:00+00:00"})
             for url in batch]
        )
        with lock:
            for url, article_id in zip(batch, ids):
                if seen.setdefault(url, article_id) != article_id:
                    raise SystemExit(f"{url}: {seen[url]} then {article_id}")

print("ready", flush=True)
sys.stdin.readline()  # every process starts at once
workers = [threading.Thread(target=work, args=(seed,)) for seed in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
store.close()
print(json.dumps(seen))
"""

# 3 processes x 4 threads x 10 batches of 25 urls drawn from 200: 3000 upserts, most of
# them of urls another process or thread is saving at the same moment.
PROCESSES, THREADS, BATCHES, BATCH_SIZE, URLS = 3, 4, 10, 25, 200


@pytest.mark.timeout(90)
def test_concurrent_processes_get_the_same_id_for_the_same_url(stores, backend_settings):
    stores()  # migrated before the race: the race is about ids
    args = [URLS, THREADS, BATCHES, BATCH_SIZE]
    argv = [sys.executable, "-c", CONCURRENT_SAVER, *map(str, args)]
    argv += [backend_settings.database, backend_settings.database_url or ""]
    children = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        for _ in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n"
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out = child.stdout.read()  # the test's timeout bounds it
            assert child.wait(timeout=60) == 0
            results.append(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    ids: dict[str, int] = {}
    for seen in results:
        for url, article_id in seen.items():
            assert ids.setdefault(url, article_id) == article_id, url
    assert len(set(ids.values())) == len(ids)
    assert _count(backend_settings, "articles") == len(ids)


# -- secrets and keys --------------------------------------------------------------------


def test_a_secret_is_created_once_under_concurrency(stores):
    racers = [stores(), stores()]  # two pools (or files handles), as two instances have
    barrier = threading.Barrier(8)

    def take(n: int) -> str:
        barrier.wait(timeout=10)
        return racers[n % 2].secret("cursor_secret", lambda: f"candidate-{n}")

    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(take, range(8)))
    assert len(values) == 1
    assert stores().secret("cursor_secret", lambda: "late") == values.pop()


def test_keys_create_verify_revoke(stores):
    store = stores()
    ring = KeyRing(store)
    admin = ring.create("ops", "unlimited", admin=True)
    user = ring.create("app", "premium")
    assert KeyRing(stores()).verify(user.plaintext) == user.record  # seen by another instance
    assert ring.verify(admin.plaintext).admin is True
    assert user.record.admin is False and user.record.revoked_at is None
    assert [key.id for key in ring.list()] == [admin.record.id, user.record.id]
    assert ring.get(user.record.id) == user.record
    assert ring.revoke(user.record.id) is True
    assert ring.revoke(user.record.id) is False
    assert ring.verify(user.plaintext) is None and ring.get(user.record.id) is None
    assert store.has_digest(digest(user.plaintext))  # revoked keys stay known


def test_a_duplicate_digest_is_a_backend_neutral_error(stores):
    store = stores()
    fields = {"name": "a", "tier": "basic", "admin": False, "prefix": "nagg_x", "created_at": "t"}
    store.add_key(digest="d" * 64, **fields)
    with pytest.raises(DuplicateDigest):
        store.add_key(digest="d" * 64, **fields)
    # The bootstrap admin registered by several instances at once: one key, no error.
    barrier = threading.Barrier(4)

    def bootstrap(n: int) -> None:
        barrier.wait(timeout=10)
        KeyRing(stores()).ensure_bootstrap_admin("nagg_bootstrap-secret")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(bootstrap, range(4)))
    assert [key.name for key in store.active_keys()] == ["a", "bootstrap-admin"]


# -- migrations --------------------------------------------------------------------------


def test_migrations_are_idempotent(stores, backend_settings):
    store = stores(migrate=False)
    assert store.schema_version() == 0
    assert store.migrate() == list(MIGRATIONS)
    tables = _tables(backend_settings)
    expected = {"schema_version", "meta", "articles", "api_keys", "rate_limit_hits"}
    expected |= {"upstream_calls", "harvest_state", "harvest_leases"}
    expected |= {"searches", "search_matches", "webhook_deliveries", "webhook_attempts"}
    expected |= {"upstream_answers"}
    expected |= {"stories", "story_terms", "story_words", "story_titles", "story_publishers"}
    expected |= {"search_stories", "story_members"}
    expected |= {"search_stories", "story_members"}
    if not backend_settings.database_url:  # FTS5 keeps its index in tables of its own
        expected |= {f"articles_fts{part}" for part in ("", "_data", "_idx", "_docsize", "_config")}
    assert tables == expected
    assert store.migrate() == []
    assert stores().migrate() == []
    assert _tables(backend_settings) == tables
    assert _count(backend_settings, "schema_version") == len(MIGRATIONS)
    assert store.schema_version() == MIGRATIONS[-1].version


def test_instances_starting_together_migrate_once(stores):
    racers = [stores(migrate=False) for _ in range(4)]
    barrier = threading.Barrier(len(racers))

    def migrate(store: Store) -> list[Migration]:
        barrier.wait(timeout=10)
        return store.migrate()

    with ThreadPoolExecutor(len(racers)) as pool:
        applied = list(pool.map(migrate, racers))
    assert sorted(len(each) for each in applied) == [0, 0, 0, len(MIGRATIONS)]


def test_a_failing_migration_changes_nothing(stores, backend_settings):
    stores().close()
    next_version = MIGRATIONS[-1].version + 1
    broken = Migration(
        next_version,
        "broken",
        ("CREATE TABLE half_done (id INTEGER)", "CREATE TABLE oops (id NO_SUCH_TYPE"),
    )
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        stores(migrations=(*MIGRATIONS, broken)).migrate()
    assert "half_done" not in _tables(backend_settings)
    fixed = Migration(next_version, "fixed", ("CREATE TABLE later (id INTEGER)",))
    store = stores(migrations=(*MIGRATIONS, fixed))
    assert store.migrate() == [fixed] and store.schema_version() == next_version


LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL UNIQUE, rank INTEGER NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, tier TEXT NOT NULL,
    admin INTEGER NOT NULL, prefix TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, revoked_at TEXT);
"""


def test_a_sqlite_file_from_before_migrations_is_adopted(tmp_path):
    """Files written by the code before schema versions existed migrate in place."""
    path = tmp_path / "old.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(LEGACY_SCHEMA)
        db.execute("INSERT INTO meta VALUES ('cursor_secret', 'abc')")
        db.execute("INSERT INTO articles(url, rank, data) VALUES ('https://x.example/', 1, '{}')")
    with closing(open_store(Settings(database=str(path)))) as store:
        assert store.schema_version() == MIGRATIONS[-1].version
        assert store.secret("cursor_secret", lambda: "new") == "abc"
        assert store.save_articles([("https://x.example/", 1, record())]) == [1]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return run_cli(
        {
            "NEWSAGG_DATABASE": settings.database,
            "NEWSAGG_DATABASE_URL": settings.database_url or "",
        },
        *args,
    )


def test_db_status_and_migrate_commands(backend_settings):
    status = _cli(backend_settings, "db", "status")
    assert status.returncode == 0, status.stderr
    listed = "".join(f"pending {m.version} {m.name}\n" for m in MIGRATIONS)
    assert status.stdout == f"schema version 0\n{listed}"
    migrated = _cli(backend_settings, "db", "migrate")
    applied = listed.replace("pending", "applied")
    assert (migrated.returncode, migrated.stdout) == (0, applied)
    latest = MIGRATIONS[-1].version
    assert _cli(backend_settings, "db", "status").stdout == f"schema version {latest}\n"
    again = _cli(backend_settings, "db", "migrate")
    assert again.stdout == f"nothing to apply; schema version {latest}\n"


# -- the store's shape --------------------------------------------------------------------


def test_the_store_is_the_sum_of_its_concerns_and_each_engine_implements_all():
    """A consumer names the narrow protocol it needs: every method is in exactly one
    concern, and both engines implement every one (the repositories over their dialect)."""
    concerns = (KeyStore, LedgerStore, ArchiveStore, PushStore, LeaseStore, UpkeepStore)
    assert all(concern in Store.__mro__ for concern in concerns)
    declared = [name for concern in concerns for name in vars(concern) if name[0] != "_"]
    assert len(declared) == len(set(declared))
    own = [name for name in vars(Store) if name[0] != "_"]
    assert own == ["migrate", "schema_version", "close"]
    for engine in (SqliteStore, PostgresStore):
        missing = [name for name in (*declared, *own) if not callable(getattr(engine, name, None))]
        assert not missing, (engine.__name__, missing)


# -- PostgreSQL down ---------------------------------------------------------------------


def test_settings_never_show_the_database_url():
    settings = Settings.from_env({"NEWSAGG_DATABASE_URL": f"postgresql://u:{PASSWORD}@h/db"})
    assert settings.database_url == f"postgresql://u:{PASSWORD}@h/db"
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert Settings.from_env({}).database_url is None


def test_a_malformed_database_url_is_reported_without_its_password(tmp_path):
    url = f"postgresql://u:{PASSWORD}@[::1/db"  # an unclosed IPv6 bracket
    settings = Settings(database=str(tmp_path / "unused.sqlite3"), database_url=url)
    with pytest.raises(SettingsError) as raised:
        open_store(settings)
    assert PASSWORD not in str(raised.value)
    cli = _cli(settings, "db", "status")
    assert cli.returncode == 2 and "NEWSAGG_DATABASE_URL" in cli.stderr
    assert PASSWORD not in cli.stderr and "Traceback" not in cli.stderr


def test_an_unreachable_server_is_unavailable_not_a_crash(tmp_path, caplog):
    url = f"postgresql://newsagg:{PASSWORD}@127.0.0.1:{_closed_port()}/newsagg"
    settings = Settings(database=str(tmp_path / "unused.sqlite3"), database_url=url)
    began = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(Unavailable) as raised:
        open_store(settings)
    assert time.monotonic() - began < 10
    assert raised.value.retry_after_seconds and raised.value.retry_after_seconds > 0
    assert raised.value.detail == "The database is unreachable; retry shortly."
    assert PASSWORD not in caplog.text
    cli = _cli(settings, "keys", "list")
    assert cli.returncode == 1 and "unreachable" in cli.stderr
    assert "Traceback" not in cli.stderr and PASSWORD not in cli.stderr + cli.stdout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on return: nothing listens there


def test_a_statement_stuck_behind_a_lock_is_cancelled_not_waited_for(pg_url, monkeypatch):
    monkeypatch.setattr(postgres, "STATEMENT_TIMEOUT_MS", 200)
    store = open_store(Settings(database_url=pg_url))
    try:
        ring = KeyRing(store)
        key = ring.create("app")
        with psycopg.connect(pg_url) as other:  # a transaction that holds the row
            other.execute("SELECT 1 FROM api_keys WHERE id = %s FOR UPDATE", (key.record.id,))
            with pytest.raises(Unavailable):
                ring.revoke(key.record.id)
        # A cancelled statement says nothing about the server: the next call goes through.
        assert ring.revoke(key.record.id) is True
    finally:
        store.close()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, to stop and start without disturbing the others."""
    try:
        server = new_server()
    except NoServer as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.remove()


def _eventually(check: Callable[[], object], seconds: float) -> float:
    """Retry `check` until it stops raising Unavailable; answer how long that took."""
    began = time.monotonic()
    while True:
        try:
            check()
            return time.monotonic() - began
        except Unavailable:
            if time.monotonic() - began > seconds:
                raise
            time.sleep(0.05)


@pytest.mark.timeout(90)
def test_the_service_answers_503_while_postgres_is_down_and_recovers(
    own_server, make_service, bearer, caplog
):
    url = own_server.url().replace("postgres@", f"postgres:{PASSWORD}@")
    service: Service = make_service(database_url=url)
    key = service.keys.create("app", "unlimited").plaintext
    with create_app(service=service).test_client() as client:
        listed = client.get("/articles?category=technology&limit=3", headers=bearer(key))
        assert listed.status_code == 200
        article_id = listed.json()["articles"][0]["id"]

        own_server.stop()
        with caplog.at_level(logging.DEBUG):
            for path in ("/me", f"/articles/{article_id}"):
                down = client.get(path, headers=bearer(key))
                assert down.status_code == 503, path
                assert down.headers["content-type"] == "application/problem+json"
                assert int(down.headers["Retry-After"]) > 0
                assert down.json()["detail"] == "The database is unreachable; retry shortly."
                assert PASSWORD not in down.text
            # Behind the key check: a feed miss cannot give its articles ids either.
            with pytest.raises(Unavailable):
                asyncio.run(service.feed.page(FeedRequest.parse(category="science", limit=3)))
        assert PASSWORD not in caplog.text
        assert client.get("/health").status_code == 200  # needs no database

        own_server.start()  # no restart of the service: its pool reconnects
        recovered_in = _eventually(lambda: service.store.active_keys(), seconds=30)
        assert recovered_in < 30
        assert client.get("/me", headers=bearer(key)).status_code == 200
        again = client.get(f"/articles/{article_id}", headers=bearer(key))
        assert again.status_code == 200 and again.json()["id"] == article_id


# -- the API over PostgreSQL: several instances, one database ----------------------------


def test_instances_sharing_postgres_share_keys_ids_and_cursors(pg_url, make_service, bearer):
    one, two = make_service(database_url=pg_url), make_service(database_url=pg_url)
    admin = one.keys.create("ops", "unlimited", admin=True).plaintext
    with (
        create_app(service=one).test_client() as first,
        create_app(service=two).test_client() as second,
    ):
        body = {"name": "app", "tier": "premium"}
        created = first.post("/keys", json=body, headers=bearer(admin))
        assert created.status_code == 201
        key, key_id = created.json()["key"], created.json()["id"]
        assert second.get("/me", headers=bearer(key)).json()["key"]["tier"] == "premium"

        query = "/articles?category=technology&limit=2"
        page_one = first.get(query, headers=bearer(key)).json()
        page_two = second.get(query, headers=bearer(key)).json()
        assert [a["id"] for a in page_one["articles"]] == [a["id"] for a in page_two["articles"]]
        article = page_one["articles"][0]
        assert second.get(f"/articles/{article['id']}", headers=bearer(key)).json() == article
        # A cursor made by one instance is understood by the other (one shared secret).
        following = second.get(f"{query}&cursor={page_one['next_cursor']}", headers=bearer(key))
        assert following.status_code == 200 and following.json()["articles"]

        assert second.delete(f"/keys/{key_id}", headers=bearer(admin)).status_code == 204
        assert first.get("/me", headers=bearer(key)).status_code == 401
