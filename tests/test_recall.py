"""newsagg finds what the upstreams find: real recorded answers of NewsAPI and the Guardian
(tests/recall/) replayed by the simulator, asked through the API on both backends.

- On a cold archive, every article an upstream returns for a query newsagg asked it
  exactly is in newsagg's answer, every page of it, and in the saved search's articles.
- While every upstream fails, the archive alone finds every form of a word, and a word only
  an article's body holds (while the body is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from recall_data import recorded_urls, recordings

from edge.app import create_app
from newsagg.service import Service
from providers.base import PROVIDER_NAMES
from providers.text import canonical_url
from simulator import Fault, Simulator
from simulator.replay import Recording

pytestmark = pytest.mark.timeout(120)

RECORDINGS = recordings()
WITHIN = timedelta(hours=12)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings changed for the backend."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("pg_url")}


def every_page(client: Any, path: str, params: dict[str, Any], headers: dict[str, str]) -> list:
    """Every article of every page, following next_cursor."""
    articles: list = []
    params = dict(params)
    for _ in range(100):
        reply = client.get(path, params=params, headers=headers)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        articles += page["articles"]
        if not page["next_cursor"]:
            return articles
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the pages never ended")


def urls(articles: list) -> set[str]:
    return {canonical_url(article["url"]) for article in articles}


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda r: f"{r.provider}:{r.q}")
def test_every_article_an_upstream_answers_is_in_newsaggs_answer(
    recording: Recording,
    backend: dict[str, Any],
    simulator: Simulator,
    make_service: Callable[..., Service],
):
    replay = simulator.replay(recording, within=WITHIN)
    service = make_service(**backend)
    headers = {"Authorization": f"Bearer {service.keys.create('u', 'unlimited').plaintext}"}
    ask = {"q": recording.q, "source": recording.provider, **recording.ask}
    upstream = recorded_urls(recording)
    with create_app(service=service).test_client() as client:
        # Pages of 20: the answer spans several, each read from the archive.
        found = every_page(client, "/articles", {**ask, "limit": 20}, headers)
        assert replay.served == 1  # asked once, exactly as recorded
        assert upstream <= urls(found)
        assert len(found) == len(urls(found))  # no article twice across pages
        made = client.post(
            "/searches",
            json={"name": "recall", **ask, "source": [recording.provider]},
            headers=headers,
        )
        assert made.status_code == 201, made.text
        path = f"/searches/{made.json()['id']}/articles"
        assert upstream <= urls(every_page(client, path, {"limit": 20}, headers))


def test_the_archive_alone_finds_every_form_and_the_body(
    backend: dict[str, Any], simulator: Simulator, make_service: Callable[..., Service]
):
    stories = {
        "Elections called": "election",
        "Economics of tea": "economic",
        "Headlines at noon": "headline",
    }
    for title in stories:
        simulator.publish("guardian", title=title, body=f"{title}. The quokka census went well.")
    service = make_service(**backend)
    assert service.harvester is not None and service.harvester.leadership.hold()
    service.harvester.round(force=True)
    for name in PROVIDER_NAMES:
        simulator.set_fault(name, Fault("status", status=500))
    headers = {"Authorization": f"Bearer {service.keys.create('u', 'unlimited').plaintext}"}
    with create_app(service=service).test_client() as client:

        def titles(q: str) -> set[str]:
            return {a["title"] for a in every_page(client, "/articles", {"q": q}, headers)}

        for title, word in stories.items():
            assert titles(word) == {title}, word
            assert titles(word + "s") == {title}, word + "s"
        assert titles("quokka") == set(stories)  # a word only the bodies hold
        assert simulator.calls("guardian") > 0


def test_without_body_hours_no_body_is_asked_for_nor_indexed(
    simulator: Simulator, make_service: Callable[..., Service]
):
    simulator.publish("guardian", title="Tea prices", body="The quokka census went well.")
    service = make_service(guardian_body_hours=0)
    assert service.harvester is not None and service.harvester.leadership.hold()
    service.harvester.round(force=True)
    headers = {"Authorization": f"Bearer {service.keys.create('u', 'unlimited').plaintext}"}
    with create_app(service=service).test_client() as client:
        for name in PROVIDER_NAMES:
            simulator.set_fault(name, Fault("status", status=500))
        assert every_page(client, "/articles", {"q": "tea"}, headers)
        assert every_page(client, "/articles", {"q": "quokka"}, headers) == []
