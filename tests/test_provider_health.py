"""The circuit breaker: what counts as a provider failure, and its states over (fake) time.

Unit tests drive ProviderHealth with an injected clock; the last two go through the real
NewsAPI client, and through the whole API, against the simulator."""

from __future__ import annotations

import pytest

from edge.app import create_app
from newsagg.provider_health import UNHEALTHY, ProviderHealth
from providers.base import ERROR_CODES, Query, UpstreamError, no_charge
from providers.newsapi import NewsAPIProvider
from simulator import Fault

NAME = "newsapi"
THRESHOLD = 3
OPEN_SECONDS = 30.0


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> ProviderHealth:
    return ProviderHealth(failure_threshold=THRESHOLD, open_seconds=OPEN_SECONDS, clock=clock)


def _error(code: str, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(code, f"{NAME}: {code}", retry_after)


def _refused(health: ProviderHealth) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        health.admit(NAME)
    return caught.value


def _open(health: ProviderHealth) -> None:
    for _ in range(THRESHOLD):
        health.admit(NAME)
        health.failed(NAME, _error("upstream_timeout"))


def test_every_error_code_is_decided():
    """A new code must be placed on purpose: unhealthy, or one of the named exceptions."""
    assert frozenset(ERROR_CODES) - UNHEALTHY == {
        "upstream_rate_limited",  # its own cool-down
        "upstream_rejected_query",  # the query's problem
        "circuit_open",  # the breaker's own refusal
        "upstream_budget_spent",  # newsagg's own refusal to spend: the upstream was not called
    }
    assert "upstream_auth_failed" in UNHEALTHY  # a bad key fails every client alike


@pytest.mark.parametrize("code", sorted(UNHEALTHY))
def test_breaker_opens_after_threshold_unhealthy_failures(health, code):
    for _ in range(THRESHOLD - 1):
        health.admit(NAME)
        health.failed(NAME, _error(code))
    assert health.breaker(NAME).state == "closed"
    health.admit(NAME)
    health.failed(NAME, _error(code))
    assert (health.breaker(NAME).state, health.breaker(NAME).retry_in_seconds) == ("open", 30)
    refused = _refused(health)
    assert refused.code == "circuit_open" and refused.retry_after == OPEN_SECONDS
    assert health.get(NAME).last_error.code == code  # visible on /sources


def test_query_rejections_never_open_the_breaker_nor_become_last_error(health):
    for _ in range(10 * THRESHOLD):
        health.admit(NAME)
        health.failed(NAME, _error("upstream_rejected_query"))
    assert health.breaker(NAME).state == "closed"
    assert health.get(NAME).last_error is None
    assert health.get(NAME).consecutive_failures == 0


def test_query_rejections_neither_count_nor_reset_the_unhealthy_run(health):
    for _ in range(THRESHOLD - 1):
        health.failed(NAME, _error("upstream_error"))
        health.failed(NAME, _error("upstream_rejected_query"))
    assert health.breaker(NAME).state == "closed"
    assert health.get(NAME).last_error.code == "upstream_error"
    health.failed(NAME, _error("upstream_error"))
    assert health.breaker(NAME).state == "open"


def test_half_open_lets_exactly_one_probe_through(health, clock):
    _open(health)
    clock.advance(OPEN_SECONDS - 0.5)
    assert _refused(health).code == "circuit_open"
    clock.advance(0.5)
    assert health.breaker(NAME).state == "half_open"
    health.admit(NAME)  # the probe
    for _ in range(5):
        assert _refused(health).code == "circuit_open"


def test_probe_success_closes_the_breaker(health, clock):
    _open(health)
    clock.advance(OPEN_SECONDS)
    health.admit(NAME)
    health.succeeded(NAME)
    assert health.breaker(NAME).state == "closed"
    for _ in range(THRESHOLD + 1):
        health.admit(NAME)  # no longer refused, no probe limit
    assert health.get(NAME).last_success_at is not None


def test_probe_failure_reopens_for_the_full_period(health, clock):
    _open(health)
    clock.advance(OPEN_SECONDS + 5)
    health.admit(NAME)
    health.failed(NAME, _error("upstream_unreachable"))
    assert (health.breaker(NAME).state, health.breaker(NAME).retry_in_seconds) == ("open", 30)
    clock.advance(OPEN_SECONDS)
    health.admit(NAME)  # the next probe
    assert _refused(health).code == "circuit_open"


def test_a_probe_the_upstream_refused_for_its_query_frees_the_probe_slot(health, clock):
    _open(health)
    clock.advance(OPEN_SECONDS)
    health.admit(NAME)
    health.failed(NAME, _error("upstream_rejected_query"))
    assert health.breaker(NAME).state == "half_open"  # it proved nothing either way
    health.admit(NAME)  # another client's request may probe now
    assert _refused(health).code == "circuit_open"


def test_rate_limit_cools_down_for_retry_after(health, clock):
    health.admit(NAME)
    health.failed(NAME, _error("upstream_rate_limited", retry_after=7))
    view = health.breaker(NAME)
    assert (view.state, view.retry_in_seconds) == ("cooling_down", 7)
    refused = _refused(health)
    assert refused.code == "upstream_rate_limited" and refused.retry_after == 7
    clock.advance(6.9)
    assert _refused(health).code == "upstream_rate_limited"
    clock.advance(0.1)
    health.admit(NAME)
    assert health.get(NAME).last_error.code == "upstream_rate_limited"


def test_rate_limit_without_retry_after_cools_down_by_default(health, clock):
    health.failed(NAME, _error("upstream_rate_limited"))
    assert health.breaker(NAME).retry_in_seconds == health.default_cooldown_seconds
    clock.advance(health.default_cooldown_seconds)
    health.admit(NAME)


def test_rate_limits_do_not_count_towards_opening(health, clock):
    for _ in range(THRESHOLD):
        health.failed(NAME, _error("upstream_rate_limited", retry_after=1))
        clock.advance(1)
    assert health.breaker(NAME).state == "closed"
    assert health.get(NAME).consecutive_failures == 0


def test_providers_are_independent(health):
    _open(health)
    health.admit("guardian")
    assert health.breaker("guardian").state == "closed"


# -- through the real client and the simulator ----------------------------------------


class OldShapeNewsAPI(NewsAPIProvider):
    """The real client sending the request newsagg used to send for an uncategorised feed:
    top-headlines with `language` alone, which NewsAPI refuses (400 parametersMissing)."""

    def _request(self, query: Query) -> tuple[str, dict[str, object], str]:
        return "/v2/top-headlines", {"language": "en", "pageSize": 100}, "general"


def test_many_queries_newsapi_refuses_leave_the_breaker_closed(simulator):
    provider = OldShapeNewsAPI(simulator.base_url(NAME), simulator.newsapi_key)
    health = ProviderHealth(failure_threshold=THRESHOLD)
    for i in range(5 * THRESHOLD):
        health.admit(NAME)  # raises once the breaker is open
        with pytest.raises(UpstreamError) as caught:
            provider.fetch(Query(q=f"query {i}"), 2.0, no_charge)
        assert caught.value.code == "upstream_rejected_query"
        assert caught.value.message == "newsapi answered 400 (parametersMissing)"
        health.failed(NAME, caught.value)
    assert simulator.calls(NAME) == 5 * THRESHOLD
    assert health.breaker(NAME).state == "closed"
    assert health.get(NAME).last_error is None


def test_one_clients_refused_queries_do_not_cost_others_the_provider(
    make_service, bearer, simulator
):
    """NewsAPI refuses a client's queries (400 parameterInvalid) many times over: each answer
    names the refusal, /sources still shows NewsAPI healthy, and the next query gets it."""
    service = make_service()
    key = bearer(service.keys.create("k", "unlimited").plaintext)
    simulator.set_fault(NAME, Fault("status", status=400))
    with create_app(service=service).test_client() as c:
        for i in range(2 * service.health.failure_threshold):
            body = c.get("/articles", params={"q": f"query {i}"}, headers=key).json()
            newsapi = next(s for s in body["sources"] if s["name"] == NAME)
            assert newsapi["status"] == "error"
            assert newsapi["error"]["code"] == "upstream_rejected_query"
        sources = {s["name"]: s for s in c.get("/sources", headers=key).json()["sources"]}
        simulator.clear_faults()
        body = c.get("/articles", params={"q": "battery"}, headers=key).json()
    assert sources[NAME]["state"] == "closed" and sources[NAME]["last_error"] is None
    assert next(s for s in body["sources"] if s["name"] == NAME)["status"] == "ok"
