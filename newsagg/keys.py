"""API keys: generated with `secrets`, stored as a SHA-256 digest, shown once.

A key looks like `nagg_<43 url-safe characters>` (256 random bits). The `nagg_` prefix lets
secret scanners and humans recognise a leaked key; the display prefix (the first 10
characters) identifies a key in listings without being usable.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from newsagg.errors import InvalidInput
from newsagg.store import DuplicateDigest, KeyRecord, Store
from newsagg.tiers import TIERS, Tier

if TYPE_CHECKING:
    from newsagg.key_cache import KeyCache

KEY_MARK = "nagg_"
DISPLAY_PREFIX_LENGTH = 10
BOOTSTRAP_ADMIN_NAME = "bootstrap-admin"
REVOKED = "the key was revoked"  # why a revoked key's webhooks and deliveries stopped


NAME_LENGTH = 100
# Unicode categories a name refuses: control (Cc: C0, DEL, C1), format (Cf: zero-width
# characters, bidi overrides and isolates, the BOM, tags), line and paragraph separators
# (Zl, Zp: U+2028, U+2029) and surrogates (Cs: a lone one from a JSON escape). A name is
# shown to people (listings, a feed's title, logs): what it shows must be what it holds.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (zero-width, bidi control)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a lone surrogate (not valid Unicode)",
}


def check_name(field: str, value: str) -> str:
    """A name of a key or a search as it will be kept (surrounding spaces stripped), or
    InvalidInput naming `field` and the first character it refuses."""
    for character in value:
        refused = _REFUSED_CATEGORIES.get(unicodedata.category(character))
        if refused is not None:
            raise InvalidInput(f"{field}: must not contain {refused} (U+{ord(character):04X})")
    name = value.strip()
    if not name:
        raise InvalidInput(f"{field}: must not be blank")
    if len(name) > NAME_LENGTH:
        raise InvalidInput(f"{field}: longer than {NAME_LENGTH} characters")
    return name


def digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    plaintext: str  # the only time it exists outside the caller's hands


class KeyRing:
    def __init__(self, store: Store, cache: KeyCache | None = None) -> None:
        self._store = store
        self._cache = cache  # keys this process verified (newsagg.key_cache)

    def create(self, name: str, tier: Tier = "basic", admin: bool = False) -> NewKey:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        name = check_name("name", name)
        plaintext = KEY_MARK + secrets.token_urlsafe(32)
        return NewKey(self._register(plaintext, name, tier, admin), plaintext)

    def ensure_bootstrap_admin(self, plaintext: str) -> None:
        """Register NEWSAGG_ADMIN_KEY once. A revoked bootstrap key stays revoked."""
        if self._store.has_digest(digest(plaintext)):
            return
        # Another worker process may register it between the check and the insert.
        with contextlib.suppress(DuplicateDigest):
            self._register(plaintext, BOOTSTRAP_ADMIN_NAME, "unlimited", True)

    def _register(self, plaintext: str, name: str, tier: str, admin: bool) -> KeyRecord:
        return self._store.add_key(
            name=name,
            tier=tier,
            admin=admin,
            prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
            digest=digest(plaintext),
            created_at=now_iso(),
        )

    def remembered(self, plaintext: str) -> KeyRecord | None:
        """The active key with this plaintext if this process may trust its memory of it
        (no network I/O: at most one local statement); None means `verify` must ask the store."""
        return None if self._cache is None else self._cache.lookup(digest(plaintext))

    def verify(self, plaintext: str) -> KeyRecord | None:
        """The active key with this plaintext, or None. Lookup by digest: no plaintext at rest."""
        key_digest = digest(plaintext)
        if self._cache is None:
            return self._store.active_key_by_digest(key_digest)
        ticket = self._cache.ticket()
        record = self._store.active_key_by_digest(key_digest)
        if record is not None:
            self._cache.remember(key_digest, record, ticket)
        return record

    def get(self, key_id: int) -> KeyRecord | None:
        return self._store.active_key(key_id)

    def list(self) -> list[KeyRecord]:
        return self._store.active_keys()

    def revoke(self, key_id: int) -> bool:
        """Revoke an active key; returns once no process accepts it. False: no such key.

        Its saved searches stay, inert, for an admin to review and delete: nothing reads
        them without the key being active in the store (matching, webhook claims, feed
        tokens, event streams), so that holds on every instance at once. Their webhooks
        are marked disabled here too, saying why, for whoever looks at them."""
        if not self._store.revoke_key(key_id, now_iso()):
            return False
        if self._cache is not None:
            self._cache.announce_revocation()
        now_us = time.time_ns() // 1000
        for search in self._store.searches_of(key_id):
            if search.webhook_url is not None and search.webhook_disabled_us is None:
                changes = {"webhook_disabled_us": now_us, "webhook_disabled_reason": REVOKED}
                self._store.search_update(search.id, changes)
        return True
