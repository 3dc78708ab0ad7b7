"""Shared fixtures: one upstream simulator per session, a fresh service per test, and real
PostgreSQL and Redis servers the suite starts itself (`NEWSAGG_TEST_DATABASE_URL`,
`NEWSAGG_TEST_REDIS_URL` point it at existing ones; with neither to be had, the tests that
need one fail saying how to get it, never skip).

Tests talk HTTP to the simulator through the real provider clients, and to the API through
Connexion (its test client, or uvicorn on a loopback port where real concurrency matters).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pg_server
import psycopg
import pytest
import redis
import redis_server
import uvicorn
from psycopg import conninfo, sql
from redis_server import RedisServer
from throwaway import NoServer

from edge.app import create_app
from edge.demo import pointed_at
from newsagg.service import Service, build_service
from newsagg.settings import Settings
from newsagg.store import Store, open_store
from providers.base import PROVIDER_NAMES, Article
from simulator import Simulator


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    sim = Simulator()
    sim.start()
    yield sim
    sim.stop()


REPO = Path(__file__).resolve().parent.parent


def run_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess:
    """`newsagg ARGS` in a process of its own, with `env` over this process's environment
    (a value of "" removes that variable); output captured."""
    merged = {**os.environ, **env}
    for name in [name for name, value in env.items() if value == ""]:
        merged.pop(name)
    return subprocess.run(
        [sys.executable, "-m", "newsagg.cli", *args],
        capture_output=True,
        text=True,
        env=merged,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def _session_server(existing_variable: str, new_server: Callable[[], Any]) -> Iterator[str]:
    """The URL of the server a variable names, else of one started here for the session
    (removed at its end); no server to be had fails the test, saying how to get one."""
    existing = os.environ.get(existing_variable)
    if existing:
        yield existing
        return
    try:
        server = new_server()
    except NoServer as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server.url()
    server.remove()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL to a role that may CREATE DATABASE, on a server that runs for the session."""
    yield from _session_server("NEWSAGG_TEST_DATABASE_URL", pg_server.new_server)


def _database_url(admin_url: str, name: str) -> str:
    return conninfo.make_conninfo(admin_url, dbname=name)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on that server, dropped afterwards."""
    name = f"newsagg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _database_url(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test alone."""
    with fresh_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    """A Redis server for the session: `NEWSAGG_TEST_REDIS_URL`, or one started here."""
    yield from _session_server("NEWSAGG_TEST_REDIS_URL", redis_server.new_server)


@pytest.fixture
def redis_url(redis_session_url: str) -> str:
    """The session's Redis, emptied for this test (its database only)."""
    with redis.Redis.from_url(redis_session_url) as client:
        client.flushdb()
    return redis_session_url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server of this test's own, to stop and start (never an existing one)."""
    try:
        server = redis_server.new_server()
    except NoServer as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.remove()


@pytest.fixture(autouse=True)
def _clean_simulator(simulator: Simulator) -> Iterator[None]:
    simulator.clear_faults()
    simulator.reset_calls()
    yield
    simulator.clear_faults()


UNBUDGETED = "1000000/second"


@pytest.fixture
def settings(tmp_path, simulator: Simulator) -> Settings:
    """Every provider pointed at the simulator; a short upstream budget keeps fault tests quick.
    Upstream call budgets wide open and no harvester: tests of those set their own."""
    return pointed_at(
        Settings(
            database=str(tmp_path / "newsagg.sqlite3"),
            upstream_timeout=1.0,
            harvest=False,
            push=False,  # tests of push run its steps themselves
            **{f"{name}_quota": UNBUDGETED for name in PROVIDER_NAMES},
        ),
        simulator,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a store on each backend in turn: a SQLite file, a fresh PostgreSQL
    database."""
    sqlite_only = Settings(database=str(tmp_path / "store.sqlite3"))
    if request.param == "sqlite":
        return sqlite_only
    return replace(sqlite_only, database_url=request.getfixturevalue("pg_url"))


@pytest.fixture
def store(backend_settings: Settings) -> Iterator[Store]:
    """A store on each backend in turn (`backend_settings`), migrated."""
    opened = open_store(backend_settings)
    yield opened
    opened.close()


@pytest.fixture
def make_service(settings: Settings) -> Iterator[Callable[..., Service]]:
    """Build a service, optionally with settings changed; all are closed after the test."""
    built: list[Service] = []

    def make(**changes: object) -> Service:
        service = build_service(replace(settings, **changes))
        built.append(service)
        return service

    yield make
    for service in built:
        service.close()


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    return make_service()


@pytest.fixture
def client(service: Service):
    with create_app(service=service).test_client() as test_client:
        yield test_client


def problem_detail(response: Any, status: int) -> str:
    """The `detail` of a problem+json answer, asserting that it is one, with `status`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()["detail"]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin_headers(service: Service) -> dict[str, str]:
    return _bearer(service.keys.create("test-admin", "unlimited", admin=True).plaintext)


@pytest.fixture
def user_headers(service: Service) -> dict[str, str]:
    return _bearer(service.keys.create("test-user", "unlimited").plaintext)


@pytest.fixture
def bearer() -> Callable[[str], dict[str, str]]:
    return _bearer


class LiveServer:
    """The app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(service=service), log_level="warning", lifespan="on", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:  # a condition with a deadline, not a guess
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def live_server(service: Service) -> Iterator[LiveServer]:
    with LiveServer(service) as server:
        yield server


_story_numbers = itertools.count(1)


def new_story(title: str) -> Article:
    """An article published now, at a URL no other call gives: a story new to the archive."""
    return Article(
        title=title,
        description=None,
        url=f"https://stories.example/{next(_story_numbers)}",
        source="guardian",
        publisher="The Guardian",
        author=None,
        image_url=None,
        category="technology",
        published_at=datetime.now(UTC),
    )


def merge_article(n: int, title: str, minutes_ago: int) -> Article:
    """An article of a story told twice, for the tests that make two stories merge."""
    return Article(
        title=title,
        description=None,
        url=f"https://merges.example/{n}",
        source="guardian",
        publisher=f"Outlet {n}",
        author=None,
        image_url=None,
        category="general",
        published_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
    )
