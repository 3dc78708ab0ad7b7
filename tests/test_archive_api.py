"""GET /articles over the archive, through Connexion and the real clients to the simulator:
the query language across all three providers, malformed queries, and articles found
again while every upstream fails and after a restart."""

from __future__ import annotations

import pytest
from conftest import problem_detail

from edge.app import create_app
from providers.base import PROVIDER_NAMES
from simulator import Fault

pytestmark = pytest.mark.timeout(60)


def _search(client, headers, q: str, **params: object) -> dict:
    answer = client.get("/articles", params={"q": q, "limit": 100, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _ids(body: dict) -> set[int]:
    return {article["id"] for article in body["articles"]}


def test_or_is_the_union_and_minus_the_difference_across_all_three_providers(client, user_headers):
    queries = ("battery", "drone", "battery OR drone", "battery -drone")
    for q in queries:  # each refreshed once from every provider (HN asked in parts)
        _search(client, user_headers, q)
    battery, drone, either, only = (_search(client, user_headers, q) for q in queries)
    assert either["cache_status"] == "hit"  # answered again without an upstream call
    assert _ids(either) == _ids(battery) | _ids(drone)
    assert _ids(only) == _ids(battery) - _ids(drone)
    assert _ids(battery) & _ids(drone), "the simulator has stories holding both words"
    assert {a["source"] for a in either["articles"]} == set(PROVIDER_NAMES)
    published = [a["published_at"] for a in either["articles"]]
    assert published == sorted(published, reverse=True)


def test_title_prefix_and_phrase_behave_as_documented(client, user_headers):
    in_title = _search(client, user_headers, "title:battery")["articles"]
    assert in_title and all("battery" in a["title"].lower() for a in in_title)
    prefixed = _search(client, user_headers, "batt*")
    assert _ids(prefixed) >= _ids(_search(client, user_headers, "battery"))
    phrase = _search(client, user_headers, '"covid 19"')
    assert _ids(phrase) == _ids(_search(client, user_headers, "covid-19")) != set()


def test_relevance_ranks_the_same_articles_and_needs_q(client, user_headers):
    by_date = _search(client, user_headers, "battery OR drone")
    by_relevance = _search(client, user_headers, "battery OR drone", sort="relevance")
    assert _ids(by_relevance) == _ids(by_date)
    refused = client.get("/articles", params={"sort": "relevance"}, headers=user_headers)
    assert "relevance needs q" in problem_detail(refused, 400)


@pytest.mark.parametrize(
    ("q", "detail"),
    [
        ('"climate summit', "q: unclosed quote at character 1"),
        ("(climate OR weather", "q: unclosed '(' at character 1"),
        ("climate OR", "q: OR at character 9 needs a term on each side"),
        ("-football", "q: needs at least one term that is not excluded"),
        ("cl*", "q: prefix 'cl*' at character 1 needs at least 3 characters before *"),
        ("title:(a OR b)", "q: title: at character 1 applies to one word or phrase"),
    ],
)
def test_a_malformed_query_is_a_400_saying_what_and_where(client, user_headers, q, detail):
    answer = client.get("/articles", params={"q": q}, headers=user_headers)
    assert problem_detail(answer, 400).startswith(detail)


def test_a_story_is_found_while_every_upstream_fails_and_after_a_restart(
    client, user_headers, simulator, make_service, bearer
):
    fetched = client.get("/articles", params={"category": "science"}, headers=user_headers)
    story = fetched.json()["articles"][0]
    word = max(story["title"].split(), key=len).strip(".,:;!?\"'")
    for name in PROVIDER_NAMES:
        simulator.set_fault(name, Fault("status", status=503))
    found = _search(client, user_headers, f"title:{word}")
    assert story["id"] in _ids(found) and found["cache_status"] == "stale"
    restarted = make_service()  # same database file, nothing in memory
    key = restarted.keys.create("again", "unlimited").plaintext
    with create_app(service=restarted).test_client() as again:
        after = _search(again, bearer(key), f"title:{word}")
    assert story["id"] in _ids(after)
