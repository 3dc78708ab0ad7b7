"""The archive at scale: a generated archive of 1,000,000 articles on SQLite (FTS5) and on
PostgreSQL (tsvector + GIN), its ingest rate, and search p50/p99 per kind of query.

The archive: the words of the simulator's bundled stories (simulator/data.py) as the
frequent head of a Zipf-distributed vocabulary (s = 1), a long tail of rarer name-like
words made from their syllables (the people, places and products real news is full of),
one word (`battery`) in 30 % of the articles, 7 categories, 3 sources, and publication
times over 90 days with a day/night rhythm, saved in the order a harvester meets them.

Ingest goes through the store's own `save_articles` (batches of 500): measured on the first
`--measured` articles; the rest is loaded through the same statements (`--fast-load`, the
default, is the same for SQLite; on PostgreSQL it fills the table with the same tsvector
expression in one INSERT ... SELECT per batch and builds the GIN index once at the end, as an
operator restoring a dump would). Then `ANALYZE` (and FTS5 `optimize`), and every query
kind is run many times, distinct queries where the words matter, timed around
`store.search` (the statement, its rows, and their conversion; no HTTP).

    .venv/bin/python bench/archive.py [--articles 1000000] [--backends sqlite,postgres]
        [--repeat 200] [--explain] [--keep]
or through the runner: `make bench BENCH_ARGS=--archive` (`--archive-only` skips the rest).

Targets (issue 15): p99 < 50 ms for selective queries, < 100 ms for the 30 % word.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsagg.query.syntax import parse  # noqa: E402
from newsagg.query.tokens import index_text, tokens  # noqa: E402
from newsagg.store.archive import ArchiveQuery  # noqa: E402
from newsagg.store.archive_sql import (  # noqa: E402
    best_scored_sql,
    collect_sql,
    dated_window_sql,
    fts5_window_sql,
    newest_sql,
    ranked_sql,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAYS = 90
COMMON = "battery"  # the word 30 % of the archive holds
COMMON_SHARE = 0.30
CATEGORIES = ("business", "entertainment", "general", "health", "science", "sports", "technology")
CATEGORY_WEIGHTS = (18, 8, 24, 9, 10, 13, 18)
SOURCES = (("hackernews", 40), ("guardian", 35), ("newsapi", 25))
PUBLISHERS = {
    "hackernews": ("Hacker News",),
    "guardian": ("The Guardian",),
    "newsapi": ("Reuters", "The Verge", "Ars Technica", "BBC News", "Bloomberg", "Wired"),
}
TAIL = 30_000  # rare words after the simulator's own
BATCH = 500


# -- the archive ------------------------------------------------------------------------


def simulator_words() -> list[str]:
    """Every token of the simulator's stories, most frequent first (ties: first seen)."""
    from simulator import data

    texts: list[str] = []
    for _section, title, trail, _byline in data.GUARDIAN_STORIES:
        texts += [title, re.sub(r"<[^>]+>|&\w+;|&#\d+;", " ", trail or "")]
    for _category, _publisher, title, description in data.NEWSAPI_STORIES:
        texts += [title, description or ""]
    for title, _url, story, _author in data.HN_STORIES:
        texts += [title, re.sub(r"<[^>]+>|&\w+;|&#x?\w+;", " ", story or "")]
    texts += data.TICKER_SUBJECTS + data.TICKER_ACTIONS
    texts += [thing for things in data.TICKER_OBJECTS.values() for thing in things]
    counts: dict[str, int] = {}
    for text in texts:
        for token in tokens(text):
            counts[token] = counts.get(token, 0) + 1
    return sorted(counts, key=lambda word: -counts[word])


def vocabulary(rng: random.Random) -> list[str]:
    """Rank order: the simulator's words, then TAIL name-like words from their syllables."""
    head = [word for word in simulator_words() if word != COMMON]
    syllables = sorted({word[i : i + 3] for word in head if len(word) >= 4 for i in (0, 2)})
    seen, tail = set(head) | {COMMON}, []
    while len(tail) < TAIL:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 2, 3))))
        if word not in seen and word.isalpha():
            seen.add(word)
            tail.append(word)
    return head + tail


class Archive:
    """The generator; also what the queries are drawn from (words by rank)."""

    def __init__(self, size: int, seed: int = 15) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        weights = [1 / rank for rank in range(1, len(self.words) + 1)]  # Zipf, s = 1
        self.cum = list(itertools.accumulate(weights))
        self.head = len(self.words) - TAIL

    def times(self) -> list[int]:
        """Publication times (µs), oldest first: a day/night rhythm, busier weekdays."""
        start = NOW - timedelta(days=DAYS)
        hours = [
            (0.25 if hour % 24 < 6 else 1.0) * (0.7 if (hour // 24) % 7 in (5, 6) else 1.0)
            for hour in range(DAYS * 24)
        ]
        cum = list(itertools.accumulate(hours))
        rng, total, base = self.rng, cum[-1], int(start.timestamp()) * 1_000_000
        out = []
        for _ in range(self.size):
            hour = bisect.bisect(cum, rng.random() * total)
            out.append(base + hour * 3_600_000_000 + rng.randrange(3_600) * 1_000_000)
        return sorted(out)

    def articles(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        rng, words, cum, choices = self.rng, self.words, self.cum, self.rng.choices
        categories = choices(CATEGORIES, CATEGORY_WEIGHTS, k=self.size)
        sources = choices([s for s, _w in SOURCES], [w for _s, w in SOURCES], k=self.size)
        for n, published_us in enumerate(self.times()):
            title = choices(words, cum_weights=cum, k=rng.randint(5, 11))
            description = choices(words, cum_weights=cum, k=rng.randint(10, 24))
            if rng.random() < COMMON_SHARE:
                target = title if rng.random() < 0.4 else description
                target.insert(rng.randrange(len(target) + 1), COMMON)
            source = sources[n]
            published = datetime.fromtimestamp(published_us / 1e6, UTC)
            url = f"https://{source}.example.com/{published:%Y/%m/%d}/{n}"
            yield (
                url,
                {"newsapi": 0, "guardian": 1, "hackernews": 2}[source],
                {
                    "title": " ".join(title).capitalize(),
                    "description": " ".join(description).capitalize() + ".",
                    "url": url,
                    "source": source,
                    "publisher": rng.choice(PUBLISHERS[source]),
                    "author": None if n % 4 == 0 else f"Author {n % 997}",
                    "image_url": None if n % 3 == 0 else f"https://img.example.com/{n}.jpg",
                    "category": categories[n],
                    "published_at": published.isoformat().replace("+00:00", "Z"),
                },
            )

    def word(self, low: int, high: int) -> str:
        """A word whose rank is in [low, high) of the vocabulary."""
        return self.words[self.rng.randrange(low, min(high, len(self.words)))]


def batches(items: Iterator[Any], size: int = BATCH) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


# -- the backends -----------------------------------------------------------------------


class Backend:
    name = ""
    store: Any

    def fast_load(self, batch: list[tuple[str, int, dict[str, Any]]]) -> None:
        self.store.save_articles(batch)

    def finish_load(self) -> None: ...

    def explain(self, query: ArchiveQuery) -> str:
        raise NotImplementedError

    def size_mib(self) -> float:
        raise NotImplementedError

    def close(self) -> None: ...


class Sqlite(Backend):
    name = "SQLite"

    def __init__(self, work: Path) -> None:
        from newsagg.store.sqlite import SqliteStore

        self.path = work / "archive.sqlite3"
        self.store = SqliteStore(str(self.path))
        self.store.migrate()

    def finish_load(self) -> None:
        db = self.store.db.connection()
        with db:
            db.execute("INSERT INTO articles_fts(articles_fts) VALUES ('optimize')")
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def explain(self, query: ArchiveQuery) -> str:
        from newsagg.store.archive import MAX_WINDOW
        from newsagg.store.relevance import RANKED_WINDOW

        plans = []
        ranked = query.match is not None and query.sort == "relevance"
        if query.match is not None:  # the store's largest try, then its fallback
            if ranked:
                plans.append((f"window {RANKED_WINDOW}:", best_scored_sql(query, RANKED_WINDOW)))
            else:
                plans.append((f"window {MAX_WINDOW}:", fts5_window_sql(query, MAX_WINDOW)))
        every = ranked_sql(query, "sqlite") if ranked else newest_sql(query, "sqlite")
        plans.append(("every match:", every))
        db, out = self.store.db.connection(), []
        for label, (sql, params) in plans:
            rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            out.append(label + " " + "; ".join(row[-1] for row in rows))
        return "\n".join(out)

    def size_mib(self) -> float:
        return sum(p.stat().st_size for p in self.path.parent.glob("archive.sqlite3*")) / 2**20

    def close(self) -> None:
        self.store.close()


class Postgres(Backend):
    name = "PostgreSQL"

    def __init__(self, work: Path) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        import pg_server

        from newsagg.store.postgres import PostgresStore

        self.server = pg_server.new_server()
        try:
            self.store = PostgresStore(self.server.url())
            self.store.migrate()
        except BaseException:
            self.server.remove()
            raise
        self.dropped_index = False

    def _run(self, *statements: str, params: tuple[Any, ...] = ()) -> list[Any]:
        import psycopg

        with psycopg.connect(self.server.url(), autocommit=True) as db:
            db.execute("SET statement_timeout = 0")
            rows: list[Any] = []
            for statement in statements:
                cursor = db.execute(statement, params)
                rows = cursor.fetchall() if cursor.description else []
            return rows

    def fast_load(self, batch: list[tuple[str, int, dict[str, Any]]]) -> None:
        """The same columns and tsvector expression as save_articles, one statement per
        batch, the GIN index built once at the end."""
        import psycopg

        from newsagg.store.archive import COLUMNS, column_values

        if not self.dropped_index:
            self._run("DROP INDEX articles_search", "DROP INDEX articles_pairs")
            self.dropped_index = True
        columns = ["url", "rank", "data", *COLUMNS, "published_us"]
        rows = [
            (
                url,
                rank,
                json.dumps(data, separators=(",", ":")),
                *column_values(data),
                index_text(data.get("title")),
                index_text(data.get("description")),
            )
            for url, rank, data in batch
        ]
        with psycopg.connect(self.server.url()) as db, db.cursor() as cursor:
            with cursor.copy(
                "COPY articles_load(" + ", ".join(columns) + ", title_text, body_text) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO articles({', '.join(columns)}, search, added_us)"
                f" SELECT {', '.join(columns)},"
                " setweight(to_tsvector('simple', title_text), 'A')"
                " || setweight(to_tsvector('simple', body_text), 'B'),"
                " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint FROM articles_load"
            )
            cursor.execute("TRUNCATE articles_load")

    def prepare_fast_load(self) -> None:
        self._run(
            "CREATE UNLOGGED TABLE IF NOT EXISTS articles_load (url TEXT, rank INTEGER,"
            " data TEXT, title TEXT, description TEXT, source TEXT, publisher TEXT,"
            " author TEXT, image_url TEXT, category TEXT, published_us BIGINT,"
            " title_text TEXT, body_text TEXT)"
        )

    def finish_load(self) -> None:
        statements = ["DROP TABLE IF EXISTS articles_load"]
        if self.dropped_index:
            statements += [
                "SET maintenance_work_mem = '512MB'",
                "CREATE INDEX articles_search ON articles USING GIN (search)",
                "CREATE INDEX articles_pairs ON articles USING GIN (newsagg_pairs(search))",
            ]
            self.dropped_index = False
        self._run(*statements, "VACUUM ANALYZE articles")

    def explain(self, query: ArchiveQuery) -> str:
        from newsagg.store.archive import PG_FIRST_WINDOW

        plans = []
        if query.match is not None and query.sort == "published":  # the store's tries
            window = PG_FIRST_WINDOW
            plans.append((f"window {window}:", dated_window_sql(query, window)))
            plans.append(("every match:", collect_sql(query)))
        elif query.match is not None:
            plans.append(("", ranked_sql(query, "postgres")))
        else:
            plans.append(("", newest_sql(query, "postgres")))
        out = []
        for label, (sql, params) in plans:
            rows = self._run(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params=tuple(params))
            out.append(label + ("\n" if label else "") + "\n".join(row[0] for row in rows))
        return "\n".join(out)

    def size_mib(self) -> float:
        return self._run("SELECT pg_total_relation_size('articles')")[0][0] / 2**20

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self.server.remove()


# -- the queries ------------------------------------------------------------------------


def query_kinds(archive: Archive) -> list[tuple[str, bool, Callable[[], ArchiveQuery]]]:
    """(name, selective?, a maker of a fresh query of that kind)."""
    head = archive.head

    def rare() -> str:  # 0.1-1 % of the articles
        return archive.word(head, head + 2_000)

    def mid() -> str:  # 1-5 % of the articles
        return archive.word(60, head)

    def frequent() -> str:  # ranks 10-60: 5-25 % of the articles
        return archive.word(10, 60)

    def window() -> dict[str, datetime]:
        end = NOW - timedelta(days=archive.rng.randrange(0, DAYS - 7))
        return {"published_from": end - timedelta(days=7), "published_to": end}

    def category() -> str:
        return archive.rng.choice(CATEGORIES)

    def q(text: str, **fields: Any) -> ArchiveQuery:
        return ArchiveQuery(match=parse(text), limit=20, **fields)

    return [
        ("newest, no q", True, lambda: ArchiveQuery(limit=20)),
        ("newest in a category", True, lambda: ArchiveQuery(category=category(), limit=20)),
        ("one word (rare)", True, lambda: q(rare())),
        ("one word (mid)", True, lambda: q(mid())),
        ("one word (frequent)", True, lambda: q(frequent())),
        ("two words", True, lambda: q(f"{mid()} {frequent()}")),
        ("phrase", True, lambda: q(f'"{frequent()} {frequent()}"')),
        ("OR", True, lambda: q(f"{rare()} OR {mid()}")),
        ("prefix", True, lambda: q(rare()[:4] + "*")),
        ("word -word", True, lambda: q(f"{mid()} -{frequent()}")),
        ("title:word", True, lambda: q(f"title:{mid()}")),
        ("word + category", True, lambda: q(mid(), category=category())),
        ("word + 7-day window", True, lambda: q(mid(), **window())),
        ("word + source", True, lambda: q(mid(), sources=("guardian",))),
        ("word by relevance", True, lambda: q(mid(), sort="relevance")),
        ("OR by relevance", True, lambda: q(f"{rare()} OR {mid()}", sort="relevance")),
        (f"{COMMON} (30 %)", False, lambda: q(COMMON)),
        (f"{COMMON} + category", False, lambda: q(COMMON, category=category())),
        (f"{COMMON} + 7-day window", False, lambda: q(COMMON, **window())),
        (f"{COMMON} + rare word", True, lambda: q(f"{COMMON} {rare()}")),
        (f"{COMMON} OR word", False, lambda: q(f"{COMMON} OR {mid()}")),
        (f"{COMMON} by relevance", False, lambda: q(COMMON, sort="relevance")),
        (
            f"{COMMON} + category by relevance",
            False,
            lambda: q(COMMON, category=category(), sort="relevance"),
        ),
    ]


def second_page(store: Any, query: ArchiveQuery) -> ArchiveQuery:
    rows = store.search(query)
    after = (rows[-1].position, rows[-1].id) if rows else None
    return ArchiveQuery(
        **{**{f: getattr(query, f) for f in ArchiveQuery.__slots__}, "after": after}
    )


def timed(
    store: Any, make: Callable[[], ArchiveQuery], repeat: int, budget_s: float
) -> list[float]:
    """Milliseconds per search: `repeat` fresh queries (fewer if the kind is slow: at most
    `budget_s` seconds, at least 20 runs)."""
    out: list[float] = []
    queries = [make() for _ in range(repeat)]
    store.search(queries[0])  # warm
    began = time.perf_counter()
    for query in queries:
        start = time.perf_counter()
        store.search(query)
        out.append((time.perf_counter() - start) * 1000)
        if len(out) >= 20 and time.perf_counter() - began > budget_s:
            break
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- the run ----------------------------------------------------------------------------


def load(backend: Backend, archive: Archive, measured: int, fast: bool) -> dict[str, float]:
    articles = archive.articles()
    began = time.perf_counter()
    done = 0
    for batch in batches(itertools.islice(articles, measured)):
        backend.store.save_articles(batch)
        done += len(batch)
    save_rate = done / (time.perf_counter() - began)
    print(f"  save_articles: {done:,} articles at {save_rate:,.0f}/s", flush=True)
    rest_began = time.perf_counter()
    rest = 0
    if isinstance(backend, Postgres) and fast:
        backend.prepare_fast_load()
    for batch in batches(articles, 5_000 if fast else BATCH):
        (backend.fast_load if fast else backend.store.save_articles)(batch)
        rest += len(batch)
        if rest % 200_000 < len(batch):
            print(f"    {done + rest:,} ...", flush=True)
    finish_began = time.perf_counter()
    backend.finish_load()
    finish = time.perf_counter() - finish_began
    total = time.perf_counter() - began
    print(
        f"  the other {rest:,}: {rest / max(finish_began - rest_began, 1e-9):,.0f}/s"
        f" ({'bulk path' if fast else 'save_articles'}); finishing (index, ANALYZE,"
        f" optimize) {finish:.1f} s; total {total:.0f} s; {backend.size_mib():,.0f} MiB",
        flush=True,
    )
    return {"save_rate": save_rate, "total_s": total, "overall_rate": (done + rest) / total}


def measure(backend: Backend, archive: Archive, repeat: int, explain: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    kinds = query_kinds(archive)
    for name, selective, make in kinds:
        runs = timed(backend.store, make, repeat, budget_s=20)
        results[name] = (selective, runs)
        print(
            f"  {name:34} p50 {statistics.median(runs):7.2f} ms  p99 {p99(runs):7.2f} ms"
            f"  ({len(runs)} runs)",
            flush=True,
        )
        if explain:
            print("    " + backend.explain(make()).replace("\n", "\n    "))
    for name, selective, make in kinds:
        if name in ("one word (mid)", f"{COMMON} (30 %)", f"{COMMON} by relevance", "OR"):
            runs = timed(
                backend.store, lambda make=make: second_page(backend.store, make()), repeat // 2, 20
            )
            label = f"page 2: {name}"
            results[label] = (selective, runs)
            print(
                f"  {label:34} p50 {statistics.median(runs):7.2f} ms  p99 {p99(runs):7.2f} ms"
                f"  ({len(runs)} runs)",
                flush=True,
            )
    return results


def run(
    backends: list[str],
    size: int,
    repeat: int,
    measured: int,
    fast: bool,
    explain: bool,
    keep: bool,
) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix="newsagg-archive-bench-"))
    try:
        for kind in backends:
            archive = Archive(size)
            backend: Backend = Sqlite(work) if kind == "sqlite" else Postgres(work)
            try:
                print(f"\n{backend.name}: generating and saving {size:,} articles", flush=True)
                ingest = load(backend, archive, min(measured, size), fast)
                searches = measure(backend, archive, repeat, explain)
                figures[backend.name] = {"ingest": ingest, "searches": searches}
            finally:
                if not keep or isinstance(backend, Postgres):
                    backend.close()  # a server is never kept
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return figures


def report(figures: dict[str, dict[str, Any]]) -> None:
    names = list(figures)
    if not names:
        return
    print("\nArchive, side by side (ms; targets: p99 < 50 selective, < 100 for the 30 % word)")
    print(f"  {'':34}" + "".join(f"{name:>26}" for name in names))
    print(
        f"  {'ingest, save_articles (art./s)':34}"
        + "".join(f"{figures[n]['ingest']['save_rate']:>26,.0f}" for n in names)
    )
    print(
        f"  {'load, whole archive (art./s)':34}"
        + "".join(f"{figures[n]['ingest']['overall_rate']:>26,.0f}" for n in names)
    )
    misses = []
    for kind in figures[names[0]]["searches"]:
        cells = []
        for name in names:
            selective, runs = figures[name]["searches"][kind]
            high = p99(runs)
            over = high > (50 if selective else 100)
            if over:
                misses.append(f"{name}: {kind}")
            cells.append(
                f"p50 {statistics.median(runs):6.1f} p99 {high:6.1f}{'!' if over else ' '}"
            )
        print(f"  {kind:34}" + "".join(f"{cell:>26}" for cell in cells))
    print("  targets missed: " + ("; ".join(misses) if misses else "none"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--measured", type=int, default=50_000, help="saved by save_articles")
    parser.add_argument(
        "--slow-load",
        action="store_true",
        help="save every article through save_articles, not only the measured ones",
    )
    parser.add_argument("--explain", action="store_true", help="print each kind's plan")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file (debugging)")
    args = parser.parse_args(argv)
    figures = run(
        [name.strip() for name in args.backends.split(",") if name.strip()],
        args.articles,
        args.repeat,
        args.measured,
        not args.slow_load,
        args.explain,
        args.keep,
    )
    report(figures)


if __name__ == "__main__":
    main()
