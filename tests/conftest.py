"""Shared fixtures: one upstream simulator per session, a fresh service per test.

Tests talk HTTP to the simulator through the real provider clients, and to the API through
Connexion (its test client, or uvicorn on a loopback port where real concurrency matters).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import uvicorn

from edge.app import create_app
from newsagg.service import Service, build_service, pointed_at
from newsagg.settings import Settings
from simulator import Simulator


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    sim = Simulator()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def _clean_simulator(simulator: Simulator) -> Iterator[None]:
    simulator.clear_faults()
    simulator.reset_calls()
    yield
    simulator.clear_faults()


@pytest.fixture
def settings(tmp_path, simulator: Simulator) -> Settings:
    """Every provider pointed at the simulator; a short upstream budget keeps fault tests quick."""
    return pointed_at(
        Settings(database=str(tmp_path / "newsagg.sqlite3"), upstream_timeout=1.0), simulator
    )


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
