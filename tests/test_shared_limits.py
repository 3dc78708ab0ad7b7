"""Rate-limit windows shared between processes and instances, on real servers.

The same semantics on every limiter (process, SQLite, PostgreSQL, Redis); one window per
key across two instances (Redis, or PostgreSQL without it); Redis stopped and started
under instances that keep answering; 304s refunded whichever limiter counts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import Any, cast

import pytest
import redis
import requests
from conftest import LiveServer
from redis_server import RedisServer

from edge.app import create_app
from newsagg.ratelimit import WINDOW_SECONDS, SlidingWindowLimiter, Standing, choose
from newsagg.ratelimit.database import DatabaseLimiter
from newsagg.ratelimit.redis_windows import RedisLimiter
from newsagg.service import Service
from newsagg.settings import Settings, SettingsError
from newsagg.shared import RedisLink
from newsagg.store import Store

LIMIT = 5
KINDS = {
    "process": SlidingWindowLimiter,
    "sqlite": DatabaseLimiter,
    "postgres": DatabaseLimiter,
    "redis": RedisLimiter,
}


def _changes(request: pytest.FixtureRequest, kind: str) -> dict[str, Any]:
    """Settings changes that make `auto` (or an explicit choice) pick `kind`."""
    changes: dict[str, Any] = {"rate_limit_basic": LIMIT}
    if kind == "process":
        changes["rate_limit_windows"] = "process"
    elif kind == "sqlite":
        changes["workers"] = 2  # several workers on one file: auto shares through it
    elif kind == "postgres":
        changes["database_url"] = request.getfixturevalue("pg_url")
    else:
        changes["redis_url"] = request.getfixturevalue("redis_url")
    return changes


@pytest.fixture(params=list(KINDS))
def limited(request: pytest.FixtureRequest, make_service: Callable[..., Service]) -> Service:
    service = make_service(**_changes(request, request.param))
    assert type(service.limiter) is KINDS[request.param]
    return service


def test_every_limiter_has_the_same_semantics(limited: Service):
    limiter = limited.limiter

    async def scenario() -> None:
        hits = [await limiter.hit(1, 3) for _ in range(3)]
        assert [(h.allowed, h.remaining, h.reset_seconds) for h in hits] == [
            (True, 2, 0),
            (True, 1, 0),
            (True, 0, 3600),
        ]
        refused = await limiter.hit(1, 3)
        assert (refused.allowed, refused.remaining, refused.entry) == (False, 0, None)
        assert WINDOW_SECONDS - 5 <= refused.reset_seconds <= WINDOW_SECONDS
        assert (await limiter.peek(1, 3)).remaining == 0
        # A refund takes back exactly the entry given, here the first one.
        assert hits[0].entry is not None
        assert (await limiter.refund(1, 3, hits[0].entry)).remaining == 1
        assert (await limiter.peek(2, 3)).remaining == 3  # another key, its own window
        assert (await limiter.hit(2, None)).allowed
        await limited.disconnect()

    asyncio.run(scenario())


def test_concurrent_requests_are_each_decided_in_turn(limited: Service):
    limiter = limited.limiter

    async def scenario() -> list[Standing]:
        hits = await asyncio.gather(*(limiter.hit(key_id, 5) for key_id in [1] * 8 + [2] * 3))
        await limited.disconnect()
        return hits

    hits = asyncio.run(scenario())
    first, second = hits[:8], hits[8:]
    assert sorted(h.remaining for h in first if h.allowed) == [0, 1, 2, 3, 4]
    assert [h.allowed for h in first].count(False) == 3
    assert all(h.allowed for h in second) and sorted(h.remaining for h in second) == [2, 3, 4]


def test_requests_in_one_turn_of_the_event_loop_share_one_redis_call(redis_url):
    link = RedisLink(redis_url)
    limiter = RedisLimiter(link)
    client = redis.Redis.from_url(redis_url)

    async def scenario() -> list[Standing]:
        await limiter.peek(1, 5)  # Redis learns the script
        client.config_resetstat()
        hits = await asyncio.gather(*(limiter.hit(key_id, 5) for key_id in (1, 1, 2, 1)))
        await link.disconnect()
        return hits

    with client, closing(link):
        hits = asyncio.run(scenario())
        assert client.info("commandstats")["cmdstat_evalsha"]["calls"] == 1
    assert [h.remaining for h in hits] == [4, 3, 4, 2]  # each window in the order asked


def test_a_304_is_not_charged(limited: Service):
    key = {"Authorization": f"Bearer {limited.keys.create('basic', 'basic').plaintext}"}
    with create_app(service=limited).test_client() as client:
        page = client.get("/articles?category=science", headers=key)
        assert page.headers["x-ratelimit-remaining"] == str(LIMIT - 1)
        again = key | {"If-None-Match": page.headers["etag"]}
        for _ in range(LIMIT + 2):  # more revalidations than the limit: none charged
            revalidated = client.get("/articles?category=science", headers=again)
            assert revalidated.status_code == 304
            assert revalidated.headers["x-ratelimit-remaining"] == str(LIMIT - 1)
        standing = client.get("/me", headers=key).json()["rate_limit"]
        assert standing["remaining"] == LIMIT - 1


@pytest.mark.parametrize("shared_by", ["redis", "postgres"])
def test_one_window_across_two_instances(request, make_service, pg_url, shared_by):
    changes = {"database_url": pg_url, "rate_limit_basic": LIMIT}
    if shared_by == "redis":
        changes["redis_url"] = request.getfixturevalue("redis_url")
    one, other = make_service(**changes), make_service(**changes)
    key = {"Authorization": f"Bearer {one.keys.create('basic', 'basic').plaintext}"}
    with ExitStack() as stack:
        clients = [stack.enter_context(create_app(service=s).test_client()) for s in (one, other)]
        statuses = [clients[i % 2].get("/sources", headers=key).status_code for i in range(8)]
    # Requests alternate between the instances: the 6th is refused wherever it lands.
    assert statuses == [200] * LIMIT + [429] * 3


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # a condition with a deadline, not a guess
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.timeout(60)
def test_redis_stopped_and_started_again(make_service, pg_url, own_redis: RedisServer):
    changes = {"database_url": pg_url, "redis_url": own_redis.url(), "rate_limit_basic": LIMIT}
    one, other = make_service(**changes), make_service(**changes)
    key = {"Authorization": f"Bearer {one.keys.create('basic', 'basic').plaintext}"}
    with ExitStack() as stack:
        a, b = (stack.enter_context(create_app(service=s).test_client()) for s in (one, other))
        assert [c.get("/sources", headers=key).status_code for c in (a, b)] == [200, 200]

        own_redis.stop()
        began = time.monotonic()
        during = [c.get("/sources", headers=key) for c in (a, b, a, b)]
        assert [r.status_code for r in during] == [200] * 4  # answered, never a 500
        assert time.monotonic() - began < 2  # nobody waited for the dead server
        assert one.degraded() == ["redis"] and other.degraded() == ["redis"]
        # Each instance now counts in its own window, from zero: `one` allows LIMIT.
        fallback = [a.get("/sources", headers=key).status_code for _ in range(LIMIT)]
        assert fallback == [200] * (LIMIT - 2) + [429] * 2

        own_redis.start()  # empty: the server keeps nothing on disk
        for service, client in ((one, a), (other, b)):

            def shared_again(s: Service = service, c: Any = client) -> bool:
                # /me counts nothing; it lets the limiter try Redis once its backoff ends.
                assert c.get("/me", headers=key).status_code == 200
                return not s.degraded()

            _until(shared_again)
        # Shared again: LIMIT in total across both instances, then 429 on either.
        statuses = [(a, b)[i % 2].get("/sources", headers=key).status_code for i in range(8)]
        assert statuses == [200] * LIMIT + [429] * 3


@pytest.mark.timeout(60)
def test_after_redis_is_back_a_new_key_gets_its_limit_once_across_instances(
    make_service, pg_url, own_redis: RedisServer
):
    """Redis stopped, and started again on the same port, under two live instances that
    answered meanwhile: once /health no longer says degraded, the windows are shared again
    (a new key gets its limit once across both, not one request more), with no restart.

    During the outage each instance's /health finds Redis gone first, so its rate limiter
    never tries Redis (the link rests): the limiter's pooled connection, opened before the
    outage, is still there when Redis is back, and must not be taken for a new outage."""
    limit = 30
    changes = {"database_url": pg_url, "redis_url": own_redis.url(), "rate_limit_basic": limit}
    one, other = make_service(**changes), make_service(**changes)
    old = {"Authorization": f"Bearer {one.keys.create('old', 'basic').plaintext}"}
    with LiveServer(one) as a, LiveServer(other) as b, requests.Session() as http:
        urls = (a.url, b.url)
        assert [http.get(u + "/sources", headers=old).status_code for u in urls] == [200] * 2

        own_redis.stop()
        for url in urls:
            assert http.get(url + "/health").json()["degraded"] == ["redis"]
            for _ in range(2):  # answered, counted per process: never a 500
                assert http.get(url + "/sources", headers=old).status_code == 200

        own_redis.start()  # same port, empty
        for url in urls:
            _until(lambda u=url: http.get(u + "/health").json()["status"] == "ok")

        new = {"Authorization": f"Bearer {one.keys.create('new', 'basic').plaintext}"}
        statuses = [
            http.get(urls[i % 2] + "/sources", headers=new).status_code for i in range(limit + 2)
        ]
    assert statuses == [200] * limit + [429] * 2


PASSWORD = "pw-Rd93-never-shown"


def test_a_silent_redis_holds_no_request_long(caplog):
    """A server that accepts connections and never answers (hung, or a black hole behind
    a proxy): the hit waits at most the read timeout, then counts per process."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes handshakes; nobody ever reads or writes
        url = f"redis://:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/0"
        link = RedisLink(url)
        limiter = RedisLimiter(link)

        async def timed() -> tuple[float, Standing, Standing]:
            began = time.perf_counter()
            first = await limiter.hit(1, 3)
            waited = time.perf_counter() - began
            second = await limiter.hit(1, 3)  # within the backoff: Redis not even tried
            await link.disconnect()
            return waited, first, second

        with caplog.at_level(logging.INFO), closing(link):
            waited, first, second = asyncio.run(timed())
    assert waited < 0.5
    assert first.allowed and second.remaining == 1 and link.degraded
    assert "TimeoutError" in caplog.text and PASSWORD not in caplog.text


def test_redis_settings_never_show_the_url():
    settings = Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:6379/0")
    assert PASSWORD not in repr(settings)
    with pytest.raises(SettingsError) as malformed:
        RedisLink(f"http://:{PASSWORD}@127.0.0.1:6379/0")
    assert PASSWORD not in str(malformed.value)
    with pytest.raises(SettingsError, match="NEWSAGG_RATE_LIMIT_WINDOWS"):
        Settings.from_env({"NEWSAGG_RATE_LIMIT_WINDOWS": "everywhere"})
    with pytest.raises(SettingsError, match="needs NEWSAGG_REDIS_URL"):
        choose(Settings(rate_limit_windows="redis"), cast(Store, None))
