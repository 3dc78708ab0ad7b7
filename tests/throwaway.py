"""What the suite's own servers (PostgreSQL, Redis) have in common: a temporary directory,
a free loopback port, a log file (never a pipe nobody reads), a start that waits for
the server to answer within a deadline, and a stop by pid."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

STOP_DEADLINE_SECONDS = 15.0


class NoServer(RuntimeError):
    """No server could be had; the message says how to get one."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayServer:
    """Start and stop as often as a test needs, on the same port; `remove` ends it all."""

    name = "server"
    stop_signal = signal.SIGTERM
    ready_deadline_seconds = 30.0

    def __init__(self, prefix: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.log = self.root / "server.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> float:
        """Start the server and wait until it answers; answer how long it took."""
        raise NotImplementedError

    def _spawn(self, argv: list[Any], **popen: Any) -> subprocess.Popen[bytes]:
        """A process of the server's, its output in the log file."""
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [str(arg) for arg in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                **popen,
            )

    def _wait_until_ready(
        self, began: float, answers: Callable[[], None], not_yet: type[Exception]
    ) -> float:
        """Poll `answers` (it raises `not_yet` until the server answers), with a deadline."""
        assert self._process is not None
        deadline = began + self.ready_deadline_seconds
        while True:  # a condition with a deadline, not a guess
            if self._process.poll() is not None:
                raise NoServer(f"{self.name} exited at start; see {self.log}:\n{self._tail()}")
            try:
                answers()
                return time.monotonic() - began
            except not_yet:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NoServer(f"{self.name} not ready in time; see {self.log}") from None
                time.sleep(0.01)

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """`stop_signal` by pid; killed if it does not stop in time."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_SECONDS)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


S = TypeVar("S", bound=ThrowawayServer)


def started(server: S) -> S:
    """`server`, running; removed again if it could not start."""
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    return server
