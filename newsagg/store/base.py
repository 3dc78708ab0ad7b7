"""What every store backend offers the core: the `Store` interface and its records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from newsagg.store.migrations import Migration


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
