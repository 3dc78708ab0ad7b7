"""Persistence: stable article ids, API keys and the service's own secrets.

SQLite (one file, the embedded default) or PostgreSQL (`NEWSAGG_DATABASE_URL`, shared by
every instance); both implement `Store` over the same logical schema (store.migrations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsagg.store.base import DuplicateDigest, KeyRecord, Store
from newsagg.store.sqlite import SqliteStore

if TYPE_CHECKING:  # settings import the key tiers, which import the store
    from newsagg.settings import Settings

__all__ = ["DuplicateDigest", "KeyRecord", "Store", "open_store"]


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The configured store, its schema brought up to date unless `migrate` is False."""
    store: Store
    if settings.database_url:
        # Imported here so that SQLite deployments never load the PostgreSQL driver.
        from newsagg.store.postgres import PostgresStore

        store = PostgresStore(settings.database_url)
    else:
        store = SqliteStore(settings.database)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
