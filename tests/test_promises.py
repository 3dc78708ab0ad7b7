"""Two promises held end to end, each through the real parts:

- every upstream call, retries included, is charged to the budget before it is made (the
  real provider client against the simulator, then a request through the service's feed);
- before each webhook attempt the SSRF guard checks the target again: a name that resolved
  to a public address when the search was saved and to loopback when it is sent (DNS
  rebinding) is refused at send time, and no connection is made to it.

No network beyond 127.0.0.1: name resolution is answered by a patched `socket.getaddrinfo`,
and any connection to another address is refused by the test before it leaves the process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edge.app import create_app
from newsagg.service import Service
from providers import http
from providers.base import Query, UpstreamError
from providers.hackernews import HackerNewsProvider
from simulator import Fault

pytestmark = pytest.mark.timeout(30)

DEADLINE_SECONDS = 20.0


# -- every upstream call, retries included, is charged before it is made -------------------


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff pauses of at most 10 ms, then 20 ms: both retries fit any time budget here."""
    monkeypatch.setattr(http, "BACKOFF_BASE_SECONDS", 0.01)


def test_every_retried_upstream_call_is_charged_before_it_is_made(
    simulator, make_service, bearer, quick_retries
):
    simulator.set_fault("hackernews", Fault("status", status=503))

    # The real provider client: each charge sees how many calls the upstream had so far.
    calls_seen_at_charge: list[int] = []

    def charge() -> None:
        calls_seen_at_charge.append(simulator.calls("hackernews"))

    provider = HackerNewsProvider(simulator.base_url("hackernews"))
    with pytest.raises(UpstreamError) as caught:
        provider.fetch(Query(), 2.0, charge)
    assert caught.value.code == "upstream_error"
    assert simulator.calls("hackernews") == 3  # the first call and its 2 retries
    # One charge per call, each made before its call reached the upstream.
    assert calls_seen_at_charge == [0, 1, 2]

    # The service: a client's request through the feed, paid from the budget in the store.
    simulator.reset_calls()
    service = make_service(hackernews_quota="1000/day")  # a ledger that outlasts the test
    assert service.budgets is not None
    key = bearer(service.keys.create("payer", "unlimited").plaintext)
    with create_app(service=service).test_client() as client:
        answer = client.get("/articles", params={"source": "hackernews"}, headers=key)
    assert answer.status_code in (200, 503), answer.text
    made = simulator.calls("hackernews")
    assert made == 3
    (limit,) = service.budgets.standing("hackernews").limits
    assert limit.used == made


# -- the SSRF guard checks the target again before each attempt ----------------------------

NAME = "hooks.rebinding.example"
PUBLIC = "93.184.216.34"  # what the name resolves to when the search is saved
LOOPBACK = "127.0.0.1"  # what it resolves to when the webhook is sent


class RebindingDNS:
    """`socket.getaddrinfo` for NAME: PUBLIC until `rebind()`, LOOPBACK after; other names
    go to the real resolver (only loopback names are asked for here)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self._real = real
        self.answer = PUBLIC
        self.asked: list[str] = []  # the answer given to each lookup of NAME
        self._lock = threading.Lock()

    def rebind(self) -> None:
        with self._lock:
            self.answer = LOOPBACK

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, *args: Any, **kwargs: Any
    ) -> list[tuple[Any, ...]]:
        if host not in (NAME, NAME.encode()):
            return self._real(host, port, family, type, *args, **kwargs)
        with self._lock:
            answer = self.answer
            self.asked.append(answer)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer, int(port)))]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> RebindingDNS:
    resolver = RebindingDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse, and record, any TCP connection to an address other than 127.0.0.1: the
    public address must never be dialled, whatever the code under test does."""
    dialled: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        if address[0] == LOOPBACK:
            return True
        dialled.append(address)
        return False

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            raise ConnectionRefusedError(f"the test allows no connection to {address[0]}")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            raise ConnectionRefusedError(f"the test allows no connection to {address[0]}")
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return dialled


class Listener:
    """A plain TCP listener on 127.0.0.1 that counts the connections it is offered and
    closes each at once (a client that got through fails fast instead of waiting)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)  # so the accepting thread sees `stop` promptly
        self.port = self._sock.getsockname()[1]
        self._connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections += 1
            conn.close()

    def connections(self) -> int:
        """Every connection made so far, those still waiting in the backlog included."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.setblocking(False)
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # BlockingIOError: the backlog is empty
                break
            self._connections += 1
            conn.close()
        return self._connections

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    made = Listener()
    yield made
    made.close()


def push_until(service: Service, done: Callable[[], bool]) -> None:
    """Run the service's own push worker steps until `done()`, within a deadline."""
    assert service.pusher.leadership.hold()
    give_up = time.monotonic() + DEADLINE_SECONDS
    while not done():
        assert time.monotonic() < give_up, "the delivery did not finish in time"
        service.pusher.step()


def test_a_webhook_name_rebound_to_loopback_is_refused_at_send_time(
    make_service, bearer, dns, loopback_only, listener
):
    # The guard on (https only, no private addresses); one retry, then the delivery fails.
    service = make_service(webhook_allow_private=False, webhook_backoff="0.01s")
    key = bearer(service.keys.create("hooks", "unlimited").plaintext)
    url = f"https://{NAME}:{listener.port}/hook"
    with create_app(service=service).test_client() as client:
        saved = client.post(
            "/searches", json={"name": "Rebinding", "webhook_url": url}, headers=key
        )
        assert saved.status_code == 201, saved.text  # NAME was public when it was saved
        assert saved.json()["webhook_status"] == "active"
        assert dns.asked == [PUBLIC]
        search_id = saved.json()["id"]

        dns.rebind()  # from now on NAME resolves to loopback
        ping = client.post(f"/searches/{search_id}/webhook/ping", headers=key)
        assert ping.status_code == 202, ping.text

        def deliveries() -> list[dict[str, Any]]:
            answer = client.get(f"/searches/{search_id}/deliveries", headers=key)
            assert answer.status_code == 200, answer.text
            return answer.json()["deliveries"]

        push_until(service, lambda: deliveries()[0]["status"] != "pending")
        (delivery,) = deliveries()
        shown = client.get(f"/searches/{search_id}", headers=key).json()

    assert listener.connections() == 0  # nothing reached the rebound address
    assert loopback_only == []  # nor was anything else dialled
    assert delivery["type"] == "webhook.ping" and delivery["status"] == "failed"
    refused = f"webhook_url: {LOOPBACK} is a loopback address"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(None, refused)] * 2
    assert dns.asked == [PUBLIC, LOOPBACK, LOOPBACK]  # looked up again before each attempt
    assert shown["webhook_status"] == "disabled"
    assert refused in shown["webhook_disabled_reason"]
