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
import time
from pathlib import Path
from typing import Any

import psycopg
from throwaway import NoServer, ThrowawayServer, started

HOW_TO_FIX = (
    "The PostgreSQL tests need a server: install the test extra (pip install -e '.[test]', "
    "which brings the pgserver wheel), put initdb/postgres on PATH, or point "
    "NEWSAGG_TEST_DATABASE_URL at an existing server (postgresql://user@host:port/db, a "
    "role allowed to CREATE DATABASE)."
)


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


class PostgresServer(ThrowawayServer):
    """initdb once, then start/stop as often as a test needs (same port, same data)."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown

    def __init__(self, bin_dir: Path) -> None:
        super().__init__("newsagg-pg-")
        self.bin_dir = bin_dir
        self.root.chmod(0o755)  # the server's user must reach its data directory
        self.data = self.root / "data"
        self._as = _run_as()
        self.data.mkdir(mode=0o700)
        self.log.touch()
        if self._as:
            for path in (self.data, self.log):
                os.chown(path, self._as["user"], self._as["group"])
        initdb = self._spawn(
            [
                self.bin_dir / "initdb",
                *("-D", self.data, "-U", "postgres", "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            ],
            **self._as,
        )
        if initdb.wait(timeout=self.ready_deadline_seconds) != 0:
            raise NoServer(f"initdb failed; see {self.log}:\n{self._tail()}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> float:
        began = time.monotonic()
        self._process = self._spawn(
            [
                self.bin_dir / "postgres",
                *("-D", self.data, "-p", self.port),
                *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
                # A test server: durability buys nothing, speed does.
                *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                *("-c", "max_connections=200"),
            ],
            **self._as,
        )
        return self._wait_until_ready(
            began,
            lambda: psycopg.connect(self.url(), connect_timeout=2).close(),
            psycopg.OperationalError,
        )


def new_server() -> PostgresServer:
    """An initialised, running server, or NoServer saying how to get one."""
    bin_dir = binaries()
    if bin_dir is None:
        raise NoServer(HOW_TO_FIX)
    return started(PostgresServer(bin_dir))
