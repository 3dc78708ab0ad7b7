"""Each upstream quirk, on hand-written payloads in the upstreams' own shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers import guardian, hackernews, newsapi
from providers.base import UpstreamError
from providers.text import canonical_url, html_to_text, parse_timestamp


def _newsapi_item(**changes):
    item = {
        "source": {"id": "ars-technica", "name": "Ars Technica"},
        "author": "Jane Doe",
        "title": "Chips get faster - Ars Technica",
        "description": "<p>Faster &amp; cooler.</p>",
        "url": "https://arstechnica.com/chips/?utm_source=rss#top",
        "urlToImage": "https://cdn.example/chip.jpg",
        "publishedAt": "2026-11-23T08:43:00Z",
        "content": "Faster chips are coming… [+2104 chars]",
    }
    return item | changes


def test_newsapi_item_normalized():
    [article] = newsapi.normalize({"status": "ok", "articles": [_newsapi_item()]}, "technology")
    assert article.title == "Chips get faster"  # publisher suffix stripped
    assert article.description == "Faster & cooler."
    assert article.url == "https://arstechnica.com/chips"
    assert article.publisher == "Ars Technica" and article.source == "newsapi"
    assert article.published_at == datetime(2026, 11, 23, 8, 43, tzinfo=UTC)
    assert article.category == "technology"


def test_newsapi_removed_items_are_dropped():
    removed = {
        "source": {"id": None, "name": "[Removed]"},
        "author": None,
        "title": "[Removed]",
        "description": "[Removed]",
        "url": "https://removed.com",
        "urlToImage": None,
        "publishedAt": "1970-01-01T00:00:00Z",
        "content": "[Removed]",
    }
    payload = {"status": "ok", "articles": [removed, _newsapi_item()]}
    assert [a.title for a in newsapi.normalize(payload, "general")] == ["Chips get faster"]


def test_newsapi_suffix_only_stripped_when_it_is_the_publisher():
    item = _newsapi_item(title="Rock - Paper - Scissors")
    assert newsapi.normalize({"status": "ok", "articles": [item]}, "general")[0].title == (
        "Rock - Paper - Scissors"
    )


def test_newsapi_google_news_redirects_are_kept_without_description():
    item = _newsapi_item(
        source={"id": "google-news", "name": "Google News"},
        title="Council approves lanes - Google News",
        url="https://news.google.com/rss/articles/CBMiK2h0",
        description=None,
        urlToImage=None,
    )
    [article] = newsapi.normalize({"status": "ok", "articles": [item]}, "general")
    assert article.description is None and article.image_url is None
    assert article.title == "Council approves lanes"


def test_newsapi_bad_items_are_skipped_not_fatal():
    items = [
        _newsapi_item(url=None),
        _newsapi_item(publishedAt="soon"),
        "junk",
        _newsapi_item(url="ftp://x"),
        _newsapi_item(),
    ]
    assert len(newsapi.normalize({"status": "ok", "articles": items}, "general")) == 1


@pytest.mark.parametrize(
    "payload", [[], {"status": "ok"}, {"status": "ok", "articles": "x"}, {"articles": []}, None]
)
def test_wrong_shapes_are_bad_responses(payload):
    for normalize in (
        lambda p: newsapi.normalize(p, "general"),
        guardian.normalize,
        lambda p: hackernews.normalize(p, "technology"),
    ):
        with pytest.raises(UpstreamError) as caught:
            normalize(payload)
        assert caught.value.code == "upstream_bad_response"


def _guardian(results):
    return {"response": {"status": "ok", "total": len(results), "results": results}}


def test_guardian_fields_html_entities_and_string_numbers():
    result = {
        "id": "technology/2026/nov/23/slug",
        "type": "article",
        "sectionId": "technology",
        "webPublicationDate": "2026-11-23T08:43:00Z",
        "webTitle": "Why your phone&#8217;s battery lasts",
        "webUrl": "http://WWW.theguardian.com/technology/2026/nov/23/slug/?CMP=share_btn_tw",
        "fields": {
            "trailText": "<p>Silicon <strong>anodes</strong> &amp; more</p>",
            "byline": "Alex <b>Hern</b>",
            "wordcount": "812",
            "isPremoderated": "false",
            "thumbnail": "https://media.example/1.jpg",
        },
    }
    [article] = guardian.normalize(_guardian([result]))
    assert article.title == "Why your phone\u2019s battery lasts"
    assert article.description == "Silicon anodes & more"
    assert article.author == "Alex Hern"
    assert article.url == "https://www.theguardian.com/technology/2026/nov/23/slug"
    assert article.image_url == "https://media.example/1.jpg"
    assert article.publisher == "The Guardian" and article.category == "technology"


def test_guardian_missing_fields_entirely_or_partly():
    base = {
        "sectionId": "film",
        "webPublicationDate": "2026-11-23T08:43:00Z",
        "webTitle": "A film",
        "webUrl": "https://www.theguardian.com/film/a",
    }
    no_fields, some = dict(base), base | {"fields": {"byline": "Critic"}}
    articles = guardian.normalize(_guardian([no_fields, some]))
    assert [(a.description, a.author, a.image_url) for a in articles] == [
        (None, None, None),
        (None, "Critic", None),
    ]
    assert {a.category for a in articles} == {"entertainment"}


@pytest.mark.parametrize(
    ("section", "category"),
    [
        ("technology", "technology"),
        ("business", "business"),
        ("money", "business"),
        ("science", "science"),
        ("environment", "science"),
        ("sport", "sports"),
        ("football", "sports"),
        ("culture", "entertainment"),
        ("film", "entertainment"),
        ("music", "entertainment"),
        ("tv-and-radio", "entertainment"),
        ("books", "entertainment"),
        ("stage", "entertainment"),
        ("artanddesign", "entertainment"),
        ("games", "entertainment"),
        ("society", "health"),
        ("world", "general"),
        ("politics", "general"),
        (None, "general"),
    ],
)
def test_guardian_section_to_category(section, category):
    assert guardian.category_of(section) == category


def test_guardian_sections_for_category_are_or_joined():
    assert guardian.sections_for("sports") == "sport|football"
    assert guardian.sections_for("general") is None


def test_hackernews_ask_hn_without_url_and_comments_dropped():
    hits = [
        {
            "objectID": "23946793",
            "title": "Ask HN: On-call?",
            "url": None,
            "author": "sre",
            "story_text": "<p>We&#x27;re five &amp; tired</p>",
            "created_at": "2026-11-23T04:15:00.000Z",
            "created_at_i": 1795000000,
            "_tags": ["story", "ask_hn"],
        },
        {
            "objectID": "23946794",
            "title": None,
            "url": None,
            "author": "c",
            "created_at": "2026-11-23T04:16:00.000Z",
            "_tags": ["comment"],
        },
        {
            "objectID": "23946795",
            "title": "A link",
            "url": "https://example.com/x?ref=hn",
            "author": "a",
            "created_at_i": 1795000000,
            "_tags": ["story"],
        },
    ]
    articles = hackernews.normalize({"hits": hits, "nbHits": 3}, "technology")
    assert [a.url for a in articles] == [
        "https://news.ycombinator.com/item?id=23946793",
        "https://example.com/x",
    ]
    assert articles[0].description == "We're five & tired"
    assert articles[1].published_at == datetime.fromtimestamp(1795000000, UTC)
    assert {a.publisher for a in articles} == {"Hacker News"}


def test_hackernews_past_the_last_page_is_just_empty():
    payload = {
        "hits": [],
        "nbHits": 5000,
        "page": 50,
        "message": "you can only fetch the 1000 hits for this query",
    }
    assert hackernews.normalize(payload, "technology") == []


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-23T08:43:00Z",
        "2026-11-23T08:43:00.000Z",
        "2026-11-23T09:43:00+01:00",
        "2026-11-23T03:43:00-05:00",
        "2026-11-23T08:43:00",
        "2026-11-23t08:43:00z",
        "2026-11-23T08:43:00.000000+00:00",
    ],
)
def test_timestamps_in_every_rfc3339_form_become_utc(value):
    assert parse_timestamp(value) == datetime(2026, 11, 23, 8, 43, tzinfo=UTC)
    assert parse_timestamp(value).utcoffset().total_seconds() == 0


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01T00:00:00Z", None, 17])
def test_garbage_timestamps_are_rejected(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM/Path/", "https://example.com/Path"),
        ("https://example.com/a?utm_source=x&utm_MEDIUM=y&id=3#frag", "https://example.com/a?id=3"),
        (
            "https://example.com/a?CMP=x&fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ocid=5&smid=6&ref=7",
            "https://example.com/a",
        ),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?b=2&a=1"),
    ],
)
def test_canonical_url(url, canonical):
    assert canonical_url(url) == canonical


@pytest.mark.parametrize("url", ["ftp://example.com/a", "not a url", "https://", "mailto:x@y"])
def test_canonical_url_rejects_non_http(url):
    with pytest.raises(ValueError):
        canonical_url(url)


def test_html_to_text():
    assert html_to_text("<p>One</p><p>Two &amp; three&nbsp;&#8217;</p>") == "One Two & three \u2019"
    assert html_to_text("<br/>   ") is None
    assert html_to_text(None) is None


def test_html_to_text_decodes_once_and_drops_scripts():
    assert html_to_text("Fish &amp;amp; chips") == "Fish &amp; chips"  # not decoded twice
    assert html_to_text("a &lt;b&gt; tag") == "a <b> tag"
    assert html_to_text("It&#x27;s &#8220;new&#8221;") == "It's \u201cnew\u201d"
    assert html_to_text("<style>p{}</style>Text<script>alert(1)</script>") == "Text"
    assert html_to_text("line<br>break") == "line break"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        (
            "https://example.com/s?q=a%20b&path=a/b&flag",
            "https://example.com/s?q=a%20b&path=a/b&flag",
        ),
        ("https://example.com/a?UTM_Source=x&Utm_campaign=y&z=1", "https://example.com/a?z=1"),
        ("https://example.com/a?Ref=1&cmp=2&REF=3", "https://example.com/a?Ref=1&cmp=2&REF=3"),
        ("https://example.com/a?&&ref=1&b=2&", "https://example.com/a?b=2"),
        ("http://example.com:80/a/", "https://example.com/a"),
        ("https://user:pw@Example.com/a", "https://example.com/a"),
        ("https://[2001:DB8::1]:8443/a", "https://[2001:db8::1]:8443/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com", "https://example.com"),
        ("https://example.com///", "https://example.com"),
    ],
)
def test_canonical_url_edge_cases(url, canonical):
    assert canonical_url(url) == canonical


def test_canonical_url_makes_relayed_copies_equal():
    copies = [
        "https://www.theguardian.com/science/2026/nov/23/brown-dwarf",
        "http://WWW.theguardian.com/science/2026/nov/23/brown-dwarf/",
        "https://www.theguardian.com/science/2026/nov/23/brown-dwarf?utm_source=newsapi&CMP=share_btn",
        "https://www.theguardian.com/science/2026/nov/23/brown-dwarf#comments",
        "https://www.theguardian.com:443/science/2026/nov/23/brown-dwarf?fbclid=x&gclid=y",
    ]
    assert len({canonical_url(u) for u in copies}) == 1


@pytest.mark.parametrize(
    "url", ["https://example.com:99999/a", "https://example.com:x/a", "//example.com/a"]
)
def test_canonical_url_rejects_bad_ports_and_missing_schemes(url):
    with pytest.raises(ValueError):
        canonical_url(url)


@pytest.mark.parametrize(
    "value", ["2026-11-23T08:43:00.123456789Z", "2026-11-23 08:43:00Z", " 2026-11-23T08:43:00Z "]
)
def test_timestamps_with_long_fractions_or_a_space(value):
    assert parse_timestamp(value).replace(microsecond=0) == datetime(
        2026, 11, 23, 8, 43, tzinfo=UTC
    )


@pytest.mark.parametrize("value", ["2026-11-23", "2026-W47-1T08:43:00", "2026-11-23T08:43:00+01"])
def test_iso_forms_outside_rfc3339_are_rejected(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_newsapi_title_that_is_only_the_suffix_and_bad_images():
    items = [
        _newsapi_item(title=" - Ars Technica"),
        _newsapi_item(urlToImage="javascript:alert(1)"),
        _newsapi_item(urlToImage=12),
    ]
    articles = newsapi.normalize({"status": "ok", "articles": items}, "general")
    assert [a.image_url for a in articles] == [None, None]


def test_newsapi_error_status_in_a_200_is_a_bad_response():
    with pytest.raises(UpstreamError) as caught:
        newsapi.normalize({"status": "error", "articles": []}, "general")
    assert caught.value.code == "upstream_bad_response"


def test_guardian_bad_items_skipped_and_odd_field_types_ignored():
    good = {
        "sectionId": "money",
        "webPublicationDate": "2026-11-23T08:43:00+00:00",
        "webTitle": "Savings",
        "webUrl": "https://www.theguardian.com/money/a",
        "fields": {"trailText": 5, "byline": ["x"], "thumbnail": "", "wordcount": "812"},
    }
    bad = [
        good | {"webTitle": None},
        good | {"webUrl": "mailto:x@y"},
        good | {"webPublicationDate": "Monday"},
        "junk",
    ]
    [article] = guardian.normalize(_guardian([*bad, good]))
    assert (article.description, article.author, article.image_url) == (None, None, None)
    assert article.category == "business"


def test_hackernews_falls_back_to_created_at_i_and_skips_bad_ids():
    hit = {"objectID": "1", "title": "T", "url": None, "created_at": "garbled", "created_at_i": 0}
    articles = hackernews.normalize(
        {"hits": [hit, hit | {"objectID": "1 OR 2"}, hit | {"created_at_i": None}]}, "general"
    )
    assert [(a.url, a.published_at, a.category) for a in articles] == [
        ("https://news.ycombinator.com/item?id=1", datetime(1970, 1, 1, tzinfo=UTC), "general")
    ]
