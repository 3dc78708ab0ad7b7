"""Saving articles to the archive, for the feed's refreshes and the harvester alike."""

from __future__ import annotations

from collections.abc import Sequence

from newsagg.articles import FeedItem, article_fields
from newsagg.store import Store
from providers.base import Article, ProviderName

# When two providers carry the same story, keep the record of the one nearest the source:
# the Guardian publishes its own stories, NewsAPI relays, Hacker News only links.
PROVIDER_PRIORITY: tuple[ProviderName, ...] = ("guardian", "newsapi", "hackernews")


class ArchiveWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        # Counts this process's saves: a page remembered before one is then old
        # (newsagg.page_memo).
        self.generation = 0

    def save(self, articles: Sequence[Article]) -> tuple[FeedItem, ...]:
        """Keep `articles` in the archive (a story seen again keeps its id); their items."""
        ids = self._store.save_articles(
            (a.url, PROVIDER_PRIORITY.index(a.source), article_fields(a)) for a in articles
        )
        self.generation += 1
        return tuple(FeedItem.of(i, a) for i, a in zip(ids, articles, strict=True))
