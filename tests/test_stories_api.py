"""GET /stories and GET /stories/{story_id} through Connexion, over real HTTP to the
simulator: every article carries its story, stories list and page as documented (each
live body checked against the spec with the validator Connexion uses), one story pages
through all its articles, and a merged story's id redirects to the survivor."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import merge_article, problem_detail
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from edge.app import create_app, load_spec
from newsagg.service import Service
from providers.base import PROVIDER_NAMES, Article

pytestmark = pytest.mark.timeout(60)

SPEC: dict[str, Any] = load_spec()
SPEC_URI = "urn:newsagg:openapi"
REGISTRY = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(SPEC))
STORY_FIELDS = (
    "id",
    "title",
    "size",
    "publishers",
    "providers",
    "first_published_at",
    "last_published_at",
)
GRAVITY = 1.8  # as GET /stories documents the trending score


def _valid(body: Any, schema: str) -> Any:
    """`body`, asserting it is a `schema` of the spec (OAS30Validator, as Connexion checks)."""
    validator = OAS30Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{schema}"},
        registry=REGISTRY,
        format_checker=oas30_format_checker,
    )
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], errors[:5]
    return body


def _instant(text: str) -> datetime:
    assert text.endswith("+00:00"), text
    return datetime.fromisoformat(text)


@pytest.fixture
def archive(client, user_headers) -> None:
    """The simulator's articles in the archive (an unfiltered query fetches them all)."""
    assert client.get("/articles", params={"limit": 100}, headers=user_headers).status_code == 200


def _stories(client, headers, **params: Any) -> dict[str, Any]:
    answer = client.get("/stories", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    return _valid(answer.json(), "StoryPage")


def _walk(client, headers, path: str, key: str, **params: Any) -> tuple[list[dict], int]:
    """Every item of `key` over the pages of `path`, and how many pages it took."""
    seen, cursor, pages = [], None, 0
    while True:
        page = client.get(
            path, params=params | ({"cursor": cursor} if cursor else {}), headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["count"] == len(body[key])
        seen += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


def test_every_article_carries_its_story(client, user_headers, archive):
    page = client.get("/articles", params={"limit": 100}, headers=user_headers).json()
    _valid(page, "ArticlePage")
    for article in page["articles"]:
        story = article["story"]
        assert set(story) == {"id", "size", "publishers", "providers"}
        assert story["size"] >= 1 and 1 <= story["publishers"] <= story["size"]
        assert story["providers"] == sorted(set(story["providers"]))
        assert set(story["providers"]) <= set(PROVIDER_NAMES)
    # One article alone shows the same story, and the story the same numbers.
    first = page["articles"][0]
    alone = client.get(f"/articles/{first['id']}", headers=user_headers)
    assert _valid(alone.json(), "Article")["story"] == first["story"]
    story = client.get(f"/stories/{first['story']['id']}", headers=user_headers).json()
    assert {k: story[k] for k in ("id", "size", "publishers", "providers")} == first["story"]
    # The demo's events are told by several outlets and providers: some story says so.
    listed = _stories(client, user_headers, limit=100)["stories"]
    assert any(s["size"] >= 3 and len(s["providers"]) == 3 for s in listed)


def test_stories_list_with_their_newest_articles(client, user_headers, archive):
    body = _stories(client, user_headers, limit=100)
    stories = body["stories"]
    assert body["count"] == len(stories) > 0
    for story in stories:
        articles = story["articles"]
        assert len(articles) == min(story["size"], 3)
        assert all(a["story"] == {k: story[k] for k in a["story"]} for a in articles)
        times = [_instant(a["published_at"]) for a in articles]
        assert times == sorted(times, reverse=True)
        assert _instant(story["first_published_at"]) <= _instant(story["last_published_at"])
        assert story["providers"] == sorted(set(story["providers"]))
    # In demo mode, events every provider reports are stories of 3 and more.
    assert sum(s["size"] >= 3 and len(s["providers"]) == 3 for s in stories) >= 3


def test_trending_ranks_by_coverage_over_age(client, user_headers, archive):
    before = datetime.now(UTC)
    stories = _stories(client, user_headers, limit=100)["stories"]

    def score(story: dict) -> float:
        coverage = story["publishers"] + len(story["providers"]) - 1
        age = max(0.0, (before - _instant(story["last_published_at"])).total_seconds() / 3600)
        return max(coverage, 1) / (age + 2) ** GRAVITY

    scores = [score(s) for s in stories]
    # Ranked a few milliseconds after `before`: equal up to that.
    assert all(a >= b * (1 - 1e-4) for a, b in itertools.pairwise(scores)), scores
    # The default is trending.
    assert stories == _stories(client, user_headers, limit=100, sort="trending")["stories"]


def test_newest_orders_by_the_lastmerge_article(client, user_headers, archive):
    stories = _stories(client, user_headers, limit=100, sort="newest")["stories"]
    keys = [(_instant(s["last_published_at"]), s["id"]) for s in stories]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("sort", ["trending", "newest"])
def test_pages_cover_the_listing_without_repeats(client, user_headers, archive, sort):
    full = _stories(client, user_headers, limit=100, sort=sort)
    assert full["next_cursor"] is None  # the demo has fewer than 100 stories
    walked, pages = _walk(client, user_headers, "/stories", "stories", limit=7, sort=sort)
    ids = [s["id"] for s in walked]
    assert len(ids) == len(set(ids))
    assert pages == -(-len(ids) // 7)
    if sort == "newest":  # nothing depends on the instant of ranking
        assert ids == [s["id"] for s in full["stories"]]
    else:
        assert set(ids) == {s["id"] for s in full["stories"]}


def test_filters_pick_stories_by_their_articles(client, user_headers, archive):
    (lumora,) = _stories(client, user_headers, q="lumora")["stories"]
    assert lumora["size"] == 4 and lumora["publishers"] == 4
    assert lumora["providers"] == ["guardian", "hackernews", "newsapi"]
    assert len(lumora["articles"]) == 3  # shown whole, whatever the filter
    only_hn = _stories(client, user_headers, source="hackernews", limit=100)["stories"]
    assert only_hn and all("hackernews" in s["providers"] for s in only_hn)
    # A story passes when one of its articles does: the other providers' stay in it.
    assert any(s["providers"] != ["hackernews"] for s in only_hn)
    now = datetime.now(UTC)
    future = _stories(client, user_headers, **{"from": (now + timedelta(days=1)).isoformat()})
    assert future == {"stories": [], "count": 0, "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"q": '"open'}, "q: unclosed quote"),
        ({"from": "2026-11-25T10:00:00Z", "to": "2026-11-25T09:00:00Z"}, "from: must not be"),
        ({"sort": "relevance"}, "sort:"),
        ({"limit": 101}, "limit:"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor:"),
    ],
)
def test_bad_listing_input_is_a_400(client, user_headers, params, detail):
    answer = client.get("/stories", params=params, headers=user_headers)
    assert detail in problem_detail(answer, 400)
    _valid(answer.json(), "Problem")


def test_a_cursor_fits_only_the_listing_that_gave_it(client, user_headers, archive):
    def cursor(path: str, **params: Any) -> str:
        body = client.get(path, params={"limit": 2, **params}, headers=user_headers).json()
        assert body["next_cursor"], body
        return body["next_cursor"]

    trending = cursor("/stories")
    lumora = _stories(client, user_headers, q="lumora")["stories"][0]
    story_cursor = cursor(f"/stories/{lumora['id']}")
    other = next(s for s in _stories(client, user_headers)["stories"] if s["id"] != lumora["id"])
    foreign = [
        ("/stories", {"cursor": cursor("/articles")}),  # of GET /articles
        ("/stories", {"cursor": trending, "sort": "newest"}),  # of another order
        ("/stories", {"cursor": trending, "category": "business"}),  # of other filters
        ("/stories", {"cursor": story_cursor}),  # of one story's articles
        (f"/stories/{other['id']}", {"cursor": story_cursor}),  # of another story
        ("/articles", {"cursor": trending}),  # and the other way round
    ]
    for path, params in foreign:
        answer = client.get(path, params=params, headers=user_headers)
        assert "cursor" in problem_detail(answer, 400), (path, params)
    # The cursor's own listing goes on.
    assert client.get("/stories", params={"cursor": trending}, headers=user_headers).is_success


def test_a_story_pages_through_all_its_articles(client, user_headers, archive):
    listed = _stories(client, user_headers, q="lumora")["stories"][0]
    path = f"/stories/{listed['id']}"
    whole = client.get(path, params={"limit": 100}, headers=user_headers)
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    story = _valid(whole.json(), "StoryDetail")
    assert {k: story[k] for k in STORY_FIELDS} == {k: listed[k] for k in STORY_FIELDS}
    assert story["count"] == story["size"] == len(story["articles"]) == 4
    assert story["next_cursor"] is None
    assert story["articles"][:3] == listed["articles"]
    assert {a["source"] for a in story["articles"]} == set(story["providers"])
    assert len({a["publisher"] for a in story["articles"]}) == story["publishers"]
    times = [_instant(a["published_at"]) for a in story["articles"]]
    assert times == sorted(times, reverse=True)
    assert _instant(story["first_published_at"]) == times[-1]
    assert _instant(story["last_published_at"]) == times[0]
    # The title is the Guardian's, the provider nearest the source.
    assert story["title"] == next(
        a["title"] for a in story["articles"] if a["source"] == "guardian"
    )

    paged, pages = _walk(client, user_headers, path, "articles", limit=3)
    assert paged == story["articles"] and pages == 2
    for article in story["articles"]:
        alone = client.get(f"/articles/{article['id']}", headers=user_headers).json()
        assert alone == article


def test_a_story_names_the_provider_of_each_article_it_shows(service, client, user_headers):
    relay = Article(
        title="Quillon dam opens its spillways after record rain",
        description=None,
        url="https://www.theguardian.com/world/2026/nov/25/quillon-dam-spillways",
        source="newsapi",
        publisher="Reuters",
        author=None,
        image_url=None,
        category="general",
        published_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    (saved,) = service.feed.archive.save([relay])
    # The Guardian's own record of the URL, published earlier: the archive keeps it instead
    # (nearer the source).
    own = replace(
        relay,
        source="guardian",
        publisher="The Guardian",
        published_at=relay.published_at - timedelta(minutes=20),
    )
    service.feed.archive.save([own])
    article = client.get(f"/articles/{saved.id}", headers=user_headers).json()
    assert article["source"] == "guardian"
    story = client.get(f"/stories/{article['story']['id']}", headers=user_headers).json()
    assert story["articles"] == [article]
    assert story["last_published_at"] == story["first_published_at"] == article["published_at"]
    # Its only article is the Guardian's record now: one provider, one publisher.
    assert (story["providers"], story["publishers"], story["size"]) == (["guardian"], 1, 1)


def test_an_unknown_story_is_a_problem_404(client, user_headers, archive):
    answer = client.get("/stories/999999", headers=user_headers)
    assert problem_detail(answer, 404) == "No story with id 999999."
    _valid(answer.json(), "Problem")


def test_listings_and_stories_revalidate_with_their_etag(client, user_headers, archive):
    listed = _stories(client, user_headers, limit=3)
    for path, params in (
        ("/stories", {"limit": 3}),  # a page with a next_cursor: its instant changes
        ("/stories", {"limit": 100, "sort": "newest"}),
        (f"/stories/{listed['stories'][0]['id']}", {}),
    ):
        first = client.get(path, params=params, headers=user_headers)
        assert first.headers["cache-control"].startswith("private, max-age=")
        again = client.get(
            path, params=params, headers=user_headers | {"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304, path
        assert again.content == b""


def test_stories_count_against_the_rate_limit(make_service, bearer):
    service = make_service(rate_limit_basic=2)
    key = bearer(service.keys.create("limited", "basic").plaintext)
    with create_app(service=service).test_client() as c:
        # The second request takes the lean path (a shape seen before): counted all the same.
        first, second = (c.get("/stories", headers=key) for _ in range(2))
        assert first.headers["x-ratelimit-remaining"] == "1"
        assert second.headers["x-ratelimit-remaining"] == "0"
        problem_detail(c.get("/stories/1", headers=key), 429)
        problem_detail(c.get("/stories", headers=key), 429)


def test_the_swagger_ui_examples_find_stories(client, user_headers, archive):
    parameters = SPEC["components"]["parameters"]
    operation = SPEC["paths"]["/stories"]["get"]
    params = [parameters[p["$ref"].rsplit("/", 1)[-1]] for p in operation["parameters"]]
    query = {p["name"]: p["example"] for p in params if p["in"] == "query" and "example" in p}
    assert query, "listStories has no parameter examples"
    assert _stories(client, user_headers, **query)["count"] >= 1
    story_id = parameters["StoryId"]["example"]
    answer = client.get(f"/stories/{story_id}", headers=user_headers, follow_redirects=False)
    assert answer.status_code in (200, 308), answer.text


# -- merged stories ------------------------------------------------------------------------


@pytest.fixture
def merged(make_service: Callable[..., Service], bearer) -> tuple[Service, dict, int, int]:
    """Two stories of one event, kept apart on arrival (joining takes a cosine of 1 here),
    then merged by the stricter rule (5 shared words): (service, key, older, younger)."""
    service = make_service(story_threshold=1.0)
    service.feed.archive.save([merge_article(1, "Zanzibar ferry strike halts Pemba crossings", 30)])
    service.feed.archive.save(
        [merge_article(2, "Pemba crossings halted as Zanzibar ferry strike spreads", 10)]
    )
    key = bearer(service.keys.create("merges", "unlimited").plaintext)
    with create_app(service=service).test_client() as c:
        listed = c.get("/stories", params={"q": "zanzibar"}, headers=key).json()["stories"]
    older, younger = sorted(s["id"] for s in listed)
    assert len(listed) == 2
    _looked, merges = service.store.merge_stories(100)
    assert merges == 1
    return service, key, older, younger


def test_a_merged_story_redirects_permanently_to_the_survivor(merged):
    service, key, older, younger = merged
    with create_app(service=service).test_client() as c:
        moved = c.get(f"/stories/{younger}", headers=key, follow_redirects=False)
        assert moved.status_code == 308
        assert moved.headers["location"] == f"/stories/{older}"
        assert moved.content == b""
        assert "x-request-id" in moved.headers
        # `limit` goes along; a cursor, which fits the merged story only, does not.
        paged = c.get(f"/stories/{younger}?limit=1", headers=key).json()
        assert paged["next_cursor"] is not None  # followed: the survivor's first page
        moved = c.get(
            f"/stories/{younger}",
            params={"limit": 1, "cursor": paged["next_cursor"]},
            headers=key,
            follow_redirects=False,
        )
        assert moved.status_code == 308
        assert moved.headers["location"] == f"/stories/{older}?limit=1"

        survivor = c.get(f"/stories/{younger}", headers=key)  # followed
        assert survivor.status_code == 200 and survivor.url.path == f"/stories/{older}"
        story = _valid(survivor.json(), "StoryDetail")
        assert story["id"] == older and story["size"] == story["count"] == 2
        assert story["publishers"] == 2 and story["providers"] == ["guardian"]
        assert {a["story"]["id"] for a in story["articles"]} == {older}
        # Listings show the survivor alone.
        listed = c.get("/stories", params={"q": "zanzibar"}, headers=key).json()
        assert [s["id"] for s in listed["stories"]] == [older]


def test_a_merge_leaves_cursors_of_the_survivor_valid(merged):
    service, key, older, _younger = merged
    with create_app(service=service).test_client() as c:
        walked, pages = _walk(c, key, f"/stories/{older}", "articles", limit=1)
        assert pages == 2 and len({a["id"] for a in walked}) == 2
        times = [_instant(a["published_at"]) for a in walked]
        assert times == sorted(times, reverse=True)


def test_the_listing_ranks_as_of_its_first_page(client, user_headers, archive):
    """A later page, asked for a while after the first, goes on with the first page's
    ranking: the cursor holds its instant."""
    first = _stories(client, user_headers, limit=5)
    time.sleep(0.01)
    rest, _pages = _walk(client, user_headers, "/stories", "stories", limit=100)
    second = client.get(
        "/stories", params={"limit": 100, "cursor": first["next_cursor"]}, headers=user_headers
    ).json()
    shown = {s["id"] for s in first["stories"]}
    assert shown.isdisjoint(s["id"] for s in second["stories"])
    assert shown | {s["id"] for s in second["stories"]} == {s["id"] for s in rest}


def test_articles_grouped_by_story_show_each_story_once(client, user_headers, archive):
    """GET /articles?group=story: one row per story, its best article with the others in
    `also_reported_by`, page after page with no story twice."""
    rows, pages = _walk(client, user_headers, "/articles", "articles", group="story", limit=7)
    assert pages > 1
    for row in rows:
        _valid(row, "Article")
    stories = [row["story"]["id"] for row in rows]
    assert len(stories) == len(set(stories))
    listed = {s["id"]: s for s in _walk(client, user_headers, "/stories", "stories", limit=100)[0]}
    assert set(stories) == set(listed)
    grown = [row for row in rows if row["story"]["size"] >= 3]
    assert grown
    for row in grown:
        others = row["also_reported_by"]
        assert len(others) == row["story"]["size"] - 1
        assert row["id"] not in {other["id"] for other in others}
        # The best article: the provider nearest the source among the story's.
        order = ["guardian", "newsapi", "hackernews"]
        assert order.index(row["source"]) <= min(order.index(o["source"]) for o in others)
    ungrouped = client.get("/articles", params={"limit": 100}, headers=user_headers).json()
    assert all("also_reported_by" not in a for a in ungrouped["articles"])


def test_grouping_by_relevance_is_refused(client, user_headers):
    answer = client.get(
        "/articles",
        params={"q": "lumora", "sort": "relevance", "group": "story"},
        headers=user_headers,
    )
    assert "group" in problem_detail(answer, 400)


def test_a_saved_search_may_be_grouped_by_story(client, user_headers):
    created = client.post(
        "/searches", json={"name": "stories", "q": "lumora", "group": "story"}, headers=user_headers
    )
    assert created.status_code == 201, created.text
    assert _valid(created.json(), "Search")["group"] == "story"
    search_id = created.json()["id"]
    changed = client.patch(f"/searches/{search_id}", json={"group": None}, headers=user_headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["group"] is None
    refused = client.post(
        "/searches", json={"name": "x", "group": "publisher"}, headers=user_headers
    )
    assert refused.status_code == 400
