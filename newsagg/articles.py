"""An article's public JSON, as GET /articles, the feeds, the event streams and webhooks
show it: written once when the article is saved, then reused as bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from newsagg.stories.model import StoryRef
from providers.base import Article

# What an article shows; its body text is only searched.
ARTICLE_FIELDS = tuple(f.name for f in dataclass_fields(Article) if f.name != "body")


def article_fields(article: Article) -> dict[str, Any]:
    """The public JSON shape of an article, without its id."""
    return {
        "title": article.title,
        "description": article.description,
        "url": article.url,
        "source": article.source,
        "publisher": article.publisher,
        "author": article.author,
        "image_url": article.image_url,
        "category": article.category,
        "published_at": article.published_at.isoformat(),
    }


def archived_json(article_id: int, data: str, story: StoryRef | None) -> bytes:
    """An archive row's public JSON (as GET /articles shows it): the id put before the
    fields saved with it, without parsing them, and its story after them."""
    fields = b'{"id":%d,' % article_id + data[1:-1].encode()
    if story is None:  # saved by an older release during a rolling upgrade, not yet placed
        return fields + b',"story":null}'
    return fields + b',"story":' + json.dumps(story.public(), separators=(",", ":")).encode() + b"}"


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: int
    article: Article
    json: bytes  # the public JSON, serialised once when fetched: cache hits reuse it

    @classmethod
    def of(cls, article_id: int, article: Article) -> FeedItem:
        fields = {"id": article_id, **article_fields(article)}
        return cls(article_id, article, json.dumps(fields, separators=(",", ":")).encode())

    @classmethod
    def from_json(cls, data: bytes) -> FeedItem:
        """The item whose public JSON is `data` (as read back from Redis), kept as it is."""
        fields = json.loads(data)
        values = {name: fields[name] for name in ARTICLE_FIELDS}
        values["published_at"] = datetime.fromisoformat(fields["published_at"])
        return cls(fields["id"], Article(**values), data)

    @classmethod
    def archived(cls, article_id: int, data: str, story: StoryRef | None) -> FeedItem:
        """The item of an archive row: its id, the public JSON saved with it, its story."""
        return cls.from_json(archived_json(article_id, data, story))
