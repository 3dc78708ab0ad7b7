"""What every store backend offers the core: the `Store` interface and its records."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from newsagg.store.archive import ArchivedRow, ArchiveQuery, to_us
from newsagg.store.migrations import Migration
from newsagg.store.push import (
    DeliveryDraft,
    DeliveryRecord,
    DueDelivery,
    NewArticle,
    Outcome,
    SearchRecord,
)


class DuplicateDigest(Exception):
    """A key with this digest is already stored (another process may have just added it)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: never the plaintext."""

    id: int
    name: str
    tier: str
    admin: bool
    prefix: str
    created_at: str
    revoked_at: str | None


KEY_COLUMNS = "id, name, tier, admin, prefix, created_at, revoked_at"


def key_record(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])


@dataclass(frozen=True, slots=True)
class Window:
    """A key's rate-limit window as a store holds it, times in seconds on the store's clock."""

    count: int  # requests counted in the last `window_seconds`
    oldest: float | None  # when the oldest of them was counted
    now: float
    entry: str | None = None  # the request counted by this call, to refund it by


class Store(Protocol):
    """Keys, articles and the service's secrets. SQLite and PostgreSQL implement it alike."""

    # Whether a call waits on the network (a database server) rather than a local file:
    # callers on the event loop then make it from a worker thread (see `store.without_blocking`).
    waits_on_network: bool

    def migrate(self) -> list[Migration]:
        """Apply the pending schema migrations under a lock; answer those applied now."""
        ...

    def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""
        ...

    def close(self) -> None: ...

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The value stored under `name`, created by `make()` the first time (race-safe)."""
        ...

    def save_articles(self, articles: Iterable[tuple[str, int, dict[str, Any]]]) -> list[int]:
        """Upsert (canonical url, rank, data) triples; answer their ids, in order.

        The url is the identity: a story seen again keeps its id. Its data is replaced only
        by a record of equal or better rank (lower is better), so the stored record is the
        same one the feed shows when several providers carry the story.
        """
        ...

    def article(self, article_id: int) -> dict[str, Any] | None: ...

    def search(self, query: ArchiveQuery) -> list[ArchivedRow]:
        """At most `query.limit` archived articles matching it, in its order."""
        ...

    def prune_articles(self, published_before: datetime) -> int:
        """Forget the articles published before then; answer how many."""
        ...

    def add_key(
        self, *, name: str, tier: str, admin: bool, prefix: str, digest: str, created_at: str
    ) -> KeyRecord:
        """Store a new key; DuplicateDigest when its digest is already stored."""
        ...

    def has_digest(self, digest: str) -> bool:
        """Whether a key with this digest was ever stored, revoked or not."""
        ...

    def active_key_by_digest(self, digest: str) -> KeyRecord | None: ...

    def active_key(self, key_id: int) -> KeyRecord | None: ...

    def active_keys(self) -> list[KeyRecord]: ...

    def revoke_key(self, key_id: int, revoked_at: str) -> bool:
        """Revoke an active key; False when there is no such active key."""
        ...

    def window_hit(self, key_id: int, limit: int, window_seconds: float) -> Window:
        """Count one request of `key_id` if fewer than `limit` were counted in the last
        `window_seconds` (atomically across every process on this database)."""
        ...

    def window_peek(self, key_id: int, window_seconds: float) -> Window: ...

    def window_refund(self, key_id: int, entry: str, window_seconds: float) -> Window:
        """Take back the request that `window_hit` counted as `entry`."""
        ...

    # -- upstream budgets (newsagg.budget) -------------------------------------------
    # The ledger of upstream calls. The store only counts and inserts; what the caps are
    # is newsagg.budget's rule. `now_us` None: the store's own clock (wall clock on
    # SQLite, the server's on PostgreSQL); tests pass a clock of their own.

    def budget_take(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        """Record one call of `provider` for `purpose` (and `key_id`) if every check passes,
        atomically across every process and instance on this database; ledger rows older
        than the longest window are dropped in the same transaction."""
        ...

    def budget_peek(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        """What `budget_take` would answer now, recording nothing."""
        ...

    # -- harvest ---------------------------------------------------------------------
    # The harvester's state per provider and its leadership lease (newsagg.harvest).

    def harvest_states(self) -> dict[str, HarvestState]:
        """Every provider's harvest state, by provider."""
        ...

    def harvest_save(self, state: HarvestState) -> None:
        """Store a provider's harvest state, replacing the one stored."""
        ...

    def lease_take(self, name: str, holder: str, seconds: float) -> bool:
        """Take the lease `name` for `holder`, or renew it, for `seconds` from now on the
        store's clock: granted when it is free, expired or already `holder`'s (atomically
        across every process and instance on this database)."""
        ...

    def lease_release(self, name: str, holder: str) -> None:
        """Give up the lease if `holder` holds it, so that another may take it at once."""
        ...

    def newest_article_id(self) -> int:
        """The highest article id (0 when the archive is empty): ids above it are new."""
        ...

    # -- saved searches and their push ---------------------------------------------------
    # Written once for both backends, with their meaning, in newsagg.store.push.PushRecords.

    def search_add(self, values: Mapping[str, Any], cap: int) -> SearchRecord | None: ...

    def search_get(self, search_id: int) -> SearchRecord | None: ...

    def searches_of(self, key_id: int | None) -> list[SearchRecord]: ...

    def search_update(self, search_id: int, changes: Mapping[str, Any]) -> SearchRecord | None: ...

    def search_delete(self, search_id: int) -> bool: ...

    def active_searches(self) -> list[SearchRecord]: ...

    def push_watermark(self) -> int | None: ...

    def articles_after(self, article_id: int, limit: int) -> list[NewArticle]: ...

    def record_matches(
        self,
        seen_up_to: int | None,
        now_seen_up_to: int,
        matches: Sequence[tuple[int, int]],
        deliveries: Sequence[DeliveryDraft],
        now_us: int,
    ) -> bool: ...

    def matches_after(
        self, search_id: int, match_id: int, limit: int
    ) -> list[tuple[int, int, str]]: ...

    def matched_searches_after(self, match_id: int, limit: int) -> list[tuple[int, int]]: ...

    def newest_match_id(self) -> int: ...

    def delivery_add(self, draft: DeliveryDraft, now_us: int) -> DeliveryRecord: ...

    def deliveries_claim(self, now_us: int, hold_us: int, limit: int) -> list[DueDelivery]: ...

    def deliveries_attempted(self, outcomes: Sequence[Outcome]) -> None: ...

    def deliveries_of(self, search_id: int, limit: int) -> list[DeliveryRecord]: ...


class KeyLookups:
    """The key reads both backends make alike: each supplies `_read` and its placeholder."""

    PARAM: str  # how the driver marks a parameter: "?" (sqlite3) or "%s" (psycopg)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def has_digest(self, digest: str) -> bool:
        return bool(self._read(f"SELECT 1 FROM api_keys WHERE digest = {self.PARAM}", (digest,)))

    def _active_keys(self, where: str = "", params: tuple[Any, ...] = ()) -> list[KeyRecord]:
        rows = self._read(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL {where} ORDER BY id",
            params,
        )
        return [key_record(row) for row in rows]

    def active_key_by_digest(self, digest: str) -> KeyRecord | None:
        found = self._active_keys(f"AND digest = {self.PARAM}", (digest,))
        return found[0] if found else None

    def active_key(self, key_id: int) -> KeyRecord | None:
        found = self._active_keys(f"AND id = {self.PARAM}", (key_id,))
        return found[0] if found else None

    def active_keys(self) -> list[KeyRecord]:
        return self._active_keys()


# -- upstream budgets ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """One limit as the store applies it: in the last `window_us` before now, fewer than
    `max_total` calls of the provider, fewer than `max_purpose` of the call's purpose and
    fewer than `max_key` of its API key may have been made for the call to be granted
    (None: no such cap; 0: never)."""

    window_us: int
    max_total: int | None = None
    max_purpose: int | None = None
    max_key: int | None = None


@dataclass(frozen=True, slots=True)
class BudgetCount:
    """One check's window as counted before the call (the call itself not included)."""

    total: int  # calls of the provider
    purpose: int  # of them, calls of the call's purpose
    key: int  # of them, calls of the call's API key
    # 0: the check passes now; else microseconds until it would, if no other call is made
    # meanwhile (rows leave the moving window one by one); None: never (a cap of 0).
    wait_us: int | None


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    granted: bool  # by budget_take: the call is recorded; by budget_peek: it would be
    now_us: int  # the store's clock, microseconds since the epoch
    counts: tuple[BudgetCount, ...]  # one per check, in order

    @property
    def wait_us(self) -> int | None:
        """Microseconds until every check passes (0 when granted; None: never)."""
        waits = [count.wait_us for count in self.counts]
        if None in waits:
            return None
        return max((wait for wait in waits if wait is not None), default=0)


Rows = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]  # run one statement, its rows


def count_budget(
    rows: Rows,
    param: str,
    provider: str,
    purpose: str,
    key_id: int | None,
    checks: Sequence[BudgetCheck],
    now_us: int,
) -> BudgetVerdict:
    """Count the ledger for each check (both backends alike; the caller holds whatever lock
    makes count-then-insert atomic). For a cap C with n >= C calls in the window, the
    check passes once the (n - C + 1) oldest of them have left it: at the (n - C)-th oldest
    call's time plus the window."""
    p = param
    counts = []
    for check in checks:
        since = now_us - check.window_us
        total, of_purpose, of_key = rows(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN purpose = {p} THEN 1 ELSE 0 END), 0),"
            f" COALESCE(SUM(CASE WHEN key_id = {p} THEN 1 ELSE 0 END), 0)"
            f" FROM upstream_calls WHERE provider = {p} AND at_us > {p}",
            (purpose, key_id, provider, since),
        )[0]
        wait: int | None = 0
        for cap, used, where, value in (
            (check.max_total, total, "", None),
            (check.max_purpose, of_purpose, f" AND purpose = {p}", purpose),
            (check.max_key, of_key, f" AND key_id = {p}", key_id),
        ):
            if cap is None or used < cap or wait is None:
                continue
            if cap <= 0:
                wait = None
                continue
            (leaves_at,) = rows(
                f"SELECT at_us FROM upstream_calls WHERE provider = {p} AND at_us > {p}{where}"
                f" ORDER BY at_us LIMIT 1 OFFSET {p}",
                (provider, since, *(() if value is None else (value,)), used - cap),
            )[0]
            wait = max(wait, leaves_at + check.window_us - now_us)
        counts.append(BudgetCount(int(total), int(of_purpose), int(of_key), wait))
    verdict = BudgetVerdict(True, now_us, tuple(counts))
    return verdict if verdict.wait_us == 0 else BudgetVerdict(False, now_us, verdict.counts)


def take_budget(
    rows: Rows,
    param: str,
    provider: str,
    purpose: str,
    key_id: int | None,
    checks: Sequence[BudgetCheck],
    now_us: int,
) -> BudgetVerdict:
    """Forget the calls older than the longest window, count, and record the call if every
    check allows it (both backends alike; the caller holds the provider's write lock)."""
    p = param
    if checks:
        longest = max(check.window_us for check in checks)
        rows(
            f"DELETE FROM upstream_calls WHERE provider = {p} AND at_us <= {p}",
            (provider, now_us - longest),
        )
    verdict = count_budget(rows, p, provider, purpose, key_id, checks, now_us)
    if verdict.granted:
        rows(
            "INSERT INTO upstream_calls(provider, purpose, key_id, at_us)"
            f" VALUES ({p}, {p}, {p}, {p})",
            (provider, purpose, key_id, now_us),
        )
    return verdict


# -- harvest -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HarvestState:
    """One provider's harvest schedule and progress; times in microseconds since the epoch."""

    provider: str
    high_water_us: int | None = None  # the newest story harvested so far
    covered_from_us: int | None = None  # since when the harvest has taken everything
    last_run_us: int | None = None
    last_success_us: int | None = None
    last_error_code: str | None = None  # of the last run, None when it succeeded
    last_error_message: str | None = None
    next_run_us: int | None = None  # None: due now
    interval_ms: int | None = None  # the current interval (None: the schedule's start)
    failures: int = 0  # consecutive failed runs
    category_cursor: int = 0  # NewsAPI: the index of the category whose turn is next
    categories: Mapping[str, int] = field(default_factory=dict)  # category -> harvested at
    added_last: int = 0  # articles the last run added


HARVEST_COLUMNS = (
    "provider, high_water_us, covered_from_us, last_run_us, last_success_us,"
    " last_error_code, last_error_message, next_run_us, interval_ms, failures,"
    " category_cursor, categories, added_last"
)


def harvest_state(row: Sequence[Any]) -> HarvestState:
    return HarvestState(*row[:11], json.loads(row[11]), row[12])


def harvest_upsert(param: str, state: HarvestState) -> tuple[str, tuple[Any, ...]]:
    """The statement storing `state` (both dialects), and its parameters."""
    names = [name.strip() for name in HARVEST_COLUMNS.split(",")]
    values = (
        state.provider,
        state.high_water_us,
        state.covered_from_us,
        state.last_run_us,
        state.last_success_us,
        state.last_error_code,
        state.last_error_message,
        state.next_run_us,
        state.interval_ms,
        state.failures,
        state.category_cursor,
        json.dumps(dict(state.categories), sort_keys=True),
        state.added_last,
    )
    sql = (
        f"INSERT INTO harvest_state({HARVEST_COLUMNS}) VALUES ({', '.join([param] * len(names))})"
        " ON CONFLICT (provider) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    )
    return sql, values


def lease_sql(param: str, now: str) -> str:
    """One statement taking or renewing a lease (parameters: name, holder, duration in
    microseconds): it returns a row only when granted. `now` is the store's clock in SQL.
    Atomic by itself: the conflicting row is locked while its WHERE is judged."""
    p = param
    return (
        f"INSERT INTO harvest_leases(name, holder, expires_us) VALUES ({p}, {p}, {now} + {p})"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " expires_us = excluded.expires_us"
        f" WHERE harvest_leases.holder = excluded.holder OR harvest_leases.expires_us <= {now}"
        " RETURNING holder"
    )


class HarvestRecords:
    """The harvester's state and lease, read and written alike by both backends: each
    supplies `_read`, `_transaction` and its placeholder (taking the lease differs)."""

    PARAM: str

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def harvest_states(self) -> dict[str, HarvestState]:
        rows = self._read(f"SELECT {HARVEST_COLUMNS} FROM harvest_state")
        return {row[0]: harvest_state(row) for row in rows}

    def harvest_save(self, state: HarvestState) -> None:
        sql, params = harvest_upsert(self.PARAM, state)
        with self._transaction() as db:
            db.execute(sql, params)

    def lease_release(self, name: str, holder: str) -> None:
        p = self.PARAM
        with self._transaction() as db:
            db.execute(
                f"DELETE FROM harvest_leases WHERE name = {p} AND holder = {p}", (name, holder)
            )


class ArchivePruning:
    """Forgetting old articles, alike on both backends (each supplies `_transaction` and its
    placeholder)."""

    PARAM: str

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def prune_articles(self, published_before: datetime) -> int:
        p, before = self.PARAM, to_us(published_before)
        with self._transaction() as db:
            # Their matches first: a stream or a feed never points at a missing article.
            db.execute(
                "DELETE FROM search_matches WHERE article_id IN"
                f" (SELECT id FROM articles WHERE published_us < {p})",
                (before,),
            )
            return db.execute(f"DELETE FROM articles WHERE published_us < {p}", (before,)).rowcount
