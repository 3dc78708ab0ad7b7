"""Saved searches, their matches and their webhook deliveries (newsagg.push).

Times are microseconds since the epoch, given by the caller, so that the core's clock
decides (and tests can set it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from itertools import chain
from typing import Any

from newsagg.store.dialect import Connection, Repository
from newsagg.store.migrations import NEWEST_ARTICLE_ID
from newsagg.stories.model import StoryRef, story_ref

SEARCH_FIELDS = (
    "id", "key_id", "name", "q", "category", "sources", "paused", "created_us", "updated_us",
    "after_id", "feed_nonce", "webhook_url", "webhook_secret", "webhook_old_secret",
    "webhook_old_until_us", "webhook_disabled_us", "webhook_disabled_reason", "group_by",
)  # fmt: skip
SEARCH_COLUMNS = ", ".join(SEARCH_FIELDS)
# What an update may set: every column but the identity, the owner and the creation.
UPDATABLE = frozenset(SEARCH_FIELDS) - {"id", "key_id", "created_us", "after_id"}
WATERMARK = "push_watermark"  # meta: the newest article id the matcher has looked at
# A search (the `searches` row in the statement) whose key is not revoked.
_LIVE = (
    "NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = searches.key_id"
    " AND k.revoked_at IS NOT NULL)"
)
DELIVERY_LOCK_CLASS = 72_655  # a search's deliveries of one kind, counted against a limit
# The due deliveries ranked for a fair claim: `search_turn` numbers each search's, oldest
# first, after the attempts of the search in flight ({search_held}); `place` numbers each
# key's by search turn, so that a key's searches take turns; `turn` adds the attempts of the
# key in flight ({held}), and `used` how much the key used the senders lately ({used}), so
# that keys take turns.
_RANKED = (
    "SELECT id, next_us, place + {held} AS turn, {used} AS used FROM (SELECT id, key_id,"
    " next_us, ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY search_turn, next_us, id)"
    " AS place FROM (SELECT d.id, d.next_us, COALESCE(s.key_id, 0) AS key_id, {search_held}"
    " + ROW_NUMBER() OVER (PARTITION BY d.search_id ORDER BY d.next_us, d.id) AS search_turn"
    " FROM webhook_deliveries d LEFT JOIN searches s ON s.id = d.search_id"
    " WHERE d.status = 'pending' AND d.next_us <= {p}"
    " AND (d.claimed_until_us IS NULL OR d.claimed_until_us <= {p})) AS by_search) AS by_key"
)


def _taken(column: str, counts: Mapping[int, int], p: str) -> str:
    """SQL of `column`'s value's number in `counts` (0 for none), its pairs as parameters."""
    return f"(CASE {column}{f' WHEN {p} THEN {p}' * len(counts)} ELSE 0 END)" if counts else "0"


@dataclass(frozen=True, slots=True)
class SearchRecord:
    id: int
    key_id: int  # the owner
    name: str
    q: str | None
    category: str | None
    sources: tuple[str, ...]  # empty: every provider
    paused: bool
    created_us: int
    updated_us: int
    after_id: int  # it matches the articles with a higher id (those newer than it)
    feed_nonce: str  # rotating it changes the feed token
    webhook_url: str | None
    webhook_secret: str | None
    webhook_old_secret: str | None  # the previous secret, valid until webhook_old_until_us
    webhook_old_until_us: int | None
    webhook_disabled_us: int | None  # when its deliveries were given up
    webhook_disabled_reason: str | None
    group_by: str | None = None  # "story": a story is sent once, then as it grows


def _search(row: Sequence[Any]) -> SearchRecord:
    values = list(row)
    values[5] = tuple(name for name in row[5].split(",") if name)
    values[6] = bool(row[6])
    return SearchRecord(*values)


def _stored(field: str, value: Any) -> Any:
    return ",".join(value or ()) if field == "sources" else value


@dataclass(frozen=True, slots=True)
class DeliveryDraft:
    msg_id: str
    search_id: int
    kind: str  # "articles.matched" | "webhook.ping"
    body: str  # the JSON sent on every attempt
    article_count: int


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery and what sending it needs (the search's webhook as it is now)."""

    id: int
    msg_id: str
    search_id: int
    kind: str
    body: str
    attempts: int  # made so far
    webhook_url: str | None
    secrets: tuple[str, ...]  # current first; the previous one while it is still valid
    disabled: bool
    key_id: int | None = None  # the search's owner (None: the search is gone)
    revoked: bool = False  # its owner's key is revoked: nothing is sent any more


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    at_us: int
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """One delivery after one attempt."""

    delivery_id: int
    attempt: AttemptRecord
    status: str  # "pending" (retry at next_us) | "delivered" | "failed"
    next_us: int | None = None
    disable: tuple[int, str] | None = None  # (search id, reason): give its webhook up


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    msg_id: str
    kind: str
    created_us: int
    status: str  # "pending" | "delivered" | "failed"
    article_count: int
    next_us: int | None
    attempts: tuple[AttemptRecord, ...]  # oldest first


class Push(Repository):
    # -- searches --------------------------------------------------------------------

    def search_add(self, values: Mapping[str, Any], cap: int) -> SearchRecord | None:
        """Store a new search of `values["key_id"]` unless its owner holds `cap` already
        (None then). Its `after_id` is the newest article id now."""
        p = self.db.param
        names = [name for name in SEARCH_FIELDS if name not in ("id", "after_id")]
        params = tuple(_stored(name, values.get(name)) for name in names)
        with self.db.transaction() as db:
            rows = db.execute(
                f"INSERT INTO searches({', '.join(names)}, after_id)"
                f" SELECT {', '.join([p] * len(names))},"
                f" ({NEWEST_ARTICLE_ID})"
                f" WHERE (SELECT COUNT(*) FROM searches WHERE key_id = {p}) < {p}"
                f" RETURNING {SEARCH_COLUMNS}",
                (*params, values["key_id"], cap),
            ).fetchall()
        return _search(rows[0]) if rows else None

    def search_get(self, search_id: int) -> SearchRecord | None:
        rows = self.db.read(
            f"SELECT {SEARCH_COLUMNS} FROM searches WHERE id = {self.db.param}", (search_id,)
        )
        return _search(rows[0]) if rows else None

    def searches_of(self, key_id: int | None) -> list[SearchRecord]:
        """A key's searches (every search for None), oldest first."""
        where, params = (
            ("", ()) if key_id is None else (f" WHERE key_id = {self.db.param}", (key_id,))
        )
        rows = self.db.read(f"SELECT {SEARCH_COLUMNS} FROM searches{where} ORDER BY id", params)
        return [_search(row) for row in rows]

    def search_update(self, search_id: int, changes: Mapping[str, Any]) -> SearchRecord | None:
        p = self.db.param
        unknown = set(changes) - UPDATABLE
        if unknown or not changes:
            raise ValueError(f"not updatable: {sorted(unknown) or 'nothing given'}")
        assignments = ", ".join(f"{name} = {p}" for name in changes)
        with self.db.transaction() as db:
            rows = db.execute(
                f"UPDATE searches SET {assignments} WHERE id = {p} RETURNING {SEARCH_COLUMNS}",
                (*(_stored(name, value) for name, value in changes.items()), search_id),
            ).fetchall()
        return _search(rows[0]) if rows else None

    def search_delete(self, search_id: int) -> bool:
        p = self.db.param
        with self.db.transaction() as db:
            db.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN"
                f" (SELECT id FROM webhook_deliveries WHERE search_id = {p})",
                (search_id,),
            )
            db.execute(f"DELETE FROM webhook_deliveries WHERE search_id = {p}", (search_id,))
            db.execute(f"DELETE FROM search_matches WHERE search_id = {p}", (search_id,))
            db.execute(f"DELETE FROM search_stories WHERE search_id = {p}", (search_id,))
            return db.execute(f"DELETE FROM searches WHERE id = {p}", (search_id,)).rowcount == 1

    def searches_live(self, search_ids: Sequence[int]) -> list[SearchRecord]:
        """Those of these searches whose key is not revoked (a search of a revoked key is
        kept for an admin, and serves nothing): read from the store, for every instance."""
        marks = ", ".join([self.db.param] * len(search_ids)) or "NULL"
        rows = self.db.read(
            f"SELECT {SEARCH_COLUMNS} FROM searches WHERE id IN ({marks}) AND {_LIVE}",
            tuple(search_ids),
        )
        return [_search(row) for row in rows]

    def active_searches(self) -> list[SearchRecord]:
        """The searches that match: not paused, of a key that is not revoked."""
        columns = ", ".join(f"s.{name}" for name in SEARCH_FIELDS)
        rows = self.db.read(
            f"SELECT {columns} FROM searches s JOIN api_keys k ON k.id = s.key_id"
            " WHERE k.revoked_at IS NULL AND s.paused = FALSE ORDER BY s.id"
        )
        return [_search(row) for row in rows]

    # -- matching --------------------------------------------------------------------

    def push_watermark(self) -> int | None:
        """The newest article id the matcher has looked at; None before its first run."""
        rows = self.db.read(f"SELECT value FROM meta WHERE name = {self.db.param}", (WATERMARK,))
        return int(rows[0][0]) if rows else None

    def record_matches(
        self,
        seen_up_to: int | None,
        now_seen_up_to: int,
        matches: Sequence[tuple[int, int]],
        deliveries: Sequence[DeliveryDraft],
        now_us: int,
        stories_sent: Sequence[tuple[int, int, int]] = (),
    ) -> bool:
        """Store (search id, article id) matches and their deliveries and move the watermark
        from `seen_up_to` to `now_seen_up_to`, all or nothing; False (nothing stored) when
        the watermark is no longer `seen_up_to` (another matcher got there first).
        `stories_sent`: (search id, story id, size) of the stories sent to searches grouped
        by story."""
        p = self.db.param
        with self.db.transaction() as db:
            if seen_up_to is None:
                moved = db.execute(
                    f"INSERT INTO meta(name, value) VALUES ({p}, {p})"
                    " ON CONFLICT (name) DO NOTHING",
                    (WATERMARK, str(now_seen_up_to)),
                ).rowcount
            else:
                moved = db.execute(
                    f"UPDATE meta SET value = {p} WHERE name = {p} AND value = {p}",
                    (str(now_seen_up_to), WATERMARK, str(seen_up_to)),
                ).rowcount
            if moved != 1:
                return False
            for search_id, article_id in matches:
                db.execute(
                    "INSERT INTO search_matches(search_id, article_id, matched_us)"
                    f" VALUES ({p}, {p}, {p}) ON CONFLICT (search_id, article_id) DO NOTHING",
                    (search_id, article_id, now_us),
                )
            for draft in deliveries:
                self._add_delivery(db, draft, now_us)
            for search_id, story_id, size in stories_sent:
                db.execute(
                    "INSERT INTO search_stories(search_id, story_id, sent_size)"
                    f" VALUES ({p}, {p}, {p}) ON CONFLICT (search_id, story_id)"
                    " DO UPDATE SET sent_size = excluded.sent_size",
                    (search_id, story_id, size),
                )
        return True

    def matches_after(
        self, search_id: int, match_id: int, limit: int
    ) -> list[tuple[int, int, str, StoryRef | None]]:
        """(match id, article id, article JSON without id, its story) of a search's matches after
        `match_id`, oldest first; a match whose article was pruned is skipped, and none
        once the search's key is revoked."""
        p = self.db.param
        rows = self.db.read(
            "SELECT m.id, a.id, a.data, s.id, s.size, s.publishers, s.providers"
            " FROM search_matches m JOIN articles a ON a.id = m.article_id"
            " JOIN searches ON searches.id = m.search_id LEFT JOIN story_members sm"
            " ON sm.article_id = a.id LEFT JOIN stories s ON s.id = sm.story_id"
            f" WHERE m.search_id = {p} AND m.id > {p} AND {_LIVE} ORDER BY m.id LIMIT {p}",
            (search_id, match_id, limit),
        )
        return [(*row[:3], story_ref(*row[3:])) for row in rows]

    def matched_searches_after(self, match_id: int, limit: int) -> list[tuple[int, int]]:
        """(match id, search id) of every match after `match_id`, oldest first."""
        p = self.db.param
        return self.db.read(
            f"SELECT id, search_id FROM search_matches WHERE id > {p} ORDER BY id LIMIT {p}",
            (match_id, limit),
        )

    def newest_match_id(self) -> int:
        return self.db.read("SELECT COALESCE(MAX(id), 0) FROM search_matches")[0][0]

    # -- webhook deliveries ----------------------------------------------------------

    def _add_delivery(self, db: Connection, draft: DeliveryDraft, now_us: int) -> int:
        p = self.db.param
        values = (draft.msg_id, draft.search_id, draft.kind, draft.body, draft.article_count)
        return db.execute(
            "INSERT INTO webhook_deliveries(msg_id, search_id, kind, body, article_count,"
            f" created_us, status, attempts, next_us) VALUES ({p}, {p}, {p}, {p}, {p}, {p},"
            f" 'pending', 0, {p}) RETURNING id",
            (*values, now_us, now_us),
        ).fetchone()[0]

    def delivery_add(
        self, draft: DeliveryDraft, now_us: int, most: int | None = None, within_us: int = 0
    ) -> DeliveryRecord | int:
        """Queue a delivery, due now; as stored. With `most`: only if its search made fewer
        than `most` deliveries of its kind in the last `within_us` (else the microseconds
        until the oldest of them is that old), counted in the insert's own turn."""
        p = self.db.param
        with self.db.transaction() as db:
            if most is not None:
                self.db.take_turns(db, (DELIVERY_LOCK_CLASS, draft.search_id % 2**31))
                made = db.execute(
                    f"SELECT created_us FROM webhook_deliveries WHERE search_id = {p}"
                    f" AND kind = {p} AND created_us > {p} ORDER BY created_us",
                    (draft.search_id, draft.kind, now_us - within_us),
                ).fetchall()
                if len(made) >= most:
                    return made[len(made) - most][0] + within_us - now_us
            delivery_id = self._add_delivery(db, draft, now_us)
        return DeliveryRecord(
            delivery_id, draft.msg_id, draft.kind, now_us, "pending", draft.article_count,
            now_us, (),
        )  # fmt: skip

    def deliveries_claim(
        self,
        now_us: int,
        hold_us: int,
        limit: int,
        per_key: int | None = None,
        busy: Sequence[tuple[int | None, int]] = (),
        used: Sequence[int] = (),
    ) -> list[DueDelivery]:
        """Claim up to `limit` due deliveries for `hold_us` (no other claim takes them
        meanwhile, on any instance), taking turns between keys, then between a key's
        searches: each one's first due, then each one's second..., where the attempts the
        claimer has in flight (`busy`: key id and search id of each) count as turns taken;
        among keys at the same turn, those that used the senders least lately first (`used`:
        key ids, the one that used them most last; keys not in it first), then the oldest
        due. With `per_key`, a key gets at most `per_key` minus its attempts in flight."""
        p = self.db.param
        by_key = Counter(key for key, _ in busy if key is not None)
        by_search = Counter(search for _, search in busy)
        lately = {key: n for n, key in enumerate(used, 1)}
        ranked = _RANKED.format(
            p=p,
            search_held=_taken("d.search_id", by_search, p),
            held=_taken("key_id", by_key, p),
            used=_taken("key_id", lately, p),
        )
        bound = f" WHERE ranked.turn <= {p}" if per_key is not None else ""
        claimable = f"(claimed_until_us IS NULL OR claimed_until_us <= {p})"
        # PostgreSQL: rows another claimer is taking are passed over (only the deliveries
        # are locked, not the ranking: windows cannot be).
        lock = " FOR UPDATE OF c SKIP LOCKED" if self.db.skip_locked else ""
        with self.db.transaction() as db:
            # The claim is re-checked on the row itself (PostgreSQL re-evaluates the outer
            # WHERE on a row another transaction just updated): two claimers never share one.
            claimed = db.execute(
                f"UPDATE webhook_deliveries SET claimed_until_us = {p} WHERE {claimable}"
                f" AND id IN (SELECT c.id FROM webhook_deliveries c JOIN ({ranked}) ranked"
                f" ON ranked.id = c.id{bound} ORDER BY ranked.turn, ranked.used,"
                f" ranked.next_us, c.id LIMIT {p}{lock}) RETURNING id",
                (now_us + hold_us, now_us, *chain(*by_key.items(), *lately.items(),
                 *by_search.items()), now_us, now_us, *([per_key] if bound else []), limit),
            ).fetchall()  # fmt: skip
            if not claimed:
                return []
            ids = [row[0] for row in claimed]
            rows = db.execute(
                "SELECT d.id, d.msg_id, d.search_id, d.kind, d.body, d.attempts, s.webhook_url,"
                " s.webhook_secret, s.webhook_old_secret, s.webhook_old_until_us,"
                " s.webhook_disabled_us, s.key_id, k.revoked_at FROM webhook_deliveries d"
                " LEFT JOIN searches s ON s.id = d.search_id"
                " LEFT JOIN api_keys k ON k.id = s.key_id"
                f" WHERE d.id IN ({', '.join([p] * len(ids))}) ORDER BY d.next_us, d.id",
                tuple(ids),
            ).fetchall()
        due = []
        for *row, current, old, old_until, disabled, key_id, revoked_at in rows:
            old_valid = old is not None and (old_until or 0) > now_us
            secrets = tuple(s for s in (current, old if old_valid else None) if s)
            due.append(DueDelivery(*row, secrets, bool(disabled), key_id, revoked_at is not None))
        return due

    def deliveries_attempted(self, outcomes: Sequence[Outcome]) -> None:
        """Record attempts and each delivery's state after its attempt, in one transaction
        (a batch sent side by side is one write, not one each)."""
        p = self.db.param
        with self.db.transaction() as db:
            for outcome in outcomes:
                attempt = outcome.attempt
                db.execute(
                    "INSERT INTO webhook_attempts(delivery_id, at_us, status_code, error,"
                    f" duration_ms) VALUES ({p}, {p}, {p}, {p}, {p})",
                    (outcome.delivery_id, *astuple(attempt)),
                )
                db.execute(
                    f"UPDATE webhook_deliveries SET status = {p}, attempts = attempts + 1,"
                    f" next_us = {p}, claimed_until_us = NULL WHERE id = {p}",
                    (outcome.status, outcome.next_us, outcome.delivery_id),
                )
                if outcome.disable is not None:
                    search_id, reason = outcome.disable
                    db.execute(
                        f"UPDATE searches SET webhook_disabled_us = {p},"
                        f" webhook_disabled_reason = {p} WHERE id = {p}",
                        (attempt.at_us, reason, search_id),
                    )

    def deliveries_of(self, search_id: int, limit: int) -> list[DeliveryRecord]:
        """A search's newest deliveries first, each with its attempts."""
        p = self.db.param
        rows = self.db.read(
            "SELECT id, msg_id, kind, created_us, status, article_count, next_us"
            f" FROM webhook_deliveries WHERE search_id = {p} ORDER BY id DESC LIMIT {p}",
            (search_id, limit),
        )
        if not rows:
            return []
        attempts: dict[int, list[AttemptRecord]] = {row[0]: [] for row in rows}
        for delivery_id, *values in self.db.read(
            "SELECT delivery_id, at_us, status_code, error, duration_ms FROM webhook_attempts"
            f" WHERE delivery_id IN ({', '.join([p] * len(rows))}) ORDER BY id",
            tuple(attempts),
        ):
            attempts[delivery_id].append(AttemptRecord(*values))
        return [DeliveryRecord(*row, tuple(attempts[row[0]])) for row in rows]
