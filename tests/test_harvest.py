"""The harvester: rounds against the simulator, coverage, budgets, leadership, schedule."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import run_cli

from newsagg.budget import parse_quota
from newsagg.harvest import Harvester
from newsagg.harvest.leadership import Leadership
from newsagg.harvest.schedule import (
    JITTER,
    Pace,
    after_failure,
    after_refusal,
    after_success,
    budget_pace,
    jittered,
)
from newsagg.request import FeedRequest
from newsagg.service import Service, make_providers
from providers.base import PROVIDER_NAMES, Query
from simulator import Fault

pytestmark = pytest.mark.timeout(30)


def _calls(simulator) -> dict[str, int]:
    return {name: simulator.calls(name) for name in PROVIDER_NAMES}


def _lead(service: Service) -> Harvester:
    harvester = service.harvester
    assert harvester is not None and harvester.leadership.hold()
    return harvester


def test_a_round_fills_the_archive_and_the_next_takes_only_what_is_new(service, simulator):
    harvester = _lead(service)
    first = {report.provider: report for report in harvester.round()}
    assert {name: first[name].outcome for name in PROVIDER_NAMES} == dict.fromkeys(
        PROVIDER_NAMES, "ok"
    )
    assert all(first[name].added > 0 for name in PROVIDER_NAMES)
    assert _calls(simulator) == dict.fromkeys(PROVIDER_NAMES, 1)  # one page each
    mark = service.store.harvest_states()["hackernews"].high_water_us

    simulator.publish("hackernews", title="Harvested zeppelin lands")
    second = {report.provider: report for report in harvester.round(force=True)}
    assert second["hackernews"].added == 1 and second["guardian"].added == 0
    assert _calls(simulator) == dict.fromkeys(PROVIDER_NAMES, 2)
    assert service.store.harvest_states()["hackernews"].high_water_us > mark
    found = service.store.search(FeedRequest.parse(q="zeppelin").archive_query(None))
    assert len(found) == 1
    # NewsAPI moves on to the next category each turn.
    assert set(service.store.harvest_states()["newsapi"].categories) == {
        "business",
        "entertainment",
    }


def test_a_covered_query_makes_no_upstream_call(service, simulator):
    _lead(service).round()
    before = _calls(simulator)
    page = asyncio.run(
        service.feed.page(FeedRequest.parse(q="rust", sources=["hackernews", "guardian"]))
    )
    assert page.cache_status == "hit" and _calls(simulator) == before
    # NewsAPI's harvest is top headlines: a search there is not covered.
    asyncio.run(service.feed.page(FeedRequest.parse(q="rust", sources=["newsapi"])))
    assert simulator.calls("newsapi") == before["newsapi"] + 1


def test_coverage_rules(service):
    view = _lead(service).view
    assert not view.covered("hackernews", Query())  # nothing harvested yet
    service.harvester.round()
    assert view.covered("hackernews", Query(q="anything"))
    covered_from = service.store.harvest_states()["guardian"].covered_from_us / 1e6
    later = datetime.fromtimestamp(covered_from + 60, UTC)
    assert view.covered("guardian", Query(published_from=later))
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert not view.covered("guardian", Query(published_from=week_ago))
    assert not view.covered("newsapi", Query(category="sports"))  # its turn has not come
    assert not view.covered("newsapi", Query())  # nor every category's


def test_the_harvester_never_spends_more_than_its_part(make_service, simulator):
    service = make_service(newsapi_quota="5/day")  # harvester's part: 4 (20 % on demand)
    harvester = _lead(service)
    outcomes = [
        next(r for r in harvester.round(force=True) if r.provider == "newsapi").outcome
        for _ in range(6)
    ]
    assert simulator.calls("newsapi") == 4
    assert outcomes == ["ok"] * 4 + ["upstream_budget_spent"] * 2
    state = service.store.harvest_states()["newsapi"]
    # Waited out: the next run is when the budget allows a call again, about a day on.
    assert state.next_run_us / 1e6 - time.time() > 23 * 3600
    assert harvester.standing("newsapi").last_error_code == "upstream_budget_spent"


def _contender(service: Service, holder: str) -> Harvester:
    """Another harvester on the same store, with short lease times."""
    assert service.budgets is not None and service.harvester is not None
    view = service.harvester.view
    return Harvester(
        make_providers(service.settings),
        service.store,
        service.budgets,
        service.feed.archive,
        service.metrics,
        view,
        {name: Pace(60, 60, 60, 60) for name in PROVIDER_NAMES},
        timeout=1.0,
        archive_days=0,
        leadership=Leadership(service.store, lease_seconds=0.6, renew_seconds=0.1, holder=holder),
        retry_seconds=(0.05, 0.1),
    )


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.timeout(60)
def test_one_leader_and_a_takeover(make_service, simulator, request, backend):
    changes = {} if backend == "sqlite" else {"database_url": request.getfixturevalue("pg_url")}
    service = make_service(**changes)
    first, second = _contender(service, "first"), _contender(service, "second")
    first.start()
    _wait_for(lambda: first.leadership.leading)
    second.start()
    _wait_for(lambda: simulator.calls("hackernews") >= 1)
    time.sleep(0.3)  # several of the second's tries: none may win while the first renews
    assert not second.leadership.leading and simulator.calls("hackernews") == 1
    first.stop()  # releases the lease: the second takes over and runs its own round
    _wait_for(lambda: second.leadership.leading)
    second.stop()
    assert not first.leadership.leading


def test_an_expired_lease_is_taken_over(service):
    store = service.store
    dead = Leadership(store, lease_seconds=0.2, holder="dead")
    alive = Leadership(store, lease_seconds=0.2, holder="alive")
    assert dead.hold() and not alive.hold()
    _wait_for(alive.hold)  # the dead holder never renews: its lease expires
    assert not dead.hold()


def test_schedule_adapts_with_bounds_jitter_and_backoff():
    pace = Pace(minimum=60, start=300, maximum=900, failure_cap=3600)
    assert after_success(pace, 300, added=0, full=False) == 450
    assert after_success(pace, 800, added=0, full=False) == 900  # capped
    assert after_success(pace, 300, added=3, full=True) == 150
    assert after_success(pace, 100, added=3, full=True) == 60  # floored
    assert after_success(pace, 300, added=3, full=False) == 300
    assert [after_failure(pace, n) for n in (1, 2, 3, 7, 50)] == [60, 120, 240, 3600, 3600]
    assert after_refusal(pace, 42.0) == 42.0 and after_refusal(pace, None) == 3600
    rng = random.Random(7)
    waits = [jittered(100, rng) for _ in range(500)]
    assert min(waits) >= 100 and max(waits) <= 100 * (1 + JITTER)
    assert max(waits) - min(waits) > 10  # it does spread them
    # NewsAPI's default: 40 harvest calls per 12 h (and 80 a day): one every 18 minutes.
    assert budget_pace(parse_quota("50/12 hours;100/day", 0.2)) == 1080


def test_failures_back_off_and_are_retried(service, simulator):
    harvester = _lead(service)
    simulator.set_fault("hackernews", Fault(kind="status", status=500))
    reports = [
        next(r for r in harvester.round(force=True) if r.provider == "hackernews") for _ in range(2)
    ]
    assert [r.outcome for r in reports] == ["upstream_error"] * 2
    state = service.store.harvest_states()["hackernews"]
    assert state.failures == 2 and state.high_water_us is None
    simulator.clear_faults()
    ok = next(r for r in harvester.round(force=True) if r.provider == "hackernews")
    assert ok.outcome == "ok" and service.store.harvest_states()["hackernews"].failures == 0


@pytest.mark.timeout(60)
def test_harvest_once_from_the_command_line(tmp_path, simulator):
    env = {
        "NEWSAGG_DATABASE": str(tmp_path / "cron.sqlite3"),
        "NEWSAGG_NEWSAPI_URL": simulator.base_url("newsapi"),
        "NEWSAGG_GUARDIAN_URL": simulator.base_url("guardian"),
        "NEWSAGG_HACKERNEWS_URL": simulator.base_url("hackernews"),
        "NEWSAGG_NEWSAPI_KEY": simulator.newsapi_key,
        "NEWSAGG_GUARDIAN_KEY": simulator.guardian_key,
    }
    done = run_cli(env, "harvest", "--once")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["newsapi", "guardian", "hackernews"]
    assert all(": ok, " in line for line in lines)
    assert simulator.guardian_key not in done.stdout + done.stderr
    again = run_cli(env, "harvest", "--once")  # nothing due yet: no call
    assert again.returncode == 0 and all("not due" in line for line in again.stdout.splitlines())


def test_demo_mode_harvests_in_seconds_in_every_worker(tmp_path):
    """`serve --demo` hands workers settings naming its simulator (not demo mode): the
    demo pace must travel with them, or a newcomer waits minutes to see a new story."""
    from edge.demo import with_simulator
    from newsagg.service import build_service
    from newsagg.settings import Settings

    settings, simulator = with_simulator(Settings(database=str(tmp_path / "demo.sqlite3")))
    try:
        worker = Settings.from_env(settings.to_env())
        assert not worker.demo and worker.harvest_pace == "demo"
        service = build_service(worker)
        try:
            service.harvester.round()
            standing = service.harvester.standing("hackernews")
            wait = standing.next_harvest_at - standing.last_harvested_at
            assert wait.total_seconds() <= 60
        finally:
            service.close()
    finally:
        simulator.stop()
