"""The real provider classes over HTTP against the simulator: requests, normalization,
categories, time budgets, retries, error mapping, and no secret in any error."""

from __future__ import annotations

import inspect
import logging
import socket
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from providers import http
from providers.base import CATEGORIES, HarvestCursor, Query, UpstreamError, no_charge
from providers.guardian import GuardianProvider
from providers.hackernews import HackerNewsProvider
from providers.http import Reply, parse_retry_after, status_error
from providers.newsapi import NewsAPIProvider
from providers.text import canonical_url
from simulator import Fault, data

BUDGET = 2.0
PROVIDERS = ("newsapi", "guardian", "hackernews")


def _provider(simulator, name: str, key: str | None = "demo"):
    """A provider pointed at the simulator; key "demo" means the simulator's own key."""
    url = simulator.base_url(name)
    if name == "newsapi":
        return NewsAPIProvider(url, simulator.newsapi_key if key == "demo" else key)
    if name == "guardian":
        return GuardianProvider(url, simulator.guardian_key if key == "demo" else key)
    return HackerNewsProvider(url)


def _fetch_error(provider, query: Query | None = None, timeout: float = BUDGET) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        provider.fetch(query or Query(), timeout, no_charge)
    return caught.value


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- normal answers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_each_provider_returns_normalized_articles(simulator, name):
    articles = _provider(simulator, name).fetch(Query(), BUDGET, no_charge)
    assert len(articles) >= 10
    assert simulator.calls(name) == 1
    assert all(a.source == name for a in articles)
    assert all(canonical_url(a.url) == a.url for a in articles)
    assert all(a.published_at.utcoffset() == timedelta(0) for a in articles)
    assert all(a.title and a.title == a.title.strip() for a in articles)
    assert all(a.category in CATEGORIES for a in articles)
    assert not any("<" in (a.description or "") + (a.author or "") for a in articles)
    assert not any("&amp;" in a.title + (a.description or "") for a in articles)


def test_newsapi_quirks_through_the_client(simulator):
    articles = _provider(simulator, "newsapi").fetch(
        Query(category="technology"), BUDGET, no_charge
    )
    assert articles and {a.category for a in articles} == {"technology"}
    assert not any(a.title == "[Removed]" or a.url == "https://removed.com" for a in articles)
    assert not any(a.publisher and a.title.endswith(" - " + a.publisher) for a in articles)
    assert not any("chars]" in (a.description or "") for a in articles)  # content unused
    uncategorised = _provider(simulator, "newsapi").fetch(Query(), BUDGET, no_charge)
    google = [a for a in uncategorised if a.url.startswith("https://news.google.com/")]
    assert google and google[0].publisher == "Google News" and google[0].description is None


def test_newsapi_search_uses_everything_and_is_general(simulator):
    articles = _provider(simulator, "newsapi").fetch(Query(q="battery"), BUDGET, no_charge)
    assert articles and {a.category for a in articles} == {"general"}
    assert all("battery" in (a.title + (a.description or "")).lower() for a in articles)


def test_guardian_quirks_through_the_client(simulator):
    articles = _provider(simulator, "guardian").fetch(Query(), BUDGET, no_charge)
    assert {a.publisher for a in articles} == {"The Guardian"}
    assert any(a.description is None and a.author is None for a in articles)  # no fields
    assert any(a.image_url for a in articles)
    assert any("\u2019" in a.title for a in articles)  # &#8217; decoded
    lucy = [a for a in articles if a.author == "Lucy Mangan"]  # byline HTML stripped
    assert lucy and lucy[0].category == "entertainment"


@pytest.mark.parametrize("category", CATEGORIES)
def test_categories_are_respected(simulator, category):
    for name in ("newsapi", "guardian"):
        articles = _provider(simulator, name).fetch(Query(category=category), BUDGET, no_charge)
        assert articles, f"{name} has nothing for {category}"
        assert {a.category for a in articles} == {category}


def test_guardian_general_keeps_only_unmapped_sections(simulator):
    general = _provider(simulator, "guardian").fetch(Query(category="general"), BUDGET, no_charge)
    everything = _provider(simulator, "guardian").fetch(Query(), BUDGET, no_charge)
    assert 0 < len(general) < len(everything)


def test_hackernews_serves_technology_and_general_only(simulator):
    hn = _provider(simulator, "hackernews")
    assert hn.enabled and hn.categories == frozenset({"technology", "general"})
    assert hn.serves(Query()) and hn.serves(Query(category="general"))
    assert not any(hn.serves(Query(category=c)) for c in ("sports", "business", "health"))
    assert {a.category for a in hn.fetch(Query(), BUDGET, no_charge)} == {"technology"}
    assert {a.category for a in hn.fetch(Query(category="general"), BUDGET, no_charge)} == {
        "general"
    }
    for name in ("newsapi", "guardian"):
        provider = _provider(simulator, name)
        assert all(provider.serves(Query(category=c)) for c in CATEGORIES)


def test_hackernews_ask_hn_links_to_the_item(simulator):
    articles = _provider(simulator, "hackernews").fetch(Query(q="Ask HN"), BUDGET, no_charge)
    assert articles and all(
        a.url.startswith("https://news.ycombinator.com/item?id=") for a in articles
    )
    assert all(a.publisher == "Hacker News" and a.author for a in articles)
    assert any(a.description and "&" in a.description for a in articles)  # &amp; decoded


@pytest.mark.parametrize("name", PROVIDERS)
def test_published_window_is_applied(simulator, name):
    now = datetime.now(UTC)
    query = Query(published_from=now - timedelta(hours=6), published_to=now - timedelta(hours=1))
    articles = _provider(simulator, name).fetch(query, BUDGET, no_charge)
    assert articles
    assert all(query.published_from <= a.published_at <= query.published_to for a in articles)


def test_newsapi_search_window_goes_upstream(simulator):
    """/v2/everything gets from/to (whole seconds, so odd microseconds are no 400)."""
    now = datetime.now(UTC)
    query = Query(
        q="e",
        published_from=now - timedelta(hours=8, microseconds=123),
        published_to=now - timedelta(hours=2, microseconds=456),
    )
    articles = _provider(simulator, "newsapi").fetch(query, BUDGET, no_charge)
    assert articles and {a.category for a in articles} == {"general"}
    assert all(query.published_from <= a.published_at <= query.published_to for a in articles)


@pytest.mark.parametrize("name", PROVIDERS)
def test_windows_at_the_ends_of_the_calendar(simulator, name):
    """Years below 1000 and the last instant of 9999 go upstream as valid RFC 3339 (found by
    the live fuzzing gate: strftime wrote year 366 as "366", and 9999 overflowed)."""
    query = Query(
        q="e",
        published_from=datetime(366, 4, 23, 20, 48, 47, tzinfo=UTC),
        published_to=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    assert _provider(simulator, name).fetch(query, BUDGET, no_charge)
    assert (
        _provider(simulator, name).fetch(
            replace(query, published_to=query.published_from), BUDGET, no_charge
        )
        == []
    )


# Every query newsagg accepts, as NewsAPI gets it: (from, to) as offsets from now.
WINDOWS = {
    "no window": (None, None),
    "the last two days": (timedelta(days=2), timedelta(0)),
    "from only": (timedelta(days=2), None),
    "to only": (None, timedelta(0)),
    "long ago": (timedelta(days=400), timedelta(days=399)),  # legitimately empty
}


def _search_word(category: str | None) -> str:
    """A word from one of the simulator's NewsAPI headlines in `category`: a search with hits."""
    headline = next(t for c, _, t, _ in data.NEWSAPI_STORIES if category in (None, c))
    return max(headline.split(), key=len)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("category", [None, *CATEGORIES])
def test_newsapi_answers_every_query_shape(simulator, category, window):
    """Category or not, search or not (blank included), any window: NewsAPI as it behaves
    live (the simulator) answers with articles, or with none only where none exist."""
    now = datetime.now(UTC)
    since, until = WINDOWS[window]
    published_from = None if since is None else now - since
    published_to = None if until is None else now - until
    provider = _provider(simulator, "newsapi")
    for q in (None, _search_word(category), "  "):
        query = Query(category, q, published_from, published_to)
        articles = provider.fetch(query, BUDGET, no_charge)  # an UpstreamError fails the test
        if window == "long ago":
            assert articles == [], query
            continue
        assert articles, query
        assert {a.category for a in articles} == {category or "general"}, query
        if q and q.strip():
            assert all(q in a.title + (a.description or "") for a in articles), query
        assert all((published_from or a.published_at) <= a.published_at for a in articles)
        assert all(a.published_at <= (published_to or a.published_at) for a in articles)
    assert simulator.calls("newsapi") == 3


def test_providers_without_keys_are_disabled(simulator):
    assert not _provider(simulator, "newsapi", key=None).enabled
    assert not _provider(simulator, "guardian", key=None).enabled
    assert not _provider(simulator, "guardian", key="").enabled
    assert _provider(simulator, "newsapi").enabled and _provider(simulator, "guardian").enabled


@pytest.mark.parametrize("name", ["newsapi", "guardian"])
def test_wrong_key_is_an_auth_failure_that_never_quotes_the_key(simulator, name):
    key = "wrong-key-5f4e3d2c1b0a"
    error = _fetch_error(_provider(simulator, name, key=key))
    assert error.code == "upstream_auth_failed"
    assert key not in str(error)  # NewsAPI's own message quotes the key it was given


# -- faults -------------------------------------------------------------------------------

FAULTS = {
    "500": (Fault("status", status=500), "upstream_error"),
    "401": (Fault("status", status=401), "upstream_auth_failed"),
    "403": (Fault("status", status=403), "upstream_auth_failed"),
    "400": (Fault("status", status=400), "upstream_rejected_query"),
    "malformed": (Fault("malformed"), "upstream_bad_response"),
    "wrong_shape": (Fault("wrong_shape"), "upstream_bad_response"),
}


@pytest.mark.parametrize("fault_name", FAULTS)
@pytest.mark.parametrize("name", PROVIDERS)
def test_fault_maps_to_error_code_without_retrying(simulator, name, fault_name):
    fault, code = FAULTS[fault_name]
    simulator.set_fault(name, fault)
    error = _fetch_error(_provider(simulator, name))
    assert error.code == code
    assert simulator.calls(name) == 1  # none of these is worth a retry


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("newsapi", "upstream_rejected_query"),  # maximumResultsReached: paged too deep
        ("guardian", "upstream_error"),
        ("hackernews", "upstream_error"),
    ],
)
def test_a_426_is_a_rejected_query_only_where_the_upstream_says_so(simulator, name, code):
    simulator.set_fault(name, Fault("status", status=426))
    error = _fetch_error(_provider(simulator, name))
    assert error.code == code


@pytest.mark.parametrize("name", PROVIDERS)
def test_rate_limit_carries_retry_after(simulator, name):
    simulator.set_fault(name, Fault("status", status=429, retry_after=7))
    error = _fetch_error(_provider(simulator, name))
    assert error.code == "upstream_rate_limited"
    assert error.retry_after == 7.0
    assert f"{name} answered 429" in error.message


def test_newsapi_error_message_names_its_code(simulator):
    simulator.set_fault("newsapi", Fault("status", status=500))
    assert _fetch_error(_provider(simulator, "newsapi")).message == (
        "newsapi answered 500 (unexpectedError)"
    )


def test_guardian_in_envelope_error_is_named_not_quoted(simulator):
    simulator.set_fault("guardian", Fault("status", status=500))
    error = _fetch_error(_provider(simulator, "guardian"))
    assert (error.code, error.message) == ("upstream_error", "guardian answered 500 (error)")


@pytest.mark.parametrize("name", PROVIDERS)
def test_hang_is_a_timeout_within_the_budget(simulator, name):
    simulator.set_fault(name, Fault("hang"))
    started = time.monotonic()
    error = _fetch_error(_provider(simulator, name), timeout=0.5)
    elapsed = time.monotonic() - started
    assert error.code == "upstream_timeout"
    assert 0.45 <= elapsed < 1.0, f"{elapsed:.2f}s"


def test_latency_inside_the_budget_is_fine_outside_it_is_a_timeout(simulator):
    simulator.set_fault("hackernews", Fault("latency", delay=0.2))
    assert _provider(simulator, "hackernews").fetch(Query(), 1.0, no_charge)
    started = time.monotonic()
    assert _fetch_error(_provider(simulator, "hackernews"), timeout=0.1).code == "upstream_timeout"
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_twice(simulator, status):
    simulator.set_fault("hackernews", Fault("status", status=status))
    paid = []
    with pytest.raises(UpstreamError) as caught:
        _provider(simulator, "hackernews").fetch(Query(), BUDGET, lambda: paid.append(1))
    assert caught.value.code == "upstream_error"
    assert simulator.calls("hackernews") == 3  # 1 + 2 retries, backoff well inside 2 s
    assert len(paid) == 3  # each attempt is a call the upstream counts: each is paid for


@pytest.mark.parametrize("name", PROVIDERS)
def test_who_pays_for_a_call_is_never_left_out(simulator, name):
    """`before_call` has no default: a caller that forgets it gets a TypeError, not a free
    upstream call that no budget counted."""
    provider = _provider(simulator, name)
    for method in (provider.fetch, provider.harvest_page):
        parameter = inspect.signature(method).parameters["before_call"]
        assert parameter.default is inspect.Parameter.empty, method
    with pytest.raises(TypeError):
        provider.fetch(Query(), BUDGET)
    with pytest.raises(TypeError):
        provider.harvest_page(None, HarvestCursor(), BUDGET)
    assert simulator.calls(name) == 0


def test_no_retry_starts_past_the_deadline(simulator, monkeypatch):
    simulator.set_fault("guardian", Fault("status", status=503))
    monkeypatch.setattr(http.random, "uniform", lambda low, high: high)  # the longest pause
    monkeypatch.setattr(http, "BACKOFF_BASE_SECONDS", 1.0)
    started = time.monotonic()
    error = _fetch_error(_provider(simulator, "guardian"), timeout=0.5)
    assert error.code == "upstream_error"
    assert simulator.calls("guardian") == 1  # a 1 s pause does not fit a 0.5 s budget
    assert time.monotonic() - started < 0.5


def test_retries_share_the_budget(simulator, monkeypatch):
    simulator.set_fault("newsapi", Fault("status", status=503))
    monkeypatch.setattr(http.random, "uniform", lambda low, high: high)
    # Pauses of 1 s, then 2 s, in a budget of 2 s: the first retry starts with a second to
    # spare for a loaded machine's first attempt, and the second pause cannot fit whatever
    # the first cost (it did race when the pause left 0.2 s of a 0.35 s budget).
    monkeypatch.setattr(http, "BACKOFF_BASE_SECONDS", 1.0)
    started = time.monotonic()
    _fetch_error(_provider(simulator, "newsapi"), timeout=2.0)
    assert simulator.calls("newsapi") == 2  # the second pause would cross the deadline
    assert time.monotonic() - started < 2.0


def test_oversized_bodies_are_refused(simulator, monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 1000)
    assert _fetch_error(_provider(simulator, "hackernews")).code == "upstream_bad_response"


def test_unreachable_upstream_never_leaks_the_key(caplog):
    caplog.set_level(logging.DEBUG)
    key = "guardian-secret-0a1b2c3d4e5f"
    started = time.monotonic()
    error = _fetch_error(GuardianProvider(_closed_port_url(), key), timeout=1.0)
    assert error.code == "upstream_unreachable"
    assert time.monotonic() - started < 1.0
    # requests' ConnectionError reads "... Max retries exceeded with url: /search?api-key=..."
    assert key not in "".join(traceback.format_exception(error)) + caplog.text


@pytest.mark.parametrize(
    "fault", [None, Fault("status", status=500), Fault("hang"), Fault("malformed")]
)
def test_guardian_key_never_in_an_error(simulator, fault, caplog):
    """requests' exceptions embed the URL, and the Guardian key is in its query string."""
    caplog.set_level(logging.DEBUG)
    key = "guardian-secret-9z8y7x6w5v4u"
    if fault is not None:  # without one, the key is wrong: 401
        simulator.set_fault("guardian", fault)
    provider = GuardianProvider(simulator.base_url("guardian"), key)
    error = _fetch_error(provider, Query(q="secret search"), timeout=0.3)
    for leak in (key, "api-key", "http://", "?", "secret search"):
        assert leak not in f"{error} {error.message} {error!r}"
    # Nor in a logged traceback: no requests exception (with its URL) is chained to it.
    assert key not in "".join(traceback.format_exception(error))
    assert key not in caplog.text


# -- pure helpers of the client -----------------------------------------------------------


def test_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    later = datetime.now(UTC) + timedelta(seconds=90)
    seconds = parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None and 85 <= seconds <= 90


def test_status_error_never_echoes_free_text_codes():
    reply = Reply(500, None, None)
    assert status_error("newsapi", reply, "unexpectedError").message == (
        "newsapi answered 500 (unexpectedError)"
    )
    sneaky = status_error("newsapi", reply, "Your API key abc123 is invalid")
    assert sneaky.message == "newsapi answered 500" and "abc123" not in str(sneaky)
    limited = status_error("newsapi", Reply(200, None, 3.0), "rateLimited")
    assert limited.code == "upstream_rate_limited" and limited.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "upstream_code", "code"),
    [
        (400, None, "upstream_rejected_query"),  # any 400: the request's parameters
        (426, "maximumResultsReached", "upstream_rejected_query"),  # one of the provider's
        (200, "parameterInvalid", "upstream_rejected_query"),  # an in-envelope refusal
        (426, None, "upstream_error"),
        (404, None, "upstream_error"),  # a wrong base URL is not the query's fault
        (500, "parameterInvalid", "upstream_error"),  # a 5xx is never the query's fault
        (401, "apiKeyInvalid", "upstream_auth_failed"),
        (403, None, "upstream_auth_failed"),
        (429, "parameterInvalid", "upstream_rate_limited"),
    ],
)
def test_status_error_classification(status, upstream_code, code):
    rejections = frozenset({"parameterInvalid", "maximumResultsReached"})
    error = status_error("newsapi", Reply(status, None, None), upstream_code, rejections)
    assert error.code == code
