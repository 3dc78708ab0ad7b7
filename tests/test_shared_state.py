"""State shared through a real Redis: two service instances over one Redis and one SQLite
file (one store, so article ids agree) behave as one for the cache, single-flight and
provider health; with Redis stopped they still answer, and sharing resumes once it is back.

The Redis server is started by the suite (tests/redis_server.py), or NEWSAGG_TEST_REDIS_URL
names an existing one (its database is flushed before each test); see tests/conftest.py."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
from conftest import LiveServer
from test_contract_bodies import _validator

from edge.app import create_app
from newsagg.provider_health import ProviderHealth, SharedHealth
from newsagg.request import FeedRequest
from newsagg.service import Service
from newsagg.settings import SettingsError
from newsagg.shared import RedisLink
from newsagg.shared_flight import HANDOVER_GRACE_SECONDS
from providers.base import UpstreamError
from simulator import Fault, Simulator

PROVIDERS = ("newsapi", "guardian", "hackernews")
TECH = {"category": "technology", "limit": 5}


@pytest.fixture
def pair(make_service: Callable[..., Service], redis_url: str) -> tuple[Service, Service]:
    """Two instances: same Redis, same SQLite file (make_service reuses the test's)."""
    return make_service(redis_url=redis_url), make_service(redis_url=redis_url)


def _calls(simulator: Simulator) -> dict[str, int]:
    return {name: simulator.calls(name) for name in PROVIDERS}


def _statuses(body: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in body["sources"]}


def _eventually(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # a condition with a deadline, not a guess
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_query_fetched_through_one_instance_is_a_hit_on_another(pair, simulator):
    a, b = pair
    key = {"Authorization": f"Bearer {a.keys.create('k', 'unlimited').plaintext}"}
    with create_app(service=a).test_client() as ca, create_app(service=b).test_client() as cb:
        first = ca.get("/articles", params=TECH, headers=key).json()
        assert first["cache_status"] == "miss"
        calls = _calls(simulator)
        assert calls == dict.fromkeys(PROVIDERS, 1)
        on_b = cb.get("/articles", params=TECH, headers=key).json()
    assert on_b["cache_status"] == "hit"
    assert _calls(simulator) == calls  # no upstream call from B
    assert on_b["articles"] == first["articles"]  # same ids: one store
    # Both instances remember the page (nothing needed refreshing) and agree on it.
    request = FeedRequest.parse(category="technology", limit=5)
    page_a, page_b = (asyncio.run(s.feed.page(request)) for s in (a, b))
    assert page_a.cache_status == page_b.cache_status == "hit"
    assert page_a.key is not None and page_b.key is not None
    assert page_a.items == page_b.items


def test_a_first_level_hit_with_redis_configured_never_suspends(pair):
    a, _ = pair
    request = FeedRequest.parse(category="technology", limit=5)
    asyncio.run(a.feed.page(request))  # fetched: now in this instance's first level too
    asyncio.run(a.feed.page(request))  # a hit, searched once and remembered
    coroutine = a.feed.page(request)
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)  # completes on its first step: no Redis round trip
    assert done.value.value.cache_status == "hit"


@pytest.mark.timeout(60)
def test_concurrent_identical_misses_over_two_instances_make_one_call_per_provider(pair, simulator):
    a, b = pair
    key = {"Authorization": f"Bearer {a.keys.create('k', 'unlimited').plaintext}"}
    for name in PROVIDERS:  # slow enough that all 50 requests overlap
        simulator.set_fault(name, Fault("latency", delay=0.5))
    with LiveServer(a) as sa, LiveServer(b) as sb, ThreadPoolExecutor(50) as pool:
        urls = [(sa.url, sb.url)[i % 2] + "/articles" for i in range(50)]
        answers = list(
            pool.map(lambda url: requests.get(url, params=TECH, headers=key, timeout=10), urls)
        )
    assert [r.status_code for r in answers] == [200] * 50
    assert _calls(simulator) == dict.fromkeys(PROVIDERS, 1)
    bodies = [r.json() for r in answers]
    assert all(_statuses(body) == dict.fromkeys(PROVIDERS, "ok") for body in bodies)
    assert len({tuple(a["id"] for a in body["articles"]) for body in bodies}) == 1


@pytest.mark.timeout(60)
def test_a_failed_fetch_is_shared_with_the_instances_waiting_for_it(
    make_service, redis_url, simulator
):
    # A budget of 2 s: every request is surely waiting before the hang ends, even on a
    # loaded machine (one that starts after a failure was shared fetches anew, rightly).
    a, b = (make_service(redis_url=redis_url, upstream_timeout=2.0) for _ in range(2))
    key = {"Authorization": f"Bearer {a.keys.create('k', 'unlimited').plaintext}"}
    simulator.set_fault("guardian", Fault("hang"))  # fails at the upstream budget, 2 s
    began = time.monotonic()
    with LiveServer(a) as sa, LiveServer(b) as sb, ThreadPoolExecutor(10) as pool:
        urls = [(sa.url, sb.url)[i % 2] + "/articles" for i in range(10)]
        answers = list(
            pool.map(lambda url: requests.get(url, params=TECH, headers=key, timeout=10), urls)
        )
        # Past the instant the waiting instance would have fetched itself had it not been
        # told: its wait ends a handover grace after the budget.
        _eventually(lambda: time.monotonic() > began + 2.0 + HANDOVER_GRACE_SECONDS + 0.2, 5)
    assert [r.status_code for r in answers] == [200] * 10
    for answer in answers:
        guardian = next(s for s in answer.json()["sources"] if s["name"] == "guardian")
        assert guardian["error"]["code"] == "upstream_timeout"
    assert simulator.calls("guardian") == 1


def test_an_expired_result_in_redis_is_served_stale_on_another_instance(
    make_service, redis_url, simulator
):
    a, b = (make_service(redis_url=redis_url, cache_ttl=0.2) for _ in range(2))
    request = FeedRequest.parse(category="technology", limit=5, sources=["guardian"])
    fetched_at = time.time()
    fetched = asyncio.run(a.feed.page(request))
    assert fetched.cache_status == "miss" and fetched.items
    _eventually(lambda: time.time() > fetched_at + 0.3, 2)  # expired, still kept
    simulator.set_fault("guardian", Fault("status", status=500))
    page = asyncio.run(b.feed.page(request))  # B never fetched it: the copy is Redis's
    assert page.cache_status == "stale" and page.items == fetched.items


def test_a_provider_failing_through_one_instance_opens_its_breaker_on_another(pair, simulator):
    a, b = pair
    key = {"Authorization": f"Bearer {a.keys.create('k', 'unlimited').plaintext}"}
    simulator.set_fault("guardian", Fault("status", status=500))
    with create_app(service=a).test_client() as ca, create_app(service=b).test_client() as cb:
        for i in range(a.health.failure_threshold):
            body = ca.get("/articles", params={"q": f"q{i}"}, headers=key).json()
            assert _statuses(body)["guardian"] == "error"
        calls = simulator.calls("guardian")
        body = cb.get("/articles", params={"q": "fresh"}, headers=key).json()
        sources = {s["name"]: s for s in cb.get("/sources", headers=key).json()["sources"]}
    guardian = next(s for s in body["sources"] if s["name"] == "guardian")
    assert guardian["error"]["code"] == "circuit_open"
    assert simulator.calls("guardian") == calls  # B did not call it
    assert sources["guardian"]["state"] == "open"
    assert sources["guardian"]["last_error"]["code"] == "upstream_error"


@pytest.mark.timeout(60)
def test_without_redis_answers_keep_coming_and_sharing_resumes_when_it_is_back(
    make_service, own_redis, simulator
):
    a, b = make_service(redis_url=own_redis.url()), make_service(redis_url=own_redis.url())
    key = {"Authorization": f"Bearer {a.keys.create('k', 'unlimited').plaintext}"}
    health = _validator("/components/schemas/Health")
    with create_app(service=a).test_client() as ca, create_app(service=b).test_client() as cb:
        assert ca.get("/health").json()["status"] == "ok"
        own_redis.stop()
        for i, client in enumerate((ca, cb, ca, cb)):
            began = time.monotonic()
            answer = client.get("/articles", params={"q": f"down{i}"}, headers=key)
            assert answer.status_code == 200, answer.text
            assert time.monotonic() - began < 1.5  # no hang on the dead socket
            assert _statuses(answer.json()) == dict.fromkeys(PROVIDERS, "ok")
        for client in (ca, cb):
            answer = client.get("/health")
            assert answer.status_code == 200
            body = answer.json()
            assert body["status"] == "degraded" and body["degraded"] == ["redis"]
            assert list(health.iter_errors(body)) == []
            assert client.get("/sources", headers=key).status_code == 200

        own_redis.start()
        for client in (ca, cb):
            _eventually(lambda c=client: c.get("/health").json()["status"] == "ok", 5)
        assert ca.get("/articles", params={"q": "back"}, headers=key).json()["cache_status"] == (
            "miss"
        )
        calls = _calls(simulator)
        assert cb.get("/articles", params={"q": "back"}, headers=key).json()["cache_status"] == (
            "hit"
        )
        assert _calls(simulator) == calls


class EpochClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _shared_health(link: RedisLink, clock: EpochClock, threshold: int = 2) -> ProviderHealth:
    return ProviderHealth(
        failure_threshold=threshold,
        open_seconds=30,
        probe_seconds=5,
        clock=clock,
        shared=SharedHealth(link),
    )


def test_concurrent_failures_on_two_instances_all_count(redis_url):
    links = [RedisLink(redis_url), RedisLink(redis_url)]
    clock = EpochClock()
    a, b = (_shared_health(link, clock, threshold=1000) for link in links)
    error = UpstreamError("upstream_timeout", "late")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: (a, b)[i % 2].failed("guardian", error), range(80)))
    assert a.get("guardian").consecutive_failures == b.get("guardian").consecutive_failures == 80
    for link in links:
        link.close()


def test_a_probe_slot_held_by_a_lost_instance_expires(redis_url):
    links = [RedisLink(redis_url), RedisLink(redis_url)]
    clock = EpochClock()
    a, b = (_shared_health(link, clock) for link in links)
    for _ in range(2):
        a.failed("guardian", UpstreamError("upstream_unreachable", "down"))
    clock.now += 31  # open period over: half-open
    a.admit("guardian")  # A takes the probe slot, then is lost before it reports
    with pytest.raises(UpstreamError, match="being probed"):
        b.admit("guardian")
    clock.now += 6  # the probe's whole budget has passed
    b.admit("guardian")  # B probes instead
    b.succeeded("guardian")
    assert a.breaker("guardian").state == "closed"
    for link in links:
        link.close()


def test_an_unreachable_redis_url_and_its_password_are_never_shown(make_service, caplog):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = "pw-Rk27-never-shown"
    service = make_service(redis_url=f"redis://:{password}@127.0.0.1:{port}/0")
    key = {"Authorization": f"Bearer {service.keys.create('k', 'unlimited').plaintext}"}
    with create_app(service=service).test_client() as client:
        answers = [
            client.get("/articles", params=TECH, headers=key),
            client.get("/sources", headers=key),
            client.get("/health"),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[2].json()["degraded"] == ["redis"]
    assert "Redis unreachable" in caplog.text
    shown = caplog.text + "".join(a.text for a in answers) + repr(service.settings)
    assert password not in shown and str(port) not in shown


@pytest.mark.parametrize("url", ["http://:pw-Rk27@host/0", "redis://:pw-Rk27@host:pw-Rk27/0"])
def test_a_malformed_redis_url_is_a_settings_error_that_never_quotes_it(make_service, url):
    with pytest.raises(SettingsError) as refused:
        make_service(redis_url=url)
    assert "pw-Rk27" not in str(refused.value)


def test_a_silent_redis_costs_a_request_at_most_its_socket_timeouts(make_service):
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        service = make_service(redis_url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        key = {"Authorization": f"Bearer {service.keys.create('k', 'unlimited').plaintext}"}
        with create_app(service=service).test_client() as client:
            began = time.monotonic()
            answer = client.get("/articles", params=TECH, headers=key)
            took = time.monotonic() - began
            assert client.get("/health").json()["status"] == "degraded"
    assert answer.status_code == 200 and answer.json()["cache_status"] == "miss"
    assert took < 0.9  # the upstream budget is 1 s: Redis cost a read timeout, not a hang


def test_a_result_leaves_redis_when_its_stale_window_ends(make_service, redis_url):
    service = make_service(redis_url=redis_url, cache_ttl=60, cache_max_stale=30)
    asyncio.run(service.feed.page(FeedRequest.parse(category="technology")))
    with redis.Redis.from_url(redis_url) as client:
        lives = [client.pttl(key) for key in client.scan_iter("newsagg:result:*")]
    assert len(lives) == len(PROVIDERS)
    assert all(80_000 < ms <= 90_000 for ms in lives)  # ttl + max_stale from the fetch
