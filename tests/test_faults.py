"""Upstream faults, provider by provider: the API answers within its bound, the healthy
providers' articles are there, the faulty one's status says what happened, never a 500."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import replace

import pytest

from edge.app import create_app
from newsagg.settings import Settings
from simulator import Fault

PROVIDERS = ("newsapi", "guardian", "hackernews")
BUDGET = 1.0  # the fixture's NEWSAGG_UPSTREAM_TIMEOUT

# fault -> (status in sources, error code)
FAULTS = {
    "500": (Fault("status", status=500), "error", "upstream_error"),
    "503": (Fault("status", status=503), "error", "upstream_error"),
    "429 with Retry-After": (
        Fault("status", status=429, retry_after=30),
        "error",
        "upstream_rate_limited",
    ),
    "401 bad key": (Fault("status", status=401), "error", "upstream_auth_failed"),
    "malformed JSON": (Fault("malformed"), "error", "upstream_bad_response"),
    "wrong shape": (Fault("wrong_shape"), "error", "upstream_bad_response"),
    "hang": (Fault("hang"), "error", "upstream_timeout"),
    "slow but in time": (Fault("latency", delay=0.3), "ok", None),
}


@pytest.fixture(params=["embedded", "PostgreSQL + Redis"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Every test here twice: on the embedded default, and on the shared configuration
    (real PostgreSQL and Redis servers, as several instances would use them)."""
    if request.param == "embedded":
        return settings
    return replace(
        settings,
        database_url=request.getfixturevalue("pg_url"),
        redis_url=request.getfixturevalue("redis_url"),
    )


@pytest.mark.parametrize("fault_name", FAULTS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_fault_matrix(client, user_headers, simulator, provider, fault_name, caplog):
    fault, status, code = FAULTS[fault_name]
    caplog.set_level(logging.INFO)
    simulator.set_fault(provider, fault)
    started = time.monotonic()
    response = client.get(
        "/articles", params={"category": "technology", "limit": 100}, headers=user_headers
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < BUDGET + 0.75, f"{elapsed:.2f}s"
    body = response.json()
    reports = {s["name"]: s for s in body["sources"]}
    assert reports[provider]["status"] == status
    if code:
        assert reports[provider]["error"]["code"] == code
    healthy = set(PROVIDERS) - {provider}
    assert all(reports[name]["status"] == "ok" for name in healthy)
    assert {a["source"] for a in body["articles"]} >= healthy
    for name in healthy:
        assert reports[name]["article_count"] > 0
    # An expected upstream failure is one warning line naming provider and code; no
    # traceback, and no asyncio complaint about an exception nobody read.
    gc.collect()
    assert "never retrieved" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    if code:
        assert any(
            r.levelname == "WARNING" and provider in r.getMessage() and code in r.getMessage()
            for r in caplog.records
        )


def test_every_provider_hanging_answers_503_shortly_after_the_budget(
    client, user_headers, simulator
):
    for name in PROVIDERS:
        simulator.set_fault(name, Fault("hang"))
    started = time.monotonic()
    response = client.get("/articles", headers=user_headers)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert BUDGET <= elapsed < BUDGET + 0.75, f"{elapsed:.2f}s"


def test_rate_limited_provider_cools_down_and_is_not_called(client, user_headers, simulator):
    simulator.set_fault("guardian", Fault("status", status=429, retry_after=120))
    client.get("/articles", params={"category": "science"}, headers=user_headers)
    assert simulator.calls("guardian") == 1
    body = client.get("/articles", params={"category": "health"}, headers=user_headers).json()
    guardian = next(s for s in body["sources"] if s["name"] == "guardian")
    assert guardian["error"]["code"] == "upstream_rate_limited"
    assert simulator.calls("guardian") == 1  # cooling down: not called again
    source = next(
        s
        for s in client.get("/sources", headers=user_headers).json()["sources"]
        if s["name"] == "guardian"
    )
    assert source["state"] == "cooling_down" and 110 <= source["retry_in_seconds"] <= 120


def test_breaker_opens_after_consecutive_failures(make_service, bearer, simulator):
    service = make_service()
    key = bearer(service.keys.create("k", "unlimited").plaintext)
    simulator.set_fault("newsapi", Fault("status", status=500))
    with create_app(service=service).test_client() as c:
        for i in range(service.health.failure_threshold):
            c.get("/articles", params={"q": f"query {i}"}, headers=key)
        calls = simulator.calls("newsapi")
        body = c.get("/articles", params={"q": "one more"}, headers=key).json()
        states = {s["name"]: s["state"] for s in c.get("/sources", headers=key).json()["sources"]}
    newsapi = next(s for s in body["sources"] if s["name"] == "newsapi")
    assert newsapi["error"]["code"] == "circuit_open"
    assert simulator.calls("newsapi") == calls  # a dead provider costs nothing per request
    assert states["newsapi"] == "open"
