"""Push isolated per key: one key's hanging webhook receivers cost that key's deliveries
time, never another key's. Receivers on 127.0.0.1: one that takes every connection and
never answers (each attempt ends only by the sender's timeout), one that answers at once.

The service's own push worker runs on its own threads (as `newsagg serve` runs it), so
what is measured is what a client of another key would see: its match recorded (what
its event stream reads), its webhook and its ping delivered, each within a bound far
below one send timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import new_story

from newsagg.metrics import Metrics
from newsagg.push.delivery import Deliverer
from newsagg.push.webhooks import parse_backoff

pytestmark = pytest.mark.timeout(60)

# Far below the 5 s a hanging receiver holds each attempt: another key's delivery must
# not wait for even one of them. Generous for a loaded CI machine all the same.
BOUND_SECONDS = 2.0


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition()` became true within `seconds` (polled, never a guess)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class HangingReceiver:
    """Takes every connection, reads what comes, never answers. Counts the requests it
    holds at once (`most`) and in all (`taken`)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        self._lock = threading.Lock()
        self.holding = 0
        self.most = 0
        self.taken = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _hold(self, conn: socket.socket) -> None:
        with self._lock:
            self.holding += 1
            self.taken += 1
            self.most = max(self.most, self.holding)
        conn.settimeout(0.05)
        try:
            while not self._stop.is_set():
                try:
                    if not conn.recv(65536):
                        break  # the sender gave up and closed
                except TimeoutError:
                    continue
                except OSError:
                    break
        finally:
            with self._lock:
                self.holding -= 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


class QuickReceiver:
    """Answers 204 at once and records when each delivery arrived, with its body."""

    def __init__(self) -> None:
        self.arrived: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver._lock:
                    receiver.arrived.append((time.monotonic(), json.loads(body)))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def of_type(self, kind: str) -> list[float]:
        with self._lock:
            return [at for at, body in self.arrived if body["type"] == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hanging() -> Iterator[HangingReceiver]:
    made = HangingReceiver()
    yield made
    made.close()


@pytest.fixture
def quick() -> Iterator[QuickReceiver]:
    made = QuickReceiver()
    yield made
    made.close()


def noisy_key(service, hanging: HangingReceiver, pings: int):
    """A basic key with its 10 searches (its tier's cap) posting to a hanging receiver,
    each with `pings` pings queued."""
    key = service.keys.create("noisy", "basic").record
    for n in range(10):
        made = service.searches.create(key, {"name": f"hang {n}", "webhook_url": hanging.url})
        for _ in range(pings):
            service.searches.ping(key, made.search.id)
    return key


def test_one_keys_hanging_receivers_cost_another_key_nothing(make_service, hanging, quick):
    service = make_service(webhook_allow_private=True, webhook_backoff="1h")
    noisy_key(service, hanging, pings=3)  # 30 attempts of 5 s each, due before the others
    quiet = service.keys.create("quiet", "basic").record
    search = service.searches.create(
        quiet, {"name": "quiet", "q": "zeppelin", "webhook_url": quick.url}
    ).search
    service.pusher.start()  # its own threads, as `newsagg serve` runs it
    assert wait_until(lambda: hanging.holding >= 1, 5), "the noisy key's sends never started"

    # Matching never waits on delivery: the match (what the event stream reads) is made.
    saved = time.monotonic()
    service.feed.archive.save([new_story("Zeppelin over the city")])
    matched = wait_until(lambda: service.store.matches_after(search.id, 0, 10), BOUND_SECONDS)
    assert matched, f"no match within {BOUND_SECONDS} s while another key's receivers hang"
    # Its webhook goes out beside the hanging ones, not after them.
    delivered = wait_until(lambda: quick.of_type("articles.matched"), BOUND_SECONDS)
    assert delivered, f"no webhook within {BOUND_SECONDS} s of the article"
    assert quick.of_type("articles.matched")[0] - saved < BOUND_SECONDS
    # And a ping of the quiet key, queued after the noisy key's 30.
    pinged = time.monotonic()
    service.searches.ping(quiet, search.id)
    assert wait_until(lambda: quick.of_type("webhook.ping"), BOUND_SECONDS), "ping held up"
    assert quick.of_type("webhook.ping")[0] - pinged < BOUND_SECONDS
    assert hanging.holding >= 1  # the noisy key's attempts were still hanging meanwhile


def quick_deliverer(service, **bounds: int) -> Deliverer:
    """The service's store, with sends that time out after 0.5 s (a test need not wait 5)."""
    schedule = parse_backoff("1h")
    return Deliverer(service.store, schedule, Metrics(), allow_private=True, timeout=0.5, **bounds)


def test_a_key_has_a_bounded_number_of_attempts_in_flight(make_service, hanging):
    service = make_service(webhook_allow_private=True, webhook_backoff="1h")
    noisy_key(service, hanging, pings=2)
    deliverer = quick_deliverer(service, senders=16, per_key=3)
    try:
        # Sixteen senders free, twenty attempts due: the key still holds three at most,
        # and moves on as each times out.
        give_up = time.monotonic() + 15
        while hanging.taken < 9:
            assert time.monotonic() < give_up, f"only {hanging.taken} attempts were made"
            deliverer.dispatch()
            assert deliverer.in_flight() <= 3
            time.sleep(0.02)
        assert hanging.most == 3
    finally:
        deliverer.close()


def test_a_keys_slow_search_does_not_hold_up_its_other_searches(make_service, hanging, quick):
    service = make_service(webhook_allow_private=True, webhook_backoff="1h")
    key = service.keys.create("mixed", "basic").record
    slow = service.searches.create(key, {"name": "slow", "webhook_url": hanging.url}).search
    for _ in range(5):
        service.searches.ping(key, slow.id)
    deliverer = quick_deliverer(service, per_key=2)
    try:
        assert deliverer.dispatch() == 2  # the key's two places, both the slow search's
        fine = service.searches.create(key, {"name": "fine", "webhook_url": quick.url}).search
        service.searches.ping(key, fine.id)  # due after the slow search's other three
        give_up = time.monotonic() + 10
        while not quick.of_type("webhook.ping"):
            assert time.monotonic() < give_up, "the fine search's ping was never sent"
            deliverer.dispatch()
            time.sleep(0.01)
        # The first place freed went to the search with none in flight: the slow search
        # had made at most one more attempt meanwhile.
        assert hanging.taken <= 3
    finally:
        deliverer.close()
