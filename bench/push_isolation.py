"""Push isolation: another key's webhook, ping and event-stream latency while some keys'
webhook receivers hang, against a baseline with none (the tenants issue).

One process on SQLite serving on loopback (uvicorn, the push worker's own threads as
`newsagg serve` runs them). A quiet key owns a search for a marker word with a webhook to
a receiver that answers at once, follows that search's event stream, and pings one of its
other searches each round. Each round an article with the marker enters the archive; the
latencies measured are from that save to the quiet key's webhook and to its event, and
from its ping's POST to the ping's arrival.

Loaded phase: NOISY keys (basic by default: 10 searches each, their tier's cap) hold
searches for the same marker whose webhooks go to a receiver that takes every connection
and never answers (each attempt ends by its 5 s timeout), and flood pings (9 per search,
as the issue's 90 from 10 searches; past 5 a minute they are refused with 429).

    .venv/bin/python bench/push_isolation.py [--rounds 30] [--noisy 1] [--searches 10]
    .venv/bin/python bench/push_isolation.py --noisy 1 --searches 1000 --tier unlimited
    .venv/bin/python bench/push_isolation.py --noisy 100 --searches 10   # 1,000 receivers

With `--streams N` it measures instead what N event streams of one key cost the server's
memory (tracemalloc, the clients in a process of their own) and whether it is all given
back when they close.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402

from edge.app import create_app  # noqa: E402
from newsagg.service import Service, build_service  # noqa: E402
from newsagg.settings import Settings  # noqa: E402
from providers.base import Article  # noqa: E402

MARKER = "zeppelin"
# Rounds start at random points of the push worker's and the streams' half-second ticks,
# so that both phases sample every alignment (a fixed period would fix one).
ROUND_SECONDS = (1.5, 2.0)
WAIT_SECONDS = 60.0  # a latency not seen by then counts as this long
PING_SEARCHES = 10  # the quiet key pings these in turn (5 a minute each at most)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class QuickReceiver:
    """204 at once; when each article id (articles.matched) and each ping id arrived."""

    def __init__(self) -> None:
        self.articles: dict[int, float] = {}
        self.pings: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                at = time.monotonic()
                with receiver.lock:
                    if body["type"] == "webhook.ping":
                        receiver.pings.setdefault(self.headers["webhook-id"], at)
                    for article in body["data"]["articles"]:
                        receiver.articles.setdefault(article["id"], at)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 128
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class HangingReceiver:
    """Takes every connection, reads, never answers; counts connections held."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.held = 0
        self.most = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with self.lock:
            self.held += 1
            self.most = max(self.most, self.held)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.held -= 1
            conn.close()


class Server:
    def __init__(self, service: Service) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(service=service), log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        ).start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def call(self, method: str, path: str, key: str, body: object = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return answer.status, json.loads(data) if data else {}

    def stop(self) -> None:
        self.server.should_exit = True


class Follower:
    """The quiet key's event stream: when each article id arrived."""

    def __init__(self, server: Server, search_id: int, key: str) -> None:
        self.arrived: dict[int, float] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        self.conn.request(
            "GET", f"/searches/{search_id}/events", headers={"Authorization": f"Bearer {key}"}
        )
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                if line.startswith(b"data: "):
                    article = json.loads(line[6:])
                    self.arrived.setdefault(article["id"], time.monotonic())
        except Exception:  # closed at the end
            pass


def article(serial: int) -> Article:
    return Article(
        title=f"Round {serial}: a {MARKER} over the city",
        description=None,
        url=f"https://isolation.example/{serial}",
        source="guardian",
        publisher="Bench",
        author=None,
        image_url=None,
        category="technology",
        published_at=datetime.now(UTC),
    )


def waited(arrivals: dict, item: object, since: float) -> float:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if item in arrivals:
            return arrivals[item] - since
        time.sleep(0.005)
    return math.inf


def run(phase: str, args: argparse.Namespace, noisy: int) -> dict[str, list[float]]:
    directory = tempfile.mkdtemp(prefix="newsagg-isolation-")
    settings = Settings(
        database=os.path.join(directory, "isolation.sqlite3"),
        harvest=False,
        webhook_allow_private=True,
        webhook_backoff="5s,5m,30m",
        stream_seconds=3600,
        rate_limit_basic=None,
        rate_limit_premium=None,
    )
    service = build_service(settings)
    quick, hanging = QuickReceiver(), HangingReceiver()
    server = Server(service)  # its lifespan starts the push worker (NEWSAGG_PUSH)
    try:
        quiet = service.keys.create("quiet", "premium").plaintext
        status, made = server.call(
            "POST",
            "/searches",
            quiet,
            {"name": "quiet", "q": MARKER, "webhook_url": quick.url},
        )
        assert status == 201, made
        pingable = [
            server.call("POST", "/searches", quiet, {"name": f"p{n}", "webhook_url": quick.url})[1][
                "id"
            ]
            for n in range(PING_SEARCHES)
        ]
        stream = Follower(server, made["id"], quiet)
        refused = 0
        for k in range(noisy):
            key = service.keys.create(f"noisy {k}", args.tier).plaintext
            for n in range(args.searches):
                body = {"name": f"hang {n}", "q": MARKER, "webhook_url": hanging.url}
                status, search = server.call("POST", "/searches", key, body)
                assert status == 201, search
                if n < 10:  # the ping flood: 9 a search, as the 90 from 10
                    for _ in range(9):
                        status, _ = server.call(
                            "POST", f"/searches/{search['id']}/webhook/ping", key
                        )
                        refused += status == 429
        if noisy:
            print(f"   {phase}: {noisy * args.searches} hanging receivers; {refused} pings got 429")
        results: dict[str, list[float]] = {"webhook": [], "event": [], "ping": []}
        rng = random.Random(7)
        for serial in range(args.rounds):
            started = time.monotonic()
            (saved,) = service.feed.archive.save([article(serial)])
            target = pingable[serial % PING_SEARCHES]
            pinged = time.monotonic()
            status, ping = server.call("POST", f"/searches/{target}/webhook/ping", quiet)
            assert status == 202, ping
            results["ping"].append(waited(quick.pings, ping["id"], pinged))
            results["webhook"].append(waited(quick.articles, saved.id, started))
            results["event"].append(waited(stream.arrived, saved.id, started))
            if args.verbose:
                print(serial, {k: round(v[-1], 2) for k, v in results.items()}, flush=True)
            time.sleep(max(0.0, started + rng.uniform(*ROUND_SECONDS) - time.monotonic()))
        with hanging.lock:
            most = hanging.most
        if noisy:
            print(f"   {phase}: at most {most} hanging attempts were in flight at once")
        return results
    finally:
        server.stop()
        time.sleep(0.5)
        service.close()
        quick.server.shutdown()
        hanging.sock.close()


# The clients of --streams: N streams opened, held until stdin closes, then shut at once.
STREAM_CLIENTS = """
import http.client, socket, sys
port, path, key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conns = []
for _ in range(count):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    conn.request("GET", path, headers={"Authorization": "Bearer " + key})
    answer = conn.getresponse()
    assert answer.status == 200, answer.status
    answer.readline()
    conns.append(conn)
print("open", flush=True)
sys.stdin.read()
for conn in conns:
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
"""


def streams(count: int) -> None:
    directory = tempfile.mkdtemp(prefix="newsagg-streams-")
    settings = Settings(
        database=os.path.join(directory, "streams.sqlite3"),
        harvest=False,
        push=False,
        stream_seconds=3600,
        stream_limit_unlimited=max(1000, count),
    )
    service = build_service(settings)
    server = Server(service)
    try:
        key = service.keys.create("streams", "unlimited")
        status, made = server.call("POST", "/searches", key.plaintext, {"name": "s"})
        assert status == 201, made
        path = f"/searches/{made['id']}/events"
        # Warm up (first stream, the hub's poll, imports), then the baseline.
        clients = [sys.executable, "-c", STREAM_CLIENTS, str(server.port), path, key.plaintext]
        warm = subprocess.Popen([*clients, "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        warm.stdout.readline()
        warm.communicate(b"")
        settle(lambda: service.hub.idle())
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for cycle in (1, 2):  # twice: what the first leaves, the second must not add to
            held = subprocess.Popen(
                [*clients, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            held.stdout.readline()
            settle(lambda: service.hub.streams_of(key.record.id) == count)
            opened = tracemalloc.get_traced_memory()[0]
            held.communicate(b"")
            settle(lambda: service.hub.idle())
            time.sleep(1)  # the server's connection objects go with their tasks
            after = tracemalloc.get_traced_memory()[0]
            per = (opened - before) / count
            print(
                f"cycle {cycle}, {count} streams: Python memory +{(opened - before) / 1e6:.1f} MB"
                f" while open ({per / 1024:.1f} KiB each), {(after - before) / 1e3:+.0f} kB"
                f" after they closed; the hub holds nothing: {service.hub.idle()}"
            )
        tracemalloc.stop()
    finally:
        server.stop()
        time.sleep(0.5)
        service.close()


def settle(condition) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("did not settle")
        time.sleep(0.05)


def shown(seconds: float) -> str:
    return "never" if math.isinf(seconds) else f"{seconds * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--noisy", type=int, default=1, help="keys with hanging receivers")
    parser.add_argument("--searches", type=int, default=10, help="hanging searches per key")
    parser.add_argument("--tier", default="basic", choices=("basic", "premium", "unlimited"))
    parser.add_argument("--streams", type=int, default=0, help="measure N streams' memory")
    parser.add_argument("--verbose", action="store_true", help="print every round")
    args = parser.parse_args()
    if args.streams:
        streams(args.streams)
        return
    print(f"push isolation: {args.rounds} rounds of {ROUND_SECONDS[0]:g}-{ROUND_SECONDS[1]:g} s")
    baseline = run("baseline", args, 0)
    loaded = run("loaded", args, args.noisy)
    print(f"{'':8} {'baseline p50':>13} {'p99':>8} {'loaded p50':>11} {'p99':>8} {'p99 +':>8}")
    for name in ("webhook", "event", "ping"):
        b50, b99 = percentile(baseline[name], 50), percentile(baseline[name], 99)
        l50, l99 = percentile(loaded[name], 50), percentile(loaded[name], 99)
        extra = "-" if math.isinf(l99) else f"{(l99 - b99) * 1000:+.0f} ms"
        print(
            f"{name:8} {shown(b50):>13} {shown(b99):>8} {shown(l50):>11} {shown(l99):>8} {extra:>8}"
        )


if __name__ == "__main__":
    main()
