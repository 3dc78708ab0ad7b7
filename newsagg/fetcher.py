"""Fetching one provider's part of a feed request: the upstream calls its query needs, if
the provider's breaker allows them, each paid from the caller's share of the upstream
budget first (newsagg.budget), counted in the metrics; what they bring, saved to the
archive, as the upstream's answer to the query when it was asked it exactly.
"""

from __future__ import annotations

import logging
import time

from newsagg.archive_writer import ArchiveWriter
from newsagg.articles import FeedItem
from newsagg.budget import SPENT, Budgets, Caller
from newsagg.metrics import Metrics
from newsagg.provider_health import ProviderHealth
from newsagg.query.upstream import counted_answer, upstream_queries
from newsagg.request import FeedRequest
from newsagg.store.archive import Answer
from providers.base import Article, BeforeCall, Provider, ProviderName, Query, UpstreamError

log = logging.getLogger(__name__)


class Fetcher:
    def __init__(
        self,
        health: ProviderHealth,
        metrics: Metrics,
        budgets: Budgets,
        archive: ArchiveWriter,
        timeout: float,
    ) -> None:
        self._health = health
        self._metrics = metrics
        self._budgets = budgets
        self._archive = archive
        self.timeout = timeout  # each upstream call's, and a request's wait for them

    def fetch(
        self, provider: Provider, request: FeedRequest, caller: Caller | None
    ) -> tuple[FeedItem, ...]:
        """Runs on a worker thread: one upstream call per text the upstream needs, each
        paid from the budget first; what they bring, saved. Raises UpstreamError."""
        articles: dict[str, Article] = {}
        for upstream_query in upstream_queries(provider.name, request.query, request.match):
            for article in self._call(provider, upstream_query, caller):
                articles.setdefault(article.url, article)
        key = counted_answer(provider.name, request.match)
        answer = None if key is None else Answer(provider.name, key)
        return self._archive.save(list(articles.values()), answer)

    def _call(self, provider: Provider, query: Query, caller: Caller | None) -> list[Article]:
        """Upstream calls on demand, if the breaker allows them, each paid from `caller`'s
        share of the budget first."""
        self._health.admit(provider.name)  # an open breaker or a cool-down fails fast
        calls = self._metrics.upstream_calls
        try:
            articles = provider.fetch(query, self.timeout, self._payer(provider.name, caller))
        except UpstreamError as exc:
            calls.labels(provider.name, exc.code).inc()
            if exc.code == SPENT:  # not the upstream's failure: its health stays as it was
                log.info("provider %s not called: %s", provider.name, exc.message)
                raise
            self._health.failed(provider.name, exc)
            # Expected: one line, no traceback. The message never holds a key or a URL.
            log.warning("provider %s failed: %s (%s)", provider.name, exc.code, exc.message)
            raise
        except Exception:
            calls.labels(provider.name, "upstream_bad_response").inc()
            # A bug of ours must not take the feed down; the traceback goes to the log.
            log.exception("provider %s failed unexpectedly", provider.name)
            error = UpstreamError(
                "upstream_bad_response", f"{provider.name} sent an answer newsagg could not read"
            )
            self._health.failed(provider.name, error)
            raise error from None
        calls.labels(provider.name, "ok").inc()
        self._health.succeeded(provider.name)
        return articles

    def _payer(self, name: ProviderName, caller: Caller | None) -> BeforeCall:
        """What pays each call of this refresh from `caller`'s share of the budget, waiting
        for it while the request's time allows."""
        deadline = time.monotonic() + self.timeout
        return lambda: self._budgets.take_within(
            name, "demand", caller, seconds=deadline - time.monotonic()
        )
