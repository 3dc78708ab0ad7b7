"""API keys and the service's own secrets (what it signs cursors and feed tokens with)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from newsagg.store.dialect import Repository


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


def _key(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])


class Keys(Repository):
    def add_key(
        self, *, name: str, tier: str, admin: bool, prefix: str, digest: str, created_at: str
    ) -> KeyRecord:
        p = self.db.param
        try:
            with self.db.transaction() as db:
                row = db.execute(
                    "INSERT INTO api_keys(name, tier, admin, prefix, digest, created_at)"
                    f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}) RETURNING {KEY_COLUMNS}",
                    (name, tier, admin, prefix, digest, created_at),
                ).fetchone()
        except Exception as exc:
            if self.db.is_unique_violation(exc, "api_keys.digest"):
                raise DuplicateDigest from None
            raise
        return _key(row)

    def has_digest(self, digest: str) -> bool:
        return bool(
            self.db.read(f"SELECT 1 FROM api_keys WHERE digest = {self.db.param}", (digest,))
        )

    def _active_keys(self, where: str = "", params: tuple[Any, ...] = ()) -> list[KeyRecord]:
        rows = self.db.read(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL {where} ORDER BY id",
            params,
        )
        return [_key(row) for row in rows]

    def active_key_by_digest(self, digest: str) -> KeyRecord | None:
        found = self._active_keys(f"AND digest = {self.db.param}", (digest,))
        return found[0] if found else None

    def active_key(self, key_id: int) -> KeyRecord | None:
        found = self._active_keys(f"AND id = {self.db.param}", (key_id,))
        return found[0] if found else None

    def active_keys(self) -> list[KeyRecord]:
        return self._active_keys()

    def revoke_key(self, key_id: int, revoked_at: str) -> bool:
        p = self.db.param
        with self.db.transaction() as db:
            cursor = db.execute(
                f"UPDATE api_keys SET revoked_at = {p} WHERE id = {p} AND revoked_at IS NULL",
                (revoked_at, key_id),
            )
            return cursor.rowcount == 1

    def secret(self, name: str, make: Callable[[], str]) -> str:
        p = self.db.param
        with self.db.transaction() as db:
            # A concurrent first insert makes this one wait, then do nothing; the SELECT,
            # a new statement, sees the winner's value (READ COMMITTED; SQLite: one writer).
            db.execute(
                f"INSERT INTO meta(name, value) VALUES ({p}, {p}) ON CONFLICT (name) DO NOTHING",
                (name, make()),
            )
            return db.execute(f"SELECT value FROM meta WHERE name = {p}", (name,)).fetchone()[0]
