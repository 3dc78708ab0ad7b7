"""Shapes shared by every provider: the canonical article, the query, the failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, get_args

Category = Literal[
    "business", "entertainment", "general", "health", "science", "sports", "technology"
]
CATEGORIES: tuple[Category, ...] = get_args(Category)
ProviderName = Literal["newsapi", "guardian", "hackernews"]
PROVIDER_NAMES: tuple[ProviderName, ...] = get_args(ProviderName)


@dataclass(frozen=True, slots=True)
class Article:
    """One story in the canonical shape, before the store gives it an id."""

    title: str
    description: str | None
    url: str  # canonical URL (see providers.text.canonical_url)
    source: ProviderName
    publisher: str | None  # the outlet
    author: str | None
    image_url: str | None
    category: Category
    published_at: datetime  # timezone-aware, UTC
    # Text beyond the description that the upstream sends, to search but never to show:
    # NewsAPI's `content` (its first ~200 characters), the Guardian's `bodyText`.
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """What a client asked for, in the terms every provider understands."""

    category: Category | None = None
    q: str | None = None
    published_from: datetime | None = None  # aware UTC, inclusive
    published_to: datetime | None = None  # aware UTC, inclusive


class UpstreamError(Exception):
    """A provider could not deliver.

    `code` is machine-readable (see ERROR_CODES); `message` is safe to show a client:
    it never contains a URL with credentials, a key, or a raw upstream body.
    `retry_after` is the upstream's Retry-After in seconds, when it sent one.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


ERROR_CODES = (
    "upstream_timeout",  # no complete answer within the time budget
    "upstream_unreachable",  # connection refused, reset, DNS
    "upstream_auth_failed",  # the upstream refused our credentials (401/403)
    "upstream_rate_limited",  # 429 or the upstream's rate-limit error code
    "upstream_error",  # any other error status or in-envelope error
    "upstream_bad_response",  # not JSON, or JSON of the wrong shape
    "circuit_open",  # not called: it failed too often lately (see newsagg.provider_health)
    "upstream_rejected_query",  # the upstream refused this query's parameters (400 and alike)
    # not called: newsagg's own budget of calls to this upstream is spent for now (or cannot
    # be checked, the database being unreachable); see newsagg.budget
    "upstream_budget_spent",
)


# Called before each HTTP request to an upstream, retries included: the core pays the
# upstream budget there, and raises UpstreamError to stop a call the budget does not allow.
BeforeCall = Callable[[], None]


def no_charge() -> None:
    """A BeforeCall for calls nobody pays for (tests, tools). Never a default: every
    caller says who pays, so a forgotten argument is an error, not a free upstream call."""


@dataclass(frozen=True, slots=True)
class HarvestCursor:
    """Where a harvest sweep goes on: a page (0 first) of the stories published before
    `until` (None: up to now), newest first."""

    page: int = 0
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class HarvestPage:
    """One page of a harvest sweep, and where the next one is (None: this was the last)."""

    articles: list[Article]
    next: HarvestCursor | None = None


class Provider(Protocol):
    """An upstream news API, seen from the core."""

    name: ProviderName
    categories: frozenset[Category]  # categories it can serve; None-category queries always

    @property
    def enabled(self) -> bool:
        """False when the provider lacks its credentials."""
        ...

    def serves(self, query: Query) -> bool:
        """Whether this provider has anything to say about the query's category."""
        ...

    def fetch(self, query: Query, timeout: float, before_call: BeforeCall) -> list[Article]:
        """Fetch and normalize; raise UpstreamError. Must return within `timeout` seconds.
        `before_call()` runs before every HTTP request made."""
        ...


class Harvestable(Protocol):
    """A provider the harvester can sweep: what was published since a moment, page by page
    (HN, the Guardian), or the top headlines of a category (NewsAPI: `since` unused)."""

    name: ProviderName

    @property
    def enabled(self) -> bool: ...

    def harvest_page(
        self,
        since: datetime | None,
        cursor: HarvestCursor,
        timeout: float,
        before_call: BeforeCall,
        category: Category | None = None,
    ) -> HarvestPage:
        """Raise UpstreamError like `fetch`; `before_call()` runs before every request."""
        ...
