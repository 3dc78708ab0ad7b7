"""A throwaway PostgreSQL server for the test suite, started from binaries it can find.

The binaries come from the `pgserver` wheel (a test dependency: PostgreSQL 16 on a bare
machine), else from `initdb` on PATH. PostgreSQL refuses to run as root, so as root (CI)
the server runs as the unprivileged `nobody`: no system user is created, nothing outside
the server's own temporary directory changes owner or mode. It listens on loopback TCP
only, logs to a file in that directory, and is stopped by its pid.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

READY_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 15.0
HOW_TO_FIX = (
    "The PostgreSQL tests need a server: install the test extra (pip install -e '.[test]', "
    "which brings the pgserver wheel), put initdb/postgres on PATH, or point "
    "NEWSAGG_TEST_DATABASE_URL at an existing server (postgresql://user@host:port/db, a "
    "role allowed to CREATE DATABASE)."
)


class NoServer(RuntimeError):
    """No PostgreSQL server could be had; the message says how to get one."""


def binaries() -> Path | None:
    # Located, not imported: importing pgserver sets up machinery of its own we do not use.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root, which PostgreSQL refuses to run as."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """initdb once, then start/stop as often as a test needs (same port, same data)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="newsagg-pg-"))
        self.root.chmod(0o755)  # the server's user must reach its data directory
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as = _run_as()
        self._process: subprocess.Popen[bytes] | None = None
        self.data.mkdir(mode=0o700)
        self.log.touch()
        if self._as:
            for path in (self.data, self.log):
                os.chown(path, self._as["user"], self._as["group"])
        self._logged(
            [
                self.bin_dir / "initdb",
                *("-D", self.data, "-U", "postgres", "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            ],
            wait=True,
        )

    def _logged(self, argv: list[Any], *, wait: bool) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [str(arg) for arg in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                **self._as,
            )
        if wait and process.wait(timeout=READY_DEADLINE_SECONDS) != 0:
            raise NoServer(f"initdb failed; see {self.log}:\n{self._log_tail()}")
        return process

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> float:
        """Start the server and wait until it accepts connections; answer how long it took."""
        began = time.monotonic()
        self._process = self._logged(
            [
                self.bin_dir / "postgres",
                *("-D", self.data, "-p", self.port),
                *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
                # A test server: durability buys nothing, speed does.
                *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                *("-c", "max_connections=200"),
            ],
            wait=False,
        )
        deadline = began + READY_DEADLINE_SECONDS
        while True:  # a condition with a deadline, not a guess
            if self._process.poll() is not None:
                raise NoServer(f"postgres exited at start; see {self.log}:\n{self._log_tail()}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return time.monotonic() - began
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NoServer(f"postgres not ready in time; see {self.log}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) by pid; killed if it does not stop in time."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_SECONDS)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def new_server() -> PostgresServer:
    """An initialised, running server, or NoServer saying how to get one."""
    bin_dir = binaries()
    if bin_dir is None:
        raise NoServer(HOW_TO_FIX)
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    return server
