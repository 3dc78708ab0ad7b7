"""Saving articles to the archive, for the feed's refreshes and the harvester alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from newsagg.articles import FeedItem, article_fields
from newsagg.store import Store
from newsagg.store.archive import Answer, ArticleRecord
from providers.base import Article, ProviderName

# When two providers carry the same story, keep the record of the one nearest the source:
# the Guardian publishes its own stories, NewsAPI relays, Hacker News only links.
PROVIDER_PRIORITY: tuple[ProviderName, ...] = ("guardian", "newsapi", "hackernews")


class ArchiveWriter:
    def __init__(self, store: Store, body_hours: Mapping[str, float]) -> None:
        """`body_hours`: how long a provider's body texts may stay searchable (0: not kept
        at all); a provider not named keeps them as long as the article."""
        self._store = store
        self._body_hours = body_hours
        # Counts this process's saves: a page remembered before one is then old
        # (newsagg.page_memo).
        self.generation = 0

    def save(
        self, articles: Sequence[Article], answer: Answer | None = None
    ) -> tuple[FeedItem, ...]:
        """Keep `articles` in the archive (a story seen again keeps its id); their items.
        `answer`: they are an upstream's answer to a query it was asked exactly."""
        ids = self._store.save_articles((self._record(a) for a in articles), answer)
        self.generation += 1
        return tuple(FeedItem.of(i, a) for i, a in zip(ids, articles, strict=True))

    def _record(self, article: Article) -> ArticleRecord:
        rank, fields = PROVIDER_PRIORITY.index(article.source), article_fields(article)
        hours = self._body_hours.get(article.source)
        if hours is None:
            return ArticleRecord(article.url, rank, fields, article.body)
        if hours <= 0 or article.body is None:
            return ArticleRecord(article.url, rank, fields)
        return ArticleRecord(article.url, rank, fields, article.body, round(hours * 3600e6))
