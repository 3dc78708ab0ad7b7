"""GET /articles and GET /articles/{id} through Connexion, over real HTTP to the simulator."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from datetime import datetime, timedelta

import pytest
import requests

from edge.app import create_app
from simulator import Fault


def _published(article: dict) -> datetime:
    return datetime.fromisoformat(article["published_at"])


def test_feed_shape_and_order(client, user_headers):
    response = client.get(
        "/articles", params={"category": "technology", "limit": 50}, headers=user_headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["count"] == len(body["articles"]) > 0
    assert body["cache_status"] == "miss"
    assert {a["category"] for a in body["articles"]} == {"technology"}
    assert [s["name"] for s in body["sources"]] == ["newsapi", "guardian", "hackernews"]
    assert all(s["status"] == "ok" for s in body["sources"])
    times = [_published(a) for a in body["articles"]]
    assert times == sorted(times, reverse=True)
    assert all(a["published_at"].endswith("+00:00") for a in body["articles"])
    assert {a["source"] for a in body["articles"]} == {"newsapi", "guardian", "hackernews"}


def test_duplicates_across_providers_are_merged(client, user_headers):
    body = client.get("/articles", params={"limit": 100}, headers=user_headers).json()
    urls = [a["url"] for a in body["articles"]]
    assert len(urls) == len(set(urls))
    # Each article is one provider's: the record nearest the source, counted once.
    assert sum(s.get("article_count", 0) for s in body["sources"]) == body["count"]
    assert not any("utm_" in url or "#" in url or url.startswith("http:") for url in urls)


def test_second_request_is_a_cache_hit_and_calls_no_upstream(client, user_headers, simulator):
    params = {"category": "technology"}
    first = client.get("/articles", params=params, headers=user_headers).json()
    calls = {name: simulator.calls(name) for name in ("newsapi", "guardian", "hackernews")}
    second = client.get("/articles", params=params, headers=user_headers).json()
    assert first["cache_status"] == "miss" and second["cache_status"] == "hit"
    assert second["articles"] == first["articles"]
    assert {name: simulator.calls(name) for name in calls} == calls


def test_ids_are_stable_across_restarts(make_service, user_headers, service, bearer):
    params = {"category": "science", "limit": 10}
    with create_app(service=service).test_client() as c:
        first = c.get("/articles", params=params, headers=user_headers).json()["articles"]
    restarted = make_service()  # same database file, empty cache
    key = restarted.keys.create("again", "unlimited").plaintext
    with create_app(service=restarted).test_client() as c:
        again = c.get("/articles", params=params, headers=bearer(key)).json()
    assert again["cache_status"] == "miss"
    assert [(a["id"], a["url"]) for a in again["articles"]] == [(a["id"], a["url"]) for a in first]


def test_get_article_by_id_matches_the_feed(client, user_headers):
    article = client.get("/articles", params={"limit": 1}, headers=user_headers).json()["articles"][
        0
    ]
    response = client.get(f"/articles/{article['id']}", headers=user_headers)
    assert response.status_code == 200
    assert response.json() == article


def test_unknown_article_is_a_problem_404(client, user_headers):
    response = client.get("/articles/999999", headers=user_headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "No article with id 999999."


def _walk(client, headers, limit: int) -> tuple[list[int], int]:
    """The feed's article ids, page after page of `limit`, and how many pages it took."""
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = client.get("/articles", params=params, headers=headers).json()
        seen += [a["id"] for a in page["articles"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages


def test_pages_cover_the_feed_without_overlap(client, user_headers):
    # The feed is longer than one page of the largest limit (100): walked in both sizes.
    full, _ = _walk(client, user_headers, 100)
    seen, pages = _walk(client, user_headers, 7)
    assert seen == full
    assert len(set(seen)) == len(seen)
    assert pages == -(-len(full) // 7)


@pytest.mark.parametrize(
    "mangle",
    [lambda c: c[:-2] + ("AA" if c[-2:] != "AA" else "BB"), lambda c: "A" + c, lambda c: "zzzz"],
)
def test_tampered_cursor_is_a_400(client, user_headers, mangle):
    cursor = client.get("/articles", params={"limit": 2}, headers=user_headers).json()[
        "next_cursor"
    ]
    response = client.get(
        "/articles", params={"limit": 2, "cursor": mangle(cursor)}, headers=user_headers
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "cursor" in response.json()["detail"]


def test_cursor_of_another_query_is_a_400(client, user_headers):
    cursor = client.get("/articles", params={"limit": 2}, headers=user_headers).json()[
        "next_cursor"
    ]
    response = client.get(
        "/articles", params={"category": "science", "cursor": cursor}, headers=user_headers
    )
    assert response.status_code == 400
    assert "different query" in response.json()["detail"]


def test_published_window(client, user_headers):
    everything = client.get("/articles", params={"limit": 100}, headers=user_headers).json()
    times = sorted(_published(a) for a in everything["articles"])
    start, end = times[len(times) // 4], times[3 * len(times) // 4]
    params = {"from": start.isoformat(), "to": end.isoformat(), "limit": 100}
    window = client.get("/articles", params=params, headers=user_headers).json()
    assert window["count"] > 0
    assert all(start <= _published(a) <= end for a in window["articles"])


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"category": "weather"}, "weather"),
        ({"source": "bbc"}, "bbc"),
        ({"q": "x" * 501}, "long"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-24"}, "from"),
        ({"from": "2026-11-24T00:00:00"}, "from"),
        ({"from": "2026-11-25T00:00:00Z", "to": "2026-11-24T00:00:00Z"}, "from"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_are_problem_400s(client, user_headers, simulator, params, detail):
    response = client.get("/articles", params=params, headers=user_headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert detail in problem["detail"]
    assert "Failed validating" not in problem["detail"]  # no schema dump
    assert sum(simulator.calls(n) for n in ("newsapi", "guardian", "hackernews")) == 0


def test_source_filter_and_skipped_hackernews(client, user_headers, simulator):
    body = client.get(
        "/articles", params={"category": "sports", "source": "hackernews"}, headers=user_headers
    ).json()
    assert body["sources"] == [{"name": "hackernews", "status": "skipped"}]
    assert body["articles"] == [] and simulator.calls("hackernews") == 0

    body = client.get(
        "/articles", params=[("source", "guardian"), ("source", "hackernews")], headers=user_headers
    ).json()
    assert [s["name"] for s in body["sources"]] == ["guardian", "hackernews"]
    assert {a["source"] for a in body["articles"]} <= {"guardian", "hackernews"}
    assert simulator.calls("newsapi") == 0


def test_providers_without_keys_are_disabled(make_service, bearer):
    service = make_service(newsapi_key=None, guardian_key=None)
    key = service.keys.create("k", "unlimited").plaintext
    with create_app(service=service).test_client() as c:
        body = c.get("/articles", headers=bearer(key)).json()
    statuses = {s["name"]: s["status"] for s in body["sources"]}
    assert statuses == {"newsapi": "disabled", "guardian": "disabled", "hackernews": "ok"}
    assert {a["source"] for a in body["articles"]} == {"hackernews"}


def test_one_failing_provider_degrades_only_its_part(client, user_headers, simulator):
    simulator.set_fault("guardian", Fault("status", status=500))
    body = client.get("/articles", params={"category": "technology"}, headers=user_headers).json()
    guardian = next(s for s in body["sources"] if s["name"] == "guardian")
    assert guardian["status"] == "error" and guardian["error"]["code"] == "upstream_error"
    assert {a["source"] for a in body["articles"]} == {"newsapi", "hackernews"}

    sources = client.get("/sources", headers=user_headers).json()["sources"]
    health = {s["name"]: s for s in sources}
    assert health["guardian"]["last_error"]["code"] == "upstream_error"
    assert health["newsapi"]["last_success_at"] is not None


def test_all_failing_with_nothing_cached_is_a_503(client, user_headers, simulator):
    for name in ("newsapi", "guardian", "hackernews"):
        simulator.set_fault(name, Fault("status", status=500))
    response = client.get("/articles", headers=user_headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert "newsapi: upstream_error" in response.json()["detail"]


def test_expired_result_is_served_stale_when_its_provider_fails(make_service, bearer, simulator):
    service = make_service(cache_ttl=0.0)  # everything expires at once, but is kept
    key = service.keys.create("k", "unlimited").plaintext
    with create_app(service=service).test_client() as c:
        fresh = c.get("/articles", params={"category": "technology"}, headers=bearer(key)).json()
        simulator.set_fault("newsapi", Fault("status", status=500))
        stale = c.get("/articles", params={"category": "technology"}, headers=bearer(key)).json()
    assert fresh["cache_status"] == "miss" and stale["cache_status"] == "stale"
    newsapi = next(s for s in stale["sources"] if s["name"] == "newsapi")
    assert newsapi["status"] == "stale" and newsapi["error"]["code"] == "upstream_error"
    assert stale["articles"] == fresh["articles"]


def test_a_miss_costs_the_slowest_provider_not_the_sum(client, user_headers, simulator):
    for name in ("newsapi", "guardian", "hackernews"):
        simulator.set_fault(name, Fault("latency", delay=0.4))
    started = time.monotonic()
    body = client.get("/articles", params={"category": "technology"}, headers=user_headers).json()
    elapsed = time.monotonic() - started
    assert all(s["status"] == "ok" for s in body["sources"])
    assert 0.4 <= elapsed < 0.9, f"took {elapsed:.2f}s: providers were not fetched in parallel"


def test_a_hanging_provider_is_cut_off_at_the_budget(client, user_headers, simulator):
    simulator.set_fault("guardian", Fault("hang"))
    started = time.monotonic()
    body = client.get("/articles", headers=user_headers).json()
    elapsed = time.monotonic() - started
    guardian = next(s for s in body["sources"] if s["name"] == "guardian")
    assert guardian["error"]["code"] == "upstream_timeout"
    assert elapsed < 1.0 + 0.5  # the fixture's upstream budget is 1 s
    assert body["count"] > 0


def test_100_concurrent_identical_misses_make_one_upstream_call_each(
    live_server, user_headers, simulator
):
    for name in ("newsapi", "guardian", "hackernews"):
        simulator.set_fault(name, Fault("latency", delay=0.3))
    url = f"{live_server.url}/articles?category=technology"
    start = threading.Barrier(100)

    def fetch(_: int) -> int:
        start.wait(timeout=10)  # all 100 go at once
        return requests.get(url, headers=user_headers, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(fetch, range(100)))
    assert statuses == [200] * 100
    assert [simulator.calls(n) for n in ("newsapi", "guardian", "hackernews")] == [1, 1, 1]


def test_window_in_the_future_is_empty_not_an_error(client, user_headers):
    soon = (datetime.now().astimezone() + timedelta(days=1)).isoformat()
    body = client.get("/articles", params={"from": soon}, headers=user_headers).json()
    assert body["count"] == 0 and body["next_cursor"] is None
