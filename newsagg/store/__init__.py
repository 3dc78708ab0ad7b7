"""Persistence: API keys, rate-limit windows and budgets, the archive, saved searches and
their push, the harvester's records, and the service's own secrets.

SQLite (one file, the embedded default) or PostgreSQL (`NEWSAGG_DATABASE_URL`, shared by
every instance); both implement `Store` over the same logical schema (store.migrations),
a repository per concern over one dialect (store.dialect). A consumer names the narrow
protocol it needs (`KeyStore`, `LedgerStore`, `ArchiveStore`, `PushStore`, `LeaseStore`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from newsagg.query.analysis import Analyzer
from newsagg.settings import SettingsError
from newsagg.store.base import (
    ArchiveStore,
    Backend,
    KeyStore,
    LeaseStore,
    LedgerStore,
    PushStore,
    Store,
    UpkeepStep,
    UpkeepStore,
)
from newsagg.store.keys import DuplicateDigest, KeyRecord
from newsagg.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from newsagg.settings import Settings

__all__ = [
    "ArchiveStore",
    "Backend",
    "DuplicateDigest",
    "KeyRecord",
    "KeyStore",
    "LeaseStore",
    "LedgerStore",
    "PushStore",
    "Store",
    "UpkeepStep",
    "UpkeepStore",
    "check_index",
    "open_store",
    "without_blocking",
]

T = TypeVar("T")


async def without_blocking(store: Backend, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, a call into `store`, made so that the event loop goes on meanwhile:
    on a worker thread when the store waits on the network or the call scans (a search,
    8-78 ms at p99 on SQLite, would stall every request and event stream of the process);
    inline for a point lookup in a local file, which takes microseconds, less than the hop
    to a thread and back. The threads are the store's own (`store.threads`: SQLite's few,
    each with its connection) or else the event loop's default ones."""
    if store.waits_on_network or getattr(call, "scans", False):
        context = contextvars.copy_context()  # the request id goes along, for the logs
        return await asyncio.get_running_loop().run_in_executor(
            store.threads, functools.partial(context.run, call, *args)
        )
    return call(*args)


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The configured store, its schema brought up to date unless `migrate` is False."""
    store: Store
    analyzer = Analyzer(settings.search_language)
    if settings.database_url:
        # Imported here so that SQLite deployments never load the PostgreSQL driver.
        from newsagg.store.postgres import PostgresStore

        store = PostgresStore(
            settings.database_url, analyzer=analyzer, story_rules=settings.story_rules()
        )
    else:
        store = SqliteStore(
            settings.database, analyzer=analyzer, story_rules=settings.story_rules()
        )
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


def check_index(store: Store) -> None:
    """Refuse an archive whose full-text index another analyzer made (another language, or
    another version of the stemmer or of Unicode): its terms are not the ones searched
    for, and SQLite could not remove its entries. `newsagg reindex` makes it anew."""
    made_with = store.index_identity()
    if made_with != store.analyzer.identity:
        raise SettingsError(
            f"the archive's search index was made for {made_with}, not for"
            f" {store.analyzer.identity} (NEWSAGG_SEARCH_LANGUAGE): run `newsagg reindex`"
            " once, with the service stopped, then start it again"
        )
