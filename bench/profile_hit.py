"""Profile the cache-hit path in-process: the ASGI app called directly, no network.

    .venv/bin/python bench/profile_hit.py [requests]

Prints the time of one hit without the profiler (median of 5 batches of `requests`), then
the top functions by cumulative and by own time (cProfile).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edge import demo
from edge.app import create_app
from newsagg.service import build_service
from newsagg.settings import Settings

PATH = "/articles"
QUERY = b"category=technology&limit=20"


async def start_lifespan(app) -> tuple[dict, asyncio.Queue, asyncio.Task]:
    """Run the app's lifespan start-up as a server would; its state goes into each scope."""
    state: dict = {}
    messages: asyncio.Queue = asyncio.Queue()
    started = asyncio.Event()
    await messages.put({"type": "lifespan.startup"})

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    task = asyncio.create_task(app(scope, messages.get, send))
    await asyncio.wait_for(started.wait(), timeout=30)
    return state, messages, task


async def call(app, state: dict, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "state": dict(state),
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": QUERY,
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    status = 0

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def main(count: int) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        demo.upstreams(
            Settings(database=str(Path(tmp) / "db.sqlite3"), demo=True, cache_ttl=3600)
        ) as settings,
    ):
        service = build_service(settings)
        key = service.keys.create("bench", "unlimited").plaintext
        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode())]
        app = create_app(service=service)
        state, lifespan, running = await start_lifespan(app)
        assert await call(app, state, headers) == 200  # warm the cache and the shape memo
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(count):
                await call(app, state, headers)
            batches.append((time.perf_counter() - started) / count * 1e6)
        print(f"in-process cache hit: {statistics.median(batches):.1f} us (median of 5 batches)")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            await call(app, state, headers)
        profiler.disable()
        await lifespan.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(running, timeout=30)
        service.close()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
