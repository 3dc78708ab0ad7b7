"""Tenants: no key can hurt another, and a revoked key leaves nothing working behind.

- Event streams are bounded per key (by tier): past the bound a 429 with Retry-After, the
  open streams untouched; closing streams gives their places and their memory back.
- Revoking a key stops its searches at once on every instance: feed URLs 404, queued
  webhooks are not sent, open event streams end; the searches stay for an admin.
- Names (of keys and searches) refuse control, format (zero-width, bidi), line and
  paragraph separator characters, with a 400 naming the field.
- A refused webhook_url is logged by its scheme and host only.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from conftest import LiveServer, new_story, problem_detail

from edge.app import create_app
from newsagg.errors import InvalidInput

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Follower:
    """One event stream read on a thread of its own: its events as they come, and whether
    the server ended it. `close` shuts the connection at once (as a browser tab closing)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self._conn.request("GET", parts.path, headers=headers)
        self.response = self._conn.getresponse()
        self.status_code = self.response.status
        self.headers = self.response.headers
        self.events: list[dict[str, str]] = []
        self.ended = threading.Event()
        if self.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\r\n")
                if text == "":
                    if fields:
                        self.events.append(fields)
                    fields = {}
                elif not text.startswith(":"):
                    name, _, value = text.partition(": ")
                    fields[name] = value
        except Exception:  # shut by this side, mid-chunk: any reading error
            pass
        self.ended.set()

    def articles(self) -> list[dict[str, str]]:
        return [event for event in self.events if event.get("event") == "article"]

    def close(self) -> None:
        if self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


@pytest.fixture
def server(make_service) -> Iterator[LiveServer]:
    with LiveServer(make_service(stream_seconds=30.0)) as live:
        yield live


# -- event streams, bounded per key --------------------------------------------------------


def test_a_key_holds_a_bounded_number_of_event_streams(server):
    svc = server.service
    limit = 10  # a basic key's default: one stream for each search it may hold
    basic = svc.keys.create("streams", "basic")
    key = bearer(basic.plaintext)
    made = requests.post(
        f"{server.url}/searches", json={"name": "z", "q": "zeppelin"}, headers=key, timeout=5
    ).json()
    url = f"{server.url}/searches/{made['id']}/events"
    streams = [Follower(url, key) for _ in range(limit)]
    try:
        assert [s.status_code for s in streams] == [200] * limit
        refused = requests.get(url, headers=key, timeout=5)
        assert "event streams" in problem_detail(refused, 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        # Another key is not held to this one's bound.
        other = bearer(svc.keys.create("other", "basic").plaintext)
        theirs = requests.post(
            f"{server.url}/searches", json={"name": "o"}, headers=other, timeout=5
        ).json()
        elsewhere = Follower(f"{server.url}/searches/{theirs['id']}/events", other)
        assert elsewhere.status_code == 200
        elsewhere.close()

        # No open stream was cut off: every one gets the next match.
        assert svc.pusher.leadership.hold()
        svc.feed.archive.save([new_story("Zeppelin lands")])
        svc.pusher.step()
        assert wait_until(lambda: all(s.articles() for s in streams), 10)
        assert not any(s.ended.is_set() for s in streams)

        # A closed stream gives its place back.
        streams.pop().close()
        assert wait_until(lambda: svc.hub.streams_of(basic.record.id) == limit - 1, 5)
        streams.append(Follower(url, key))
        assert streams[-1].status_code == 200
    finally:
        for stream in streams:
            stream.close()
    # Every place is given back, and nothing of the streams stays in the hub.
    assert wait_until(lambda: svc.hub.streams_of(basic.record.id) == 0, 5)
    assert wait_until(lambda: svc.hub.idle(), 5)


# -- revocation ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def two_instances(request, make_service, settings):
    """Two services over one database, as two instances behind a load balancer."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        return make_service(database_url=url), make_service(database_url=url)
    return make_service(), make_service()


def test_revoking_a_key_404s_its_feeds_at_once_on_every_instance(two_instances):
    one, two = two_instances
    admin = bearer(one.keys.create("admin", "unlimited", admin=True).plaintext)
    owner = one.keys.create("owner", "basic")
    two.feed.archive.save([new_story("Zeppelin before")])
    with (
        create_app(service=one).test_client() as first,
        create_app(service=two).test_client() as second,
    ):
        made = first.post(
            "/searches", json={"name": "z", "q": "zeppelin"}, headers=bearer(owner.plaintext)
        ).json()
        feed = made["feed_url"].removeprefix("http://testserver")
        assert second.get(feed).status_code == 200  # read (and remembered) on instance two
        assert first.delete(f"/keys/{owner.record.id}", headers=admin).status_code == 204
        problem_detail(second.get(feed), 404)  # at once, on the other instance
        problem_detail(first.get(feed), 404)
        problem_detail(second.get(feed + "&format=json"), 404)
        # The search is kept, for an admin to review and delete; it matches nothing more.
        kept = second.get(f"/searches/{made['id']}", headers=admin)
        assert kept.status_code == 200
        assert second.delete(f"/searches/{made['id']}", headers=admin).status_code == 204


def test_a_revoked_keys_queued_webhooks_are_not_sent(make_service):
    service = make_service(webhook_allow_private=True)
    owner = service.keys.create("owner", "basic").record
    admin = service.keys.create("admin", "unlimited", admin=True).record
    # A receiver that must never be reached: nothing listens on this port.
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    try:
        search = service.searches.create(owner, {"name": "h", "webhook_url": url}).search
        service.searches.ping(owner, search.id)
        assert service.keys.revoke(owner.id)
        assert service.pusher.leadership.hold()
        service.pusher.step()
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # no connection was made
    finally:
        listener.close()
    (delivery,) = service.searches.deliveries(admin, search.id, 10)
    assert delivery.status == "failed"
    assert [a.error for a in delivery.attempts] == ["the key was revoked"]
    shown = service.searches.get(admin, search.id)
    assert shown.webhook_disabled_reason == "the key was revoked"


def test_a_revoked_keys_open_event_stream_ends_and_sends_nothing_more(server):
    svc = server.service
    owner = svc.keys.create("owner", "basic")
    key = bearer(owner.plaintext)
    made = requests.post(
        f"{server.url}/searches", json={"name": "z", "q": "zeppelin"}, headers=key, timeout=5
    ).json()
    stream = Follower(f"{server.url}/searches/{made['id']}/events", key)
    try:
        assert stream.status_code == 200
        assert wait_until(lambda: stream.events, 5)  # retry: the stream has begun
        assert svc.keys.revoke(owner.record.id)
        svc.feed.archive.save([new_story("Zeppelin after the revocation")])
        assert svc.pusher.leadership.hold()
        svc.pusher.step()
        assert stream.ended.wait(5), "the stream of a revoked key is still open"
        assert stream.articles() == []
    finally:
        stream.close()


# -- names ---------------------------------------------------------------------------------

REFUSED_NAMES = [
    pytest.param("\u202eevil.exe", id="bidi-override"),
    pytest.param("\u200b", id="zero-width-only"),
    pytest.param("\u200b\u200c\u2060", id="zero-widths-only"),
    pytest.param("two\u2028lines", id="line-separator"),
    pytest.param("two\u2029paragraphs", id="paragraph-separator"),
    pytest.param("\ufeffbom", id="byte-order-mark"),
    pytest.param("tag\U000e0041", id="astral-format-character"),
    pytest.param("soft\u00adhyphen", id="soft-hyphen"),
    pytest.param("c1\u0085control", id="c1-control"),
]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_names_refuse_invisible_and_control_characters_naming_the_field(
    client, admin_headers, name
):
    created = client.post("/searches", json={"name": name}, headers=admin_headers)
    assert problem_detail(created, 400).startswith("name:")
    fine = client.post("/searches", json={"name": "fine"}, headers=admin_headers).json()
    changed = client.patch(f"/searches/{fine['id']}", json={"name": name}, headers=admin_headers)
    assert problem_detail(changed, 400).startswith("name:")
    key = client.post("/keys", json={"name": name}, headers=admin_headers)
    assert problem_detail(key, 400).startswith("name:")
    assert client.get("/searches", headers=admin_headers).json()["count"] == 1


def test_the_core_refuses_such_names_for_keys_and_searches_alike(service):
    for name in ("bell\x07", "\u202e", "a\u2028b", "\u200d"):
        with pytest.raises(InvalidInput, match=r"^name: "):
            service.keys.create(name)
    owner = service.keys.create("owner", "basic").record
    with pytest.raises(InvalidInput, match=r"^name: "):
        service.searches.create(owner, {"name": "\u2066isolate"})


def test_names_in_any_script_with_emoji_and_spaces_are_kept(client, admin_headers):
    name = "Café — 日本語 · Ελληνικά 👍"
    made = client.post("/searches", json={"name": name}, headers=admin_headers)
    assert made.status_code == 201 and made.json()["name"] == name
    key = client.post("/keys", json={"name": name}, headers=admin_headers)
    assert key.status_code == 201 and key.json()["name"] == name


def test_the_spec_patterns_for_names_refuse_what_the_core_refuses():
    """The core decides; the contract's pattern (ECMA-262 and Python read it alike) says
    the same for every character of the Basic Multilingual Plane, and refuses blank names
    and a trailing newline (Python's `$` would let one through)."""
    from newsagg.keys import check_name  # the one validator of names, keys' and searches'

    spec = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    pattern = schemas["SearchName"]["pattern"]
    assert schemas["NewKeyRequest"]["properties"]["name"]["pattern"] == pattern
    differ = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates: not characters (a pattern cannot name them alike)
        name = f"a{chr(code)}b"
        try:
            check_name("name", name)
            kept = True
        except InvalidInput:
            kept = False
        if kept != bool(re.search(pattern, name)):
            differ.append(f"U+{code:04X}")
    assert not differ, differ[:20]
    for blank in (" ", "\u3000 ", "a\n"):
        assert not re.search(pattern, blank)
    assert re.search(pattern, "Café — 日本語 👍")


# -- logs ----------------------------------------------------------------------------------


def test_a_refused_webhook_url_is_logged_by_scheme_and_host_only(client, user_headers, caplog):
    url = "https://10.1.2.3:8443/private/path?token=s3cr3t-t0ken#frag"
    with caplog.at_level(logging.INFO):
        answer = client.post(
            "/searches", json={"name": "x", "webhook_url": url}, headers=user_headers
        )
    problem_detail(answer, 400)
    lines = [record.getMessage() for record in caplog.records]
    assert any("https://10.1.2.3:8443" in line for line in lines), lines
    for secret in ("s3cr3t", "/private/path", "frag"):
        assert not any(secret in line for line in lines), lines


def test_settings_declare_the_tenant_bounds_once():
    from newsagg.settings import Settings, markdown_table

    settings = Settings.from_env(
        {
            "NEWSAGG_STREAM_LIMIT_BASIC": "2",
            "NEWSAGG_WEBHOOK_PINGS_PER_MINUTE": "1",
            "NEWSAGG_WEBHOOK_IN_FLIGHT_PER_KEY": "3",
        }
    )
    assert (settings.stream_limit_basic, settings.webhook_pings_per_minute) == (2, 1)
    assert settings.webhook_in_flight_per_key == 3
    assert Settings().stream_limit_basic == 10
    assert settings.stream_limit("premium") == replace(settings).stream_limit_premium
    for variable in ("NEWSAGG_STREAM_LIMIT_BASIC", "NEWSAGG_WEBHOOK_IN_FLIGHT_PER_KEY"):
        assert f"`{variable}`" in markdown_table()
