"""The push benchmark (issue 16's targets): webhook latency with 1,000 active searches, and
event streams held open on one instance.

1. Webhooks, in one process on SQLite, with the push worker's own thread and tick: 1,000
   active searches (queries from the archive benchmark's vocabulary, every category), of
   which WEBHOOKS match a marker word (or a word) and post to a local receiver. Every
   BATCH_SECONDS a page of ARTICLES_PER_PAGE articles enters the archive (the archive
   writer, as a harvest page does), one of them with the marker. What must be delivered
   is worked out apart (the query language's reference matching, each webhook search
   against each saved article); latency: from the save to the receiver's read of each
   such match. A match never delivered is a failure, and counts in the percentiles as
   slower than any delivered. Target: p99 under 2 s.
2. Streams, against `newsagg serve --demo` (the simulator publishes a story every 20 s):
   STREAMS connections to `GET /searches/{id}/events` of one search that takes every
   article, the server's resident memory before, after opening them and again after a
   minute, and whether every stream received the next article (the time from the first
   stream's copy to the last's).

    .venv/bin/python bench/push.py [--searches 1000] [--pages 60] [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from archive import vocabulary  # noqa: E402

from newsagg.query.matching import matches  # noqa: E402
from newsagg.query.syntax import Node, parse  # noqa: E402
from newsagg.service import build_service  # noqa: E402
from newsagg.settings import Settings  # noqa: E402
from providers.base import Article  # noqa: E402

CATEGORIES = ("business", "entertainment", "general", "health", "science", "sports", "technology")
MARKER = "zeppelin"
WEBHOOKS = 50
ARTICLES_PER_PAGE = 20
BATCH_SECONDS = 0.25


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Receiver:
    """Records when each delivery arrived: its search and its articles."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int, list[int]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                arrived = time.time()
                data = json.loads(body)["data"]
                ids = [a["id"] for a in data["articles"]]
                with receiver.lock:
                    receiver.arrivals.append((arrived, data["search_id"], ids))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        # A listen backlog for every sender at once (the default, 5, drops connections,
        # which the senders' kernels retry a second later).
        ThreadingHTTPServer.request_queue_size = 128
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def webhooks(searches: int, pages: int) -> None:
    rng = random.Random(16)
    words = [w for w in vocabulary(rng)[:6000] if len(w) >= 4 and w.isalpha()]
    directory = tempfile.mkdtemp(prefix="newsagg-push-bench-")
    service = build_service(
        Settings(
            database=os.path.join(directory, "push.sqlite3"),
            harvest=False,
            webhook_allow_private=True,
        )
    )
    receiver = Receiver()
    key = service.keys.create("bench", "unlimited").record
    hooked: dict[int, Node] = {}  # the searches with a webhook: what each matches
    for n in range(searches):
        fields: dict[str, object] = {"name": f"search {n}"}
        if n < WEBHOOKS:
            fields |= {"q": f"{MARKER} OR {rng.choice(words)}", "webhook_url": receiver.url}
        else:
            fields |= {
                "q": rng.choice(
                    [
                        rng.choice(words),
                        f"{rng.choice(words)} {rng.choice(words)}",
                        f"{rng.choice(words)} OR {rng.choice(words)}",
                        f'"{rng.choice(words)} {rng.choice(words)}"',
                        rng.choice(words)[:4] + "*",
                    ]
                ),
                "category": rng.choice((None, *CATEGORIES)),
            }
        search = service.searches.create(key, fields).search
        if n < WEBHOOKS:
            hooked[search.id] = parse(str(fields["q"]))
    saved_at: dict[int, float] = {}
    expected: set[tuple[int, int]] = set()  # (search, article): each must be delivered
    service.pusher.start()
    try:
        serial = 0
        for _page in range(pages):
            batch = []
            for i in range(ARTICLES_PER_PAGE):
                serial += 1
                title = " ".join(rng.choice(words) for _ in range(6))
                if i == 0:
                    title = f"{title} {MARKER}"
                batch.append(
                    Article(
                        title=title,
                        description=" ".join(rng.choice(words) for _ in range(15)),
                        url=f"https://bench.example/{serial}",
                        source="guardian",
                        publisher="Bench",
                        author=None,
                        image_url=None,
                        category=rng.choice(CATEGORIES),  # type: ignore[arg-type]
                        published_at=datetime.now(UTC),
                    )
                )
            now = time.time()
            for item in service.feed.archive.save(batch):
                saved_at[item.id] = now
                for search_id, node in hooked.items():
                    if matches(node, item.article.title, item.article.description):
                        expected.add((search_id, item.id))
            time.sleep(BATCH_SECONDS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with receiver.lock:
                got = {(s, i) for _at, s, ids in receiver.arrivals for i in ids}
            if expected <= got:
                break
            time.sleep(0.1)
    finally:
        service.close()
        receiver.server.shutdown()
    first: dict[tuple[int, int], float] = {}  # a retried delivery counts once, when first in
    for at, search_id, ids in sorted(receiver.arrivals):
        for i in ids:
            first.setdefault((search_id, i), at)
    # Every match that should have been delivered: one that never arrived is a failure, and
    # counts in the percentiles as slower than any that did (infinite).
    latencies = [
        first[pair] - saved_at[pair[1]] if pair in first else math.inf for pair in expected
    ]
    missing = sum(1 for latency in latencies if math.isinf(latency))
    unexpected = len(set(first) - expected)
    print(
        f"1. webhooks: {searches} active searches ({WEBHOOKS} with a webhook: the marker OR a"
        f" word), {pages} pages of {ARTICLES_PER_PAGE} articles every {BATCH_SECONDS:g} s"
        f" ({len(saved_at)} articles)"
    )
    print(
        f"   sample: {len(expected)} matches to deliver (search, article), in"
        f" {len(receiver.arrivals)} deliveries received; {len(expected) - missing} arrived,"
        f" {missing} never did (failures), {unexpected} arrived unasked"
    )

    def shown(seconds: float) -> str:
        return "never (a failure)" if math.isinf(seconds) else f"{seconds * 1000:.0f} ms"

    print(
        f"   save -> received, failures as never: p50 {shown(percentile(latencies, 50))},"
        f" p99 {shown(percentile(latencies, 99))}, max {shown(max(latencies, default=0.0))}"
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_stream(port: int, path: str, key: str) -> tuple[asyncio.StreamReader, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"retry: 5000\n\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head[:200])
    return reader, writer


async def first_event(reader: asyncio.StreamReader) -> float:
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("the stream ended")
        if line.startswith(b"event: article"):
            return time.monotonic()


def streams(count: int, hold: float) -> None:
    port = free_port()
    admin = "nagg_push-bench-admin-0123456789abcdefghijklmnopqrstu"
    directory = tempfile.mkdtemp(prefix="newsagg-push-streams-")
    env = {
        **os.environ,
        "NEWSAGG_DATABASE": os.path.join(directory, "streams.sqlite3"),
        "NEWSAGG_ADMIN_KEY": admin,
        "NEWSAGG_STREAM_SECONDS": "900",
    }
    log = open(os.path.join(directory, "server.log"), "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(base)
        search = post_json(f"{base}/searches", admin, {"name": "everything"})
        path = f"/searches/{search['id']}/events"

        async def run() -> None:
            before = rss_kib(server.pid)
            opened = await asyncio.gather(*(open_stream(port, path, admin) for _ in range(count)))
            after_open = rss_kib(server.pid)
            started = time.monotonic()
            waits = [asyncio.create_task(first_event(reader)) for reader, _w in opened]
            done, pending = await asyncio.wait(waits, timeout=hold)
            for task in pending:
                task.cancel()
            first_article = time.monotonic() - started
            at_article = rss_kib(server.pid)
            await asyncio.sleep(max(0.0, hold - first_article))  # held open, idle
            held = time.monotonic() - started
            after_hold = rss_kib(server.pid)
            times = [task.result() for task in done]
            spread = (max(times) - min(times)) * 1000 if times else float("nan")
            print(f"2. streams: {count} open on one instance (demo mode, one search)")
            print(
                f"   server RSS {before / 1024:.0f} MiB before, {after_open / 1024:.0f} MiB"
                f" with them open ({(after_open - before) / count:.1f} KiB per stream),"
                f" {at_article / 1024:.0f} MiB once the next article reached them"
                f" ({first_article:.0f} s), {after_hold / 1024:.0f} MiB after {held:.0f} s"
            )
            print(
                f"   {len(done)} of {count} streams got the next article; first to last copy"
                f" {spread:.0f} ms"
            )
            for _reader, writer in opened:
                writer.close()  # type: ignore[attr-defined]

        asyncio.run(run())
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(base: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def post_json(url: str, key: str, body: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds streams stay open")
    args = parser.parse_args(argv)
    webhooks(args.searches, args.pages)
    streams(args.streams, args.hold)


if __name__ == "__main__":
    main()
