"""The upstream simulator over real HTTP: each upstream's shapes, credentials, quirks and
faults, and its control surface (Python and HTTP). Uses the session `simulator` fixture;
conftest clears faults and call counts around every test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from providers.text import canonical_url, parse_timestamp
from simulator import Fault, Simulator

NEWSAPI_KEY = {"X-Api-Key": "demo-newsapi-key"}
GUARDIAN_KEY = {"api-key": "demo-guardian-key"}
HN_PATH = "/api/v1/search_by_date"


def _get(sim: Simulator, provider: str, path: str, **kwargs) -> requests.Response:
    return requests.get(sim.base_url(provider) + path, timeout=5, **kwargs)


def _newsapi(sim: Simulator, path: str = "/v2/top-headlines", **params) -> requests.Response:
    return _get(sim, "newsapi", path, params=params, headers=NEWSAPI_KEY)


def _guardian(sim: Simulator, **params) -> requests.Response:
    return _get(sim, "guardian", "/search", params=GUARDIAN_KEY | params)


def _hn(sim: Simulator, **params) -> requests.Response:
    return _get(sim, "hackernews", HN_PATH, params=params)


def _wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll a condition with a deadline: the event it waits for happens in another thread."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_demo_keys_and_url_layout(simulator):
    assert simulator.newsapi_key == "demo-newsapi-key"
    assert simulator.guardian_key == "demo-guardian-key"
    assert simulator.url.startswith("http://127.0.0.1:")
    for provider in ("newsapi", "guardian", "hackernews"):
        assert simulator.base_url(provider) == f"{simulator.url}/{provider}"


# -- NewsAPI ----------------------------------------------------------------------------


def test_newsapi_top_headlines_shape_and_quirks(simulator):
    body = _newsapi(simulator, country="us", pageSize=100).json()
    assert body["status"] == "ok" and body["totalResults"] == len(body["articles"])
    articles = body["articles"]
    removed = [a for a in articles if a["title"] == "[Removed]"]
    assert removed and all(a["url"] == "https://removed.com" for a in removed)
    assert all(a["publishedAt"] == "1970-01-01T00:00:00Z" for a in removed)
    real = [a for a in articles if a["title"] != "[Removed]"]
    assert all(a["title"].endswith(" - " + a["source"]["name"]) for a in real)
    assert any(a["content"] and a["content"].endswith(" chars]") for a in real)
    google = [a for a in real if a["source"]["id"] == "google-news"]
    assert google and google[0]["url"].startswith("https://news.google.com/")
    assert google[0]["description"] is None and google[0]["urlToImage"] is None
    assert set(articles[0]) == {
        "source",
        "author",
        "title",
        "description",
        "url",
        "urlToImage",
        "publishedAt",
        "content",
    }


def test_newsapi_data_is_recent(simulator):
    articles = _newsapi(simulator, country="us", pageSize=100).json()["articles"]
    stamps = [parse_timestamp(a["publishedAt"]) for a in articles if a["title"] != "[Removed]"]
    now = datetime.now(UTC)
    assert max(stamps) > now - timedelta(hours=1)
    assert all(s <= now for s in stamps)


def test_newsapi_filters_by_category_q_and_page_size(simulator):
    science = _newsapi(simulator, country="us", category="science").json()["articles"]
    assert science and len(science) < len(_newsapi(simulator, country="us").json()["articles"])
    assert any("Antarctic" in a["title"] for a in science)
    assert not any("compiler" in a["title"] for a in science)
    searched = _newsapi(simulator, q="BATTERY", country="us").json()["articles"]
    assert searched and all(
        "battery" in (a["title"] + (a["description"] or "")).lower() for a in searched
    )
    assert len(_newsapi(simulator, country="us", pageSize=3).json()["articles"]) == 3


def test_newsapi_everything_applies_from_and_to_and_has_no_suffix(simulator):
    everything = _newsapi(simulator, "/v2/everything", q="a", pageSize=100).json()["articles"]
    assert everything and not any(
        a["title"].endswith(" - " + a["source"]["name"]) for a in everything
    )
    stamps = sorted(parse_timestamp(a["publishedAt"]) for a in everything)
    middle = stamps[len(stamps) // 2]
    window = _newsapi(
        simulator, "/v2/everything", q="a", pageSize=100, to=middle.isoformat()
    ).json()["articles"]
    assert window and all(parse_timestamp(a["publishedAt"]) <= middle for a in window)
    assert len(window) < len(everything)


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "apiKeyMissing"), ({"X-Api-Key": "not-the-key"}, "apiKeyInvalid")],
)
def test_newsapi_checks_its_key(simulator, headers, code):
    response = _get(
        simulator, "newsapi", "/v2/top-headlines", params={"country": "us"}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["status"] == "error" and response.json()["code"] == code


EMPTY = {"status": "ok", "totalResults": 0, "articles": []}


@pytest.mark.parametrize(
    "params",
    [
        {"country": "us", "language": "en"},  # `language` is no top-headlines parameter
        {"category": "science", "language": "en"},
        {"q": "battery", "language": "en"},
        {"category": "science"},  # only country=us (or sources) has articles
        {"q": "battery"},
        {"country": "gb", "category": "science"},
    ],
)
def test_newsapi_top_headlines_is_empty_as_live_for(simulator, params):
    response = _newsapi(simulator, **params)
    assert response.status_code == 200 and response.json() == EMPTY


def test_newsapi_top_headlines_by_sources(simulator):
    articles = _newsapi(simulator, sources="the-guardian-uk,google-news").json()["articles"]
    assert {a["source"]["id"] for a in articles} == {"the-guardian-uk", "google-news"}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "parametersMissing"),
        ({"language": "en", "pageSize": 100}, "parametersMissing"),  # newsagg's old request
        ({"sources": "google-news", "country": "us"}, "parametersIncompatible"),
        ({"sources": "google-news", "category": "general"}, "parametersIncompatible"),
    ],
)
def test_newsapi_top_headlines_refuses_as_live(simulator, params, code):
    response = _newsapi(simulator, **params)
    assert response.status_code == 400
    assert response.json()["status"] == "error" and response.json()["code"] == code


@pytest.mark.parametrize("params", [{}, {"language": "en", "from": "2026-01-01"}, {"q": " "}])
def test_newsapi_everything_needs_q(simulator, params):
    response = _newsapi(simulator, "/v2/everything", **params)
    assert response.status_code == 400 and response.json()["code"] == "parametersMissing"


# -- The Guardian -----------------------------------------------------------------------


def test_guardian_shape_and_quirks(simulator):
    body = _guardian(simulator, **{"page-size": 50, "show-fields": "trailText,byline,thumbnail"})
    response = body.json()["response"]
    assert response["status"] == "ok" and response["pageSize"] == 50
    results = response["results"]
    assert {"sectionId", "webPublicationDate", "webTitle", "webUrl", "apiUrl"} <= set(results[0])
    assert any("fields" not in r for r in results)  # fields missing entirely
    with_fields = [r["fields"] for r in results if "fields" in r]
    assert any("byline" not in f for f in with_fields)  # one field missing
    assert all(
        isinstance(f["wordcount"], str) and f["isPremoderated"] == "false" for f in with_fields
    )
    html = " ".join(f.get("trailText", "") + f.get("byline", "") for f in with_fields)
    for marker in ("<p>", "<strong>", "&amp;", "&#8217;"):
        assert marker in html + " ".join(r["webTitle"] for r in results), marker
    sections = {r["sectionId"] for r in results}
    assert {"technology", "money", "environment", "football", "tv-and-radio", "society"} <= sections


def test_guardian_section_or_filter_and_page_size_cap(simulator):
    sport = _guardian(simulator, section="sport|football").json()["response"]["results"]
    assert {r["sectionId"] for r in sport} == {"sport", "football"}
    capped = _guardian(simulator, **{"page-size": 500}).json()["response"]
    assert capped["pageSize"] == 50


def test_guardian_without_show_fields_has_no_fields(simulator):
    results = _guardian(simulator).json()["response"]["results"]
    assert results and not any("fields" in r for r in results)


@pytest.mark.parametrize("params", [{}, {"api-key": "wrong"}])
def test_guardian_checks_its_key(simulator, params):
    response = _get(simulator, "guardian", "/search", params=params)
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}


# -- Hacker News ------------------------------------------------------------------------


def test_hackernews_stories_only_with_tags_story(simulator):
    stories = _hn(simulator, tags="story", hitsPerPage=1000).json()["hits"]
    everything = _hn(simulator, hitsPerPage=1000).json()["hits"]
    assert stories and all(h["title"] for h in stories)
    assert any(h["title"] is None for h in everything)
    assert len(everything) > len(stories)
    ask = [h for h in stories if h["title"].startswith("Ask HN")]
    assert ask and all(h["url"] is None and h["story_text"] for h in ask)
    assert all(h["created_at"].endswith(".000Z") for h in stories)


def test_hackernews_paging_past_the_end_is_an_empty_200_with_a_message(simulator):
    response = _hn(simulator, tags="story", page=50, hitsPerPage=100)
    assert response.status_code == 200
    assert response.json()["hits"] == [] and response.json()["message"]
    assert len(_hn(simulator, tags="story", hitsPerPage=5).json()["hits"]) == 5


def test_hackernews_numeric_filters(simulator):
    hits = _hn(simulator, tags="story", hitsPerPage=1000).json()["hits"]
    cut = sorted(h["created_at_i"] for h in hits)[len(hits) // 2]
    newer = _hn(
        simulator, tags="story", hitsPerPage=1000, numericFilters=f"created_at_i>={cut}"
    ).json()["hits"]
    assert newer and all(h["created_at_i"] >= cut for h in newer)
    assert len(newer) < len(hits)


def test_duplicates_across_providers_are_in_the_data(simulator):
    """NewsAPI relays Guardian stories and HN links to both, under URL variants."""
    guardian = {
        canonical_url(r["webUrl"])
        for r in _guardian(simulator, **{"page-size": 50}).json()["response"]["results"]
    }
    news = [a["url"] for a in _newsapi(simulator, country="us", pageSize=100).json()["articles"]]
    relayed = [u for u in news if canonical_url(u) in guardian]
    assert len(relayed) >= 3
    assert all(u not in guardian for u in relayed)  # only equal once canonical
    hn = [h["url"] for h in _hn(simulator, tags="story", hitsPerPage=1000).json()["hits"]]
    news_canonical = {canonical_url(u) for u in news}
    linked = {canonical_url(u) for u in hn if u}
    assert linked & guardian and linked & news_canonical


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "parameterInvalid"),
        (401, "apiKeyInvalid"),
        (426, "maximumResultsReached"),
        (429, "rateLimited"),
        (500, "unexpectedError"),
    ],
)
def test_newsapi_status_faults_carry_its_error_codes(simulator, status, code):
    simulator.set_fault("newsapi", Fault("status", status=status))
    response = _newsapi(simulator, country="us")
    assert response.status_code == status
    assert response.json()["status"] == "error" and response.json()["code"] == code
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize("status", [401, 403, 429])
def test_guardian_gateway_faults(simulator, status):
    simulator.set_fault("guardian", Fault("status", status=status, retry_after=9))
    response = _guardian(simulator)
    assert response.status_code == status
    assert set(response.json()) == {"message"}
    assert response.headers["Retry-After"] == "9"


def test_guardian_other_faults_are_in_envelope(simulator):
    simulator.set_fault("guardian", Fault("status", status=500))
    response = _guardian(simulator)
    assert response.status_code == 500 and response.json()["response"]["status"] == "error"


def test_hackernews_status_fault(simulator):
    simulator.set_fault("hackernews", Fault("status", status=503))
    response = _hn(simulator, tags="story")
    assert response.status_code == 503 and set(response.json()) == {"message"}


@pytest.mark.parametrize("provider", ["newsapi", "guardian", "hackernews"])
def test_malformed_and_wrong_shape_bodies(simulator, provider):
    path = {"newsapi": "/v2/top-headlines", "guardian": "/search", "hackernews": HN_PATH}[provider]
    simulator.set_fault(provider, Fault("malformed"))
    response = _get(simulator, provider, path)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    simulator.set_fault(provider, Fault("wrong_shape"))
    response = _get(simulator, provider, path)
    assert response.status_code == 200 and response.json()  # valid JSON, but not the shape


def test_latency_fault_delays_a_normal_answer(simulator):
    simulator.set_fault("hackernews", Fault("latency", delay=0.2))
    started = time.monotonic()
    response = _hn(simulator, tags="story")
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200 and response.json()["hits"]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "status", "status": "500"},
        {"kind": "latency", "delay": -1},
        {"kind": "status", "retry_after": -5},
        {"kind": "hang", "extra": 1},
    ],
)
def test_invalid_faults_are_refused(simulator, fault):
    with pytest.raises((TypeError, ValueError)):
        Fault(**fault)
    response = requests.put(f"{simulator.url}/_sim/faults/newsapi", json=fault, timeout=5)
    assert response.status_code == 400
    assert simulator.fault("newsapi") is None


def test_clear_faults(simulator):
    simulator.set_fault("newsapi", Fault("status", status=500))
    simulator.clear_faults()
    assert _newsapi(simulator, country="us").status_code == 200


# -- control over HTTP, call counts -----------------------------------------------------


def test_http_control_endpoints(simulator):
    control = f"{simulator.url}/_sim"
    put = requests.put(
        f"{control}/faults/newsapi",
        json={"kind": "status", "status": 429, "retry_after": 7},
        timeout=5,
    )
    assert put.status_code == 200
    response = _newsapi(simulator, country="us")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["code"] == "rateLimited"
    _guardian(simulator)
    assert requests.get(f"{control}/calls", timeout=5).json() == {
        "newsapi": 1,
        "guardian": 1,
        "hackernews": 0,
    }
    assert requests.delete(f"{control}/faults", timeout=5).status_code == 200
    assert _newsapi(simulator, country="us").status_code == 200
    assert requests.delete(f"{control}/calls", timeout=5).status_code == 200
    assert simulator.calls("newsapi") == 0
    assert (
        requests.put(f"{control}/faults/bing", json={"kind": "hang"}, timeout=5).status_code == 404
    )
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404


def test_calls_are_counted_per_provider_under_concurrency(simulator):
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: _hn(simulator, tags="story").status_code, range(24)))
    assert statuses == [200] * 24
    assert simulator.calls("hackernews") == 24
    assert simulator.calls("newsapi") == simulator.calls("guardian") == 0
    simulator.reset_calls()
    assert simulator.calls("hackernews") == 0


def test_unknown_paths_and_providers(simulator):
    assert requests.get(f"{simulator.url}/bing/search", timeout=5).status_code == 404
    assert _get(simulator, "hackernews", "/api/v1/items/1").status_code == 404
    with pytest.raises(ValueError):
        simulator.set_fault("bing", Fault("hang"))


# -- lifecycle ----------------------------------------------------------------------------


def test_stop_returns_promptly_while_a_request_hangs():
    with Simulator() as sim:
        sim.set_fault("guardian", Fault("hang"))
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(_guardian(sim).status_code)
            except requests.RequestException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        _wait_until(lambda: sim.calls("guardian") == 1)  # the request is now hanging
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 1.0
        caller.join(timeout=2)
        assert not caller.is_alive(), "the hanging request was not released by stop()"
        assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)


def test_context_manager_starts_and_stops():
    with Simulator(newsapi_key="k1", guardian_key="k2") as sim:
        url = sim.url
        response = requests.get(
            sim.base_url("newsapi") + "/v2/top-headlines",
            params={"country": "us"},
            headers={"X-Api-Key": "k1"},
            timeout=5,
        )
        assert response.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/hackernews" + HN_PATH, timeout=2)
    with pytest.raises(RuntimeError):
        _ = sim.url
