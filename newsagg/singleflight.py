"""Single-flight: concurrent callers asking for the same key share one call; and the pool of
worker threads the feed's refreshes run on."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._in_flight: dict[Hashable, Future] = {}
        self._lock = threading.Lock()

    def submit(self, key: Hashable, call: Callable[[], T]) -> Future[T]:
        """The future of the call already running for `key`, or of a new one."""
        with self._lock:
            future = self._in_flight.get(key)
            if future is not None:
                return future
            # The caller's context (its request id) goes along, so the call's log lines name it.
            future = self._executor.submit(contextvars.copy_context().run, call)
            self._in_flight[key] = future
        future.add_done_callback(lambda done: self._forget(key, done))
        return future

    def _forget(self, key: Hashable, done: Future) -> None:
        with self._lock:
            if self._in_flight.get(key) is done:
                del self._in_flight[key]


def new_executor() -> ThreadPoolExecutor:
    """The worker threads the feed's refreshes run on."""
    # Hung upstreams hold a thread until their own timeout ends; 64 keeps room for the rest.
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="upstream")
