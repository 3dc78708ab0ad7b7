"""The archive on both backends: one query language, the same articles on SQLite (FTS5) and
PostgreSQL (tsvector), checked against the language's reference semantics (`matches`);
order, keyset pages, filters, pruning, and an older database upgraded in place."""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import fresh_database

from newsagg.query.analysis import Analyzer
from newsagg.query.matching import matches
from newsagg.query.syntax import QuerySyntaxError, parse
from newsagg.query.tokens import tokens
from newsagg.store import Store
from newsagg.store.archive import (
    COUNT_CAP,
    MAX_WINDOW,
    ArchiveQuery,
    next_window,
    windows_for,
)
from newsagg.store.migrations import MIGRATIONS
from newsagg.store.postgres import PostgresStore
from newsagg.store.sqlite import SqliteStore

ANALYZER = Analyzer()

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WORDS = [
    *("battery", "drone", "climate", "summit", "paris", "weather", "football", "election"),
    *("market", "chip", "power", "river", "storm", "vaccine", "court", "budget"),
]
# Inflections, in titles now and then: a query finds every form by its stem, a prefix only
# the forms it begins.
INFLECTED = ("batteries", "elections", "summits", "markets", "storming", "happy", "happiness")
ODD = ("covid-19", "AT&T", "café", "Zürich", "e-bike", "U.S.", "x86_64")
SOURCES = ("newsapi", "guardian", "hackernews")
CATEGORIES = ("business", "science", "sports", "technology")


def corpus(size: int = 240) -> list[tuple[str, int, dict[str, object]]]:
    """Articles from a small vocabulary, so that every query has matches and misses."""
    rng = random.Random(7)
    rows = []
    for n in range(size):
        title = " ".join(rng.choice(WORDS + list(ODD[: n % 8])) for _ in range(rng.randint(2, 5)))
        if n % 4 == 1:
            title += " " + INFLECTED[n % len(INFLECTED)]
        description = None
        if n % 5:
            description = " ".join(rng.choice(WORDS + list(ODD)) for _ in range(6))
        url = f"https://example.com/{n}"
        published = NOW - timedelta(hours=rng.randint(0, 24 * 30), seconds=n % 3)
        data = {
            "title": title.capitalize(),
            "description": description,
            "url": url,
            "source": SOURCES[n % 3],
            "publisher": "Example",
            "author": None,
            "image_url": None,
            "category": CATEGORIES[n % 4],
            "published_at": published.isoformat(),
        }
        rows.append((url, n % 3, data))
    return rows


QUERIES = [
    "battery",
    "battery drone",
    "battery AND drone",
    "battery OR drone",
    "battery -drone",
    "battery NOT drone",
    "(climate OR weather) paris",
    "(battery OR drone) -(football OR election)",
    '"climate summit"',
    'title:"climate summit"',
    "title:battery",
    "title:batt* -drone",
    "bat*",
    "sum* OR riv*",
    "covid-19",
    '"covid 19"',
    "AT&T",
    "café",
    "CAFÉ",
    "zürich",
    "e-bike",
    "U.S.",
    "x86_64",
    "power (chip OR market) -storm -court",
    "nosuchword",
    "elections",
    "batteries -market",
    '"climate summits"',
    "storms OR happiness",
    "happi*",
    "title:summits",
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def archive(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[tuple[Store, list]]:
    """One archive per backend for the module, filled with the same corpus."""
    rows = corpus()
    if request.param == "sqlite":
        store: Store = SqliteStore(str(tmp_path_factory.mktemp("archive") / "a.sqlite3"))
        store.migrate()
        ids = store.save_articles(rows)
        yield store, list(zip(ids, rows, strict=True))
        store.close()
        return
    with fresh_database(request.getfixturevalue("pg_admin_url")) as url:
        store = PostgresStore(url)
        store.migrate()
        ids = store.save_articles(rows)
        yield store, list(zip(ids, rows, strict=True))
        store.close()


def expected(saved: list, q: str | None = None, **filters: object) -> list[int]:
    """The ids the reference semantics select, newest first."""
    tree = None if q is None else parse(q)
    chosen = []
    for article_id, (_url, _rank, data) in saved:
        if tree is not None and not matches(
            ANALYZER.query(tree), ANALYZER.document(data["title"], data["description"])
        ):
            continue
        if "category" in filters and data["category"] != filters["category"]:
            continue
        if "sources" in filters and data["source"] not in filters["sources"]:
            continue
        published = datetime.fromisoformat(data["published_at"])
        if "published_from" in filters and published < filters["published_from"]:
            continue
        if "published_to" in filters and published > filters["published_to"]:
            continue
        chosen.append((published, article_id))
    return [article_id for _published, article_id in sorted(chosen, reverse=True)]


def walk(store: Store, query: ArchiveQuery) -> list[int]:
    """Every id, page after page (from the query's position on), resuming after the last
    row's position."""
    seen, after, horizon = [], query.after, query.horizon
    for _page in range(1000):  # a position that does not advance fails, not hangs
        rows = store.search(
            ArchiveQuery(**{**_fields(query), "after": after, "horizon": horizon})  # type: ignore[arg-type]
        )
        seen += [row.id for row in rows]
        if len(rows) < query.limit:
            return seen
        after, horizon = (rows[-1].position, rows[-1].id), rows[-1].horizon
    raise AssertionError("the pages never ended")


def _fields(query: ArchiveQuery) -> dict[str, object]:
    return {name: getattr(query, name) for name in ArchiveQuery.__slots__}


@pytest.mark.parametrize("q", QUERIES)
def test_a_query_finds_exactly_what_the_language_means(archive, q):
    store, saved = archive
    want = expected(saved, q)
    rows = store.search(ArchiveQuery(match=parse(q), limit=1000))
    assert [row.id for row in rows] == want
    if q != "nosuchword":
        assert want, "the corpus should hold matches for every other query"


def test_a_phrase_never_runs_from_the_title_into_the_description(archive):
    """PostgreSQL keeps both fields in one tsvector, the description's positions right
    after the title's; a phrase must still stay within one field, as in FTS5."""
    store, saved = archive
    spanning = set()
    for _id, (_url, _rank, data) in saved[:40]:
        title, body = tokens(data["title"]), tokens(data["description"] or "")
        if title and body:
            spanning.add(f'"{title[-1]} {body[0]}"')
    assert spanning
    for q in sorted(spanning):
        rows = store.search(ArchiveQuery(match=parse(q), limit=1000))
        assert [row.id for row in rows] == expected(saved, q), q


@pytest.mark.parametrize("q", ["battery OR drone", "title:batt* -drone", "covid-19"])
def test_relevance_orders_the_same_set_best_first(archive, q):
    store, saved = archive
    rows = store.search(ArchiveQuery(match=parse(q), sort="relevance", limit=1000))
    assert sorted(row.id for row in rows) == sorted(expected(saved, q))
    positions = [(row.position, row.id) for row in rows]
    assert positions == sorted(positions, reverse=True)


def test_a_title_match_ranks_above_a_description_match(archive):
    store, saved = archive
    rows = store.search(ArchiveQuery(match=parse("battery"), sort="relevance", limit=1000))
    in_title = {
        i
        for i, (_u, _r, data) in saved
        if "batteri" in ANALYZER.document(data["title"], None).title
    }
    first = rows[: len(rows) // 4]
    assert sum(row.id in in_title for row in first) / len(first) > 0.8


@pytest.mark.parametrize("sort", ["published", "relevance"])
def test_pages_walk_every_match_once_in_order(archive, sort):
    store, saved = archive
    query = ArchiveQuery(match=parse("battery OR drone OR climate"), sort=sort, limit=7)
    whole = [row.id for row in store.search(ArchiveQuery(**{**_fields(query), "limit": 1000}))]
    assert walk(store, query) == whole
    assert sorted(whole) == sorted(expected(saved, "battery OR drone OR climate"))


def test_filters_apply_to_the_whole_archive(archive):
    store, saved = archive
    window = {"published_from": NOW - timedelta(days=10), "published_to": NOW - timedelta(days=2)}
    query = ArchiveQuery(
        match=parse("battery OR market"),
        category="technology",
        sources=("newsapi", "hackernews"),
        limit=1000,
        **window,
    )
    want = expected(
        saved,
        "battery OR market",
        category="technology",
        sources=("newsapi", "hackernews"),
        **window,
    )
    assert want and [row.id for row in store.search(query)] == want
    newest = store.search(ArchiveQuery(limit=3))
    assert [row.id for row in newest] == expected(saved)[:3]


def test_hostile_text_is_a_syntax_error_or_plain_words(archive):
    store, _saved = archive
    for text in ["NEAR(a b)", "drop'; DROP TABLE articles", "a:b:c", 'title:x OR yz*"q']:
        store.search(ArchiveQuery(match=parse(text), limit=5))  # no engine error
    with pytest.raises(QuerySyntaxError):
        parse("'; --")


def test_pruning_forgets_old_articles_and_their_index_entries(tmp_path):
    store = SqliteStore(str(tmp_path / "p.sqlite3"))
    store.migrate()
    rows = corpus(60)
    store.save_articles(rows)
    cut = NOW - timedelta(days=15)
    gone = store.prune_articles(cut)
    assert gone == sum(datetime.fromisoformat(d["published_at"]) < cut for _u, _r, d in rows)
    left = store.search(ArchiveQuery(match=parse("battery OR drone OR climate"), limit=1000))
    assert left and all(row.position >= cut.timestamp() * 1e6 for row in left)
    with closing(sqlite3.connect(tmp_path / "p.sqlite3")) as db:
        db.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")
    store.close()


def test_an_archive_before_the_archive_is_upgraded_in_place(tmp_path: Path):
    """A database of migrations 1-2 holding articles as JSON only: after migrating, the same
    ids are searchable and filterable."""
    path = str(tmp_path / "old.sqlite3")
    old = SqliteStore(path, MIGRATIONS[:2])
    old.migrate()
    with closing(sqlite3.connect(path)) as db, db:
        for url, rank, data in corpus(30):
            db.execute(
                "INSERT INTO articles(url, rank, data) VALUES (?, ?, ?)",
                (url, rank, json.dumps(data)),
            )
    old.close()
    store = SqliteStore(path)
    assert [m.version for m in store.migrate()][:1] == [3]
    saved = list(zip(range(1, 31), corpus(30), strict=True))
    assert [r.id for r in store.search(ArchiveQuery(match=parse("battery"), limit=100))] == (
        expected(saved, "battery")
    )
    assert [r.id for r in store.search(ArchiveQuery(category="sports", limit=100))] == (
        expected(saved, category="sports")
    )
    store.close()


@pytest.mark.parametrize("windows", [(3, 12), (40,)])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"category": "science"},
        {"sources": ("guardian",)},
        {"published_from": NOW - timedelta(days=12), "published_to": NOW - timedelta(days=3)},
    ],
)
def test_window_first_tries_give_the_pages_every_match_gives(
    archive, monkeypatch, windows, filters
):
    """Newest first, each store first checks only the newest articles that pass the other
    filters (SQLite: the FTS5 rowid range; PostgreSQL: the date bound), then collects every
    match. Small windows make every path run: a window that fills the page, one that does
    not, and the collecting statement; the pages are the reference's either way."""
    store, saved = archive
    monkeypatch.setattr("newsagg.store.sqlite.windows_for", lambda *_counts: windows)
    monkeypatch.setattr("newsagg.store.postgres.PG_FIRST_WINDOW", windows[0])
    larger = dict(itertools.pairwise(windows))
    monkeypatch.setattr("newsagg.store.postgres.next_window", lambda _l, w, _f: larger.get(w))
    for q in ["battery", '"climate summit"', "bat*", "power (chip OR market) -storm", "café"]:
        query = ArchiveQuery(match=parse(q), limit=4, **filters)  # type: ignore[arg-type]
        assert walk(store, query) == expected(saved, q, **filters), q


def _saved_as_version_10(store: Store, rows: list) -> list[int]:
    """Articles written as a store of schema 10 wrote them (no body, no answers; SQLite's
    triggers and PostgreSQL's `to_tsvector` indexed title and description)."""
    p = "?" if isinstance(store, SqliteStore) else "%s"
    columns = "url, rank, data, title, description, source, category, published_us, added_us"
    search = ""
    if isinstance(store, PostgresStore):
        columns += ", search"
        search = f", to_tsvector('simple', {p})"
    ids = []
    with store.db.transaction() as db:
        for url, rank, data in rows:
            published = datetime.fromisoformat(data["published_at"])
            values = [url, rank, json.dumps(data), data["title"], data["description"]]
            values += [data["source"], data["category"], int(published.timestamp() * 1e6), 0]
            if search:
                values.append(f"{data['title']} {data['description'] or ''}")
            ids.append(
                db.execute(
                    f"INSERT INTO articles({columns}) VALUES ({', '.join([p] * 9)}{search})"
                    " RETURNING id",
                    values,
                ).fetchone()[0]
            )
    return ids


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_11_indexes_an_existing_archive_by_stems(backend, tmp_path, request):
    """An archive of schema 10 with articles: migration 11 makes the index anew, by stems,
    so every query finds what the language means; later saves, prunes and body expiries keep
    it in step (SQLite's index checks its own integrity)."""
    rows = corpus(60)

    def check(store: Store, saved: list) -> None:
        for q in [*QUERIES, "bat*", "title:sum* -drone", "zür*", '"x86 64"', "summits"]:
            found = store.search(ArchiveQuery(match=parse(q), limit=1000))
            assert [row.id for row in found] == expected(saved, q), q
            assert all(row.story is not None for row in found), q  # 12 placed the old ones

    def run(make: Callable[..., Store]) -> None:
        old = make(MIGRATIONS[:10])
        old.migrate()
        saved = list(zip(_saved_as_version_10(old, rows), rows, strict=True))
        old.close()
        store = make(MIGRATIONS)
        try:
            # Migration 12 (stories) follows, placing the same articles.
            assert [m.version for m in store.migrate()] == [11, 12]
            assert store.index_identity() == store.analyzer.identity
            check(store, saved)
            more = corpus(90)[60:]
            saved += list(zip(store.save_articles(more), more, strict=True))
            cut = NOW - timedelta(days=20)
            store.prune_articles(cut)
            saved = [
                item for item in saved if datetime.fromisoformat(item[1][2]["published_at"]) >= cut
            ]
            check(store, saved)
            if isinstance(store, SqliteStore):
                with closing(sqlite3.connect(store.path)) as db:
                    db.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")
        finally:
            store.close()

    if backend == "sqlite":
        path = str(tmp_path / "ten.sqlite3")
        run(lambda migrations: SqliteStore(path, migrations))
        return
    with fresh_database(request.getfixturevalue("pg_admin_url")) as url:
        run(lambda migrations: PostgresStore(url, migrations))


def test_windows_are_sized_from_how_many_articles_match():
    """SQLite, newest first: a rare query is collected at once, a frequent one fills its page
    from a small window (then a larger one, then collecting, should the filters leave too
    few), and the window in between is expected to hold two pages."""
    assert windows_for(500, 1_000_000, 20) == ()  # 500 matches: collecting costs least
    assert windows_for(COUNT_CAP, 1_000_000, 20) == (4_000, MAX_WINDOW)
    assert windows_for(8_000, 1_000_000, 20) == (5_000,)
    assert windows_for(3, 10, 20) == ()  # a small archive: collecting is cheap
    assert windows_for(COUNT_CAP, 100, 20) == (20, MAX_WINDOW)  # never less than a page


def test_a_second_postgres_window_is_sized_from_what_the_first_held():
    assert next_window(20, 5_000, 10) == 20_000  # expected to hold two pages
    assert next_window(20, 5_000, 0) is None  # few matches: collecting them is cheaper
    assert next_window(20, 5_000, 3) is None  # past MAX_WINDOW: collecting too


def ranked_within(saved: list, q: str, windows: tuple[int, ...], least: int, **filters) -> set[int]:
    """The reference of a relevance ranking's articles: the matches among the newest
    `windows[i]` articles passing the filters, the first window holding `least` of them;
    every match when none does."""
    articles = expected(saved, **filters)  # newest first
    matching = set(expected(saved, q, **filters))
    for window in windows:
        if len(articles) < window:
            break
        held = matching & set(articles[:window])
        if len(held) >= least:
            return held
    return matching


@pytest.mark.parametrize(
    "filters",
    [{}, {"category": "science"}, {"published_from": NOW - timedelta(days=20)}],
)
@pytest.mark.parametrize("q", ["battery", "battery OR drone", "title:batt* -drone", "café"])
def test_relevance_ranks_within_the_newest_window_that_holds_enough_matches(
    archive, monkeypatch, q, filters
):
    """A frequent word's every match cannot be scored fast, so relevance ranks those among
    the newest articles: small windows here make each way run (a window holding enough, a
    larger one, every match). Pages keep the first page's horizon."""
    store, saved = archive
    monkeypatch.setattr("newsagg.store.relevance.RELEVANCE_WINDOWS", (20, 60))
    monkeypatch.setattr("newsagg.store.relevance.RELEVANCE_MATCHES", 6)
    query = ArchiveQuery(match=parse(q), sort="relevance", limit=4, **filters)  # type: ignore[arg-type]
    ids = walk(store, query)
    assert len(ids) == len(set(ids))
    assert set(ids) == ranked_within(saved, q, (20, 60), 6, **filters)
    whole = store.search(replace(query, limit=1000))
    assert [row.id for row in whole] == ids  # pages in the order of the whole ranking


def test_a_ranking_keeps_its_horizon_while_articles_arrive(pg_admin_url, monkeypatch):
    """Newer articles arriving between two pages do not move the ranking's window: no
    article of the first page's ranking falls out of it unseen, none is served twice, and
    what joins is only the newcomers. On PostgreSQL, whose ts_rank scores each article on its
    own; SQLite's bm25 weighs words by the whole archive, so its scores move a little with
    every arrival (README: the archive)."""
    monkeypatch.setattr("newsagg.store.relevance.RELEVANCE_WINDOWS", (40,))
    monkeypatch.setattr("newsagg.store.relevance.RELEVANCE_MATCHES", 5)
    rows = corpus(120)
    late = [
        (
            url,
            rank,
            {**data, "url": url, "published_at": (NOW + timedelta(hours=n + 1)).isoformat()},
        )
        for n, (_url, rank, data) in enumerate(rows[:30])
        for url in [f"https://news.example/late/{n}"]
    ]
    with fresh_database(pg_admin_url) as url:
        store = PostgresStore(url)
        try:
            store.migrate()
            saved = list(zip(store.save_articles(rows), rows, strict=True))
            query = ArchiveQuery(match=parse("battery OR drone"), sort="relevance", limit=3)
            first = store.search(query)
            late_ids = set(store.save_articles(late))  # newer than all, many matching
            after = (first[-1].position, first[-1].id)
            rest = walk(store, replace(query, after=after, horizon=first[-1].horizon))
        finally:
            store.close()
    served = [row.id for row in first] + rest
    want = ranked_within(saved, "battery OR drone", (40,), 5)
    assert len(served) == len(set(served))
    assert want <= set(served) and set(served) - want <= late_ids
