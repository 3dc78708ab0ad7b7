"""`newsagg serve --workers N` as deployed: a real process tree on a free port.

Several workers on one SQLite file share each key's rate-limit window, and /metrics
answers the sums over every worker. Which worker answered what is read from the
per-worker files of prometheus-client's multiprocess mode (one file per process id).
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from throwaway import free_port

from simulator import Simulator

ADMIN_KEY = "nagg_workers-test-admin-key-0123456789abcdefghijklmn"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
OPERATION = "listSources"  # GET /sources: counted, and needs no upstream


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # a condition with a deadline, not a guess
        assert time.monotonic() < deadline, f"{what}: not in {seconds} s"
        time.sleep(0.05)


class Serving:
    """`newsagg serve --workers N`, its output in a log file, stopped with SIGTERM."""

    def __init__(self, tmp_path: Path, workers: int, **env: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.metrics_dir = tmp_path / "metrics"
        self.metrics_dir.mkdir(exist_ok=True)  # a restart reuses it
        (self.metrics_dir / "counter_1.db").write_bytes(b"")  # a stale file: serve empties it
        self.log = tmp_path / "serve.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edge.cli", "serve"),  # the console script
                    *("--workers", str(workers), "--port", str(port)),
                ],
                env={
                    **os.environ,
                    "NEWSAGG_DATABASE": str(tmp_path / "db.sqlite3"),
                    "NEWSAGG_ADMIN_KEY": ADMIN_KEY,
                    "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
                    "NEWSAGG_HARVEST": "off",  # no upstream here unless a test gives one
                    **env,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _until(self._healthy, 60, "the server answering /health")
        except AssertionError:
            self.stop()
            raise AssertionError(self.log.read_text()) from None

    def _healthy(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return requests.get(f"{self.url}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def burst(self, headers: dict[str, str], count: int) -> list[int]:
        """`count` concurrent GET /sources, each on a connection of its own (so that the
        kernel hands them to whichever workers are waiting)."""

        def one(_i: int) -> int:
            return requests.get(f"{self.url}/sources", headers=headers, timeout=10).status_code

        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            return list(pool.map(one, range(count)))

    def answered(self) -> dict[str, collections.Counter[str]]:
        """Per worker process id: its GET /sources answers by status."""
        by_worker: dict[str, collections.Counter[str]] = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            statuses: collections.Counter[str] = collections.Counter()
            for metric in MultiProcessCollector.merge([str(path)]):
                for sample in metric.samples:
                    if sample.name == "newsagg_requests_total" and (
                        sample.labels["operation"] == OPERATION
                    ):
                        statuses[sample.labels["status"]] += int(sample.value)
            if statuses:
                by_worker[path.stem.removeprefix("counter_")] = statuses
        return by_worker

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serving]]:
    started: list[Serving] = []

    def start(workers: int, **env: str) -> Serving:
        started.append(Serving(tmp_path, workers, **env))
        return started[-1]

    yield start
    for serving in started:
        serving.stop()


@pytest.mark.timeout(90)
def test_four_workers_share_one_window_per_key(serve):
    served = serve(4, NEWSAGG_RATE_LIMIT_BASIC="10")
    created = requests.post(
        f"{served.url}/keys", json={"name": "basic", "tier": "basic"}, headers=ADMIN, timeout=10
    )
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    statuses = served.burst(key, 16)
    assert sorted(statuses) == [200] * 10 + [429] * 6
    # More (all refused) until at least two workers have answered this key: then some
    # worker refused it having let fewer than 10 through itself, which a window of its
    # own would not have done.
    deadline = time.monotonic() + 30
    while len(served.answered()) < 2:
        assert time.monotonic() < deadline, "one worker answered everything"
        assert served.burst(key, 8) == [429] * 8
    _until(lambda: sum(s["200"] for s in served.answered().values()) == 10, 5, "200s recorded")
    assert not (served.metrics_dir / "counter_1.db").exists()


def _scraped_total(served: Serving) -> int:
    text = requests.get(f"{served.url}/metrics", headers=ADMIN, timeout=10).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "newsagg_requests_total" and sample.labels["operation"] == OPERATION
    )


@pytest.mark.timeout(90)
def test_metrics_sum_every_worker(serve):
    served = serve(2)
    sent = 0
    deadline = time.monotonic() + 30
    while len(served.answered()) < 2:  # until both workers have answered some
        assert time.monotonic() < deadline, "one worker answered everything"
        sent += len(served.burst(ADMIN, 8))
    _until(lambda: sum(sum(s.values()) for s in served.answered().values()) == sent, 5, "all")
    # Whichever worker answers the scrape, it reports both workers' requests.
    assert [_scraped_total(served) for _ in range(4)] == [sent] * 4


@pytest.mark.timeout(90)
@pytest.mark.parametrize("told_by", ["the SQLite file", "Redis"])
def test_a_key_revoked_through_one_worker_is_refused_at_once_by_every_worker(
    serve, told_by: str, request: pytest.FixtureRequest
):
    # Each worker remembers the keys it checked; what tells it of a revocation differs. On
    # SQLite, windows of its own (in the file, they would empty each worker's memory).
    env = (
        {"NEWSAGG_REDIS_URL": request.getfixturevalue("redis_url")}
        if told_by == "Redis"
        else {"NEWSAGG_RATE_LIMIT_WINDOWS": "process"}
    )
    served = serve(2, **env)
    created = requests.post(
        f"{served.url}/keys", json={"name": "user", "tier": "unlimited"}, headers=ADMIN, timeout=10
    ).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    deadline = time.monotonic() + 30
    while len(served.answered()) < 2:  # until both workers have checked (and remember) it
        assert time.monotonic() < deadline, "one worker answered everything"
        assert served.burst(key, 8) == [200] * 8
    revoked = requests.delete(f"{served.url}/keys/{created['id']}", headers=ADMIN, timeout=10)
    assert revoked.status_code == 204
    while not all(statuses["401"] for statuses in served.answered().values()):
        assert time.monotonic() < deadline, "one worker answered everything"
        assert served.burst(key, 8) == [401] * 8  # refused from the first request on


def _searches(served: Serving, tag: str, count: int) -> list[int]:
    """`count` distinct searches, concurrently, by keys of every tier made for them."""
    keys = [
        requests.post(
            f"{served.url}/keys", json={"name": tier, "tier": tier}, headers=ADMIN, timeout=10
        ).json()["key"]
        for tier in ("basic", "premium", "unlimited")
    ]

    def search(n: int) -> int:
        return requests.get(
            f"{served.url}/articles",
            params={"q": f"power OR word{tag}x{n}", "category": "technology"},
            headers={"Authorization": f"Bearer {keys[n % 3]}"},
            timeout=15,
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        return list(pool.map(search, range(count)))


@pytest.mark.timeout(120)
def test_a_newsapi_budget_holds_over_workers_keys_and_a_restart(serve):
    """`NEWSAGG_NEWSAPI_QUOTA=5/day`, the harvester on, two workers, keys of every tier
    sending distinct searches, then a restart: every request is answered, NewsAPI is
    called at most 5 times, and the ledger counted each call the simulator saw."""
    with Simulator(newsapi_quota=None) as upstreams:
        env = {
            "NEWSAGG_HARVEST": "on",
            "NEWSAGG_NEWSAPI_QUOTA": "5/day",
            "NEWSAGG_NEWSAPI_URL": upstreams.base_url("newsapi"),
            "NEWSAGG_GUARDIAN_URL": upstreams.base_url("guardian"),
            "NEWSAGG_HACKERNEWS_URL": upstreams.base_url("hackernews"),
            "NEWSAGG_NEWSAPI_KEY": upstreams.newsapi_key,
            "NEWSAGG_GUARDIAN_KEY": upstreams.guardian_key,
        }
        statuses: list[int] = []
        for run, workers in (("first", 2), ("restarted", 1)):
            served = serve(workers, **env)
            statuses += _searches(served, run, 24)
            sources = requests.get(f"{served.url}/sources", headers=ADMIN, timeout=10).json()
            served.stop()
        assert statuses == [200] * 48
        assert 1 <= upstreams.calls("newsapi") <= 5
        newsapi = next(s for s in sources["sources"] if s["name"] == "newsapi")
        assert newsapi["budget"]["limits"][0]["used"] == upstreams.calls("newsapi")
