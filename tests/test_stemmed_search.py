"""Search over all the text an upstream sends, by stems, on SQLite and PostgreSQL: body text
searched and never shown, leaving the index at its time; upstream answers kept as matches;
the index bound to the analyzer that made it.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsagg.metrics import Metrics
from newsagg.push.matcher import Matcher
from newsagg.query.syntax import parse
from newsagg.query.upstream import answer_key
from newsagg.settings import Settings, SettingsError
from newsagg.store import Store, check_index, open_store
from newsagg.store.archive import Answer, ArchiveQuery, ArticleRecord
from newsagg.upkeep import Upkeep

pytestmark = pytest.mark.timeout(60)

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR_US = 3_600_000_000


def record(
    n: int,
    title: str,
    description: str | None = None,
    body: str | None = None,
    body_for_us: int | None = None,
    category: str = "technology",
) -> ArticleRecord:
    url = f"https://example.com/{n}"
    data = {
        "title": title,
        "description": description,
        "url": url,
        "source": "guardian",
        "publisher": "The Guardian",
        "author": None,
        "image_url": None,
        "category": category,
        "published_at": (NOW - timedelta(minutes=n)).isoformat(),
    }
    return ArticleRecord(url, 0, data, body, body_for_us)


def found(store: Store, q: str, **filters: object) -> list[str]:
    rows = store.search(ArchiveQuery(match=parse(q), limit=100, **filters))  # type: ignore[arg-type]
    return [json.loads(row.data)["title"] for row in rows]


def test_forms_of_a_word_find_each_other(store: Store):
    store.save_articles(
        [
            record(1, "Elections in spring"),
            record(2, "An economic outlook", "Headlines of the week"),
            record(3, "Climate summits begin"),
            record(4, "Happy days"),
        ]
    )
    for q in ("election", "elections"):
        assert found(store, q) == ["Elections in spring"], q
    for q in ("economics", "economic"):
        assert found(store, q) == ["An economic outlook"], q
    assert found(store, "headline") == ["An economic outlook"]
    assert found(store, '"climate summit"') == ["Climate summits begin"]
    assert found(store, "happy*") == ["Happy days"]
    assert found(store, "happi*") == []  # a prefix of the word as written, not of its stem


def test_body_text_is_searched_ranked_below_the_title_and_never_shown(store: Store):
    store.save_articles(
        [
            record(1, "Quarterly figures", body="Turbines spin in the estuary"),
            record(2, "Turbine makers merge"),
        ]
    )
    assert found(store, "turbines") == ["Quarterly figures", "Turbine makers merge"]
    assert found(store, '"the estuary"') == ["Quarterly figures"]
    assert found(store, "estu*") == ["Quarterly figures"]
    assert found(store, "title:turbine") == ["Turbine makers merge"]
    assert found(store, "title:estu*") == []
    ranked = store.search(ArchiveQuery(match=parse("turbine"), sort="relevance", limit=10))
    assert json.loads(ranked[0].data)["title"] == "Turbine makers merge"
    assert all("estuary" not in row.data.lower() for row in ranked)
    assert "body" not in (store.article(ranked[0].id) or {})


def test_a_body_leaves_the_index_at_its_time_and_the_article_stays(store: Store):
    store.save_articles(
        [
            record(1, "Quarterly figures", "A trail", body="Turbines spin", body_for_us=0),
            record(2, "Other news", body="Turbines turn", body_for_us=HOUR_US),
            record(3, "Relayed news", body="Turbines everywhere"),  # NewsAPI's: kept
        ]
    )
    assert found(store, "turbine") == ["Quarterly figures", "Other news", "Relayed news"]
    assert Upkeep(store).step().work == "expire"
    assert found(store, "turbine") == ["Other news", "Relayed news"]
    assert found(store, "trail") == ["Quarterly figures"]  # its title and trail stay
    assert store.expire_bodies(50) == 0
    # Fetched again, the body is indexed again for its hours.
    store.save_articles([record(1, "Quarterly figures", "A trail", "Turbines spin", HOUR_US)])
    assert found(store, "turbine") == ["Quarterly figures", "Other news", "Relayed news"]


def test_an_upstream_answer_matches_its_query_until_the_article_is_pruned(store: Store):
    asked = parse("economy")
    answer = Answer("guardian", answer_key(asked) or "")
    ids = store.save_articles(
        [record(1, "Markets fall"), record(2, "Economy grows", category="business")], answer
    )
    assert found(store, "economy") == ["Markets fall", "Economy grows"]
    assert found(store, "economy", category="business") == ["Economy grows"]
    assert found(store, "economy markets") == []  # another query: the archive decides
    ranked = store.search(ArchiveQuery(match=asked, sort="relevance", limit=10))
    assert [row.id for row in ranked] == [ids[1], ids[0]]  # its own match first
    # Saved again by another provider (or by the harvest), the answer stays.
    store.save_articles([record(1, "Markets fall", "Now with a trail")])
    assert found(store, "economy") == ["Markets fall", "Economy grows"]
    assert store.prune_articles(NOW - timedelta(seconds=90)) == 1
    assert found(store, "economy") == ["Markets fall"]
    assert store.db.read("SELECT article_id FROM upstream_answers") == [(ids[0],)]


def test_the_push_matcher_sees_what_the_archive_sees(store: Store):
    key = store.add_key(
        name="k", tier="basic", admin=False, prefix="nagg_x", digest="d" * 64, created_at="t"
    )
    searches = {}
    for q in ("turbines", "economy", "elections"):
        searches[q] = store.search_add(
            {
                "key_id": key.id,
                "name": q,
                "q": q,
                "sources": (),
                "paused": False,
                "created_us": 0,
                "updated_us": 0,
                "feed_nonce": "n",
            },
            cap=10,
        )
    store.save_articles([record(1, "Quarterly figures", body="Turbines spin")])
    store.save_articles(
        [record(2, "Markets fall")], Answer("newsapi", answer_key(parse("economy")) or "")
    )
    store.save_articles([record(3, "Election day")])
    Matcher(store, Metrics()).run_until_caught_up(lambda: True)
    for q, search in searches.items():
        assert search is not None
        matched = store.matches_after(search.id, 0, 10)
        assert len(matched) == 1, q


def test_an_index_made_for_another_language_is_refused_until_reindexed(
    backend_settings: Settings,
):
    settings = backend_settings
    with closing(open_store(settings)) as store:
        store.save_articles([record(1, "Elections in spring")])
    french = replace(settings, search_language="french")
    with closing(open_store(french)) as store:
        with pytest.raises(SettingsError, match="newsagg reindex"):
            check_index(store)
        assert store.reindex() == 1
        check_index(store)
        assert store.index_identity() == store.analyzer.identity
        assert found(store, "election") == ["Elections in spring"]
    with closing(open_store(replace(settings, search_language="none"))) as store:
        store.reindex()
        assert found(store, "election") == []  # words as written
        assert found(store, "elections") == ["Elections in spring"]


def test_sqlite_index_stays_whole_through_every_write(tmp_path: Path):
    """FTS5 removes an entry only when given what it was made of: every path that changes
    an article's text (upsert, answer, expiry, prune) must give exactly that."""
    path = tmp_path / "whole.sqlite3"
    with closing(open_store(Settings(database=str(path)))) as store:
        answer = Answer("guardian", answer_key(parse("economy")) or "")
        store.save_articles(
            [record(n, f"Story {n}", body="Turbines", body_for_us=0) for n in range(9)]
        )
        store.save_articles([record(n, f"Story {n} again") for n in range(0, 9, 2)], answer)
        store.save_articles([record(n, f"Story {n}") for n in range(0, 9, 3)], answer)
        store.expire_bodies(50)
        store.prune_articles(NOW - timedelta(minutes=4, seconds=30))
        assert found(store, "story") == [
            f"Story {n}" + (" again" if n in (2, 4) else "") for n in range(5)
        ]
    with closing(sqlite3.connect(path)) as db:
        db.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES ('integrity-check', 1)")
