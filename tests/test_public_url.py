"""One public URL (NEWSAGG_PUBLIC_URL) for every URL newsagg gives out, feed ids unique to
an installation and stable across restarts, the event stream opened with a search's token,
and a log line for every failed webhook attempt."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from conftest import new_story
from receivers import Receiver

from edge.app import create_app
from newsagg.metrics import Metrics
from newsagg.push.delivery import Deliverer
from newsagg.push.matcher import Matcher
from newsagg.push.webhooks import parse_backoff
from newsagg.service import Service
from newsagg.settings import Settings

pytestmark = pytest.mark.timeout(60)

PUBLIC = "https://news.example.com"


def searched(service: Service, host: str = "testserver", **body: object) -> dict:
    """A saved search for `quokka` (with one match), as POST /searches answers it through
    `host`."""
    key = service.keys.create("owner", "basic").plaintext
    headers = {"Authorization": f"Bearer {key}", "Host": host}
    with create_app(service=service).test_client() as client:
        made = client.post("/searches", json={"name": "q", "q": "quokka", **body}, headers=headers)
    assert made.status_code == 201, made.text
    service.feed.archive.save([new_story("Quokka census")])
    Matcher(service.store, Metrics()).run_until_caught_up(lambda: True)
    return made.json()


def admin(service: Service) -> dict[str, str]:
    """An admin's key: it may read any search."""
    return {
        "Authorization": f"Bearer {service.keys.create('admin', 'basic', admin=True).plaintext}"
    }


def feed_ids(service: Service, feed_url: str, host: str = "testserver") -> list[str]:
    url = urlsplit(feed_url)
    with create_app(service=service).test_client() as client:
        answer = client.get(f"{url.path}?{url.query}", headers={"Host": host})
    assert answer.status_code == 200
    parsed = feedparser.parse(answer.content)
    return [parsed.feed.id, *(entry.id for entry in parsed.entries)]


def test_every_url_given_out_is_made_of_the_public_url_whatever_the_host(make_service):
    service = make_service(public_url=PUBLIC)
    made = searched(service, host="evil.example")
    assert made["feed_url"].startswith(f"{PUBLIC}/feeds/{made['id']}?token=")
    assert made["events_url"].startswith(f"{PUBLIC}/searches/{made['id']}/events?token=")
    url = urlsplit(made["feed_url"])
    with create_app(service=service).test_client() as client:
        feed = feedparser.parse(
            client.get(f"{url.path}?{url.query}", headers={"Host": "evil.example"}).content
        )
        assert {link.href.split("?")[0] for link in feed.feed.links} == {f"{PUBLIC}/feeds/1"}
        spec = client.get("/openapi.json", headers={"Host": "evil.example"}).json()
    assert spec["servers"][0]["url"] == PUBLIC  # Swagger UI's server list
    assert feed.feed.id.startswith(f"tag:news.example.com,{service.installed_on}:search:")


def test_without_a_public_url_urls_follow_the_host_and_the_log_says_so(
    make_service: Callable[..., Service], settings: Settings, caplog
):
    made = searched(make_service(), host="localhost:8000")
    assert made["feed_url"].startswith("http://localhost:8000/feeds/")
    with caplog.at_level(logging.WARNING), create_app(settings).test_client() as client:
        assert client.get("/openapi.json").json()["servers"][0]["url"] == "/"
    assert any("NEWSAGG_PUBLIC_URL is not set" in r.getMessage() for r in caplog.records)


def test_feed_ids_are_an_installations_own_and_outlive_a_restart(
    make_service: Callable[..., Service], tmp_path: Path
):
    first = make_service(public_url="https://a.example", database=str(tmp_path / "a.sqlite3"))
    other = make_service(public_url="https://b.example", database=str(tmp_path / "b.sqlite3"))
    feed_url = searched(first)["feed_url"]
    ids = feed_ids(first, feed_url)
    assert ids[1] == f"tag:a.example,{first.installed_on}:article:1"
    assert feed_ids(other, searched(other)["feed_url"])[1] != ids[1]  # the same article id 1
    first.close()
    again = make_service(public_url="https://a.example", database=str(tmp_path / "a.sqlite3"))
    assert again.installed_on == first.installed_on
    assert feed_ids(again, feed_url) == ids


def test_the_event_stream_opens_with_the_searchs_token_and_only_with_it(make_service):
    service = make_service(
        public_url=PUBLIC, cors_origins=("https://app.example",), stream_seconds=0.5
    )
    made = searched(service)
    events = urlsplit(made["events_url"])
    with create_app(service=service).test_client() as client:
        opened = client.get(
            f"{events.path}?{events.query}", headers={"Origin": "https://app.example"}
        )
        assert opened.status_code == 200
        assert opened.headers["content-type"].startswith("text/event-stream")
        assert opened.headers["access-control-allow-origin"] == "https://app.example"
        wrong = client.get(f"{events.path}?token={'A' * 32}")
        assert wrong.status_code == 404
        assert wrong.headers["content-type"] == "application/problem+json"
        bare = client.get(events.path)
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        bad_key = client.get(f"{events.path}?{events.query}", headers={"Authorization": "Bearer x"})
        assert bad_key.status_code == 401  # a key sent and refused is refused
        search = service.store.search_get(made["id"])
        owner = search and service.store.active_key(search.key_id)
        assert owner is not None
        service.searches.rotate_feed_token(owner, made["id"])  # the old URLs are dead
        assert client.get(f"{events.path}?{events.query}").status_code == 404
        new = urlsplit(
            client.get(f"/searches/{made['id']}", headers=admin(service)).json()["events_url"]
        )
        assert client.get(f"{new.path}?{new.query}").status_code == 200
        service.keys.revoke(owner.id)  # a revoked key's token opens nothing
        assert client.get(f"{new.path}?{new.query}").status_code == 404


@pytest.fixture
def failing() -> Iterator[Receiver]:
    made = Receiver([500])
    yield made
    made.close()


def test_a_failed_webhook_attempt_is_one_log_line_without_secrets(
    make_service, failing: Receiver, caplog
):
    service = make_service(webhook_allow_private=True)
    made = searched(service, webhook_url=f"{failing.url}?token=receiver-SECRET")
    deliverer = Deliverer(service.store, parse_backoff("1h"), Metrics(), allow_private=True)
    try:
        with caplog.at_level(logging.WARNING, logger="newsagg.push.delivery"):
            deliverer.dispatch()
            assert failing.wait_for(1, 10)
            deliverer.close()  # waits for the attempt to be recorded
    finally:
        deliverer.close()
    lines = [r.getMessage() for r in caplog.records if "webhook attempt failed" in r.getMessage()]
    assert len(lines) == 1, lines
    (delivery,) = service.store.deliveries_of(made["id"], 10)
    assert re.fullmatch(
        rf"webhook attempt failed: search {made['id']}, webhook-id {delivery.msg_id}, attempt 1:"
        r" HTTP 500; next attempt \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00",
        lines[0],
    )
    assert "SECRET" not in lines[0] and made["webhook_secret"] not in lines[0]
