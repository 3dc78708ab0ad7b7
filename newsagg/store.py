"""SQLite persistence: stable article ids, API keys, and the service's own secrets.

One connection per thread (sqlite3 connections must not be shared across threads), WAL so
readers never wait for the writer, and a busy timeout so several worker processes can share
one database file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL UNIQUE,
    rank INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    admin INTEGER NOT NULL,
    prefix TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""


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


_KEY_COLUMNS = "id, name, tier, admin, prefix, created_at, revoked_at"


def _key_record(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        with self._transaction() as db:
            db.executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread=False only so close() can close every thread's connection.
            db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        with db:  # commits, or rolls back on an exception
            yield db

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # -- service secrets -------------------------------------------------------------

    def secret(self, name: str, make: Any) -> str:
        """The value stored under `name`, created by `make()` the first time (race-safe)."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta(name, value) VALUES (?, ?)", (name, make()))
            return db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    # -- articles --------------------------------------------------------------------

    def save_articles(self, articles: Iterable[tuple[str, int, dict[str, Any]]]) -> list[int]:
        """Upsert (canonical url, rank, data) triples; answer their ids, in order.

        The url is the identity: a story seen again keeps its id. Its data is replaced only
        by a record of equal or better rank (lower is better), so the stored record is the
        same one the feed shows when several providers carry the story.
        """
        with self._transaction() as db:
            ids = []
            for url, rank, data in articles:
                db.execute(
                    "INSERT INTO articles(url, rank, data) VALUES (?, ?, ?) "
                    "ON CONFLICT(url) DO UPDATE SET rank = excluded.rank, data = excluded.data "
                    "WHERE excluded.rank <= articles.rank",
                    (url, rank, json.dumps(data, separators=(",", ":"))),
                )
                ids.append(
                    db.execute("SELECT id FROM articles WHERE url = ?", (url,)).fetchone()[0]
                )
            return ids

    def article(self, article_id: int) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute("SELECT data FROM articles WHERE id = ?", (article_id,))
            .fetchone()
        )
        return None if row is None else json.loads(row[0])

    # -- API keys --------------------------------------------------------------------

    def add_key(
        self, *, name: str, tier: str, admin: bool, prefix: str, digest: str, created_at: str
    ) -> KeyRecord:
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO api_keys(name, tier, admin, prefix, digest, created_at) "
                f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {_KEY_COLUMNS}",
                (name, tier, int(admin), prefix, digest, created_at),
            ).fetchone()
        return _key_record(row)

    def has_digest(self, digest: str) -> bool:
        """Whether a key with this digest was ever stored, revoked or not."""
        row = (
            self._connection()
            .execute("SELECT 1 FROM api_keys WHERE digest = ?", (digest,))
            .fetchone()
        )
        return row is not None

    def _active_keys(self, where: str = "", params: tuple[Any, ...] = ()) -> list[KeyRecord]:
        rows = (
            self._connection()
            .execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL {where} ORDER BY id",
                params,
            )
            .fetchall()
        )
        return [_key_record(row) for row in rows]

    def active_key_by_digest(self, digest: str) -> KeyRecord | None:
        found = self._active_keys("AND digest = ?", (digest,))
        return found[0] if found else None

    def active_key(self, key_id: int) -> KeyRecord | None:
        found = self._active_keys("AND id = ?", (key_id,))
        return found[0] if found else None

    def active_keys(self) -> list[KeyRecord]:
        return self._active_keys()

    def revoke_key(self, key_id: int, revoked_at: str) -> bool:
        """Revoke an active key; False when there is no such active key."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (revoked_at, key_id),
            )
            return cursor.rowcount == 1
