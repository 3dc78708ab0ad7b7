"""Prometheus metrics, one registry per service (so several apps in one process never
collide).

With several worker processes (`newsagg serve --workers N`), /metrics answers the sums
over all of them, whichever worker is asked: prometheus-client's multiprocess mode. Each
worker writes its values to files in `PROMETHEUS_MULTIPROC_DIR` (set, and emptied of a
previous run's files, by `newsagg serve` before the workers start: `multiprocess_dir`),
and the exposition reads every worker's files. A worker that dies leaves its files: its
counts stay in the sums, as a counter's must. uvicorn's supervisor has no hook for a
worker's exit, so `multiprocess.mark_process_dead` is never called; it only matters for
gauges in a live mode, and there are none (a gauge added here must pick a
`multiprocess_mode`). One process: the registry as is, no files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# prometheus-client reads it once, at import: it must be set before a worker starts.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_dir(workers: int) -> Iterator[None]:
    """Multiprocess mode for the worker processes started inside, when there are several
    (or when the operator set the directory): an empty directory in the environment they
    inherit; a directory made here is removed afterwards."""
    given = os.environ.get(MULTIPROCESS_ENV)
    if workers == 1 and not given:
        yield
        return
    directory = Path(given or tempfile.mkdtemp(prefix="newsagg-metrics-"))
    for stale in directory.glob("*.db"):  # a previous run's counts are not this run's
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)
    try:
        yield
    finally:
        if not given:
            del os.environ[MULTIPROCESS_ENV]
            shutil.rmtree(directory, ignore_errors=True)


class Metrics:
    def __init__(self) -> None:
        self._multiprocess_dir = os.environ.get(MULTIPROCESS_ENV)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "newsagg_requests",
            "HTTP requests answered, by operation and status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "newsagg_request_duration_seconds",
            "Time to answer an HTTP request, by operation.",
            ["operation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.upstream_calls = Counter(
            "newsagg_upstream_calls",
            "Calls to upstream providers, by provider and outcome (ok or an error code).",
            ["provider", "outcome"],
            registry=self.registry,
        )
        # A series that counts on every request is bound here, once: prometheus-client's
        # `labels()` costs more than the increment itself.
        request_shapes = Counter(
            "newsagg_request_shapes",
            "GET requests by whether their shape was remembered (lean path) or judged anew.",
            ["result"],
            registry=self.registry,
        )
        self.shapes_remembered = request_shapes.labels("remembered")
        self.shapes_judged = request_shapes.labels("judged")
        key_checks = Counter(
            "newsagg_key_checks",
            "API keys checked, by where the answer came from: memory (keys this process"
            " checked lately) or store.",
            ["source"],
            registry=self.registry,
        )
        self.keys_from_memory = key_checks.labels("memory")
        self.keys_from_store = key_checks.labels("store")
        cache_lookups = Counter(
            "newsagg_cache_lookups",
            "Provider results looked up in the cache, by result: hit, miss or stale.",
            ["result"],
            registry=self.registry,
        )
        self.cache_hits = cache_lookups.labels("hit")
        self.cache_misses = cache_lookups.labels("miss")
        self.cache_stale = cache_lookups.labels("stale")
        # The harvester (newsagg.harvest): each provider's runs, what they added, what
        # they cost in upstream calls.
        self.harvest_runs = Counter(
            "newsagg_harvest_runs",
            "Harvest runs, by provider and outcome (ok, partial or an error code).",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.harvest_added = Counter(
            "newsagg_harvest_articles_added",
            "Articles the harvester added to the archive, by provider.",
            ["provider"],
            registry=self.registry,
        )
        self.harvest_calls = Counter(
            "newsagg_harvest_upstream_calls",
            "Upstream calls the harvester made (paid from its budget), by provider.",
            ["provider"],
            registry=self.registry,
        )

        # Push (newsagg.push): matches found, webhook attempts and their outcome, streams.
        self.push_matches = Counter(
            "newsagg_push_matches",
            "New articles matched to saved searches (one per search and article).",
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "newsagg_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered, retry or failed.",
            ["outcome"],
            registry=self.registry,
        )
        self.event_streams = Counter(
            "newsagg_event_streams",
            "Event streams (GET /searches/{id}/events) opened.",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        if self._multiprocess_dir:
            # Every worker's files, this one's included: the sums across workers.
            everyone = CollectorRegistry()
            MultiProcessCollector(everyone, path=self._multiprocess_dir)
            return generate_latest(everyone)
        return generate_latest(self.registry)
