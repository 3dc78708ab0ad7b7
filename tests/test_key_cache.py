"""The per-process key cache (newsagg.key_cache) over a real Redis: keys verified once are
trusted from memory, and a revocation on one process is refused by every other one by the
time it is answered, also when a process does not answer or Redis is gone.

Each "process" here is a KeyRing with a cache and a RedisLink of its own over one SQLite
file and the suite's Redis (or one of the test's own, to stop)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from conftest import run_cli

from edge.app import create_app
from newsagg.key_cache import INSTANCE, REGISTRY, SharedKeyCache
from newsagg.keys import KeyRing, digest
from newsagg.service import Service
from newsagg.settings import Settings
from newsagg.shared import RedisDown, RedisLink
from newsagg.store import open_store

Process = tuple[KeyRing, SharedKeyCache]


def _until(check: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # a condition with a deadline, not a guess
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def processes(tmp_path) -> Iterator[Callable[..., Process]]:
    """Make a 'process' on the test's SQLite file and a Redis URL; all closed afterwards."""
    opened: list = []

    def make(
        redis_url: str, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> Process:
        store = open_store(Settings(database=str(tmp_path / "keys.sqlite3")))
        link = RedisLink(redis_url)
        cache = SharedKeyCache(link, ttl, clock)
        cache.start()
        opened.extend([cache, link, store])  # closed in this order
        return KeyRing(store, cache), cache

    yield make
    for thing in opened:
        thing.close()


def _listening(*caches: SharedKeyCache) -> None:
    _until(lambda: all(cache.listening() for cache in caches))


def test_a_key_revoked_through_one_process_is_refused_by_another_that_remembered_it(
    processes, redis_url
):
    (a, cache_a), (b, cache_b) = processes(redis_url), processes(redis_url)
    _listening(cache_a, cache_b)
    admin, user = a.create("admin", admin=True), a.create("user")
    assert b.remembered(user.plaintext) is None  # not yet checked here
    assert b.verify(user.plaintext) == user.record
    assert b.remembered(user.plaintext) == user.record  # from now on, no store read
    assert a.remembered(admin.plaintext) is None

    began = time.monotonic()
    assert a.revoke(user.record.id)
    # Answered on every process's acknowledgement, not after the 30 s an entry may live.
    assert time.monotonic() - began < 2
    assert b.remembered(user.plaintext) is None
    assert b.verify(user.plaintext) is None
    assert a.verify(user.plaintext) is None


def test_a_database_read_that_raced_a_revocation_is_not_remembered(processes, redis_url):
    (a, cache_a), (b, cache_b) = processes(redis_url), processes(redis_url)
    _listening(cache_a, cache_b)
    user = a.create("user")
    ticket = cache_b.ticket()  # b begins a read, sees the key active...
    a.revoke(a.create("other").record.id)  # ...a revocation reaches b meanwhile...
    cache_b.remember(digest(user.plaintext), user.record, ticket)  # ...then the read ends
    assert b.remembered(user.plaintext) is None


def test_a_revocation_whose_announcement_failed_once_is_announced_again(
    processes, redis_url, monkeypatch
):
    (a, cache_a), (b, _) = processes(redis_url), processes(redis_url)
    _listening(cache_a)
    user = a.create("user")
    assert b.verify(user.plaintext) == user.record
    link = cache_a._link
    calls, run = [], link.run

    def slow_once(operation):  # the first reply is late, as on a loaded machine
        calls.append(operation)
        if len(calls) == 1:
            raise RedisDown
        return run(operation)

    monkeypatch.setattr(link, "run", slow_once)
    began = time.monotonic()
    assert a.revoke(user.record.id)
    assert time.monotonic() - began < 5  # not the 10 s ttl of the fallback
    assert len(calls) > 2 and b.remembered(user.plaintext) is None


def test_a_registered_process_that_does_not_acknowledge_holds_a_revocation_for_the_ttl(
    processes, redis_url
):
    a, cache = processes(redis_url, ttl=0.6)
    _listening(cache)
    with redis.Redis.from_url(redis_url) as client:
        client.set(INSTANCE + "stuck", b"", px=10_000)  # registered, never answers
        client.sadd(REGISTRY, "stuck", "gone")  # "gone": its registration has expired
        began = time.monotonic()
        assert a.revoke(a.create("user").record.id)
        waited = time.monotonic() - began
        assert 0.6 <= waited < 2.5
        assert client.sismember(REGISTRY, "stuck") and not client.sismember(REGISTRY, "gone")


def test_an_entry_is_trusted_for_the_ttl_from_when_its_read_began(processes, redis_url):
    now = [1000.0]
    ring, cache = processes(redis_url, ttl=2.0, clock=lambda: now[0])
    _listening(cache)
    user = ring.create("user")
    assert ring.verify(user.plaintext) == user.record
    now[0] += 1.9
    assert ring.remembered(user.plaintext) == user.record
    now[0] += 0.1
    assert ring.remembered(user.plaintext) is None


def test_without_redis_nothing_is_remembered_and_a_revocation_waits_out_the_ttl(processes):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    ring, cache = processes(dead, ttl=0.4)
    user = ring.create("user")
    assert ring.verify(user.plaintext) == user.record
    assert not cache.listening() and ring.remembered(user.plaintext) is None
    began = time.monotonic()
    assert ring.revoke(user.record.id)
    assert time.monotonic() - began >= 0.4  # a process it could not reach may remember it
    assert ring.verify(user.plaintext) is None


@pytest.mark.timeout(60)
def test_a_process_that_loses_redis_forgets_and_trusts_nothing_until_it_is_back(
    processes, own_redis
):
    ring, cache = processes(own_redis.url())
    _listening(cache)
    user = ring.create("user")
    ring.verify(user.plaintext)
    assert ring.remembered(user.plaintext) == user.record
    own_redis.stop()
    _until(lambda: not cache.listening())
    assert ring.remembered(user.plaintext) is None
    assert ring.verify(user.plaintext) == user.record  # from the store, every time
    assert ring.remembered(user.plaintext) is None
    own_redis.start()
    _listening(cache)
    assert ring.remembered(user.plaintext) is None  # what it knew before is gone
    ring.verify(user.plaintext)
    assert ring.remembered(user.plaintext) == user.record


def test_a_key_revoked_on_one_instance_is_refused_at_once_on_another(make_service, redis_url):
    a, b = make_service(redis_url=redis_url), make_service(redis_url=redis_url)
    _listening(a.key_cache, b.key_cache)
    admin = {"Authorization": f"Bearer {a.keys.create('admin', admin=True).plaintext}"}
    user = a.keys.create("user", "unlimited")
    headers = {"Authorization": f"Bearer {user.plaintext}"}
    with create_app(service=a).test_client() as ca, create_app(service=b).test_client() as cb:
        assert cb.get("/me", headers=headers).status_code == 200
        assert cb.get("/me", headers=headers).status_code == 200  # a lean repeat
        assert b.keys.remembered(user.plaintext) is not None
        metrics = b.metrics.exposition().decode()
        assert 'newsagg_key_checks_total{source="memory"} 1.0' in metrics  # the repeat
        assert ca.delete(f"/keys/{user.record.id}", headers=admin).status_code == 204
        refused = cb.get("/me", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_cli_revocation_waits_for_running_instances(service_with_redis: Service, tmp_path):
    user = service_with_redis.keys.create("user")
    service_with_redis.keys.verify(user.plaintext)
    assert service_with_redis.keys.remembered(user.plaintext) is not None
    settings = service_with_redis.settings
    env = {
        "NEWSAGG_DATABASE": settings.database,
        "NEWSAGG_REDIS_URL": settings.redis_url,
        "NEWSAGG_KEY_CACHE_SECONDS": "60",  # how long it would wait without an answer
    }
    began = time.monotonic()
    assert run_cli(env, "keys", "revoke", str(user.record.id)).returncode == 0
    assert time.monotonic() - began < 20  # answered by the instance, not after 60 s
    assert service_with_redis.keys.remembered(user.plaintext) is None


@pytest.fixture
def service_with_redis(make_service, redis_url) -> Service:
    service = make_service(redis_url=redis_url)
    _listening(service.key_cache)
    return service
