"""No log line holds a URL's query string, a client key, a feed token or a webhook secret.

One run calls every operation of the spec (an admin key and a normal one, a saved search
whose webhook URL carries a token in its query string, its feed read with its token, its
event stream briefly, a ping delivered to a loopback receiver, both rotations), then the
ways such values come back in a request that fails: a wrong key, a wrong feed token, a
webhook URL refused by the contract or by the service with a token in its query, a body
refused as malformed. All log output at DEBUG is captured (the access lines included) and
searched for each secret and each query string sent.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
import uvicorn
import yaml
from receivers import Receiver

from edge.app import SPEC_PATH, create_app

pytestmark = pytest.mark.timeout(60)

WEBHOOK_TOKEN = "hooktoken-SECRET-7d1c0e9f"  # in the webhook URL's query string
REFUSED_TOKEN = "refusedtoken-SECRET-4b2a"  # in a webhook URL the service refuses
LONG_URL_TOKEN = "longurltoken-SECRET-91ce"  # in a webhook URL the contract refuses
QUERY_MARKER = "querymarker-SECRET-5e6f"  # in every other query string sent
# The test client's own loggers write the whole URL of each request it sends: the
# client's lines, not the server's.
CLIENT_LOGGERS = ("httpx", "httpcore")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def spec_operations() -> set[str]:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    return {
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    }


def test_no_log_line_holds_a_secret_or_a_query_string(make_service, caplog, receiver):
    caplog.set_level(logging.DEBUG)
    service = make_service(webhook_allow_private=True, stream_seconds=0.1)
    admin_key = service.keys.create("admin", "unlimited", admin=True).plaintext
    user_key = service.keys.create("user", "unlimited").plaintext
    admin = {"Authorization": f"Bearer {admin_key}"}
    user = {"Authorization": f"Bearer {user_key}"}
    secrets = {admin_key, user_key, WEBHOOK_TOKEN, REFUSED_TOKEN, LONG_URL_TOKEN, QUERY_MARKER}
    queries: set[str] = set()

    def remember(url: str) -> str:
        """`url`, its query string and each value in it noted as things no line may hold."""
        query = urlsplit(url).query
        if query:
            queries.add(query)
            values = (part.partition("=")[2] for part in query.split("&"))
            secrets.update(value for value in values if len(value) >= 16)  # tokens, markers
        return url

    with create_app(service=service).test_client() as c:

        def call(method: str, url: str, headers: dict | None = None, **kwargs):
            return c.request(method, remember(url), headers=headers, **kwargs)

        # -- keys --------------------------------------------------------------------------
        made = call("POST", "/keys", admin, json={"name": "made", "tier": "basic"})
        assert made.status_code == 201, made.text
        secrets.add(made.json()["key"])
        assert call("GET", "/keys", admin).status_code == 200
        assert call("GET", f"/keys/{made.json()['id']}", admin).status_code == 200
        assert call("DELETE", f"/keys/{made.json()['id']}", admin).status_code == 204
        # -- the feed, articles, stories, sources, me, health, metrics ------------------------
        listed = call("GET", f"/articles?q=chip&limit=5&x={QUERY_MARKER}", user)
        assert listed.status_code == 400  # an unknown parameter: refused, still logged
        listed = call("GET", "/articles?q=technology&limit=5", user)
        assert listed.status_code == 200, listed.text
        article = listed.json()["articles"][0]["id"]
        assert call("GET", f"/articles/{article}", user).status_code == 200
        stories = call("GET", "/stories?q=technology&limit=5", user)
        assert stories.status_code == 200, stories.text
        story = stories.json()["stories"][0]["id"]
        assert call("GET", f"/stories/{story}?limit=5", user).status_code == 200
        assert call("GET", "/sources", user).status_code == 200
        assert call("GET", "/me", user).status_code == 200
        assert call("GET", "/health").status_code == 200
        assert call("GET", "/metrics", admin).status_code == 200
        # -- a saved search with a webhook whose URL carries a token -------------------------
        hook = f"{receiver.url}?token={WEBHOOK_TOKEN}"
        created = call("POST", "/searches", user, json={"name": "Chips", "webhook_url": hook})
        assert created.status_code == 201, created.text
        search = created.json()
        sid = search["id"]
        secrets.add(search["webhook_secret"])
        remember(search["feed_url"])  # its token
        assert call("GET", "/searches", user).status_code == 200
        assert call("GET", f"/searches/{sid}", user).status_code == 200
        changed = call("PATCH", f"/searches/{sid}", user, json={"q": "chip"})
        assert changed.status_code == 200, changed.text
        assert call("GET", f"/searches/{sid}/articles?limit=5", user).status_code == 200
        feed = urlsplit(search["feed_url"])
        assert call("GET", f"{feed.path}?{feed.query}&format=json").status_code == 200
        unknown_token = f"{feed.path}?token={'wrongtoken_SECRET_'.ljust(32, '0')}"
        assert call("GET", unknown_token).status_code == 404
        assert call("GET", f"{feed.path}?token=malformed-SECRET-token!").status_code == 400
        assert call("GET", f"/searches/{sid}/events", user).status_code == 200
        events = urlsplit(search["events_url"])  # the same token, opened without a key
        assert call("GET", f"{events.path}?{events.query}").status_code == 200
        wrong = f"{events.path}?token={'wrongtoken_SECRET_'.ljust(32, '1')}"
        assert call("GET", wrong).status_code == 404
        pinged = call("POST", f"/searches/{sid}/webhook/ping", user)
        assert pinged.status_code == 202, pinged.text
        pusher = service.pusher
        assert pusher is not None and pusher.leadership.hold()
        pusher.step()  # delivers the ping to the receiver, at the URL with its token
        assert receiver.wait_for(1, 10)
        assert call("GET", f"/searches/{sid}/deliveries?limit=5", user).status_code == 200
        rotated = call("POST", f"/searches/{sid}/webhook/secret", user)
        assert rotated.status_code == 200
        secrets.add(rotated.json()["webhook_secret"])
        new_token = call("POST", f"/searches/{sid}/feed-token", user)
        assert new_token.status_code == 200
        remember(new_token.json()["feed_url"])
        # -- the same values in requests that fail --------------------------------------------
        assert call("GET", "/me", {"Authorization": f"Bearer {user_key}x"}).status_code == 401
        for refused in (
            f"gopher://hooks.example/x?token={REFUSED_TOKEN}",  # the service refuses it
            f"https://hooks.example/{'x' * 2000}?token={LONG_URL_TOKEN}",  # the contract does
        ):
            answer = call("POST", "/searches", user, json={"name": "x", "webhook_url": refused})
            assert answer.status_code == 400, answer.text
            answer = call("PATCH", f"/searches/{sid}", user, json={"webhook_url": refused})
            assert answer.status_code == 400, answer.text
        unknown = call("POST", "/searches", user, json={"name": "x", "hook": hook})
        assert unknown.status_code == 400
        assert call("DELETE", f"/searches/{sid}", user).status_code == 204

    logged = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    # Every operation ran, as the access lines say.
    access = [r.getMessage() for r in logged if r.name == "newsagg.access"]
    seen = {line.split('"operation":"', 1)[1].split('"', 1)[0] for line in access}
    assert spec_operations() <= seen, spec_operations() - seen
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    text = "\n".join(f"{formatter.format(r)} {r.__dict__}" for r in logged)
    leaked = sorted(s for s in secrets | queries if s and s in text)
    assert not leaked, [line for line in text.splitlines() if any(s in line for s in leaked)]


def test_uvicorn_access_lines_hold_no_query_string(service, caplog):
    """uvicorn's own access log, on when uvicorn runs the app factory by hand (`newsagg
    serve` turns it off and writes newsagg's line instead): the target without its query."""
    # Straight on uvicorn's logger: a server run with access_log=False (every other live
    # test) leaves it without handlers and not propagating, and uvicorn then logs nothing.
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    access = logging.getLogger("uvicorn.access")
    access.addHandler(caplog.handler)
    token = "feedtoken-SECRET-" + "0" * 15
    server = uvicorn.Server(
        uvicorn.Config(create_app(service=service), log_config=None, access_log=True)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:  # a condition with a deadline
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        port = sock.getsockname()[1]
        answer = requests.get(f"http://127.0.0.1:{port}/feeds/1?token={token}", timeout=10)
        assert answer.status_code == 404
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        access.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/feeds/1 HTTP/1.1" in line for line in lines), lines
    assert not [line for line in lines if "?" in line or token in line], lines


def test_an_access_line_does_not_grow_with_the_request(client, caplog):
    caplog.set_level(logging.INFO, logger="newsagg.access")
    assert client.get("/articles/" + "x" * 60_000).status_code == 404
    (line,) = [r.getMessage() for r in caplog.records if r.name == "newsagg.access"]
    assert '"path":"/articles/xxx' in line and len(line) < 600, len(line)
