"""The upstream simulator over real HTTP: each upstream's shapes, credentials, quirks and
faults, and its control surface (Python and HTTP). Uses the session `simulator` fixture;
conftest clears faults and call counts around every test."""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from providers.text import canonical_url, parse_timestamp
from simulator import Fault, Simulator, data

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
    assert capped["pageSize"] == 200  # the developer key's maximum


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


# -- query languages --------------------------------------------------------------------


def _words(*texts: str | None) -> str:
    """The searched text as space-joined word tokens, HTML and entities gone, padded so a
    phrase test is `f" {phrase} " in text`."""
    plain = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", t)) for t in texts if t)
    return " " + " ".join(re.findall(r"[^\W_]+", plain.lower())) + " "


# q, and the same condition over the words of a story (see _words).
BOOLEAN_QUERIES = [
    (
        "(battery OR drone) NOT football",
        lambda w: (" battery " in w or " drone " in w) and " football " not in w,
    ),
    ("battery drone", lambda w: " battery " in w and " drone " in w),
    (
        "drone AND NOT (battery OR football)",
        lambda w: " drone " in w and not (" battery " in w or " football " in w),
    ),
    ('"drone inspection"', lambda w: " drone inspection " in w),
    ("covid-19", lambda w: " covid 19 " in w),
    ("AT&T OR battery", lambda w: " at t " in w or " battery " in w),
]


def _newsapi_headline(article: dict) -> str:
    return article["title"].rsplit(" - ", 1)[0]


@pytest.mark.parametrize(("q", "condition"), BOOLEAN_QUERIES)
def test_newsapi_boolean_q(simulator, q, condition):
    everything = _newsapi(simulator, country="us", pageSize=100).json()["articles"]
    expected = [
        a["url"] for a in everything if condition(_words(_newsapi_headline(a), a["description"]))
    ]
    found = _newsapi(simulator, country="us", pageSize=100, q=q).json()["articles"]
    assert expected and [a["url"] for a in found] == expected


@pytest.mark.parametrize(
    ("q", "condition"),
    [
        ("+drone -football", lambda w: " drone " in w and " football " not in w),
        ("-battery +drone", lambda w: " drone " in w and " battery " not in w),
    ],
)
def test_newsapi_must_and_must_not(simulator, q, condition):
    searched = _newsapi(simulator, "/v2/everything", q=q, pageSize=100).json()["articles"]
    expected = {
        a["url"]
        for a in _newsapi(simulator, country="us", pageSize=100).json()["articles"]
        if condition(_words(_newsapi_headline(a), a["description"]))
    }
    assert expected and {a["url"] for a in searched} == expected


@pytest.mark.parametrize(("q", "condition"), BOOLEAN_QUERIES)
def test_guardian_boolean_q(simulator, q, condition):
    params = {"page-size": 200, "show-fields": "trailText", "order-by": "newest"}
    everything = _guardian(simulator, **params).json()["response"]["results"]
    expected = [
        r["id"]
        for r in everything
        if condition(_words(r["webTitle"], r.get("fields", {}).get("trailText")))
    ]
    found = _guardian(simulator, q=q, **params).json()["response"]["results"]
    assert [r["id"] for r in found] == expected
    if q != '"drone inspection"':  # a NewsAPI-only story
        assert expected


@pytest.mark.parametrize("q", ["(battery OR drone", "battery)", '"drone', "battery OR", "()"])
def test_a_malformed_boolean_q_is_refused_as_live(simulator, q):
    news = _newsapi(simulator, country="us", q=q)
    assert news.status_code == 400 and news.json()["code"] == "parameterInvalid"
    guardian = _guardian(simulator, q=q)
    assert guardian.status_code == 400 and guardian.json()["response"]["status"] == "error"


def _hn_titles(sim: Simulator, query: str) -> list[str]:
    body = _hn(sim, tags="story", hitsPerPage=1000, query=query).json()
    assert body["nbHits"] == len(body["hits"])
    return [h["title"] for h in body["hits"]]


def test_hackernews_query_is_advanced_syntax_without_or(simulator):
    stories = _hn(simulator, tags="story", hitsPerPage=1000).json()["hits"]
    words = {h["title"]: _words(h["title"], h["story_text"]) for h in stories}
    battery = [t for t, w in words.items() if " battery " in w]
    assert battery and _hn_titles(simulator, "battery") == battery
    assert _hn_titles(simulator, "battery OR drone") == []  # "or" is a word stories lack
    assert _hn_titles(simulator, "drone -battery") == [
        t for t, w in words.items() if " drone " in w and " battery " not in w
    ]
    assert (
        _hn_titles(simulator, '"solid state battery" (drone)')
        == [t for t, w in words.items() if " solid state battery " in w and " drone " in w]
        != []
    )
    assert _hn_titles(simulator, "AT&T") == [t for t in words if "AT&T" in t] != []


# -- quotas -----------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_newsapi_quota_refuses_past_its_daily_calls():
    now = [0.0]
    with Simulator(newsapi_quota=3, clock=lambda: now[0]) as sim:
        assert [_newsapi(sim, country="us").status_code for _ in range(3)] == [200] * 3
        refused = _newsapi(sim, country="us")
        assert refused.status_code == 429
        assert refused.json()["status"] == "error" and refused.json()["code"] == "rateLimited"
        assert sim.calls("newsapi") == 4  # a refused call is a call made
        assert _guardian(sim).status_code == 200  # the others have no quota by default
        now[0] += 86_400  # the rolling day has moved past the first three
        assert _newsapi(sim, country="us").status_code == 200


@pytest.mark.timeout(10)
def test_quota_over_http_and_reset_with_the_calls():
    with Simulator() as sim:
        assert sim.quota("newsapi") == 100 and sim.quota("guardian") is None
        control = f"{sim.url}/_sim"
        assert requests.put(f"{control}/quota/newsapi", json={"per_day": 1}, timeout=5).ok
        assert _newsapi(sim, country="us").status_code == 200
        assert _newsapi(sim, country="us").status_code == 429
        assert requests.delete(f"{control}/calls", timeout=5).status_code == 200
        assert _newsapi(sim, country="us").status_code == 200
        for bad in ({"per_day": -1}, {"per_day": "5"}, {}, {"limit": 5}):
            assert requests.put(f"{control}/quota/newsapi", json=bad, timeout=5).status_code == 400
        assert (
            requests.put(f"{control}/quota/bing", json={"per_day": 1}, timeout=5).status_code == 404
        )
        assert requests.put(f"{control}/quota/guardian", json={"per_day": 0}, timeout=5).ok
        assert _guardian(sim).status_code == 429 and _guardian(sim).json() == {
            "message": "API rate limit exceeded"
        }
        assert requests.put(f"{control}/quota/newsapi", json={"per_day": None}, timeout=5).ok
        assert sim.quota("newsapi") is None


# -- what a harvester needs: windows and paging -----------------------------------------


def test_guardian_pages_are_disjoint_and_complete(simulator):
    params = {"order-by": "newest", "page-size": 4}
    whole = _guardian(simulator, **{"page-size": 200}).json()["response"]
    first = _guardian(simulator, **params).json()["response"]
    assert first["pages"] == -(-whole["total"] // 4) and first["total"] == whole["total"]
    pages = [first] + [
        _guardian(simulator, page=n, **params).json()["response"]
        for n in range(2, first["pages"] + 1)
    ]
    assert [p["currentPage"] for p in pages] == list(range(1, first["pages"] + 1))
    ids = [r["id"] for p in pages for r in p["results"]]
    assert ids == [r["id"] for r in whole["results"]]
    stamps = [parse_timestamp(r["webPublicationDate"]) for r in whole["results"]]
    assert stamps == sorted(stamps, reverse=True)
    beyond = _guardian(simulator, page=first["pages"] + 1, **params)
    assert beyond.status_code == 400
    assert beyond.json()["response"] == {
        "status": "error",
        "message": "requested page is beyond the number of available pages",
    }


def test_guardian_dates_take_timestamps(simulator):
    results = _guardian(simulator, **{"page-size": 200}).json()["response"]["results"]
    stamps = sorted(parse_timestamp(r["webPublicationDate"]) for r in results)
    cut = stamps[len(stamps) // 2]
    newer = _guardian(
        simulator, **{"page-size": 200, "from-date": cut.strftime("%Y-%m-%dT%H:%M:%SZ")}
    ).json()["response"]["results"]
    older = _guardian(
        simulator, **{"page-size": 200, "to-date": (cut - timedelta(seconds=1)).isoformat()}
    ).json()["response"]["results"]
    assert {r["id"] for r in newer} | {r["id"] for r in older} == {r["id"] for r in results}
    assert newer and older and not {r["id"] for r in newer} & {r["id"] for r in older}


@pytest.mark.parametrize(
    "bound",
    ["{:%Y-%m-%dT%H:%M:%SZ}", "{:%Y-%m-%dT%H:%M:%S.000Z}", "{:%Y-%m-%dt%H:%M:%S}", "{:%Y-%m-%d}"],
)
def test_guardian_dates_take_every_iso_form(simulator, bound):
    """The simulator reads time bounds itself (it imports nothing of providers/): `Z`,
    fractions, no offset (UTC), either case, a bare date (its whole day)."""
    results = _guardian(simulator, **{"page-size": 200}).json()["response"]["results"]
    newest = max(parse_timestamp(r["webPublicationDate"]) for r in results)
    upto = _guardian(simulator, **{"page-size": 200, "to-date": bound.format(newest)})
    assert upto.status_code == 200
    assert len(upto.json()["response"]["results"]) == len(results)


def test_relayed_stories_are_filed_by_the_documented_section_table(simulator):
    """The simulator's section table is its own (PRODUCT.md's), not the client's: the two
    must agree, and NewsAPI files each relayed Guardian story under its section's category."""
    from providers.guardian import SECTION_CATEGORY

    assert data.SECTION_CATEGORIES == SECTION_CATEGORY
    assert data.section_category("politics") == "general"
    assert all(data.section_category(data.SECTIONS[c]) == c for c in data.SECTIONS)


def test_hackernews_numeric_filters_and_pages_slice_newest_first(simulator):
    everything = _hn(simulator, hitsPerPage=1000).json()["hits"]
    stamps = [h["created_at_i"] for h in everything]
    assert stamps == sorted(stamps, reverse=True)
    cut = stamps[len(stamps) // 3]
    newer = _hn(simulator, hitsPerPage=1000, numericFilters=f"created_at_i>{cut}").json()
    older = _hn(simulator, hitsPerPage=1000, numericFilters=f"created_at_i<={cut}").json()
    assert newer["hits"] + older["hits"] == everything
    band = _hn(
        simulator, hitsPerPage=1000, numericFilters=f"created_at_i>={cut},created_at_i<{cut + 1}"
    ).json()["hits"]
    assert band and {h["created_at_i"] for h in band} == {cut}
    first = _hn(simulator, hitsPerPage=7).json()
    assert first["nbPages"] == -(-len(everything) // 7)
    pages = [first["hits"]] + [
        _hn(simulator, hitsPerPage=7, page=n).json()["hits"] for n in range(1, first["nbPages"])
    ]
    assert [h for page in pages for h in page] == everything


@pytest.mark.parametrize("path", ["/v2/top-headlines", "/v2/everything"])
def test_newsapi_pages(simulator, path):
    params = {"country": "us"} if path.endswith("headlines") else {"q": "the OR a OR drone"}
    whole = _newsapi(simulator, path, pageSize=100, **params).json()
    pages = [_newsapi(simulator, path, pageSize=6, page=n, **params).json() for n in range(1, 17)]
    assert all(p["totalResults"] == whole["totalResults"] for p in pages)
    assert [a for p in pages for a in p["articles"]] == whole["articles"]
    refused = _newsapi(simulator, path, pageSize=50, page=3, **params)
    assert refused.status_code == 426 and refused.json()["code"] == "maximumResultsReached"


# -- publishing new stories -------------------------------------------------------------


@pytest.mark.timeout(10)
def test_published_stories_are_the_newest():
    with Simulator() as sim:
        hn = sim.publish("hackernews", title="Show HN: A drone that lands on water")
        top = _hn(sim, tags="story").json()["hits"][0]
        assert top == hn and top["title"] == "Show HN: A drone that lands on water"
        assert _hn_titles(sim, "lands water") == [hn["title"]]
        news = sim.publish("newsapi", title="Sunken ferry raised", category="general")
        first = _newsapi(sim, country="us", category="general").json()["articles"][0]
        assert first == news and first["title"].endswith(" - " + first["source"]["name"])
        searched = _newsapi(sim, "/v2/everything", q='"sunken ferry"').json()["articles"]
        assert [a["url"] for a in searched] == [news["url"]]
        guardian = sim.publish("guardian", title="Tidal lagoon approved", category="science")
        newest = _guardian(sim, **{"show-fields": "trailText"}).json()["response"]["results"][0]
        assert newest == guardian and newest["sectionId"] == "science"
        older = sim.publish(
            "guardian",
            title="An older story",
            section="money",
            published_at=datetime.now(UTC) - timedelta(days=3),
        )
        ids = [r["id"] for r in _guardian(sim, **{"page-size": 200}).json()["response"]["results"]]
        assert ids[0] == guardian["id"] and ids[-1] == older["id"]
    with pytest.raises(ValueError):
        sim.publish("bing", title="x")
    with pytest.raises(ValueError):
        sim.publish("newsapi", title="x", category="weather")


@pytest.mark.timeout(10)
def test_publish_over_http():
    with Simulator() as sim:
        stories = f"{sim.url}/_sim/stories"
        made = requests.post(
            f"{stories}/guardian",
            json={"title": "Kelp farms expand", "description": "Seaweed", "section": "environment"},
            timeout=5,
        )
        assert made.status_code == 201 and made.json()["sectionId"] == "environment"
        found = _guardian(sim, q="kelp").json()["response"]["results"]
        assert [r["id"] for r in found] == [made.json()["id"]]
        when = "2026-01-02T03:04:05Z"
        old = requests.post(
            f"{stories}/newsapi", json={"title": "Old news", "published_at": when}, timeout=5
        )
        assert old.status_code == 201 and old.json()["publishedAt"] == when
        for provider, body in [
            ("newsapi", {}),
            ("newsapi", {"title": "x", "colour": 1}),
            ("newsapi", ["x"]),
        ]:
            assert requests.post(f"{stories}/{provider}", json=body, timeout=5).status_code == 400
        assert requests.post(f"{stories}/bing", json={"title": "x"}, timeout=5).status_code == 404


@pytest.mark.timeout(10)
def test_the_ticker_publishes_until_stopped():
    with pytest.raises(ValueError):
        Simulator(ticker_seconds=0)
    sim = Simulator(ticker_seconds=0.02)
    sim.start()

    def stories() -> int:
        return sum(
            (
                _newsapi(sim, country="us", pageSize=100).json()["totalResults"],
                _guardian(sim).json()["response"]["total"],
                _hn(sim, hitsPerPage=1000).json()["nbHits"],
            )
        )

    try:
        baseline = stories()
        _wait_until(lambda: stories() >= baseline + 3)  # the ticker runs on its own
    finally:
        started = time.monotonic()
        sim.stop()
    assert time.monotonic() - started < 1.5
    assert not any(t.name == "sim-ticker" for t in threading.enumerate())


# -- the data set -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "category",
    ["business", "entertainment", "general", "health", "science", "sports", "technology"],
)
def test_every_category_has_top_headlines(simulator, category):
    articles = _newsapi(simulator, country="us", category=category).json()["articles"]
    assert [a for a in articles if a["title"] != "[Removed]"]


def test_battery_or_drone_has_answers_everywhere(simulator):
    news = _newsapi(simulator, "/v2/everything", q="battery OR drone", pageSize=100).json()
    guardian = _guardian(simulator, q="battery OR drone").json()["response"]
    both = _newsapi(simulator, "/v2/everything", q="battery drone").json()
    assert news["totalResults"] >= 4 and guardian["total"] >= 2 and both["totalResults"] >= 1
    assert _hn_titles(simulator, "battery") and _hn_titles(simulator, "drone")
    assert _hn_titles(simulator, "battery drone")
    sections = {
        r["sectionId"]
        for r in _guardian(simulator, **{"page-size": 200}).json()["response"]["results"]
    }
    assert len(sections) >= 10


def test_each_event_is_told_by_several_providers_in_their_own_words(simulator):
    """data.EVENTS: each event is in what the harvester reads first (the Guardian and HN
    whole, NewsAPI's business headlines) three times or more, by three publishers or more,
    under distinct URLs, within a few hours, every two headlines sharing three words."""
    guardian = _guardian(simulator, **{"page-size": 200}).json()["response"]["results"]
    news = _newsapi(simulator, country="us", category="business", pageSize=100).json()
    hn = _hn(simulator, tags="story", hitsPerPage=1000).json()["hits"]
    served = (
        [("The Guardian", r["webTitle"], r["webUrl"], r["webPublicationDate"]) for r in guardian]
        + [
            (a["source"]["name"], _newsapi_headline(a), a["url"], a["publishedAt"])
            for a in news["articles"]
        ]
        + [("Hacker News", h["title"], h["url"], h["created_at"]) for h in hn]
    )
    now = datetime.now(UTC)
    for _, (_, name, *_), _, _ in data.EVENTS:
        name = name.split()[0]  # each event's headlines all name it first: Lumora, …
        told = [s for s in served if name in s[1]]
        assert len(told) >= 3 and len({publisher for publisher, *_ in told}) >= 3
        assert len({canonical_url(url) for _, _, url, _ in told}) == len(told)
        times = [parse_timestamp(stamp) for *_, stamp in told]
        assert max(times) - min(times) < timedelta(hours=3) and now - min(times) < timedelta(1)
        for (_, a, *_), (_, b, *_) in itertools.combinations(told, 2):
            assert len(_long_words(a) & _long_words(b)) >= 3, (a, b)


def _long_words(title: str) -> set[str]:
    """A headline's words but the short ones: "the", "of", "to", … share nothing."""
    return {word for word in _words(title).split() if len(word) > 3}
