"""Saved searches: what a key may create, see and change, in domain terms.

A search belongs to the key that made it; for any other key it does not exist (NotFound),
except for admin keys, which see and change every search. Its filters are those of
GET /articles, checked by the same parser. Its feed is read with a token derived from a
per-search nonce and the service's secret: rotating the nonce revokes the old URL.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from newsagg.errors import Conflict, InvalidInput, NotFound, RateLimited
from newsagg.keys import check_name
from newsagg.push.webhooks import (
    Resolve,
    TargetRefused,
    check_target,
    new_secret,
    shown_target,
    system_resolve,
)
from newsagg.request import FeedRequest
from newsagg.store import KeyRecord, Store
from newsagg.store.archive import Sort
from newsagg.store.push import DeliveryDraft, DeliveryRecord, SearchRecord

log = logging.getLogger(__name__)

# How long a rotated-out webhook secret still signs (beside the new one).
OLD_SECRET_SECONDS = 24 * 3600
PINGS_PER_MINUTE = 5  # of one search (NEWSAGG_WEBHOOK_PINGS_PER_MINUTE)
FEED_TOKEN_LENGTH = 32
# The fields a client sets, as the core names them.
FIELDS = ("name", "q", "category", "sources", "paused", "webhook_url", "group_by")


@dataclass(frozen=True, slots=True)
class Shown:
    """A search as just created or changed; `webhook_secret` set only when it is new."""

    search: SearchRecord
    webhook_secret: str | None = None


def new_message_id() -> str:
    """A webhook-id (Standard Webhooks): unique, the same on every retry of a delivery."""
    return "msg_" + secrets.token_hex(12)


def webhook_status(search: SearchRecord) -> str | None:
    if search.webhook_url is None:
        return None
    return "disabled" if search.webhook_disabled_us is not None else "active"


def event_body(kind: str, search_id: int, articles: list[bytes], at_us: int) -> str:
    """A webhook message: articles as GET /articles shows them (their JSON as it is)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_us / 1e6))
    head = json.dumps({"type": kind, "timestamp": f"{stamp}Z"}, separators=(",", ":"))
    joined = b",".join(articles).decode()
    return f'{head[:-1]},"data":{{"search_id":{search_id},"articles":[{joined}]}}}}'


def _check_text(name: str, value: str) -> None:
    """Text every store keeps as it is: no NUL (PostgreSQL refuses it) and valid Unicode
    (a lone surrogate from a JSON escape cannot be encoded)."""
    if "\x00" in value:
        raise InvalidInput(f"{name}: must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name}: is not valid Unicode (a lone surrogate)") from None


class Searches:
    def __init__(
        self,
        store: Store,
        cap: Callable[[str], int],
        feed_secret: bytes,
        *,
        allow_private: bool,
        resolve: Resolve = system_resolve,
        clock: Callable[[], float] = time.time,
        pings_per_minute: int = PINGS_PER_MINUTE,
    ) -> None:
        self._store = store
        self._cap = cap  # tier -> how many searches a key of it may hold
        self._pings_per_minute = pings_per_minute
        self._feed_secret = feed_secret
        self._allow_private = allow_private
        self._resolve = resolve
        self._clock = clock

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    # -- reading ---------------------------------------------------------------------

    def visible(self, owner: KeyRecord) -> list[SearchRecord]:
        """The searches `owner` sees: its own; every search for an admin key."""
        return self._store.searches_of(None if owner.admin else owner.id)

    def get(self, owner: KeyRecord, search_id: int) -> SearchRecord:
        search = self._store.search_get(search_id)
        if search is None or not (owner.admin or search.key_id == owner.id):
            raise NotFound(f"No search with id {search_id}.")
        return search

    def request(
        self, search: SearchRecord, limit: int, cursor: str | None, sort: Sort = "published"
    ) -> FeedRequest:
        """The GET /articles request this search is."""
        return FeedRequest.parse(
            category=search.category,  # type: ignore[arg-type]  # checked when saved
            q=search.q,
            sources=search.sources or None,
            limit=limit,
            cursor=cursor,
            sort=sort,
        )

    def deliveries(self, owner: KeyRecord, search_id: int, limit: int) -> list[DeliveryRecord]:
        self.get(owner, search_id)
        return self._store.deliveries_of(search_id, limit)

    # -- feed tokens -----------------------------------------------------------------

    def feed_token(self, search: SearchRecord) -> str:
        mac = hmac.new(self._feed_secret, f"{search.id}:{search.feed_nonce}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac.digest()).decode()[:FEED_TOKEN_LENGTH]

    def by_token(self, search_id: int, token: str, path: str) -> tuple[SearchRecord, KeyRecord]:
        """The search a URL with its token names (`path`: the URL's, for the message), and
        its owner; NotFound alike for no such search, a wrong or rotated token and a
        search whose key is revoked (as the store says now, for every instance), so that a
        URL tells nothing about other searches."""
        found = self._store.searches_live([search_id])
        search = found[0] if found else None
        if search is not None and hmac.compare_digest(self.feed_token(search), token):
            owner = self._store.active_key(search.key_id)
            if owner is not None:
                return search, owner
        raise NotFound(f"Nothing at {path} with this token.")

    # -- changing --------------------------------------------------------------------

    def create(self, owner: KeyRecord, fields: Mapping[str, Any]) -> Shown:
        values = self._checked(fields, creating=True)
        now = self._now_us()
        values.update(
            key_id=owner.id, created_us=now, updated_us=now, feed_nonce=secrets.token_hex(8)
        )
        values.setdefault("paused", False)
        secret = new_secret() if values.get("webhook_url") else None
        values["webhook_secret"] = secret
        cap = self._cap(owner.tier)
        search = self._store.search_add(values, cap)
        if search is None:
            raise Conflict(
                f"This key holds {cap} saved searches, the most its tier ({owner.tier})"
                " allows; delete one first."
            )
        return Shown(search, secret)

    def update(self, owner: KeyRecord, search_id: int, fields: Mapping[str, Any]) -> Shown:
        current = self.get(owner, search_id)
        changes = self._checked(fields, creating=False)
        secret = None
        if "webhook_url" in changes:
            # A webhook set (again) starts afresh: a new secret, and enabled.
            secret = new_secret() if changes["webhook_url"] else None
            changes.update(
                webhook_secret=secret,
                webhook_old_secret=None,
                webhook_old_until_us=None,
                webhook_disabled_us=None,
                webhook_disabled_reason=None,
            )
        if "q" in changes or "category" in changes or "sources" in changes:
            merged = {name: getattr(current, name) for name in ("q", "category", "sources")}
            self._check_filters({**merged, **changes})
        changes["updated_us"] = self._now_us()
        return Shown(self._saved(search_id, changes), secret)

    def delete(self, owner: KeyRecord, search_id: int) -> None:
        self.get(owner, search_id)
        if not self._store.search_delete(search_id):
            raise NotFound(f"No search with id {search_id}.")

    def rotate_secret(self, owner: KeyRecord, search_id: int) -> Shown:
        """A new webhook secret; the current one keeps signing for OLD_SECRET_SECONDS."""
        current = self._with_webhook(owner, search_id)
        now = self._now_us()
        secret = new_secret()
        changes = {
            "webhook_secret": secret,
            "webhook_old_secret": current.webhook_secret,
            "webhook_old_until_us": now + OLD_SECRET_SECONDS * 1_000_000,
            "updated_us": now,
        }
        return Shown(self._saved(search_id, changes), secret)

    def rotate_feed_token(self, owner: KeyRecord, search_id: int) -> Shown:
        self.get(owner, search_id)
        changes = {"feed_nonce": secrets.token_hex(8), "updated_us": self._now_us()}
        return Shown(self._saved(search_id, changes))

    def ping(self, owner: KeyRecord, search_id: int) -> DeliveryRecord:
        """Queue a webhook.ping delivery (no articles), sent and retried like any other;
        RateLimited past the search's pings per minute (counted in the store: one limit
        across instances)."""
        self._with_webhook(owner, search_id)
        now = self._now_us()
        draft = DeliveryDraft(
            new_message_id(),
            search_id,
            "webhook.ping",
            event_body("webhook.ping", search_id, [], now),
            0,
        )
        most = self._pings_per_minute
        queued = self._store.delivery_add(draft, now, most, 60_000_000)
        if isinstance(queued, int):
            raise RateLimited(
                f"Search {search_id} has sent {most} pings in the last minute, the most it"
                " may; ping again after Retry-After seconds.",
                retry_after_seconds=max(1, math.ceil(queued / 1e6)),
            )
        return queued

    # -- helpers ---------------------------------------------------------------------

    def _with_webhook(self, owner: KeyRecord, search_id: int) -> SearchRecord:
        search = self.get(owner, search_id)
        if search.webhook_url is None:
            raise Conflict(f"Search {search_id} has no webhook_url; set one first.")
        return search

    def _saved(self, search_id: int, changes: Mapping[str, Any]) -> SearchRecord:
        search = self._store.search_update(search_id, changes)
        if search is None:  # deleted meanwhile
            raise NotFound(f"No search with id {search_id}.")
        return search

    def _checked(self, fields: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        values = {name: fields[name] for name in FIELDS if name in fields}
        if isinstance(values.get("q"), str):
            _check_text("q", values["q"])
        if "name" in values:
            values["name"] = check_name("name", values["name"] or "")
        elif creating:
            raise InvalidInput("name: is required")
        if "sources" in values:
            values["sources"] = tuple(values["sources"] or ())
        if values.get("group_by") not in (None, "story"):
            raise InvalidInput("group: story or null")
        if values.get("webhook_url") is not None:
            self._check_webhook(values["webhook_url"])
        if creating:
            self._check_filters(values)
        return values

    def _check_webhook(self, url: str) -> None:
        try:
            check_target(url, allow_private=self._allow_private, resolve=self._resolve)
        except TargetRefused as refused:
            # Scheme and host only: the path or query can carry the receiver's own token.
            log.info("webhook_url %s refused: %s", shown_target(url), refused.detail)
            raise

    def _check_filters(self, values: Mapping[str, Any]) -> None:
        """InvalidInput, as GET /articles would answer, for filters it would refuse."""
        FeedRequest.parse(
            category=values.get("category"), q=values.get("q"), sources=values.get("sources")
        )
