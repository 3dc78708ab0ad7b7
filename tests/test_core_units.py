"""The core's small pieces, on a fake clock where time matters."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec, InvalidCursor, Position
from newsagg.ratelimit import WINDOW_SECONDS, SlidingWindowLimiter
from newsagg.settings import Settings, SettingsError
from newsagg.singleflight import SingleFlight

run = asyncio.run


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_has_no_boundary_burst():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(clock)
    assert [run(limiter.hit(1, 3)).allowed for _ in range(3)] == [True, True, True]
    clock.now += WINDOW_SECONDS - 1  # a fixed window would have reset by now
    refused = run(limiter.hit(1, 3))
    assert not refused.allowed and refused.remaining == 0 and refused.reset_seconds == 1
    assert refused.entry is None  # nothing counted, nothing to refund
    clock.now += 1
    assert run(limiter.hit(1, 3)).allowed
    assert run(limiter.hit(2, 3)).remaining == 2  # another key has its own window


def test_peek_counts_nothing_and_unlimited_is_unlimited():
    limiter = SlidingWindowLimiter(FakeClock())
    run(limiter.hit(1, 5))
    assert run(limiter.peek(1, 5)).remaining == 4
    assert run(limiter.peek(1, 5)).remaining == 4
    assert all(run(limiter.hit(2, None)).allowed for _ in range(1000))


def test_cache_fresh_then_stale_then_gone():
    clock = FakeClock()
    cache = ResultCache[str](ttl=10, max_stale=100, maxsize=2, clock=clock)
    cache.put("k", "v")
    assert cache.get("k").fresh
    clock.now += 10
    assert cache.get("k").value == "v" and not cache.get("k").fresh
    clock.now += 100
    assert cache.get("k") is None


def test_cache_is_bounded():
    cache = ResultCache[int](ttl=10, max_stale=0, maxsize=3)
    for i in range(50):
        cache.put(i, i)
    assert len(cache) == 3


def test_cursor_round_trip_and_tampering():
    codec = CursorCodec(b"secret")
    position = Position(1_795_507_200_000_000, 42)  # published_us, id
    cursor = codec.encode("query-a", position)
    assert codec.decode(cursor, "query-a") == position
    with pytest.raises(InvalidCursor, match="different query"):
        codec.decode(cursor, "query-b")
    with pytest.raises(InvalidCursor):
        CursorCodec(b"other secret").decode(cursor, "query-a")
    with pytest.raises(InvalidCursor):
        codec.decode(cursor[:-1], "query-a")
    ranked = Position(3.25, 42, (1_795_507_200_000_000, 40))  # score, id; the horizon
    assert codec.decode(codec.encode("query-a", ranked), "query-a") == ranked


def test_single_flight_runs_one_call_for_concurrent_callers():
    release = threading.Event()
    calls = []

    def slow() -> str:
        calls.append(1)
        release.wait(5)
        return "done"

    with ThreadPoolExecutor(4) as pool:
        flight = SingleFlight(pool)
        futures = [flight.submit("k", slow) for _ in range(10)]
        release.set()
        assert {f.result(5) for f in futures} == {"done"}
        assert len(calls) == 1
        assert flight.submit("k", lambda: "again").result(5) == "again"  # forgotten when done


def test_settings_from_env_and_errors():
    settings = Settings.from_env(
        {
            "NEWSAGG_CACHE_TTL": "60",
            "NEWSAGG_RATE_LIMIT_UNLIMITED": "5000",
            "NEWSAGG_GUARDIAN_KEY": "g-secret",
        }
    )
    assert settings.cache_ttl == 60 and settings.hourly_limit("unlimited") == 5000
    assert "g-secret" not in repr(settings)
    with pytest.raises(SettingsError, match="NEWSAGG_CACHE_TTL"):
        Settings.from_env({"NEWSAGG_CACHE_TTL": "soon"})
    with pytest.raises(SettingsError, match="NEWSAGG_RATE_LIMIT_BASIC"):
        Settings.from_env({"NEWSAGG_RATE_LIMIT_BASIC": "0"})
