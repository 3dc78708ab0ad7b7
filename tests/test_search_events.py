"""GET /searches/{id}/events over a real server (uvicorn on loopback): server-sent events
of a search's matches as they are made, resumed exactly after Last-Event-ID, ending after
NEWSAGG_STREAM_SECONDS; another key gets 404."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from conftest import LiveServer, problem_detail

from providers.base import Article

pytestmark = pytest.mark.timeout(60)


def article(n: int, title: str) -> Article:
    return Article(
        title=title,
        description=None,
        url=f"https://events.example/{n}",
        source="guardian",
        publisher="The Guardian",
        author=None,
        image_url=None,
        category="technology",
        published_at=datetime.now(UTC),
    )


def events(response: requests.Response) -> Iterator[dict[str, str]]:
    """Each event (or comment) of a stream as its fields, until the stream ends."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            fields["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(": ")
            fields[name] = value


@pytest.fixture
def server(make_service) -> Iterator[LiveServer]:
    # Streams end soon, so a test reading one to its end is bounded by it.
    with LiveServer(make_service(stream_seconds=8.0)) as live:
        yield live


def test_matches_stream_and_a_reconnect_resumes_after_the_last_event(server):
    svc = server.service
    key = {"Authorization": f"Bearer {svc.keys.create('sse', 'unlimited').plaintext}"}
    made = requests.post(
        f"{server.url}/searches", json={"name": "d", "q": "drone"}, headers=key, timeout=5
    ).json()
    assert svc.pusher is not None and svc.pusher.leadership.hold()
    url = f"{server.url}/searches/{made['id']}/events"
    with requests.get(url, headers=key, stream=True, timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = events(stream)
        assert next(received) == {"retry": "5000"}
        svc.feed.archive.save(
            [article(1, "Drone one"), article(2, "Other"), article(3, "Drone two")]
        )
        svc.pusher.step()
        first, second = next(received), next(received)
    assert (first["event"], second["event"]) == ("article", "article")
    assert [json.loads(e["data"])["title"] for e in (first, second)] == ["Drone one", "Drone two"]
    assert int(first["id"]) < int(second["id"])

    svc.feed.archive.save([article(4, "Drone three")])
    svc.pusher.step()
    started = time.monotonic()
    resumed = requests.get(
        url, headers={**key, "Last-Event-ID": first["id"]}, stream=True, timeout=10
    )
    with resumed:
        titles = [
            json.loads(e["data"])["title"] for e in events(resumed) if e.get("event") == "article"
        ]
    assert titles == ["Drone two", "Drone three"]  # after the first, nothing twice
    assert time.monotonic() - started < 20  # the stream ended by itself (8 s)


def test_another_key_cannot_stream_and_a_bad_last_event_id_is_a_400(server):
    svc = server.service
    owner = {"Authorization": f"Bearer {svc.keys.create('a', 'unlimited').plaintext}"}
    other = {"Authorization": f"Bearer {svc.keys.create('b', 'unlimited').plaintext}"}
    made = requests.post(
        f"{server.url}/searches", json={"name": "d"}, headers=owner, timeout=5
    ).json()
    url = f"{server.url}/searches/{made['id']}/events"
    assert requests.get(url, headers=other, timeout=5).status_code == 404
    bad = requests.get(url, headers={**owner, "Last-Event-ID": "x1"}, timeout=5)
    problem_detail(bad, 400)
