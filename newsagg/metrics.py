"""Prometheus metrics, one registry per service (so several apps in one process never
collide, and each worker process reports its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
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
        self.request_shapes = Counter(
            "newsagg_request_shapes",
            "GET requests by whether their shape was remembered (lean path) or judged anew.",
            ["result"],
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "newsagg_cache_lookups",
            "Provider results looked up in the cache, by result: hit, miss or stale.",
            ["result"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
