"""What every store offers the core, by concern: one protocol per concern, so that a consumer
names the narrow one it needs, and `Store`, their sum; their records are defined beside
their SQL. SQLite and PostgreSQL implement every concern alike, with the
repositories of newsagg.store.keys, .ledger, .archive, .push and .leases; the upkeep of
the database is each engine's own (newsagg.store.sqlite_upkeep; PostgreSQL's autovacuum)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from newsagg.query.analysis import Analyzer
from newsagg.store.archive import (
    Answer,
    ArchivedRow,
    ArchiveQuery,
    ArticleRecord,
    NewArticle,
)
from newsagg.store.dialect import scans
from newsagg.store.keys import KeyRecord
from newsagg.store.leases import HarvestState
from newsagg.store.ledger import BudgetCheck, BudgetVerdict, Window
from newsagg.store.migrations import Migration
from newsagg.store.push import (
    DeliveryDraft,
    DeliveryRecord,
    DueDelivery,
    Outcome,
    SearchRecord,
)
from newsagg.stories.model import StoryRef


class Backend(Protocol):
    # Whether a call waits on the network (a database server) rather than a local file:
    # callers on the event loop then make every call from a worker thread, and on a local
    # file only the calls marked `scans` (see `store.without_blocking`).
    waits_on_network: bool
    # The worker threads those calls are made on; None: the event loop's default ones.
    threads: Executor | None


class KeyStore(Backend, Protocol):
    """API keys, and the service's own secrets."""

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

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The value stored under `name`, created by `make()` the first time (race-safe)."""
        ...


class LedgerStore(Backend, Protocol):
    """Rate-limit windows (newsagg.ratelimit) and upstream budgets (newsagg.budget), each
    count-then-insert atomic across every process and instance on the database."""

    def window_hit(self, key_id: int, limit: int, window_seconds: float) -> Window:
        """Count one request of `key_id` if fewer than `limit` were counted in the last
        `window_seconds`."""
        ...

    def window_peek(self, key_id: int, window_seconds: float) -> Window: ...

    def window_refund(self, key_id: int, entry: str, window_seconds: float) -> Window:
        """Take back the request that `window_hit` counted as `entry`."""
        ...

    # `now_us` None: the store's own clock (wall clock on SQLite, the server's on
    # PostgreSQL); tests pass a clock of their own.

    def budget_take(
        self,
        provider: str,
        purpose: str,
        key_id: int | None,
        checks: Sequence[BudgetCheck],
        now_us: int | None = None,
    ) -> BudgetVerdict:
        """Record one call of `provider` for `purpose` (and `key_id`) if every check passes;
        ledger rows older than the longest window are dropped in the same transaction."""
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


class ArchiveStore(Backend, Protocol):
    """Articles: their stable ids, the archive's search, and pruning."""

    analyzer: Analyzer  # how the full-text index and the searches see text

    def save_articles(
        self,
        articles: Iterable[ArticleRecord | tuple[str, int, dict[str, Any]]],
        answer: Answer | None = None,
    ) -> list[int]:
        """Upsert articles (ArticleRecord, or a (canonical url, rank, data) triple); answer
        their ids, in order. `answer`: they are an upstream's answer to a query, asked
        exactly, and match it from now on (newsagg.query.upstream.answer_key).

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

    def merge_stories(self, limit: int, budget_seconds: float = float("inf")) -> tuple[int, int]:
        """The stories' periodic merge step (newsagg.store.stories)."""
        ...

    @scans
    def stories_found(self, query: ArchiveQuery) -> list[int]:
        """The ids of the stories of a search's rows (newsagg.store.archive)."""
        ...

    def place_strays(self, limit: int) -> int:
        """Articles without a story placed in one (newsagg.store.stories)."""
        ...

    def rebuild_stories(self) -> int:
        """Every article placed in a story anew (`newsagg stories rebuild`); how many."""
        ...

    def expire_bodies(self, limit: int) -> int:
        """Body texts past their time leave the index and the database, at most `limit`
        of them; how many left."""
        ...

    def reindex(self) -> int:
        """The full-text index made anew with `analyzer`; how many articles it holds."""
        ...

    def index_identity(self) -> str | None:
        """The identity of the analyzer the full-text index was made with."""
        ...

    def articles_after(self, article_id: int, limit: int) -> list[NewArticle]:
        """The archived articles with an id above `article_id`, in id (arrival) order."""
        ...

    def newest_article_id(self) -> int:
        """The highest article id (0 when the archive is empty): ids above it are new."""
        ...


class PushStore(Backend, Protocol):
    """Saved searches, their matches and their webhook deliveries (newsagg.push)."""

    def search_add(self, values: Mapping[str, Any], cap: int) -> SearchRecord | None: ...

    def search_get(self, search_id: int) -> SearchRecord | None: ...

    def searches_of(self, key_id: int | None) -> list[SearchRecord]: ...

    def search_update(self, search_id: int, changes: Mapping[str, Any]) -> SearchRecord | None: ...

    def search_delete(self, search_id: int) -> bool: ...

    def active_searches(self) -> list[SearchRecord]: ...

    def searches_live(self, search_ids: Sequence[int]) -> list[SearchRecord]: ...

    def push_watermark(self) -> int | None: ...

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
    ) -> list[tuple[int, int, str, StoryRef | None]]: ...

    def stories_sent(self, search_id: int, story_ids: Sequence[int]) -> dict[int, int]: ...

    def matched_searches_after(self, match_id: int, limit: int) -> list[tuple[int, int]]: ...

    def newest_match_id(self) -> int: ...

    def delivery_add(
        self, draft: DeliveryDraft, now_us: int, most: int | None = None, within_us: int = 0
    ) -> DeliveryRecord | int: ...

    def deliveries_claim(
        self,
        now_us: int,
        hold_us: int,
        limit: int,
        per_key: int | None = None,
        busy: Sequence[tuple[int | None, int]] = (),
        used: Sequence[int] = (),
    ) -> list[DueDelivery]: ...

    def deliveries_attempted(self, outcomes: Sequence[Outcome]) -> None: ...

    def deliveries_of(self, search_id: int, limit: int) -> list[DeliveryRecord]: ...


class LeaseStore(Backend, Protocol):
    """The harvester's state per provider and its leadership lease (newsagg.harvest)."""

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


@dataclass(frozen=True, slots=True)
class UpkeepStep:
    """One step of the database's upkeep (newsagg.upkeep)."""

    work: str = ""  # what it did: "analyze", "merge", "checkpoint", "truncate"; "": nothing
    # How long it took: analyze, merge and truncate hold the database's write lock (other
    # writers wait, readers never do) for all of it; a passive checkpoint holds none.
    seconds: float = 0.0
    more: bool = False  # more work is due now: take the next step after a pause


class UpkeepStore(Backend, Protocol):
    """What keeps the database fast as the archive grows (newsagg.upkeep runs it)."""

    def upkeep_step(self, budget_seconds: float) -> UpkeepStep:
        """Take the next step of upkeep that is due, sized to hold the write lock about
        `budget_seconds` (a step cannot always be cut that fine: see the engine's)."""
        ...


class Store(KeyStore, LedgerStore, ArchiveStore, PushStore, LeaseStore, UpkeepStore, Protocol):
    """Every concern over one database (the same logical schema, newsagg.store.migrations)."""

    def migrate(self) -> list[Migration]:
        """Apply the pending schema migrations under a lock; answer those applied now."""
        ...

    def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""
        ...

    def close(self) -> None: ...
