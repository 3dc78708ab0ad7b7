"""Stories on SQLite and PostgreSQL: real headlines grouped as the issue asks (precision and
recall on the evaluation set, bench/stories), the traps a headline rule must not fall in,
ids that never change but through a recorded merge, and a merged id that still answers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from newsagg.metrics import Metrics
from newsagg.push.matcher import Matcher
from newsagg.settings import Settings
from newsagg.store import Store, open_store
from newsagg.store.archive import ArchiveQuery, ArticleRecord
from newsagg.stories.grouping import group_by_story
from newsagg.stories.model import StoryRecord

pytestmark = pytest.mark.timeout(120)

EVAL = Path(__file__).parent.parent / "bench" / "stories"
NOW = datetime.now(UTC).replace(microsecond=0)


def _evaluate_module() -> Any:
    spec = importlib.util.spec_from_file_location("stories_evaluate", EVAL / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def article(
    title: str,
    publisher: str,
    *,
    source: str = "newsapi",
    hours_ago: float = 1.0,
    url: str | None = None,
    category: str = "technology",
) -> ArticleRecord:
    published = NOW - timedelta(hours=hours_ago)
    data = {
        "title": title,
        "description": None,
        "url": url or f"https://{publisher.lower().replace(' ', '')}.example/{abs(hash(title))}",
        "source": source,
        "publisher": publisher,
        "author": None,
        "image_url": None,
        "category": category,
        "published_at": published.isoformat(),
    }
    rank = ("guardian", "newsapi", "hackernews").index(source)
    return ArticleRecord(data["url"], rank, data)


def stories_of(store: Store, ids: list[int]) -> list[int]:
    refs = store.story_refs(ids)
    return [refs[i].id for i in ids]


def real_headlines(store: Store) -> tuple[list[dict[str, Any]], list[int]]:
    """The evaluation set (3,281 real headlines of April 2014, 620 gold stories) saved day
    by day in pages, as the harvester saves them: its rows and their article ids."""
    evaluate = _evaluate_module()
    rows = evaluate.load(EVAL / "eval.jsonl")
    ids: list[int] = []
    for start in range(0, len(rows), 100):
        ids += store.save_articles(evaluate.record(row) for row in rows[start : start + 100])
    return rows, ids


def merged(store: Store) -> None:
    """The upkeep's periodic merges, caught up."""
    while store.merge_stories(1_000)[0]:
        pass


def test_real_headlines_are_grouped_at_the_goal(store: Store) -> None:
    """Pairwise precision >= 0.9 at recall >= 0.5 on the same-day pairs of the evaluation
    set, the issue's goal, on both engines alike. Then, among those headlines (so that
    words weigh what they weigh in an archive), the trap of headline rules: one company and
    one verb, two events."""
    rows, ids = real_headlines(store)
    merged(store)
    scores = _evaluate_module().score(rows, stories_of(store, ids))
    assert scores["p"] >= 0.9, scores
    assert scores["r"] >= 0.5, scores
    ids = store.save_articles(
        [
            article(
                "Apple releases the new iPhone 16 with a faster chip", "The Verge", hours_ago=2
            ),
            article("Apple releases new macOS Sequoia with AI features", "Ars Technica"),
        ]
    )
    merged(store)
    refs = store.story_refs(ids)
    assert refs[ids[0]].id != refs[ids[1]].id


# Unrelated headlines around the tests' own, so that word weights are those of an archive.
BACKGROUND = [
    "Central bank holds interest rates as inflation cools",
    "Storm brings flooding to coastal towns overnight",
    "Football club appoints former captain as manager",
    "Parliament debates housing bill amid protests",
    "Scientists map coral reef decline in warming seas",
    "Streaming service raises prices for subscribers",
    "Airline strike cancels hundreds of flights",
    "Vaccine trial shows promise against malaria",
    "Oil prices slide on weak demand outlook",
    "Museum returns looted artefacts to Nigeria",
    "Apple shares rise ahead of earnings report",
    "Electric car sales slow in Europe",
    "Startup raises funding for battery recycling",
    "Google faces antitrust trial over ad business",
]


def background(store: Store) -> None:
    store.save_articles(
        article(title, f"Outlet {n}", hours_ago=30 + n) for n, title in enumerate(BACKGROUND)
    )


def helios_event(hn_hours_ago: float) -> list[ArticleRecord]:
    """One event told by the Guardian, a NewsAPI relay and an HN link, in their own words."""
    return [
        article(
            "Helios Labs unveils solid-state battery for electric trucks",
            "The Guardian",
            source="guardian",
            hours_ago=3,
        ),
        article(
            "Electric trucks to get solid-state battery from Helios Labs", "Reuters", hours_ago=2
        ),
        article(
            "Helios Labs' solid-state battery promises 800-mile electric trucks",
            "Hacker News",
            source="hackernews",
            hours_ago=hn_hours_ago,
        ),
    ]


def test_three_outlets_of_one_event_on_three_providers_are_one_story(store: Store) -> None:
    background(store)
    ids = store.save_articles(helios_event(hn_hours_ago=1))
    refs = store.story_refs(ids)
    assert len({refs[i].id for i in ids}) == 1
    story = refs[ids[0]]
    assert (story.size, story.publishers) == (3, 3)
    assert story.providers == ("guardian", "hackernews", "newsapi")
    record = store.story(story.id)
    assert isinstance(record, StoryRecord)
    # The representative: the provider nearest the source.
    assert record.lead_id == ids[0]
    assert record.title == "Helios Labs unveils solid-state battery for electric trucks"


def test_the_same_headline_from_two_outlets_joins_at_once(store: Store) -> None:
    ids = store.save_articles(
        [
            article("Quake hits island", "AP", hours_ago=2),
            article("Quake hits island!", "ABC News", hours_ago=1),
        ]
    )
    refs = store.story_refs(ids)
    assert refs[ids[0]].id == refs[ids[1]].id


def test_a_story_id_never_changes_as_the_story_grows(store: Store) -> None:
    background(store)
    first = article("Helios Labs unveils solid-state battery for electric trucks", "Reuters")
    (article_id,) = store.save_articles([first])
    story_id = store.story_refs([article_id])[article_id].id
    more = store.save_articles(
        [
            article("Solid-state battery from Helios Labs for electric trucks", "BBC News"),
            article("Helios Labs solid-state battery: electric trucks go further", "Wired"),
        ]
    )
    store.save_articles([first])  # the same story seen again
    refs = store.story_refs([article_id, *more])
    assert {ref.id for ref in refs.values()} == {story_id}
    assert refs[article_id].size == 3


def test_a_merged_story_points_at_the_one_it_joined(backend_settings: Settings) -> None:
    """Saved with a join threshold nothing passes, the articles found a story each; the
    upkeep's merge joins the younger into the older, whose id the younger then answers
    with, and nothing else changes an id."""
    strict = open_store(replace(backend_settings, story_threshold=0.99))
    try:
        background(strict)
        older, younger = strict.save_articles(
            [
                article("Helios Labs unveils solid-state battery for electric trucks", "AP"),
                article("Helios Labs solid-state battery to power electric trucks", "BBC News"),
            ]
        )
        before = strict.story_refs([older, younger])
        assert before[older].id != before[younger].id
        assert strict.merge_stories(100) == (len(BACKGROUND) + 2, 1)
        after = strict.story_refs([older, younger])
        assert after[older].id == after[younger].id == before[older].id
        assert after[older].size == 2
        assert strict.story(before[younger].id) == before[older].id
        assert before[younger].id not in strict.stories_by_id([before[younger].id])
        assert strict.merge_stories(100)[1] == 0
    finally:
        strict.close()


def test_rebuilding_places_every_article_again(store: Store) -> None:
    background(store)
    ids = store.save_articles(
        [
            article("Helios Labs unveils solid-state battery for electric trucks", "AP"),
            article("Electric trucks to get solid-state battery from Helios Labs", "Reuters"),
        ]
    )
    assert store.rebuild_stories() == len(BACKGROUND) + 2
    refs = store.story_refs(ids)
    assert refs[ids[0]].id == refs[ids[1]].id
    assert refs[ids[0]].size == 2


def test_grouped_by_story_each_story_is_one_row_across_pages(store: Store) -> None:
    """GET /articles?group=story's core: a story appears once, where its newest article
    passing the filters would appear, showing its best such article and the others."""
    background(store)
    guardian, reuters, hn = store.save_articles(helios_event(hn_hours_ago=0.5))
    grouped = group_by_story(store, ArchiveQuery(limit=100), 100)
    shown = [json.loads(item.json) for item in grouped.items]
    assert len(shown) == len(BACKGROUND) + 1
    first = shown[0]  # where the story's newest article (HN's) appears
    assert first["id"] == guardian  # its best: the provider nearest the source
    assert grouped.rows[0].id == hn
    assert {a["id"] for a in first["also_reported_by"]} == {reuters, hn}
    assert first["story"]["size"] == 3
    # Filtered to one provider, the story shows that provider's article.
    only_newsapi = group_by_story(store, ArchiveQuery(sources=("newsapi",), limit=100), 100)
    assert json.loads(only_newsapi.items[0].json)["id"] == reuters
    # Page by page (one story a page), as the cursor resumes after the last row shown.
    seen, after = [], None
    for _ in range(len(BACKGROUND) + 3):
        page = group_by_story(store, ArchiveQuery(limit=2, after=after), 1)
        seen += [json.loads(item.json)["story"]["id"] for item in page.items[:1]]
        if len(page.rows) <= 1:
            break
        after = (page.rows[0].position, page.rows[0].id)
    assert len(seen) == len(set(seen)) == len(BACKGROUND) + 1


def test_a_search_grouped_by_story_is_sent_a_story_once_then_as_it_grows(store: Store) -> None:
    """Webhooks and events of a search with group "story": the story's first article, then
    one when the story has grown to 3 (GROWTH), nothing for the relays in between; a search
    without grouping gets every article."""
    key = store.add_key(
        name="k", tier="basic", admin=False, prefix="nagg_x", digest="d" * 64, created_at="t"
    )
    grouped, plain = (
        store.search_add(
            {
                "key_id": key.id,
                "name": name,
                "q": "helios",
                "sources": (),
                "paused": False,
                "created_us": 0,
                "updated_us": 0,
                "feed_nonce": "n",
                "group_by": group,
            },
            cap=10,
        )
        for name, group in (("grouped", "story"), ("plain", None))
    )
    assert grouped is not None and plain is not None and grouped.group_by == "story"
    background(store)
    headlines = [
        "Helios Labs unveils solid-state battery for electric trucks",
        "Electric trucks to get solid-state battery from Helios Labs",
        "Helios Labs solid-state battery promises 800-mile electric trucks",
        "Helios Labs' electric trucks battery: solid-state at last",
    ]
    matcher, ids = Matcher(store, Metrics()), []
    for n, title in enumerate(headlines):
        ids += store.save_articles([article(title, f"Outlet {n}", hours_ago=4 - n)])
        matcher.run_until_caught_up(lambda: True)
    sent = store.matches_after(grouped.id, 0, 10)
    assert [article_id for _, article_id, *_ in sent] == [ids[0], ids[2]]
    assert len({story.id for *_, story in sent}) == 1
    assert len(store.matches_after(plain.id, 0, 10)) == 4


def test_pruning_takes_the_stories_of_the_articles_it_takes(store: Store) -> None:
    old, kept = store.save_articles(
        [
            article(
                "Helios Labs unveils solid-state battery for electric trucks", "AP", hours_ago=50
            ),
            article(
                "Electric trucks to get solid-state battery from Helios Labs", "BBC", hours_ago=1
            ),
        ]
    )
    (alone,) = store.save_articles([article("Museum returns looted artefacts", "AP", hours_ago=49)])
    story_id = store.story_refs([old])[old].id
    alone_story = store.story_refs([alone])[alone].id
    assert store.story_refs([kept])[kept].id == story_id
    store.prune_articles(NOW - timedelta(hours=10))
    left = store.story(story_id)
    assert isinstance(left, StoryRecord)
    assert (left.size, left.publishers) == (1, 1)
    assert store.story(alone_story) is None


def test_an_article_without_a_story_is_placed_by_the_upkeep(store: Store) -> None:
    """As one saved by an older release during a rolling upgrade: shown with `story` null
    until the upkeep's next step places it."""
    (article_id,) = store.save_articles([article("Quake hits island", "AP")])
    with store.db.transaction() as db:  # as if its save had never placed it
        for table in ("story_members", "story_terms", "story_titles", "story_publishers"):
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM stories")
    shown = store.article(article_id)
    assert shown is not None and shown["story"] is None
    assert store.place_strays(50) == 1
    shown = store.article(article_id)
    assert shown is not None and shown["story"]["size"] == 1
    assert store.place_strays(50) == 0
