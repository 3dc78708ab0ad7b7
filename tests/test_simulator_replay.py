"""Recorded upstream answers replayed through the simulator, over real HTTP on loopback;
and the bodies its own data carries (the Guardian's bodyText, NewsAPI's content).

A simulator of this module's own, so no replay can reach another test's upstreams."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator import Simulator, data
from simulator.replay import NEWEST_AGE, Recording, items

pytestmark = pytest.mark.timeout(20)

RECALL = Path(__file__).parent / "recall"
NEWSAPI_KEY = {"X-Api-Key": "demo-newsapi-key"}
GUARDIAN_KEY = {"api-key": "demo-guardian-key"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(newsapi_quota=None) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _no_replays_left(sim: Simulator) -> Iterator[None]:
    yield
    sim.clear_faults()


def _recording(name: str) -> Recording:
    return Recording.load(RECALL / f"{name}.json")


def _guardian(sim: Simulator, **params: Any) -> dict[str, Any]:
    reply = requests.get(
        f"{sim.base_url('guardian')}/search", params=GUARDIAN_KEY | params, timeout=5
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["response"]


def _newsapi(sim: Simulator, path: str, **params: Any) -> dict[str, Any]:
    reply = requests.get(
        sim.base_url("newsapi") + path, params=params, headers=NEWSAPI_KEY, timeout=5
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def _moment(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _recorded_moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value.upper())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# -- the recordings -----------------------------------------------------------------------


def test_every_recording_is_replayable_and_says_where_it_came_from():
    recordings = [Recording.load(path) for path in sorted(RECALL.glob("*.json"))]
    assert len(recordings) >= 6
    assert {r.provider for r in recordings} == {"newsapi", "guardian"}
    assert sum(len(items(r)) >= 10 for r in recordings) >= 2
    for recording in recordings:
        assert recording.q.strip()
        assert re.fullmatch(r"[0-9a-f]{40}", recording.source["commit"])
        assert recording.source["repo"].count("/") == 1 and recording.source["path"]
        assert recording.source["note"]


# -- replay -------------------------------------------------------------------------------


def test_a_recording_answers_its_q_moved_to_now_in_order_and_spacing(sim):
    recording = _recording("guardian-economics-or-finance")
    sim.replay(recording)
    before = datetime.now(UTC)
    served = _guardian(sim, q="economics OR finance", **{"page-size": 50})
    results = served["results"]
    recorded = items(recording)
    assert [r["webUrl"] for r in results] == [r["webUrl"] for r in recorded]  # recorded order
    moved = [_moment(r["webPublicationDate"]) for r in results]
    newest = max(moved)
    assert before - NEWEST_AGE - timedelta(seconds=5) <= newest <= before - NEWEST_AGE
    original = [_recorded_moment(r["webPublicationDate"]) for r in recorded]
    assert [max(original) - t for t in original] == [newest - t for t in moved]
    assert served["currentPage"] == 1 and served["pages"] == 1 and served["total"] == 50


def test_any_spelling_of_the_q_is_answered_and_no_other_q(sim):
    recording = _recording("guardian-economics-or-finance")
    recorded = {r["webUrl"] for r in items(recording)}
    sim.replay(recording)
    for spelling in ('"economics" OR "finance"', "finance OR economics", "(economics) OR finance"):
        assert {r["webUrl"] for r in _guardian(sim, q=spelling)["results"]} == recorded
    assert not recorded & {r["webUrl"] for r in _guardian(sim, q="economics")["results"]}


def test_newsapi_must_and_must_not_spelled_as_newsagg_asks(sim):
    recording = _recording("newsapi-trump-minus-opinion-harris")
    sim.replay(recording)
    asked = '"trump" AND NOT "opinion" AND NOT "kamala" AND NOT "harris" AND NOT "democrats"'
    asked += ' AND NOT "democrat" AND NOT "walz"'
    served = _newsapi(sim, "/v2/everything", q=asked, pageSize=100)["articles"]
    assert [a["url"] for a in served] == [a["url"] for a in items(recording)]
    # Recorded as dates only (the recording script cut them): served as the API writes times.
    assert all(_moment(a["publishedAt"]) <= datetime.now(UTC) for a in served)


def test_later_pages_are_empty(sim):
    sim.replay(_recording("guardian-uk-news"))
    second = _guardian(sim, q="uk-news", page=2, **{"page-size": 10})
    assert second["results"] == [] and second["currentPage"] == 2 and second["pages"] == 1
    sim.replay(_recording("newsapi-zohran-mamdani"))
    assert (
        _newsapi(sim, "/v2/everything", q="Zohran Mamdani", page=2, pageSize=50)["articles"] == []
    )
    assert len(_newsapi(sim, "/v2/everything", q="Zohran Mamdani")["articles"]) == 100


def test_the_endpoint_must_be_the_recorded_one(sim):
    recording = _recording("newsapi-new-york")
    sim.replay(recording)
    recorded = [a["url"] for a in items(recording)]
    headlines = _newsapi(sim, "/v2/top-headlines", country="us", q="New York")["articles"]
    assert [a["url"] for a in headlines] == recorded
    everything = _newsapi(sim, "/v2/everything", q="New York")["articles"]
    assert not set(recorded) & {a["url"] for a in everything}


def test_show_fields_decides_whether_the_body_text_is_served(sim):
    sim.replay(_recording("guardian-nuclear-power"))

    def fields(**params: Any) -> list[Any]:
        return [r.get("fields") for r in _guardian(sim, q="nuclear-power", **params)["results"]]

    assert all("bodyText" in f for f in fields(**{"show-fields": "bodyText"}))
    assert all("bodyText" in f for f in fields(**{"show-fields": "all"}))
    assert all(f == {} for f in fields(**{"show-fields": "trailText,byline,thumbnail"}))
    assert fields() == [None] * 50  # no show-fields: no fields at all


def test_within_shrinks_the_spacing_to_fit_keeping_the_order(sim):
    recording = _recording("guardian-nuclear-power")
    replay = sim.replay(recording, within=timedelta(hours=12))
    moved = [_moment(r["webPublicationDate"]) for r in replay.items]
    assert max(moved) - min(moved) <= timedelta(hours=12)
    original = [_recorded_moment(r["webPublicationDate"]) for r in items(recording)]
    by_time = sorted(range(len(original)), key=lambda i: (original[i], i))
    assert sorted(range(len(moved)), key=lambda i: (moved[i], i)) == by_time


def test_as_harvest_puts_the_articles_in_the_listings_a_harvest_reads(sim):
    guardian, newsapi = _recording("guardian-uk-news"), _recording("newsapi-zohran-mamdani")
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listing = {"order-by": "newest", "page-size": 200, "from-date": since}
    headlines = {"country": "us", "category": "business", "pageSize": 100}
    assert not {r["webUrl"] for r in items(guardian)} & {
        r["webUrl"] for r in _guardian(sim, **listing)["results"]
    }
    sim.replay(guardian, as_harvest=True, within=timedelta(hours=20))
    sim.replay(newsapi, as_harvest=True)
    listed = _guardian(sim, **listing)["results"]
    assert {r["webUrl"] for r in items(guardian)} <= {r["webUrl"] for r in listed}
    times = [r["webPublicationDate"] for r in listed]
    assert times == sorted(times, reverse=True)  # merged into the newest-first listing
    top = _newsapi(sim, "/v2/top-headlines", **headlines)["articles"]
    assert {a["url"] for a in items(newsapi)} <= {a["url"] for a in top}
    # The recording still answers its own q.
    assert len(_guardian(sim, q="uk-news")["results"]) == 10


def test_clear_faults_ends_replays_too(sim):
    recording = _recording("guardian-uk-news")
    sim.replay(recording, as_harvest=True)
    sim.clear_faults()
    served = {r["webUrl"] for r in _guardian(sim, q="uk-news", **{"page-size": 200})["results"]}
    listed = {r["webUrl"] for r in _guardian(sim, **{"page-size": 200})["results"]}
    assert not {r["webUrl"] for r in items(recording)} & (served | listed)


def test_a_recording_that_cannot_be_replayed_is_refused(sim):
    record = json.loads((RECALL / "guardian-uk-news.json").read_text())
    with pytest.raises(ValueError):
        sim.replay({**record, "endpoint": "/v2/everything"})
    with pytest.raises(ValueError):
        sim.replay({**record, "q": "(unbalanced"})
    with pytest.raises(ValueError):
        sim.replay({**record, "body": {"status": "ok"}})
    with pytest.raises(ValueError):
        sim.replay({k: v for k, v in record.items() if k != "q"})


# -- the simulator's own bodies -------------------------------------------------------------


def _words(*texts: str | None) -> set[str]:
    return {w for t in texts for w in re.findall(r"[^\W_]+", data.plain(t).lower())}


def test_guardian_body_text_only_when_asked_and_searched_like_the_real_one(sim):
    asked = _guardian(sim, **{"page-size": 200, "show-fields": "trailText,bodyText"})["results"]
    with_body = [r for r in asked if "fields" in r]
    assert with_body and all("bodyText" in r["fields"] for r in with_body)
    for result in with_body:
        body, trail = result["fields"]["bodyText"], result["fields"].get("trailText")
        assert 100 <= len(body.split()) <= 300
        assert _words(body) - _words(result["webTitle"], trail)  # a word only the body has
    again = _guardian(sim, **{"page-size": 200, "show-fields": "bodyText"})["results"]
    assert [r.get("fields", {}).get("bodyText") for r in again] == [
        r.get("fields", {}).get("bodyText") for r in asked
    ]
    plain = _guardian(sim, **{"page-size": 200, "show-fields": "trailText"})["results"]
    assert not any("bodyText" in r.get("fields", {}) for r in plain)
    place = data.body_place(0)  # the first story's body names it; no title or trail does
    found = _guardian(sim, q=place, **{"show-fields": "trailText"})["results"]
    assert found and all(place.lower() not in _words(r["webTitle"]) for r in found)


# Little words every English text has; no test searches for them.
FUNCTION_WORDS = {"and", "are", "as", "at", "can", "for", "in", "is", "it", "of", "on", "to"}


def test_invented_body_words_are_in_no_title_or_trail():
    """So searching bodies finds nothing new but each story's place (the tests' queries
    over titles and trail texts keep their answers)."""
    filler = _words(*(s.format(place="") for s in data.BODY_SENTENCES))
    titles = _words(*(t for _, t, _, _ in data.GUARDIAN_STORIES))
    trails = _words(*(t for _, _, t, _ in data.GUARDIAN_STORIES))
    assert filler & (titles | trails) <= FUNCTION_WORDS
    assert not _words(*data.BODY_PLACES) & (titles | trails)


def test_newsapi_content_is_cut_as_the_real_one(sim):
    articles = _newsapi(sim, "/v2/top-headlines", country="us", pageSize=100)["articles"]
    cut = [a["content"] for a in articles if a["content"] and a["content"] != "[Removed]"]
    assert cut and all(re.fullmatch(r"(?s).{200}… \[\+\d+ chars\]", c) for c in cut)


def test_published_bodies():
    body = "Harbour porpoises returned to the estuary. " * 20
    with Simulator() as own:  # published stories stay: not in the module's simulator
        story = own.publish("guardian", title="Estuary count", section="environment", body=body)
        served = _guardian(own, q="porpoises", **{"show-fields": "bodyText"})["results"]
        assert [r["id"] for r in served] == [story["id"]]
        assert served[0]["fields"]["bodyText"] == body and "bodyText" not in story["fields"]
        news = own.publish("newsapi", title="Estuary count", body=body)
        assert news["content"] == body[:200] + f"… [+{len(body) - 200} chars]"
        with pytest.raises(ValueError):
            own.publish("hackernews", title="Estuary count", body=body)
