"""The key cache of a deployment without Redis (newsagg.key_cache.FileKeyCache): keys
verified in an SQLite file are trusted from memory while nothing was committed to it, and
a revocation made anywhere (this ring, another connection, another process) is refused
from the next lookup on.

Each "process" here is a store of its own (its own connections) over one SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from conftest import run_cli

from edge.app import create_app
from newsagg.key_cache import FileKeyCache, file_key_cache_for
from newsagg.keys import KeyRing, digest
from newsagg.service import Service
from newsagg.settings import Settings
from newsagg.store import Store, open_store


@pytest.fixture
def stores(tmp_path) -> Iterator[Callable[[], Store]]:
    """Open another store on the test's SQLite file; all closed afterwards."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(open_store(Settings(database=str(tmp_path / "keys.sqlite3"))))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def cached(stores) -> tuple[KeyRing, FileKeyCache]:
    store = stores()
    cache = FileKeyCache(store)
    return KeyRing(store, cache), cache


def test_a_verified_key_is_remembered_until_something_is_committed(stores, cached):
    ring, _cache = cached
    user = ring.create("user")
    assert ring.remembered(user.plaintext) is None  # not verified yet
    assert ring.verify(user.plaintext) == user.record
    assert ring.remembered(user.plaintext) == user.record
    KeyRing(stores()).create("another")  # any commit through another connection
    assert ring.remembered(user.plaintext) is None
    assert ring.verify(user.plaintext) == user.record
    assert ring.remembered(user.plaintext) == user.record


def test_a_revocation_through_another_process_is_refused_at_the_next_lookup(stores, cached):
    ring, _cache = cached
    user = ring.create("user")
    ring.verify(user.plaintext)
    assert KeyRing(stores()).revoke(user.record.id)
    assert ring.remembered(user.plaintext) is None
    assert ring.verify(user.plaintext) is None


def test_a_revocation_through_the_same_connection_is_refused_too(cached):
    # The connection's own commits do not move its count: the ring announces it instead.
    ring, _cache = cached
    user = ring.create("user")
    ring.verify(user.plaintext)
    assert ring.revoke(user.record.id)
    assert ring.remembered(user.plaintext) is None
    assert ring.verify(user.plaintext) is None


def test_a_read_that_a_revocation_overtakes_is_not_trusted(stores, cached):
    ring, cache = cached
    user = ring.create("user")
    ticket = cache.ticket()  # as verify does: the ticket, then the read
    record = stores().active_key_by_digest(digest(user.plaintext))
    assert record == user.record
    KeyRing(stores()).revoke(user.record.id)  # committed after the read, before the filing
    cache.remember(digest(user.plaintext), record, ticket)
    assert cache.lookup(digest(user.plaintext)) is None


def test_memory_is_per_thread_as_the_connections_are(cached):
    ring, _cache = cached
    user = ring.create("user")
    ring.verify(user.plaintext)
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(ring.remembered(user.plaintext)))
    other.start()
    other.join(timeout=10)
    assert seen == [None]  # another thread's connection counts commits on its own
    assert ring.remembered(user.plaintext) == user.record


def test_only_sqlite_with_the_cache_on_and_no_windows_in_the_file_gets_one(stores):
    store = stores()
    assert isinstance(file_key_cache_for(Settings(), store), FileKeyCache)
    assert file_key_cache_for(Settings(key_cache_seconds=0), store) is None
    # Several workers count requests in the file: every request would empty the memory.
    assert file_key_cache_for(Settings(workers=2), store) is None
    assert isinstance(
        file_key_cache_for(Settings(workers=2, rate_limit_windows="process"), store), FileKeyCache
    )


def test_a_revocation_by_the_cli_is_refused_by_the_running_service(service: Service):
    assert service.key_cache is None and service.settings.redis_url is None
    user = service.keys.create("user", "unlimited")
    headers = {"Authorization": f"Bearer {user.plaintext}"}
    with create_app(service=service).test_client() as client:
        assert [client.get("/me", headers=headers).status_code for _ in range(3)] == [200] * 3
        metrics = service.metrics.exposition().decode()
        assert 'newsagg_key_checks_total{source="memory"} 2.0' in metrics  # the repeats
        env = {"NEWSAGG_DATABASE": service.settings.database}
        assert run_cli(env, "keys", "revoke", str(user.record.id)).returncode == 0
        refused = client.get("/me", headers=headers)
        assert refused.status_code == 401
