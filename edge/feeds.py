"""Rendering one page of a saved search's matches as a feed (GET /feeds/{search_id}): Atom
(RFC 4287, paged per RFC 5005) through feedgen, JSON Feed 1.1, and the choice between them.

Pure functions over a `FeedPage`: no I/O, no clock. The same page always renders to the same
bytes, because the handler computes its ETag over them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator

ATOM = "application/atom+xml"
JSON_FEED = "application/feed+json"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

# Names a feed reader shows when an article has neither author nor publisher.
SOURCE_NAMES = {"hackernews": "Hacker News", "guardian": "The Guardian", "newsapi": "NewsAPI"}
FEED_AUTHOR = "newsagg"

# Everything XML 1.0 forbids (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF):
# lxml refuses such text outright, and upstream titles do carry stray controls.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class FeedPage:
    # The installation's tag authority, `host,date` (RFC 4151): its public URL's host and
    # the day it first ran. Ids are unique to one installation and stable across restarts.
    authority: str
    search_id: int
    title: str  # the search's name
    self_url: str  # absolute URL of this page (already carries token, format and cursor)
    alternate_url: str | None  # absolute URL of a human page
    next_url: str | None  # absolute URL of the next (older) page; None on the last page
    articles: Sequence[Mapping[str, Any]]  # newest first, each as GET /articles shows it
    updated: datetime  # aware: newest published_at on the page, or the search's updated time


def tag_authority(base_url: str, installed_on: str) -> str:
    """The tag URI authority of an installation reached at `base_url` (its public URL)."""
    return f"{urlsplit(base_url).hostname or 'localhost'},{installed_on}"


def search_tag(authority: str, search_id: int) -> str:
    return f"tag:{authority}:search:{search_id}"


def article_tag(authority: str, article_id: int) -> str:
    # A tag URI, not the article's URL: publishers move URLs, and a reader keyed on the id
    # would then show the article twice.
    return f"tag:{authority}:article:{article_id}"


def render_atom(page: FeedPage) -> bytes:
    fg = FeedGenerator()
    fg.id(search_tag(page.authority, page.search_id))
    fg.title(_text(page.title) or f"Search {page.search_id}")
    fg.updated(_utc(page.updated))
    # RFC 4287 wants an author on every entry or on the feed; an empty page has no entries.
    fg.author(name=FEED_AUTHOR)
    fg.link(href=_text(page.self_url), rel="self", type=ATOM)
    if page.alternate_url:
        fg.link(href=_text(page.alternate_url), rel="alternate")
    if page.next_url:
        fg.link(href=_text(page.next_url), rel="next")
    # feedgen writes its own name and version: drop it, or upgrading feedgen alone would
    # change every ETag.
    fg.generator("")
    for article in page.articles:
        # feedgen prepends by default; the page is already newest first.
        entry = fg.add_entry(order="append")
        published = _published(article)
        entry.id(article_tag(page.authority, article["id"]))
        entry.title(_entry_title(article))
        # feedgen 1.0 drops an entry link's rel when writing it; a link without rel means
        # alternate (RFC 4287 4.2.7.2), which is what this one is.
        entry.link(href=_text(article["url"]), rel="alternate")
        # Set explicitly: feedgen's default `updated` is the time of rendering.
        entry.updated(published)
        entry.published(published)
        if article.get("description"):
            entry.summary(_text(article["description"]))
        entry.author(name=_author(article))
        entry.category(term=_text(article["category"]))
    return fg.atom_str(pretty=False)


def render_json_feed(page: FeedPage) -> bytes:
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": _text(page.title) or f"Search {page.search_id}",
    }
    if page.alternate_url:
        feed["home_page_url"] = _text(page.alternate_url)
    feed["feed_url"] = _text(page.self_url)
    if page.next_url:
        feed["next_url"] = _text(page.next_url)
    feed["authors"] = [{"name": FEED_AUTHOR}]
    feed["items"] = [_json_item(page.authority, article) for article in page.articles]
    # Compact and key order fixed by construction: the ETag is computed over these bytes.
    return json.dumps(feed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_item(authority: str, article: Mapping[str, Any]) -> dict[str, Any]:
    published = _published(article).isoformat()
    description = _text(article.get("description") or "")
    title = _entry_title(article)
    item: dict[str, Any] = {
        "id": article_tag(authority, article["id"]),
        "url": _text(article["url"]),
        "title": title,
    }
    if description:
        item["summary"] = description
    # JSON Feed requires content_html or content_text on every item.
    item["content_text"] = description or title
    if article.get("image_url"):
        item["image"] = _text(article["image_url"])
    item["date_published"] = published
    item["date_modified"] = published
    item["authors"] = [{"name": _author(article)}]
    item["tags"] = [_text(article["category"])]
    item["_newsagg"] = {"article_id": article["id"], "source": article["source"]}
    if article.get("story") is not None:  # the JSON Feed extension carries the story
        item["_newsagg"]["story"] = article["story"]
    return item


def negotiate(format_: str | None, accept: str | None) -> str:
    """ATOM or JSON_FEED. An explicit `format` (json/atom) wins, since feed readers send
    whatever Accept they like and the user picked the URL; otherwise JSON Feed only when
    Accept ranks it strictly above Atom; Atom in every other case (the default)."""
    chosen = (format_ or "").strip().lower()
    if chosen == "json":
        return JSON_FEED
    if chosen == "atom":
        return ATOM
    ranges = _accept_ranges(accept or "")
    json_q = max(_quality(ranges, JSON_FEED), _quality(ranges, "application/json"))
    return JSON_FEED if json_q > _quality(ranges, ATOM) else ATOM


def _accept_ranges(accept: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) for each well-formed media range; malformed ones are skipped so
    that a garbage header falls back to the default rather than failing the request."""
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        kind, slash, sub = media.lower().partition("/")
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if 0.0 <= q <= 1.0:
            ranges.append((kind, sub, q))
    return ranges


def _quality(ranges: list[tuple[str, str, float]], media_type: str) -> float:
    """The q the most specific matching range gives `media_type` (RFC 9110 12.5.1), 0 if none:
    `*/*, application/atom+xml;q=0` refuses Atom although `*/*` alone would allow it."""
    kind, _, sub = media_type.partition("/")
    best_specificity, best_q = -1, 0.0
    for range_kind, range_sub, q in ranges:
        if (range_kind, range_sub) == (kind, sub):
            specificity = 2
        elif range_kind == kind and range_sub == "*":
            specificity = 1
        elif (range_kind, range_sub) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
        elif specificity == best_specificity:
            best_q = max(best_q, q)
    return best_q


def _text(value: str) -> str:
    # Applied to both formats so that an article reads the same in either.
    return _NOT_XML.sub("", value)


def _entry_title(article: Mapping[str, Any]) -> str:
    # Atom requires a non-empty title; an article whose title was only control characters
    # is still worth listing, under its URL.
    return _text(article["title"]).strip() or _text(article["url"])


def _author(article: Mapping[str, Any]) -> str:
    for field in ("author", "publisher"):
        name = _text(article.get(field) or "").strip()
        if name:
            return name
    return SOURCE_NAMES.get(article["source"], article["source"])


def _published(article: Mapping[str, Any]) -> datetime:
    # fromisoformat takes both 'Z' and '+00:00' (Python 3.11); UTC keeps every date on the
    # page in one form.
    return _utc(datetime.fromisoformat(article["published_at"]))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime in a feed: {moment.isoformat()}")
    return moment.astimezone(UTC)
