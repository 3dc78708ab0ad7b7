"""Upstream budgets (newsagg.budget): the rule on a fake clock, exactness under concurrency
(threads and processes on one SQLite file, threads and two instances on PostgreSQL), a
restart keeping the count, and the settings that configure them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsagg.budget import SPENT, Budgets, Caller, parse_quota
from newsagg.errors import Unavailable
from newsagg.settings import Settings, SettingsError, markdown_table
from newsagg.store.postgres import PostgresStore
from newsagg.store.sqlite import SqliteStore
from providers.base import ERROR_CODES, UpstreamError

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0  # a fake clock's start, seconds since the epoch
DAY, HALF_DAY = 86_400, 43_200
BASIC, PREMIUM = Caller(1, "basic"), Caller(2, "premium")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def budgets(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., Budgets]]:
    """Budgets on a fresh SQLite file and the fake clock: `budgets(newsapi="5/day", share=…)`."""
    store = SqliteStore(str(tmp_path / "budget.sqlite3"))
    store.migrate()

    def make(share: float = 0.2, **quotas: str) -> Budgets:
        return Budgets(store, quotas or {"newsapi": "50/12 hours;100/day"}, share, clock)

    yield make
    store.close()


def refused(budgets: Budgets, *args) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        budgets.take(*args)
    assert caught.value.code == SPENT
    return caught.value


def granted(budgets: Budgets, *args, times: int = 1) -> None:
    for _ in range(times):
        budgets.take(*args)


# -- the rule ------------------------------------------------------------------------------


def test_the_parts_of_the_default_quotas():
    news_12h, news_day = parse_quota(Settings().newsapi_quota, 0.2)
    assert (news_12h.text, news_12h.amount, news_12h.window_seconds) == (
        "50/12 hours",
        50,
        HALF_DAY,
    )
    assert (news_12h.pool, news_12h.harvest) == (10, 40)
    assert (news_day.text, news_day.pool, news_day.harvest) == ("100/day", 20, 80)
    # A basic key: 1 NewsAPI call per 12 h and 2 per day; premium 2 and 5; unlimited all.
    assert dict(news_12h.per_key) == {"basic": 1, "premium": 2, "unlimited": 10}
    assert dict(news_day.per_key) == {"basic": 2, "premium": 5, "unlimited": 20}
    per_second, guardian_day = parse_quota(Settings().guardian_quota, 0.2)
    assert (per_second.text, per_second.pool, per_second.harvest) == ("1/second", 1, 1)
    assert (guardian_day.pool, guardian_day.harvest, guardian_day.per_key["basic"]) == (
        100,
        400,
        10,
    )
    (hn,) = parse_quota(Settings().hackernews_quota, 0.2)
    assert (hn.text, hn.window_seconds, hn.pool, hn.harvest) == ("10000/hour", 3600, 2000, 8000)


def test_a_basic_key_causes_one_newsapi_call_per_12_hours_and_two_per_day(budgets, clock):
    b = budgets()
    granted(b, "newsapi", "demand", BASIC)
    error = refused(b, "newsapi", "demand", BASIC)
    assert error.retry_after == HALF_DAY  # exact: when the first call leaves the window
    assert "newsapi" in error.message and "50/12 hours" in error.message
    assert "next call possible in 12 h" in error.message
    clock.now = T0 + HALF_DAY - 0.001
    assert refused(b, "newsapi", "demand", BASIC).retry_after == pytest.approx(0.001)
    clock.now = T0 + HALF_DAY  # moving window: the first call has just left it
    granted(b, "newsapi", "demand", BASIC)
    clock.now = T0 + HALF_DAY + 3600
    error = refused(b, "newsapi", "demand", BASIC)  # 1 per 12 h again, and 2 per day spent
    assert error.retry_after == HALF_DAY - 3600  # both free up when the first call is a day old
    clock.now = T0 + DAY - 1
    error = refused(b, "newsapi", "demand", BASIC)
    assert error.retry_after == 1 and "next call possible in 1 s" in error.message
    clock.now = T0 + DAY  # the first call has left the day, the second the 12 h
    granted(b, "newsapi", "demand", BASIC)
    error = refused(b, "newsapi", "demand", BASIC)
    assert error.retry_after == HALF_DAY  # the later of the two limits: the 12 h one
    assert "this API key's part of the 50/12 hours budget (1 call)" in error.message


def test_a_thousand_searches_from_one_key_leave_everyone_else_untouched(budgets):
    b = budgets()
    granted(b, "newsapi", "demand", BASIC)
    for _ in range(1000):
        refused(b, "newsapi", "demand", BASIC)
    standing = b.standing("newsapi")
    assert [limit.used for limit in standing.limits] == [1, 1]  # refusals cost nothing
    granted(b, "newsapi", "demand", PREMIUM, times=2)  # premium: 2 per 12 h
    refused(b, "newsapi", "demand", PREMIUM)
    granted(b, "newsapi", "harvest", times=40)  # the harvester's whole part
    refused(b, "newsapi", "harvest")
    granted(b, "newsapi", "demand", Caller(3, "unlimited"), times=7)  # the pool's rest: 10-3
    error = refused(b, "newsapi", "demand", Caller(4, "unlimited"))
    assert "on-demand part of the 50/12 hours budget (10 calls)" in error.message
    assert [limit.remaining for limit in b.standing("newsapi").limits] == [0, 50]


def test_the_harvester_cannot_take_the_demand_pool(budgets, clock):
    b = budgets(newsapi="10/day")  # pool 2, harvester 8
    for step in range(8):
        clock.now = T0 + step
        granted(b, "newsapi", "harvest")
    clock.now = T0 + 100
    error = refused(b, "newsapi", "harvest")
    assert "harvester's part of the 10/day budget (8 calls)" in error.message
    assert error.retry_after == DAY - 100  # the call at T0 leaves first
    granted(b, "newsapi", "demand", times=2)  # no caller: the pool only
    error = refused(b, "newsapi", "demand")
    assert error.retry_after == DAY  # the pool's calls were made at T0 + 100
    assert b.standing("newsapi").next_call_at == datetime.fromtimestamp(T0 + DAY, UTC)


def test_all_calls_together_never_exceed_a_limit(budgets, clock):
    # 3/minute would let the harvester make 2 a minute; the 5/hour holds it to 4 (its part)
    # and the one call left of the hour is the pool's: 5 in all, then nobody calls.
    b = budgets(newsapi="3/minute;5/hour")
    for step in range(4):
        clock.now = T0 + step * 60
        granted(b, "newsapi", "harvest")
    clock.now = T0 + 240
    assert (
        "harvester's part of the 5/hour budget (4 calls)"
        in refused(b, "newsapi", "harvest").message
    )
    granted(b, "newsapi", "demand")  # the 5th call of the hour
    clock.now = T0 + 300
    error = refused(b, "newsapi", "demand")
    assert "on-demand part of the 5/hour budget (1 call)" in error.message
    assert error.retry_after == 3600 - 60  # when the pool's call (at T0 + 240) leaves
    standing = b.standing("newsapi")
    assert [(limit.used, limit.remaining) for limit in standing.limits] == [(0, 3), (5, 0)]
    assert standing.next_call_at == datetime.fromtimestamp(T0 + 3600, UTC)
    clock.now = T0 + 3600  # the first call leaves the hour
    assert b.standing("newsapi").next_call_at is None
    granted(b, "newsapi", "harvest")


def test_the_window_moves_call_by_call(budgets, clock):
    b = budgets(0.0, newsapi="3/minute")  # share 0: no pool, the harvester has all 3
    for at in (0, 10, 20):
        clock.now = T0 + at
        granted(b, "newsapi", "harvest")
    for at, wait in ((30, 30), (59.5, 0.5)):
        clock.now = T0 + at
        assert refused(b, "newsapi", "harvest").retry_after == pytest.approx(wait)
    clock.now = T0 + 60
    granted(b, "newsapi", "harvest")
    clock.now = T0 + 60.5
    assert refused(b, "newsapi", "harvest").retry_after == pytest.approx(9.5)  # the 10 s call
    assert refused(b, "newsapi", "demand").retry_after is None  # share 0: never on demand


def test_a_single_call_per_window_is_shared_first_come_first_served(budgets, clock):
    b = budgets(guardian="1/second")
    granted(b, "guardian", "harvest")
    clock.now = T0 + 0.25
    error = refused(b, "guardian", "demand", BASIC)
    assert error.retry_after == pytest.approx(0.75)
    assert "guardian" in error.message and "1/second" in error.message
    clock.now = T0 + 1
    granted(b, "guardian", "demand", BASIC)
    clock.now = T0 + 1.5
    assert refused(b, "guardian", "harvest").retry_after == pytest.approx(0.5)
    clock.now = T0 + 2
    granted(b, "guardian", "harvest")


def test_with_the_whole_share_on_demand_the_harvester_makes_no_call(budgets):
    b = budgets(1.0, guardian="1/second;500/day")
    error = refused(b, "guardian", "harvest")
    assert error.retry_after is None and "allows no such call" in error.message
    granted(b, "guardian", "demand", Caller(9, "unlimited"))


def test_an_unreachable_store_means_no_call():
    class Down:
        def budget_take(self, *args, **kwargs):
            raise Unavailable("The database is unreachable; retry shortly.", retry_after_seconds=2)

    b = Budgets(Down(), {"newsapi": "5/day"}, 0.2)  # type: ignore[arg-type]
    error = refused(b, "newsapi", "harvest")
    assert error.retry_after == 2 and "cannot be checked" in error.message
    assert SPENT in ERROR_CODES


def test_wrong_uses_are_programming_errors(budgets):
    b = budgets()
    with pytest.raises(ValueError, match="no API key"):
        b.take("newsapi", "harvest", BASIC)
    with pytest.raises(ValueError, match="purpose"):
        b.take("newsapi", "browse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guardian"):
        b.take("guardian", "harvest")


# -- exactness under concurrency, and across a restart -------------------------------------

WORKER = """
import sys, time
from newsagg.budget import Budgets
from newsagg.store.sqlite import SqliteStore
from providers.base import UpstreamError
path, until = sys.argv[1], float(sys.argv[2])
budgets = Budgets(SqliteStore(path), {"newsapi": "5/day"}, 0.2)
while time.time() < until:
    time.sleep(max(0.0, until - 0.4 - time.time()))  # start together with the others
    break
grants = 0
for n in range(30):
    try:
        budgets.take("newsapi", "harvest" if n % 2 else "demand")
        grants += 1
    except UpstreamError:
        pass
print(grants)
"""


def _take_many(budgets: Budgets, tries: int = 30) -> int:
    grants = 0
    for n in range(tries):
        try:
            budgets.take("newsapi", "harvest" if n % 2 else "demand")
            grants += 1
        except UpstreamError:
            pass
    return grants


def test_threads_and_processes_sharing_a_file_make_exactly_the_limit(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    store = SqliteStore(path)
    store.migrate()
    until = time.time() + 2.0  # the processes need a moment to import
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, path, str(until)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(max(0.0, until - 0.4 - time.time()))
    budgets = Budgets(store, {"newsapi": "5/day"}, 0.2)  # the real clock
    with ThreadPoolExecutor(4) as pool:
        in_threads = sum(pool.map(lambda _n: _take_many(budgets), range(4)))
    in_processes = sum(int(worker.communicate(timeout=30)[0]) for worker in workers)
    assert in_threads + in_processes == 5  # 4 harvester calls and the 1-call pool
    with closing(sqlite3.connect(path)) as db:
        purposes = db.execute("SELECT purpose, COUNT(*) FROM upstream_calls GROUP BY 1").fetchall()
    assert sorted(purposes) == [("demand", 1), ("harvest", 4)]
    store.close()

    restarted = SqliteStore(path)  # a restart: new store, new budgets, the same file
    restarted.migrate()
    again = Budgets.from_settings(Settings(database=path, newsapi_quota="5/day"), restarted)
    assert [limit.used for limit in again.standing("newsapi").limits] == [5]
    assert refused(again, "newsapi", "harvest").retry_after > DAY - 60
    restarted.close()


def test_instances_sharing_postgres_make_exactly_the_limit(pg_url):
    stores = [PostgresStore(pg_url), PostgresStore(pg_url)]  # two instances, pools of their own
    try:
        stores[0].migrate()
        budgets = [Budgets(store, {"newsapi": "5/day"}, 0.2) for store in stores]
        start = threading.Barrier(8)

        def work(n: int) -> int:
            start.wait()
            return _take_many(budgets[n % 2], tries=12)

        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(work, range(8))) == 5
        standing = budgets[1].standing("newsapi")
        assert [limit.used for limit in standing.limits] == [5]
        # On the server's clock: the next call when the first of them leaves the day.
        assert standing.next_call_at is not None
        wait = (standing.next_call_at - datetime.now(UTC)).total_seconds()
        assert DAY - 60 < wait <= DAY
        error = refused(budgets[0], "newsapi", "harvest")
        assert DAY - 60 < error.retry_after <= DAY
    finally:
        for store in stores:
            store.close()


# -- settings ------------------------------------------------------------------------------


def test_budget_settings_are_read_and_travel_to_workers():
    settings = Settings.from_env(
        {
            "NEWSAGG_NEWSAPI_QUOTA": " 5/minute; 20/day ",
            "NEWSAGG_ON_DEMAND_SHARE": "0.5",
            "NEWSAGG_HARVEST": "off",
            "NEWSAGG_ARCHIVE_DAYS": "0",
        }
    )
    assert settings.newsapi_quota == "5/minute; 20/day"
    assert (settings.on_demand_share, settings.harvest, settings.archive_days) == (0.5, False, 0)
    assert Settings.from_env(settings.to_env()) == settings
    defaults = Settings()
    assert (defaults.guardian_quota, defaults.hackernews_quota) == (
        "1/second;500/day",
        "10000/hour",
    )
    assert (defaults.on_demand_share, defaults.harvest, defaults.archive_days) == (0.2, True, 90)
    assert "`NEWSAGG_NEWSAPI_QUOTA`" in markdown_table()
    assert markdown_table() in (REPO / "README.md").read_text()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("NEWSAGG_NEWSAPI_QUOTA", "lots"),
        ("NEWSAGG_GUARDIAN_QUOTA", "1/fortnight"),
        ("NEWSAGG_HACKERNEWS_QUOTA", "0/hour"),
        ("NEWSAGG_ON_DEMAND_SHARE", "1.5"),
        ("NEWSAGG_ON_DEMAND_SHARE", "nan"),
        ("NEWSAGG_ON_DEMAND_SHARE", "a fifth"),
        ("NEWSAGG_HARVEST", "maybe"),
        ("NEWSAGG_ARCHIVE_DAYS", "-1"),
        ("NEWSAGG_ARCHIVE_DAYS", "1.5"),
    ],
)
def test_unusable_budget_settings_are_refused_by_name(name, raw):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_a_refusal_that_ends_in_time_is_waited_for(budgets, clock):
    budget = budgets(guardian="1/second")
    budget.take("guardian", "demand")
    waited: list[float] = []

    def wait(seconds: float) -> None:
        waited.append(seconds)
        clock.now += seconds

    budget.take_within("guardian", "demand", seconds=5, wait=wait)  # the next second
    assert waited == [pytest.approx(1.0)]
    with pytest.raises(UpstreamError) as refused:  # the next second is too late now
        budget.take_within("guardian", "demand", seconds=0.5, wait=wait)
    assert refused.value.code == "upstream_budget_spent" and len(waited) == 1
