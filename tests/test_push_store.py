"""The push records (newsagg.store.push) on both backends, on a real SQLite file and a real
PostgreSQL server: the cap taken in the insert, the watermark moved by one matcher only,
a delivery claimed by one deliverer only, attempts recorded with the webhook given up,
and pruning that takes an article's matches with it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsagg.settings import Settings
from newsagg.store import Store, open_store
from newsagg.store.push import AttemptRecord, DeliveryDraft, Outcome

pytestmark = pytest.mark.timeout(60)

NOW = 1_800_000_000_000_000  # microseconds: a fixed clock


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    settings = Settings(database=str(tmp_path / "push.sqlite3"))
    if request.param == "postgres":
        settings = replace(settings, database_url=request.getfixturevalue("pg_url"))
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(settings))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


def search(store: Store, key_id: int, cap: int = 10, **values: object):
    fields = {
        "key_id": key_id,
        "name": "s",
        "sources": (),
        "paused": False,
        "created_us": NOW,
        "updated_us": NOW,
        "feed_nonce": "n",
        **values,
    }
    return store.search_add(fields, cap)


def article(n: int, published: datetime | None = None) -> tuple[str, int, dict]:
    when = published or datetime(2026, 11, 1, tzinfo=UTC)
    return (
        f"https://push.example/{n}",
        0,
        {
            "title": f"Drone {n}",
            "description": None,
            "url": f"https://push.example/{n}",
            "source": "guardian",
            "publisher": None,
            "author": None,
            "image_url": None,
            "category": "technology",
            "published_at": when.isoformat(),
        },
    )


def test_the_cap_is_part_of_the_insert_and_a_search_starts_after_the_newest(stores):
    store = stores()
    store.save_articles([article(1), article(2)])
    first = search(store, key_id=7, cap=2, sources=("guardian", "hackernews"))
    assert first is not None and first.after_id == store.newest_article_id()
    assert first.sources == ("guardian", "hackernews") and first.paused is False
    assert search(store, key_id=7, cap=2) is not None
    assert search(store, key_id=7, cap=2) is None  # the third, past the cap
    assert search(store, key_id=8, cap=2) is not None  # another key's count is its own
    assert [s.key_id for s in store.searches_of(7)] == [7, 7]
    assert len(store.searches_of(None)) == 3
    changed = store.search_update(first.id, {"paused": True, "sources": ()})
    assert changed is not None and changed.paused is True and changed.sources == ()
    with pytest.raises(ValueError, match="not updatable"):
        store.search_update(first.id, {"key_id": 8})


def test_one_matcher_moves_the_watermark(stores):
    one, other = stores(), stores()
    made = search(one, key_id=1)
    (article_id,) = one.save_articles([article(3)])
    assert one.record_matches(None, article_id, [(made.id, article_id)], [], NOW)
    # A second matcher that read the old watermark records nothing.
    assert not other.record_matches(None, article_id, [(made.id, article_id)], [], NOW)
    assert not other.record_matches(article_id - 1, article_id, [], [], NOW)
    assert one.push_watermark() == article_id
    assert [row[1] for row in other.matches_after(made.id, 0, 10)] == [article_id]


def test_a_delivery_is_claimed_once_and_attempts_can_give_the_webhook_up(stores):
    store = stores()
    made = search(store, key_id=1, webhook_url="https://a.example/h", webhook_secret="whsec_x")
    for n in range(6):
        store.delivery_add(DeliveryDraft(f"msg_{n}", made.id, "webhook.ping", "{}", 0), NOW)
    claimers = [stores() for _ in range(3)]
    claimed: list[list[int]] = []
    barrier = threading.Barrier(len(claimers))

    def claim(claimer: Store) -> None:
        barrier.wait(timeout=10)
        claimed.append([d.id for d in claimer.deliveries_claim(NOW, 60_000_000, 4)])

    threads = [threading.Thread(target=claim, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    every = [delivery_id for ids in claimed for delivery_id in ids]
    assert sorted(every) == sorted(set(every)) and len(every) == 6  # each exactly once
    assert store.deliveries_claim(NOW, 60_000_000, 10) == []  # all held

    first, second = sorted(every)[:2]
    attempt = AttemptRecord(NOW, 500, None, 12)
    store.deliveries_attempted(
        [
            Outcome(first, attempt, "pending", NOW + 5_000_000),
            Outcome(second, attempt, "failed", disable=(made.id, "gave up")),
        ]
    )
    given_up = store.search_get(made.id)
    assert given_up is not None and given_up.webhook_disabled_reason == "gave up"
    shown = {d.id: d for d in store.deliveries_of(made.id, 10)}
    assert (shown[first].status, shown[first].next_us) == ("pending", NOW + 5_000_000)
    assert shown[second].status == "failed" and shown[second].attempts == (attempt,)
    due = store.deliveries_claim(NOW + 5_000_000, 60_000_000, 10)  # the retry is due again
    assert [d.id for d in due] == [first] and due[0].attempts == 1 and due[0].disabled


def test_pruning_takes_the_matches_of_pruned_articles(stores):
    store = stores()
    made = search(store, key_id=1)
    old, new = store.save_articles(
        [article(4, datetime(2026, 1, 1, tzinfo=UTC)), article(5, datetime.now(UTC))]
    )
    store.record_matches(None, new, [(made.id, old), (made.id, new)], [], NOW)
    assert store.prune_articles(datetime.now(UTC) - timedelta(days=30)) == 1
    assert [row[1] for row in store.matches_after(made.id, 0, 10)] == [new]
    assert store.search_delete(made.id) and store.search_get(made.id) is None


def test_claims_take_turns_between_keys_and_between_a_keys_searches(stores):
    store = stores()
    hook = {"webhook_url": "https://a.example/h", "webhook_secret": "whsec_x"}
    noisy = [search(store, key_id=1, **hook) for _ in range(3)]
    quiet = search(store, key_id=2, **hook)
    # Twelve deliveries of one key, due before the other key's one.
    for n in range(12):
        draft = DeliveryDraft(f"msg_noisy_{n}", noisy[n // 4].id, "webhook.ping", "{}", 0)
        store.delivery_add(draft, NOW - 1000 + n)
    store.delivery_add(DeliveryDraft("msg_quiet", quiet.id, "webhook.ping", "{}", 0), NOW)

    due = store.deliveries_claim(NOW, 60_000_000, 4)
    assert "msg_quiet" in [d.msg_id for d in due]  # oldest first would be the noisy key's
    assert [d.key_id for d in due].count(1) == 3
    # The noisy key's three are one of each of its searches, not its oldest search's.
    assert {d.search_id for d in due if d.key_id == 1} == {s.id for s in noisy}

    # A key already holding attempts in flight gets only what its bound leaves it...
    in_flight = [(1, noisy[0].id), (1, noisy[0].id)]
    more = store.deliveries_claim(NOW, 60_000_000, 10, per_key=3, busy=in_flight)
    # ... and the search holding them waits for the key's other searches.
    assert [(d.key_id, d.search_id) for d in more] == [(1, noisy[1].id)]
    full = [*in_flight, (1, noisy[1].id)]
    assert store.deliveries_claim(NOW, 60_000_000, 10, per_key=3, busy=full) == []


def test_keys_that_used_the_senders_wait_for_one_that_did_not_however_old_their_queues(stores):
    store = stores()
    hook = {"webhook_url": "https://a.example/h", "webhook_secret": "whsec_x"}
    busy_keys = [search(store, key_id=k, **hook) for k in (1, 2)]
    newcomer = search(store, key_id=3, **hook)
    for n in range(6):  # two long-standing backlogs, older than anything of key 3
        draft = DeliveryDraft(f"msg_old_{n}", busy_keys[n % 2].id, "webhook.ping", "{}", 0)
        store.delivery_add(draft, NOW - 10_000 + n)
    store.delivery_add(DeliveryDraft("msg_new", newcomer.id, "webhook.ping", "{}", 0), NOW)
    # Keys 1 and 2 used the senders lately (2 the most), key 3 not at all.
    (first,) = store.deliveries_claim(NOW, 60_000_000, 1, per_key=4, used=[1, 2])
    assert first.msg_id == "msg_new"
    (second,) = store.deliveries_claim(NOW, 60_000_000, 1, per_key=4, used=[3, 1, 2])
    assert second.key_id == 1  # it used them less than key 2
