"""Feed rendering (edge/feeds.py): Atom and JSON Feed read back the way a feed reader reads
them (feedparser), byte-stable output for the ETag, and the format negotiation table."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser
import pytest

from edge.feeds import ATOM, JSON_FEED, FeedPage, negotiate, render_atom, render_json_feed

ATOM_NS = "{http://www.w3.org/2005/Atom}"
SELF = "https://news.example/feeds/7?token=tok&format=atom"
NEXT = "https://news.example/feeds/7?token=tok&format=atom&cursor=abc"
HOME = "https://news.example/searches/7"
SEARCH_UPDATED = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def article(article_id: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": article_id,
        "title": f"Title {article_id}",
        "description": f"Description {article_id}",
        "url": f"https://publisher.example/story/{article_id}",
        "source": "newsapi",
        "publisher": "Example Daily",
        "author": f"Author {article_id}",
        "image_url": f"https://publisher.example/img/{article_id}.jpg",
        "category": "technology",
        "published_at": "2026-01-10T12:00:00+00:00",
    }
    return base | changes


# Newest first, as the store returns them; one per author rule.
ARTICLES = [
    article(3, published_at="2026-01-10T14:30:00+02:00"),  # 12:30 UTC
    article(2, author=None, source="guardian", published_at="2026-01-10T11:00:00Z"),
    article(
        1,
        author=None,
        publisher=None,
        source="hackernews",
        description=None,
        image_url=None,
        category="general",
        published_at="2026-01-09T23:15:00Z",
    ),
]
EXPECTED_AUTHORS = ["Author 3", "Example Daily", "Hacker News"]
EXPECTED_DATES = [
    "2026-01-10T12:30:00+00:00",
    "2026-01-10T11:00:00+00:00",
    "2026-01-09T23:15:00+00:00",
]


def page(articles: list[Mapping[str, Any]] = ARTICLES, **changes: Any) -> FeedPage:
    fields: dict[str, Any] = {
        "authority": "news.example,2026-12-01",
        "search_id": 7,
        "title": "Rust & Python",
        "self_url": SELF,
        "alternate_url": HOME,
        "next_url": NEXT,
        "articles": articles,
        "updated": datetime(2026, 1, 10, 12, 30, tzinfo=UTC),
    }
    return FeedPage(**(fields | changes))


def links(parsed: Any) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in parsed.feed.links}


def test_atom_entries_in_order_with_ids_titles_links_authors_dates() -> None:
    parsed = feedparser.parse(render_atom(page()))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == "tag:news.example,2026-12-01:search:7"
    assert parsed.feed.title == "Rust & Python"
    assert parsed.feed.updated == "2026-01-10T12:30:00+00:00"
    assert [e.id for e in parsed.entries] == [
        f"tag:news.example,2026-12-01:article:{n}" for n in (3, 2, 1)
    ]
    assert [e.title for e in parsed.entries] == ["Title 3", "Title 2", "Title 1"]
    assert [e.link for e in parsed.entries] == [a["url"] for a in ARTICLES]
    assert [e.links[0]["rel"] for e in parsed.entries] == ["alternate"] * 3
    assert [e.author for e in parsed.entries] == EXPECTED_AUTHORS
    assert [e.published for e in parsed.entries] == EXPECTED_DATES
    assert [e.updated for e in parsed.entries] == EXPECTED_DATES
    assert [e.get("summary") for e in parsed.entries] == ["Description 3", "Description 2", None]
    assert [[t.term for t in e.tags] for e in parsed.entries] == [
        ["technology"],
        ["technology"],
        ["general"],
    ]


def test_atom_links_self_next_alternate() -> None:
    parsed = feedparser.parse(render_atom(page()))
    assert links(parsed) == {"self": SELF, "next": NEXT, "alternate": HOME}
    self_link = next(link for link in parsed.feed.links if link["rel"] == "self")
    assert self_link["type"] == ATOM


def test_atom_last_page_has_no_next_and_no_alternate_when_absent() -> None:
    parsed = feedparser.parse(render_atom(page(next_url=None, alternate_url=None)))
    assert links(parsed) == {"self": SELF}


def test_empty_page_is_valid_atom_with_a_feed_author() -> None:
    body = render_atom(page([], next_url=None, updated=SEARCH_UPDATED))
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.entries == []
    assert parsed.feed.author == "newsagg"
    assert parsed.feed.updated == "2026-01-05T08:00:00+00:00"


def test_atom_is_well_formed_and_names_no_generator() -> None:
    root = ET.fromstring(render_atom(page()))
    assert root.tag == f"{ATOM_NS}feed"
    # feedgen's generator element carries its version: an upgrade must not change ETags.
    assert root.find(f"{ATOM_NS}generator") is None
    assert len(root.findall(f"{ATOM_NS}entry")) == 3


HOSTILE = "a < b && c > d \U0001f680 \x0bvertical\x00nul\x1f \ud800 \ufffe"
CLEAN = "a < b && c > d \U0001f680 verticalnul  "


def test_markup_emoji_and_control_characters_do_not_break_the_xml() -> None:
    hostile = article(
        9,
        title=HOSTILE,
        description=HOSTILE,
        author="\x0b",  # nothing left of it: the publisher takes over
        category="tech\x01",
        url="https://publisher.example/s?a=1&b=<2>",
    )
    body = render_atom(page([hostile], title=f"search {HOSTILE}"))
    root = ET.fromstring(body)
    entry = root.find(f"{ATOM_NS}entry")
    assert entry is not None
    # A title is trimmed (a blank one falls back to the URL); a summary is kept as it is.
    assert entry.findtext(f"{ATOM_NS}title") == CLEAN.strip()
    assert entry.findtext(f"{ATOM_NS}summary") == CLEAN
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.entries[0].author == "Example Daily"
    assert parsed.entries[0].tags[0].term == "tech"
    assert parsed.entries[0].link == "https://publisher.example/s?a=1&b=<2>"

    item = json.loads(render_json_feed(page([hostile])))["items"][0]
    assert item["title"] == CLEAN.strip()  # the same text in both formats


def test_title_of_only_control_characters_falls_back_to_the_url() -> None:
    parsed = feedparser.parse(render_atom(page([article(4, title="\x0b\x0c")])))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.entries[0].title == "https://publisher.example/story/4"


@pytest.mark.parametrize("render", [render_atom, render_json_feed])
def test_output_is_identical_on_two_renders(render: Any) -> None:
    first = render(page())
    # A copy, not the same object: equal input, equal bytes.
    again = render(page([dict(a) for a in ARTICLES]))
    assert first == again
    empty = page([], next_url=None, updated=SEARCH_UPDATED)
    assert render(empty) == render(empty)


def test_naive_updated_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        render_atom(page(updated=datetime(2026, 1, 10, 12, 30)))


def test_json_feed_structure() -> None:
    body = render_json_feed(page())
    assert b"\n" not in body and b", " not in body  # compact
    feed = json.loads(body.decode("utf-8"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "Rust & Python"
    assert feed["home_page_url"] == HOME
    assert feed["feed_url"] == SELF
    assert feed["next_url"] == NEXT
    assert feed["authors"] == [{"name": "newsagg"}]
    items = feed["items"]
    for item in items:
        assert isinstance(item["id"], str)
        assert item.get("content_text") or item.get("content_html")
    assert items[0] == {
        "id": "tag:news.example,2026-12-01:article:3",
        "url": "https://publisher.example/story/3",
        "title": "Title 3",
        "summary": "Description 3",
        "content_text": "Description 3",
        "image": "https://publisher.example/img/3.jpg",
        "date_published": "2026-01-10T12:30:00+00:00",
        "date_modified": "2026-01-10T12:30:00+00:00",
        "authors": [{"name": "Author 3"}],
        "tags": ["technology"],
        "_newsagg": {"article_id": 3, "source": "newsapi"},
    }
    assert [i["authors"][0]["name"] for i in items] == EXPECTED_AUTHORS
    assert [i["date_published"] for i in items] == EXPECTED_DATES
    # No description: no summary, and the title stands in as the required content.
    assert "summary" not in items[2] and "image" not in items[2]
    assert items[2]["content_text"] == "Title 1"


def test_empty_json_feed_omits_optional_links() -> None:
    feed = json.loads(render_json_feed(page([], next_url=None, alternate_url=None)))
    assert feed == {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Rust & Python",
        "feed_url": SELF,
        "authors": [{"name": "newsagg"}],
        "items": [],
    }


@pytest.mark.parametrize(
    ("format_", "accept", "expected"),
    [
        # No preference at all: Atom.
        (None, None, ATOM),
        ("", "", ATOM),
        (None, "*/*", ATOM),
        # The format parameter beats any Accept.
        ("json", ATOM, JSON_FEED),
        ("json", None, JSON_FEED),
        ("atom", JSON_FEED, ATOM),
        ("ATOM", "application/json", ATOM),
        # An unknown format value is no preference; Accept decides.
        ("rss", JSON_FEED, JSON_FEED),
        # Accept alone.
        (None, JSON_FEED, JSON_FEED),
        (None, "application/json", JSON_FEED),
        (None, ATOM, ATOM),
        (None, "application/feed+json; charset=utf-8", JSON_FEED),
        (None, "Application/Feed+JSON", JSON_FEED),
        # q-values.
        (None, f"{ATOM};q=0.9, {JSON_FEED}", JSON_FEED),
        (None, f"{ATOM}, {JSON_FEED};q=0.9", ATOM),
        (None, f"{ATOM};q=0.5, application/json;q=0.8", JSON_FEED),
        (None, f"{JSON_FEED};q=0.5, {ATOM};q=0.5", ATOM),  # a tie keeps the default
        (None, f"{JSON_FEED};q=0", ATOM),
        (None, f"*/*, {ATOM};q=0", JSON_FEED),  # the specific range wins over */*
        (None, f"application/*;q=0.2, {JSON_FEED}", JSON_FEED),
        (None, "text/html, application/xhtml+xml, */*;q=0.8", ATOM),  # a browser
        # Garbage: the default.
        (None, "garbage", ATOM),
        (None, ";;;,,,", ATOM),
        (None, f"{JSON_FEED};q=abc", ATOM),
        (None, f"{JSON_FEED};q=7", ATOM),
        (None, "*/json", ATOM),
    ],
)
def test_negotiate(format_: str | None, accept: str | None, expected: str) -> None:
    assert negotiate(format_, accept) == expected
