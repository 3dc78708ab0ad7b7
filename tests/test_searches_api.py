"""Saved searches through Connexion: ownership, the cap, filters checked as /articles checks
them, the search's articles, its Atom and JSON feed read with a token and no key, and the
webhook loop end to end (matching, signed delivery to a local receiver, retries with the
same webhook-id, a restart in between)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from conftest import problem_detail
from receivers import Receiver
from standardwebhooks.webhooks import Webhook

from edge.app import create_app
from newsagg.service import Service
from providers.base import Article

pytestmark = pytest.mark.timeout(60)

_numbers = itertools.count(1)


def story(title: str, *, category: str = "technology", source: str = "hackernews") -> Article:
    n = next(_numbers)
    return Article(
        title=title,
        description=f"A story about {title.lower()}.",
        url=f"https://news.example/{n}",
        source=source,  # type: ignore[arg-type]
        publisher="Example News",
        author=None,
        image_url=None,
        category=category,  # type: ignore[arg-type]
        published_at=datetime.now(UTC) - timedelta(minutes=n),
    )


def create(client, headers, **body: object) -> dict:
    answer = client.post("/searches", json={"name": "Drones", **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


# -- the resource --------------------------------------------------------------------------


def test_create_read_change_delete(client, user_headers):
    made = create(client, user_headers, q="drone OR battery", category="technology")
    assert made["q"] == "drone OR battery" and made["category"] == "technology"
    assert made["source"] is None and made["paused"] is False
    assert made["webhook_url"] is None and made["webhook_status"] is None
    assert "webhook_secret" not in made
    assert made["feed_url"].startswith(f"http://testserver/feeds/{made['id']}?token=")
    location = f"/searches/{made['id']}"
    assert client.get(location, headers=user_headers).json() == made
    changed = client.patch(
        location, json={"name": "Only drones", "q": "drone", "paused": True}, headers=user_headers
    )
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["q"], changed.json()["paused"]) == (
        "Only drones",
        "drone",
        True,
    )
    cleared = client.patch(location, json={"q": None, "source": ["guardian"]}, headers=user_headers)
    assert cleared.json()["q"] is None and cleared.json()["source"] == ["guardian"]
    listed = client.get("/searches", headers=user_headers).json()
    assert listed["count"] == 1 and listed["searches"][0]["id"] == made["id"]
    assert client.delete(location, headers=user_headers).status_code == 204
    gone = client.get(location, headers=user_headers)
    problem_detail(gone, 404)


def test_another_key_sees_nothing_and_an_admin_sees_all(
    client, service, user_headers, bearer, admin_headers
):
    made = create(client, user_headers)
    other = bearer(service.keys.create("other", "unlimited").plaintext)
    path = f"/searches/{made['id']}"
    for method, url in (
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("GET", f"{path}/articles"),
        ("GET", f"{path}/events"),
        ("GET", f"{path}/deliveries"),
        ("POST", f"{path}/feed-token"),
    ):
        body = {"json": {"name": "mine"}} if method == "PATCH" else {}
        answer = client.request(method, url, headers=other, **body)
        assert answer.status_code == 404, (method, url)
    assert client.get("/searches", headers=other).json() == {"count": 0, "searches": []}
    assert client.get(path, headers=admin_headers).status_code == 200
    admin_list = client.get("/searches", headers=admin_headers).json()
    assert [s["id"] for s in admin_list["searches"]] == [made["id"]]


def test_the_tier_cap_is_a_409(client, make_service, bearer):
    service = make_service(search_limit_basic=2)
    key = bearer(service.keys.create("small", "basic").plaintext)
    with create_app(service=service).test_client() as capped:
        create(capped, key)
        create(capped, key)
        refused = capped.post("/searches", json={"name": "third"}, headers=key)
    assert "2 saved searches" in problem_detail(refused, 409)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"q": '"unclosed'}, "q: unclosed quote"),
        ({"name": "   "}, "name: "),  # blank: the contract's pattern refuses it
        ({"webhook_url": "http://example.com/hook"}, "https is required"),
        ({"webhook_url": "https://127.0.0.1/hook"}, "loopback"),
        ({"webhook_url": "https://169.254.169.254/latest"}, "metadata"),
        ({"webhook_url": "https://10.1.2.3/hook"}, "private"),
        ({"webhook_url": "https://localhost/hook"}, "loopback"),
    ],
)
def test_bad_input_is_a_400_saying_what(client, user_headers, body, detail):
    answer = client.post("/searches", json={"name": "x", **body}, headers=user_headers)
    assert detail in problem_detail(answer, 400)
    assert client.get("/searches", headers=user_headers).json()["count"] == 0  # nothing kept


def test_the_search_articles_are_the_articles_answer(client, service, user_headers):
    service.feed.archive.save([story("Drone racing"), story("Battery news"), story("Drone law")])
    made = create(client, user_headers, q="drone", source=["hackernews"])
    mine = client.get(f"/searches/{made['id']}/articles", headers=user_headers)
    direct = client.get(
        "/articles", params={"q": "drone", "source": "hackernews"}, headers=user_headers
    )
    assert mine.status_code == 200
    assert [a["id"] for a in mine.json()["articles"]] == [
        a["id"] for a in direct.json()["articles"]
    ]
    assert {"Drone racing", "Drone law"} <= {a["title"] for a in mine.json()["articles"]}
    again = client.get(
        f"/searches/{made['id']}/articles",
        headers={**user_headers, "If-None-Match": mine.headers["etag"]},
    )
    assert again.status_code == 304


# -- feeds ---------------------------------------------------------------------------------


def test_the_feed_needs_no_key_and_its_token_can_be_revoked(client, service, user_headers):
    service.feed.archive.save([story("Drone delivery"), story("Unrelated")])
    made = create(client, user_headers, q="drone")
    url = made["feed_url"].removeprefix("http://testserver")
    atom = client.get(url)
    assert atom.status_code == 200
    assert atom.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(atom.content)
    assert parsed.bozo == 0 and parsed.version == "atom10"
    assert parsed.feed.title == "Drones"
    assert [e.title for e in parsed.entries] == ["Drone delivery"]
    assert {link.rel: link.href for link in parsed.feed.links}["self"].endswith(url)
    as_json = client.get(url, headers={"Accept": "application/feed+json"})
    assert as_json.headers["content-type"].startswith("application/feed+json")
    assert [i["title"] for i in as_json.json()["items"]] == ["Drone delivery"]
    assert client.get(url + "&format=json").json()["items"] == as_json.json()["items"]
    cached = client.get(url, headers={"If-None-Match": atom.headers["etag"]})
    assert cached.status_code == 304
    rotated = client.post(f"/searches/{made['id']}/feed-token", headers=user_headers).json()
    assert rotated["feed_url"] != made["feed_url"]
    assert client.get(url).status_code == 404
    assert client.get(rotated["feed_url"].removeprefix("http://testserver")).status_code == 200
    wrong = client.get(f"/feeds/{made['id']}?token={'A' * 32}")
    assert wrong.status_code == 404


def test_a_long_feed_pages_with_rel_next(client, service, user_headers):
    service.feed.archive.save([story(f"Drone {n}") for n in range(60)])
    made = create(client, user_headers, q="drone")
    first = feedparser.parse(client.get(made["feed_url"]).content)
    assert len(first.entries) == 50
    following = {link.rel: link.href for link in first.feed.links}["next"]
    second = feedparser.parse(client.get(following).content)
    assert len(second.entries) == 10
    assert not {e.id for e in first.entries} & {e.id for e in second.entries}


# -- matching and webhooks -----------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver([500, 500])
    yield made
    made.close()


def push_until(service: Service, done, deadline: float = 20.0) -> None:
    """Run the push worker's steps until `done()` (a condition with a deadline)."""
    assert service.pusher is not None and service.pusher.leadership.hold()
    give_up = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < give_up, "push did not get there in time"
        service.pusher.step()


def test_a_webhook_gets_each_match_once_signed_and_retried_across_a_restart(
    make_service, bearer, receiver
):
    quick = {"webhook_allow_private": True, "webhook_backoff": "0.05s,0.05s,0.05s"}
    service = make_service(**quick)
    key = bearer(service.keys.create("hooks", "unlimited").plaintext)
    with create_app(service=service).test_client() as client:
        service.feed.archive.save([story("Drone before the search")])
        made = create(client, key, q="drone", webhook_url=receiver.url)
        secret = made["webhook_secret"]
        assert secret.startswith("whsec_") and made["webhook_status"] == "active"
        assert "webhook_secret" not in client.get(f"/searches/{made['id']}", headers=key).json()
        service.feed.archive.save([story("Drone one"), story("Battery only"), story("Drone two")])
        push_until(service, lambda: len(receiver.received) >= 1)  # the first attempt: a 500
    service.close()  # a restart between the failures and the success

    again = make_service(**quick)
    push_until(again, lambda: len(receiver.received) >= 3)
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(ids) == 1 and ids.pop().startswith("msg_")
    headers, body = receiver.received[-1]
    Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
    event = json.loads(body)
    assert event["type"] == "articles.matched" and event["data"]["search_id"] == made["id"]
    assert [a["title"] for a in event["data"]["articles"]] == ["Drone one", "Drone two"]
    with create_app(service=again).test_client() as client:
        deliveries = client.get(f"/searches/{made['id']}/deliveries", headers=key).json()
    (delivery,) = deliveries["deliveries"]
    assert delivery["status"] == "delivered" and delivery["article_count"] == 2
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]
    again.pusher.step()  # nothing new: nothing sent again
    assert len(receiver.received) == 3


def test_an_exhausted_schedule_disables_the_webhook(make_service, bearer):
    receiver = Receiver([500] * 10)
    try:
        service = make_service(webhook_allow_private=True, webhook_backoff="0.01s")
        key = bearer(service.keys.create("hooks", "unlimited").plaintext)
        with create_app(service=service).test_client() as client:
            made = create(client, key, q="drone", webhook_url=receiver.url)
            service.feed.archive.save([story("Drone again")])
            push_until(service, lambda: len(receiver.received) >= 2)
            shown = client.get(f"/searches/{made['id']}", headers=key).json()
            assert shown["webhook_status"] == "disabled"
            assert "after 2 attempts" in shown["webhook_disabled_reason"]
            # A new URL starts afresh, with a new secret.
            revived = client.patch(
                f"/searches/{made['id']}", json={"webhook_url": receiver.url}, headers=key
            ).json()
            assert revived["webhook_status"] == "active"
            assert revived["webhook_secret"] != made["webhook_secret"]
    finally:
        receiver.close()


def test_rotation_signs_with_both_secrets_and_ping_is_queued(make_service, bearer, receiver):
    receiver.statuses.clear()
    service = make_service(webhook_allow_private=True)
    key = bearer(service.keys.create("hooks", "unlimited").plaintext)
    with create_app(service=service).test_client() as client:
        made = create(client, key, webhook_url=receiver.url)
        rotated = client.post(f"/searches/{made['id']}/webhook/secret", headers=key)
        assert rotated.status_code == 200
        new_secret = rotated.json()["webhook_secret"]
        assert new_secret != made["webhook_secret"]
        ping = client.post(f"/searches/{made['id']}/webhook/ping", headers=key)
        assert ping.status_code == 202 and ping.json()["type"] == "webhook.ping"
        push_until(service, lambda: len(receiver.received) >= 1)
        headers, body = receiver.received[0]
        lowered = {k.lower(): v for k, v in headers.items()}
        assert len(lowered["webhook-signature"].split(" ")) == 2
        for secret in (made["webhook_secret"], new_secret):
            Webhook(secret).verify(body, lowered)
        assert json.loads(body)["data"] == {"search_id": made["id"], "articles": []}
        bare = create(client, key, name="no hook")
        refused = client.post(f"/searches/{bare['id']}/webhook/ping", headers=key)
        assert refused.status_code == 409


def test_paused_searches_and_older_articles_do_not_match(make_service):
    service = make_service()
    key = service.keys.create("m", "unlimited").record
    assert service.searches is not None and service.pusher is not None
    service.feed.archive.save([story("Drone old")])
    live = service.searches.create(key, {"name": "live", "q": "drone"}).search
    paused = service.searches.create(key, {"name": "p", "q": "drone", "paused": True}).search
    service.feed.archive.save([story("Drone new"), story("Nothing here")])
    push_until(service, lambda: service.store.newest_match_id() > 0)
    assert [row[1:] for row in service.store.matches_after(paused.id, 0, 10)] == []
    titles = [json.loads(row[2])["title"] for row in service.store.matches_after(live.id, 0, 10)]
    assert titles == ["Drone new"]


def test_pings_past_the_per_search_limit_are_a_429_with_retry_after(make_service, bearer):
    receiver = Receiver([])
    try:
        service = make_service(webhook_allow_private=True)
        key = bearer(service.keys.create("pinger", "basic").plaintext)
        with create_app(service=service).test_client() as client:
            made = create(client, key, webhook_url=receiver.url)
            other = create(client, key, name="other", webhook_url=receiver.url)
            path = f"/searches/{made['id']}/webhook/ping"
            allowed = [client.post(path, headers=key).status_code for _ in range(5)]
            assert allowed == [202] * 5  # a few a minute
            refused = client.post(path, headers=key)
            detail = problem_detail(refused, 429)
            assert "ping" in detail and str(made["id"]) in detail
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            # The limit is the search's: another search of the key may still ping.
            answer = client.post(f"/searches/{other['id']}/webhook/ping", headers=key)
            assert answer.status_code == 202
            shown = client.get(f"/searches/{made['id']}/deliveries", headers=key).json()
            assert shown["count"] == 5  # the refused ping was not queued
    finally:
        receiver.close()
