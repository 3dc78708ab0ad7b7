"""The ledgers of calls counted against a limit, shared by every process and instance on the
database: API keys' rate-limit windows (newsagg.ratelimit) and upstream budgets
(newsagg.budget). Each count-then-insert takes its turn (a key's, a provider's), so two
processes counting 99 at once never both insert the 100th. Times are microseconds on
the store's clock (the machine's wall clock on SQLite, the server's on PostgreSQL).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from newsagg.store.dialect import Connection, Repository

# The turns taken, as PostgreSQL's advisory locks: (a class, a number) in the two-number
# lock space, the same in every instance. Keys or providers sharing a number just take
# turns together.
WINDOW_LOCK_CLASS = 72_653  # a key's rate-limit window
BUDGET_LOCK_CLASS = 72_654  # a provider's budget


@dataclass(frozen=True, slots=True)
class Window:
    """A key's rate-limit window as a store holds it, times in seconds on the store's clock."""

    count: int  # requests counted in the last `window_seconds`
    oldest: float | None  # when the oldest of them was counted
    now: float
    entry: str | None = None  # the request counted by this call, to refund it by


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


class Ledger(Repository):
    # -- rate-limit windows ----------------------------------------------------------

    def _window(self, db: Connection, key_id: int, window_us: int) -> tuple[Window, int]:
        """The key's window, and the store's clock it was read at (microseconds)."""
        p, now = self.db.param, self.db.now
        count, oldest, now_us = db.execute(
            f"SELECT COUNT(*), MIN(at_us), {now} FROM rate_limit_hits"
            f" WHERE key_id = {p} AND at_us > {now} - {p}",
            (key_id, window_us),
        ).fetchone()
        return Window(count, None if oldest is None else oldest / 1e6, now_us / 1e6), now_us

    def window_hit(self, key_id: int, limit: int, window_seconds: float) -> Window:
        """Count one request of `key_id` if fewer than `limit` were counted in the last
        `window_seconds`. A key's expired rows go at its next hit, so the table holds at
        most `limit` rows per key."""
        p, window_us = self.db.param, int(window_seconds * 1e6)
        with self.db.transaction() as db:
            # Before the first read: SQLite's write lock asked for after reading could fail
            # with "database is locked" instead of waiting its turn.
            self.db.take_turns(db, (WINDOW_LOCK_CLASS, key_id % 2**31))
            db.execute(
                f"DELETE FROM rate_limit_hits WHERE key_id = {p} AND at_us <= {self.db.now} - {p}",
                (key_id, window_us),
            )
            window, now_us = self._window(db, key_id, window_us)
            if window.count >= limit:
                return window
            (entry,) = db.execute(
                f"INSERT INTO rate_limit_hits(key_id, at_us) VALUES ({p}, {p}) RETURNING id",
                (key_id, now_us),
            ).fetchone()
            oldest = window.now if window.oldest is None else window.oldest
            return Window(window.count + 1, oldest, window.now, str(entry))

    def window_peek(self, key_id: int, window_seconds: float) -> Window:
        with self.db.transaction() as db:
            return self._window(db, key_id, int(window_seconds * 1e6))[0]

    def window_refund(self, key_id: int, entry: str, window_seconds: float) -> Window:
        """Take back the request that `window_hit` counted as `entry`."""
        p = self.db.param
        with self.db.transaction() as db:
            db.execute(
                f"DELETE FROM rate_limit_hits WHERE id = {p} AND key_id = {p}", (int(entry), key_id)
            )
            return self._window(db, key_id, int(window_seconds * 1e6))[0]

    # -- upstream budgets --------------------------------------------------------------
    # The store only counts and inserts; what the caps are is newsagg.budget's rule.
    # `now_us` None: the store's clock; tests pass a clock of their own.

    def budget_take(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        """Record one call of `provider` for `purpose` (and `key_id`) if every check
        passes; ledger rows older than the longest window are dropped first."""
        p = self.db.param
        with self.db.transaction() as db:
            self.db.take_turns(db, (BUDGET_LOCK_CLASS, zlib.crc32(provider.encode()) % 2**31))
            # Read after taking the turn: the previous holder's call is committed, counted.
            now = self._clock(db, now_us)
            if checks:
                longest = max(check.window_us for check in checks)
                db.execute(
                    f"DELETE FROM upstream_calls WHERE provider = {p} AND at_us <= {p}",
                    (provider, now - longest),
                )
            verdict = self._count(db, provider, purpose, key_id, checks, now)
            if verdict.granted:
                db.execute(
                    "INSERT INTO upstream_calls(provider, purpose, key_id, at_us)"
                    f" VALUES ({p}, {p}, {p}, {p})",
                    (provider, purpose, key_id, now),
                )
            return verdict

    def budget_peek(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        """What `budget_take` would answer now, recording nothing."""
        with self.db.transaction() as db:
            return self._count(db, provider, purpose, key_id, checks, self._clock(db, now_us))

    def _clock(self, db: Connection, now_us: int | None) -> int:
        if now_us is not None:
            return now_us
        return db.execute(f"SELECT {self.db.now}").fetchone()[0]

    def _count(
        self,
        db: Connection,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int,
    ) -> BudgetVerdict:
        """Count the ledger for each check. For a cap C with n >= C calls in the window,
        the check passes once the (n - C + 1) oldest of them have left it: at the
        (n - C)-th oldest call's time plus the window."""
        p = self.db.param
        counts = []
        for check in checks:
            since = now_us - check.window_us
            total, of_purpose, of_key = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN purpose = {p} THEN 1 ELSE 0 END), 0),"
                f" COALESCE(SUM(CASE WHEN key_id = {p} THEN 1 ELSE 0 END), 0)"
                f" FROM upstream_calls WHERE provider = {p} AND at_us > {p}",
                (purpose, key_id, provider, since),
            ).fetchone()
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
                (leaves_at,) = db.execute(
                    f"SELECT at_us FROM upstream_calls WHERE provider = {p} AND at_us > {p}{where}"
                    f" ORDER BY at_us LIMIT 1 OFFSET {p}",
                    (provider, since, *(() if value is None else (value,)), used - cap),
                ).fetchone()
                wait = max(wait, leaves_at + check.window_us - now_us)
            counts.append(BudgetCount(int(total), int(of_purpose), int(of_key), wait))
        verdict = BudgetVerdict(True, now_us, tuple(counts))
        return verdict if verdict.wait_us == 0 else BudgetVerdict(False, now_us, verdict.counts)
