"""What the two database engines do differently, held once for every repository of a store.

A store is a sum of repositories (keys, ledger, archive, push, leases), each the SQL of
one concern, written once over the `Dialect` of its engine: how a parameter is marked,
one read, one transaction, the store's clock in SQL, and the few idioms SQLite and
PostgreSQL spell differently (taking turns between writers, skipping locked rows, telling
a unique-key violation). Connections (SQLite's per thread, PostgreSQL's pool) are the
engine's: newsagg.store.sqlite, newsagg.store.postgres.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, TypeVar

Engine = Literal["sqlite", "postgres"]  # as newsagg.store.migrations.DIALECTS names them

# A connection in a transaction, sqlite3's or psycopg's: `execute(sql, params)` answers a
# cursor with `fetchone()`, `fetchall()` and `rowcount` on both.
Connection = Any


class Dialect(Protocol):
    param: str  # how the driver marks a parameter: "?" (sqlite3) or "%s" (psycopg)
    # The store's clock, microseconds since the epoch, as an SQL expression: one clock for
    # every process on a file (SQLite) or every instance on a server (PostgreSQL).
    now: str
    # Appended to a subquery choosing rows to claim: PostgreSQL's claimers running at once
    # pass over each other's rows instead of all picking the same ones; SQLite has one
    # writer at a time anyway ("").
    skip_locked: str

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """A connection for one transaction: committed, or rolled back on an exception."""
        ...

    def take_turns(self, db: Connection, lock: tuple[int, int] | None) -> None:
        """From here to commit, transactions taking the same turn run one at a time, so
        that what this one reads next is what it writes on. SQLite: the file's write lock
        (every writer takes turns). PostgreSQL: the advisory `lock`, a pair of numbers the
        same in every instance; None where the next statement locks its own row."""
        ...

    def is_unique_violation(self, error: Exception, column: str) -> bool:
        """Whether `error` says a row already holds this value of UNIQUE `column`
        ("table.column")."""
        ...


class Repository:
    """One concern's SQL over one database. A store combines the repositories over one
    dialect (`db`), so a statement is written once for both engines."""

    def __init__(self, db: Dialect) -> None:
        self.db = db


Call = TypeVar("Call", bound=Callable[..., Any])


def scans(call: Call) -> Call:
    """Marks a store call whose time grows with what it reads (a search: milliseconds, tens
    of them for a frequent word), as opposed to a point lookup by key (microseconds on a
    local file): `store.without_blocking` makes it from a worker thread on every engine."""
    call.scans = True  # type: ignore[attr-defined]
    return call
