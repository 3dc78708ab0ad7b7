"""Production serving: several uvicorn workers on one SQLite file, graceful shutdown."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from throwaway import free_port

ADMIN_KEY = "nagg_deploy-test-admin-key-0123456789abcdefghijkl"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class Served:
    def __init__(self, tmp_path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = tmp_path / "stdout.log"
        env = {
            **os.environ,
            "NEWSAGG_DATABASE": str(tmp_path / "db.sqlite3"),
            "NEWSAGG_ADMIN_KEY": ADMIN_KEY,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.cli",  # the console script
                "serve",
                "--demo",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=self.stdout.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not self._healthy():  # a condition with a deadline
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(self.stdout.read_text())
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def simulator_url(self) -> str:
        line = next(x for x in self.stdout.read_text().splitlines() if "upstream simulator at" in x)
        return line.rsplit(" ", 1)[-1]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def two_workers(tmp_path) -> Iterator[Served]:
    served = Served(tmp_path, workers=2)
    yield served
    served.stop()


def test_concurrent_key_creation_across_workers_loses_nothing(two_workers):
    def create(i: int) -> requests.Response:
        return requests.post(
            f"{two_workers.url}/keys", json={"name": f"k{i}"}, headers=ADMIN, timeout=30
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(create, range(60)))
    assert [r.status_code for r in responses] == [201] * 60
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 60
    listed = requests.get(f"{two_workers.url}/keys", headers=ADMIN, timeout=10).json()["keys"]
    assert ids <= {k["id"] for k in listed}
    for response in responses[:5]:  # each key works, whichever worker answers
        key = {"Authorization": f"Bearer {response.json()['key']}"}
        assert requests.get(f"{two_workers.url}/me", headers=key, timeout=10).status_code == 200


def test_sigterm_lets_in_flight_requests_finish(two_workers):
    requests.put(
        f"{two_workers.simulator_url()}/_sim/faults/guardian",
        json={"kind": "latency", "delay": 1.5},
        timeout=5,
    )
    result: dict[str, int] = {}

    def slow_request() -> None:
        result["status"] = requests.get(
            f"{two_workers.url}/articles?category=business", headers=ADMIN, timeout=30
        ).status_code

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 10
    while (
        requests.get(f"{two_workers.simulator_url()}/_sim/calls", timeout=5).json()["guardian"] == 0
    ):  # the request reached upstream
        assert time.monotonic() < deadline
        time.sleep(0.02)
    exit_code = two_workers.stop()
    thread.join(timeout=30)
    assert result["status"] == 200
    assert exit_code == 0
