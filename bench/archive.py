"""The archive at scale, as the service leaves it: a generated archive of 1,000,000 articles
on SQLite (FTS5) and on PostgreSQL (tsvector + GIN), written the way the service writes it,
left idle, then searched: ingest rate, and search p50/p99 per kind of query.

The articles: the words of the simulator's bundled stories (simulator/data.py) as the
frequent head of a Zipf-distributed vocabulary (s = 1), a long tail of rarer name-like
words made from their syllables (the people, places and products real news is full of),
COMMON_WORDS (20 words, `battery` first) each in 30 % of the articles, 7 categories,
3 providers, publication times over 90 days up to now with a day/night rhythm.

Their body text, searched like the rest (never shown), as a deployment holds it with its
defaults: NewsAPI's `content` on every NewsAPI article (its first 200 characters, cut
mid-word as NewsAPI cuts it, its "[+N chars]" mark left out as the provider leaves it
out), kept as long as the article; the Guardian's `bodyText` (1,000 words on average,
lognormal, 300-3,000) only on the Guardian articles the timeline first saves within its
last GUARDIAN_BODY_HOURS (24 h, NEWSAGG_GUARDIAN_BODY_HOURS's default): at steady state
older bodies have left the index (newsagg.upkeep, `store.expire_bodies`). The bench
cannot let them leave on their own: a body's expiry is 24 h after its save on the store's
wall clock, and the whole timeline is saved in minutes, so nothing would expire during
the run; the bodies the timeline says are gone are therefore never given.
`--guardian-bodies all` gives every Guardian article its body (the worst case: as if
NEWSAGG_GUARDIAN_BODY_HOURS were very large; for a smaller run). Hacker News sends no
body (its story text is its description already). Every article is saved through
`ArchiveWriter(store, {"guardian": 24})`, as the service constructs it.

How they enter (nothing else writes to the archive, and nothing is tuned):
- every save is `newsagg.archive_writer.ArchiveWriter(store, BODY_HOURS).save(articles)` with
  `providers.base.Article` objects, as the harvester and on-demand refreshes call it;
- harvest rounds move forward in time, one schedule per provider, paced by the harvester's
  own functions and default budgets (newsagg.harvest.schedule: Hacker News every 1-15 min,
  the Guardian 3.6-30 min, NewsAPI 18 min; intervals adapt to what each round found, with
  jitter). A round takes everything published since the provider's mark less the
  harvester's overlap (OVERLAP_SECONDS, 10 min: those articles are saved again, as the
  service saves them), newest first, in pages of the provider's harvest page size (200,
  200, 100). NewsAPI, whose harvest is top headlines, is modelled the same way;
- LATE_SHARE (15 %) of the articles are missed by the harvest and arrive later through
  on-demand refreshes of older queries: 1 hour to 30 days after publication (log-uniform),
  in pages of 1-20, newest first, with new ids (so ids no longer follow publication time);
- the service's own upkeep (newsagg.upkeep, started in `service_upkeep`, the one place it
  is hooked in, as the service starts it) runs from before the first save until the
  measurement ends; after the last save the archive is left idle (`--idle`, 60 s: a
  deployment between harvests, and one PostgreSQL autovacuum nap) before it is searched.

The queries: each kind draws its words from measured bands of the archive (the share of
articles holding a word's stem in any field, body text included, as the search finds it:
counted as the articles are generated and checked against the database after the
measurement; every word is printed with its share): rare 0.1-0.5 %,
mid 1-5 %, frequent 5-25 %, and the 20 words in 30 %. Each kind runs at least 20 distinct
queries (up to 100), cycled to `--repeat` runs (distinct ones first), timed around
`store.search` (the statement, its rows, and their conversion; no HTTP). p99 is the worst
but one of 200 runs.

    .venv/bin/python bench/archive.py [--articles 1000000] [--backends sqlite,postgres]
        [--repeat 200] [--idle 60] [--overlap 600] [--late 0.15] [--guardian-bodies day]
        [--explain] [--keep]
or through the runner: `make bench BENCH_ARGS=--archive-only` (both engines at 1,000,000:
about 30 minutes on 2 shared cores, most of it the ingest; each kind of query stops after
20 s once 20 queries ran, and after 60 s whatever ran, so the searches take 30 minutes an
engine at the very most).

Targets: p99 at most 50 ms for selective queries, at most 100 ms for a word in 30 % of the
articles, on both engines.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import itertools
import math
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsagg.archive_writer import ArchiveWriter  # noqa: E402
from newsagg.budget import parse_quota  # noqa: E402
from newsagg.harvest import LOOKBACK_SECONDS, OVERLAP_SECONDS  # noqa: E402
from newsagg.harvest.schedule import after_success, budget_pace, jittered, paces  # noqa: E402
from newsagg.query.analysis import Analyzer  # noqa: E402
from newsagg.query.syntax import parse  # noqa: E402
from newsagg.query.tokens import tokens  # noqa: E402
from newsagg.settings import Settings  # noqa: E402
from newsagg.store.archive import ArchiveQuery  # noqa: E402
from newsagg.store.archive_sql import (  # noqa: E402
    best_scored_sql,
    collect_sql,
    dated_window_sql,
    fts5_window_sql,
    newest_sql,
    ranked_sql,
)
from newsagg.store.fulltext import to_fts5, to_tsquery  # noqa: E402
from providers import guardian, hackernews, newsapi  # noqa: E402
from providers.base import PROVIDER_NAMES, Article  # noqa: E402

DAYS = 90
# Each in 30 % of the articles (inserted like the others, independently): a frequent word
# newest first or by relevance is the 100 ms target, and 20 of them make 20 distinct queries.
COMMON_WORDS = (
    "battery", "market", "energy", "election", "climate", "police", "company", "court",
    "health", "school", "water", "price", "weather", "council", "airport", "hospital",
    "budget", "festival", "network", "museum",
)  # fmt: skip
COMMON_SHARE = 0.30
CATEGORIES = ("business", "entertainment", "general", "health", "science", "sports", "technology")
CATEGORY_WEIGHTS = (18, 8, 24, 9, 10, 13, 18)
SOURCES = (("hackernews", 40), ("guardian", 35), ("newsapi", 25))
PUBLISHERS = {
    "hackernews": ("Hacker News",),
    "guardian": ("The Guardian",),
    "newsapi": ("Reuters", "The Verge", "Ars Technica", "BBC News", "Bloomberg", "Wired"),
}
HOSTS = {"hackernews": "news.example.com", "guardian": "www.theguardian.com"}
TAIL = 30_000  # rare words after the simulator's own
# The harvest's pages, as each provider's harvest asks for them.
HARVEST_PAGE = {
    "hackernews": hackernews.HARVEST_HITS_PER_PAGE,
    "guardian": guardian.HARVEST_PAGE_SIZE,
    "newsapi": newsapi.PAGE_SIZE,
}
# Body texts, as the service keeps them (ArchiveWriter's `body_hours`): the Guardian's for
# NEWSAGG_GUARDIAN_BODY_HOURS' default, NewsAPI's (not named) as long as the article.
GUARDIAN_BODY_HOURS = 24.0
BODY_HOURS = {"guardian": GUARDIAN_BODY_HOURS}
BODY_MODES = ("day", "all")  # Guardian bodies: the last GUARDIAN_BODY_HOURS' only, or every one
NEWSAPI_CONTENT_CHARS = 200  # NewsAPI's `content`: the article's first 200 characters
# The Guardian's bodyText in words: lognormal with a mean of about 1,000 (median 880,
# sigma 0.5), held to 300-3,000 (a short report to a long read).
BODY_WORDS_MEDIAN, BODY_WORDS_SIGMA, BODY_WORDS_RANGE = 880.0, 0.5, (300, 3_000)
SENTENCE_WORDS = (8, 30)
LATE_SHARE = 0.15  # missed by the harvest, found later by on-demand refreshes
LATE_DELAY_S = (3_600, 30 * 86_400)  # how much later (log-uniform)
REFRESH_PAGE = (1, 20)  # late articles in one refresh
# Words by the share of articles holding them (measured): (label, low, high).
BANDS = {
    "rare": ("rare, 0.1-0.5 %", 0.001, 0.005),
    "mid": ("mid, 1-5 %", 0.01, 0.05),
    "frequent": ("frequent, 5-25 %", 0.05, 0.25),
}
POOL = 24  # words drawn from each band (spread over it, low to high)
MIN_DISTINCT = 20
MAX_DISTINCT = 100
SELECTIVE_P99_MS, COMMON_P99_MS = 50.0, 100.0


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
    """Rank order: the simulator's words, then TAIL name-like words from their syllables
    (COMMON_WORDS left out: they are placed on their own)."""
    head = [word for word in simulator_words() if word not in COMMON_WORDS]
    syllables = sorted({word[i : i + 3] for word in head if len(word) >= 4 for i in (0, 2)})
    seen, tail = set(head) | set(COMMON_WORDS), []
    while len(tail) < TAIL:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 2, 3))))
        if word not in seen and word.isalpha():
            seen.add(word)
            tail.append(word)
    return head + tail


@dataclass(slots=True)
class Page:
    """One call of ArchiveWriter.save: when (simulated), why, and which articles."""

    at_us: int
    kind: str  # "harvest" or "refresh"
    articles: list[int]  # article numbers, newest first


@dataclass(slots=True)
class Plan:
    pages: list[Page]
    saves: int  # articles saved, a harvest overlap's again included
    harvest_pages: int
    refresh_pages: int
    late: int
    bodies: int  # Guardian articles given their body text (see Archive.plan)


class Archive:
    """The generator: article n (0 = the oldest) is the same whenever it is made; what the
    queries' words are drawn from (their shares, counted as the articles are made).
    `guardian_bodies`: which Guardian articles carry their body text (BODY_MODES)."""

    def __init__(
        self,
        size: int,
        seed: int = 15,
        late: float = LATE_SHARE,
        now: datetime | None = None,
        guardian_bodies: str = "day",
    ) -> None:
        if guardian_bodies not in BODY_MODES:
            raise ValueError(f"guardian_bodies: one of {BODY_MODES}")
        self.size = size
        self.seed = seed
        self.guardian_bodies = guardian_bodies
        # Up to now (to the hour): the newest articles are as new as a deployment's.
        self.now = now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        rng = random.Random(seed)
        self.words = vocabulary(rng)
        # The search finds stems (newsagg.query.analysis, the service's default language),
        # so a word's share is its stem's: the stems of the vocabulary once, not per article.
        self.analyzer = Analyzer(Settings().search_language)
        known = [*self.words, *COMMON_WORDS]
        self.stem_of = dict(zip(known, self.analyzer.stems(known), strict=True))
        weights = [1 / rank for rank in range(1, len(self.words) + 1)]  # Zipf, s = 1
        self.cum = list(itertools.accumulate(weights))
        self.published = self._times(rng)
        names = [s for s, _w in SOURCES]
        self.source = rng.choices(range(3), [w for _s, w in SOURCES], k=size)
        self.source_names = names
        self.category = rng.choices(range(len(CATEGORIES)), CATEGORY_WEIGHTS, k=size)
        now_us = self.now_us
        self.arrival: dict[int, int] = {}  # late articles: when a refresh brings them
        low, high = (math.log(s * 1e6) for s in LATE_DELAY_S)
        for n in range(size):
            if rng.random() < late:
                room = now_us - self.published[n]
                delay = math.exp(rng.uniform(low, max(low, min(high, math.log(max(room, 1))))))
                self.arrival[n] = min(now_us, self.published[n] + int(delay))
        self.share_counts: dict[str, int] = {}  # by stem: articles holding it, any field
        self._counted = bytearray(size)
        # Which Guardian articles carry a body: set by `plan`, which knows when each is
        # first saved (None until then, so no article is made without knowing).
        self.bodied: bytearray | None = None

    @property
    def now_us(self) -> int:
        return int(self.now.timestamp()) * 1_000_000

    def _times(self, rng: random.Random) -> list[int]:
        """Publication times (µs), oldest first: a day/night rhythm, busier weekdays."""
        start = self.now - timedelta(days=DAYS)
        hours = [
            (0.25 if hour % 24 < 6 else 1.0) * (0.7 if (hour // 24) % 7 in (5, 6) else 1.0)
            for hour in range(DAYS * 24)
        ]
        cum = list(itertools.accumulate(hours))
        total, base = cum[-1], int(start.timestamp()) * 1_000_000
        out = []
        for _ in range(self.size):
            hour = bisect.bisect(cum, rng.random() * total)
            out.append(base + hour * 3_600_000_000 + rng.randrange(3_600) * 1_000_000)
        return sorted(out)

    def share(self, word: str) -> int:
        """How many articles hold `word`'s stem in any field (as generated)."""
        stem = self.stem_of.get(word) or self.analyzer.stems([word])[0]
        return self.share_counts.get(stem, 0)

    def _stems(self, text: str) -> set[str]:
        words = tokens(text)
        stem_of = self.stem_of
        if all(word in stem_of for word in words):
            return {stem_of[word] for word in words}
        return set(self.analyzer.stems(words))  # a word cut at NewsAPI's 200 characters

    def _body(self, n: int, source: str) -> str | None:
        """Article n's body text as its provider sends it (see the module's doc); its own
        random stream, so titles and descriptions stay those of earlier runs."""
        if source == "hackernews":
            return None
        assert self.bodied is not None
        if source == "guardian" and not self.bodied[n]:
            return None
        rng = random.Random((self.seed * 2**32 + n) ^ (1 << 62))
        if source == "newsapi":  # words up to the cut: about 35, ample for 200 characters
            words = rng.choices(self.words, cum_weights=self.cum, k=40)
            return " ".join(words).capitalize()[:NEWSAPI_CONTENT_CHARS].rstrip()
        low, high = BODY_WORDS_RANGE
        count = rng.lognormvariate(math.log(BODY_WORDS_MEDIAN), BODY_WORDS_SIGMA)
        words = rng.choices(self.words, cum_weights=self.cum, k=min(high, max(low, round(count))))
        sentences, i = [], 0
        while i < len(words):
            length = rng.randint(*SENTENCE_WORDS)
            sentences.append(" ".join(words[i : i + length]).capitalize() + ".")
            i += length
        return " ".join(sentences)  # bodyText runs its paragraphs together, plain text

    @functools.lru_cache(maxsize=1 << 16)  # noqa: B019 (one Archive a run)
    def article(self, n: int) -> Article:
        if self.bodied is None:
            raise RuntimeError("Archive.plan first: it decides which articles have a body")
        rng = random.Random(self.seed * 2**32 + n)
        title = rng.choices(self.words, cum_weights=self.cum, k=rng.randint(5, 11))
        description = rng.choices(self.words, cum_weights=self.cum, k=rng.randint(10, 24))
        for word in COMMON_WORDS:
            if rng.random() < COMMON_SHARE:
                target = title if rng.random() < 0.4 else description
                target.insert(rng.randrange(len(target) + 1), word)
        source = self.source_names[self.source[n]]
        body = self._body(n, source)
        if not self._counted[n]:  # the share of articles holding each stem, in any field
            self._counted[n] = 1
            counts, stem_of = self.share_counts, self.stem_of
            held = {stem_of[word] for word in itertools.chain(title, description)}
            if body is not None:
                held |= self._stems(body)
            for stem in held:
                counts[stem] = counts.get(stem, 0) + 1
        published = datetime.fromtimestamp(self.published[n] / 1e6, UTC)
        host = HOSTS.get(source, rng.choice(("www.reuters.com", "www.theverge.com")))
        return Article(
            title=" ".join(title).capitalize(),
            description=" ".join(description).capitalize() + ".",
            url=f"https://{host}/{published:%Y/%m/%d}/story-{n}",
            source=source,  # type: ignore[arg-type]
            publisher=rng.choice(PUBLISHERS[source]),
            author=None if n % 4 == 0 else f"Author {n % 997}",
            image_url=None if n % 3 == 0 else f"https://img.example.com/{n}.jpg",
            category=CATEGORIES[self.category[n]],  # type: ignore[arg-type]
            published_at=published,
            body=body,
        )

    # -- the order of arrival ----------------------------------------------------------

    def plan(self, overlap_s: float) -> Plan:
        """Every save, in the order the service would make them (see the module's doc)."""
        settings = Settings()
        pace = paces(
            {
                name: budget_pace(
                    parse_quota(getattr(settings, f"{name}_quota"), settings.on_demand_share)
                )
                for name in PROVIDER_NAMES
            }
        )
        rng = random.Random(self.seed + 1)
        pages: list[Page] = []
        saves = harvest_pages = 0
        start_us = self.now_us - DAYS * 86_400_000_000
        for s, name in enumerate(self.source_names):
            own = [n for n in range(self.size) if self.source[n] == s and n not in self.arrival]
            times = [self.published[n] for n in own]
            at, interval, high_water, saved_to = start_us, pace[name].start, None, 0
            while True:
                at = min(at, self.now_us)
                if high_water is None:  # a first run looks back LOOKBACK_SECONDS
                    since = at - LOOKBACK_SECONDS * 1_000_000
                else:  # from the mark, less the overlap: those are saved again
                    since = high_water - int(overlap_s * 1e6)
                low = bisect.bisect_left(times, since)
                high = bisect.bisect_right(times, at)
                found = own[low:high][::-1]  # newest first
                size = HARVEST_PAGE[name]
                for i in range(0, len(found), size):
                    pages.append(Page(at, "harvest", found[i : i + size]))
                    harvest_pages += 1
                saves += len(found)
                added = max(0, high - saved_to)
                saved_to = max(saved_to, high)
                if found:
                    high_water = max(high_water or 0, times[high - 1])
                if at >= self.now_us:
                    break
                interval = after_success(pace[name], interval, added, len(found) > size)
                at += int(jittered(interval, rng) * 1e6)
        late = sorted(self.arrival, key=lambda n: (self.source[n], self.arrival[n]))
        refresh_pages = 0
        for _source, group in itertools.groupby(late, key=lambda n: self.source[n]):
            members = list(group)
            i = 0
            while i < len(members):
                chunk = members[i : i + rng.randint(*REFRESH_PAGE)]
                i += len(chunk)
                chunk.sort(key=lambda n: -self.published[n])
                pages.append(Page(max(self.arrival[n] for n in chunk), "refresh", chunk))
                refresh_pages += 1
                saves += len(chunk)
        pages.sort(key=lambda page: page.at_us)  # stable: a round's pages stay in order
        return Plan(pages, saves, harvest_pages, refresh_pages, len(late), self._bodies(pages))

    def _bodies(self, pages: list[Page]) -> int:
        """Decide which Guardian articles carry their body: every one (`all`), or those
        first saved within the timeline's last GUARDIAN_BODY_HOURS (`day`), the ones a
        deployment's index still holds (a body leaves GUARDIAN_BODY_HOURS after the save
        that brought it; one saved again unchanged keeps its time). How many."""
        guardian = self.source_names.index("guardian")
        since = self.now_us - int(GUARDIAN_BODY_HOURS * 3600e6)
        bodied = bytearray(self.size)
        seen = bytearray(self.size)
        for page in pages:  # in the order of saving: the first save decides
            for n in page.articles:
                if seen[n]:
                    continue
                seen[n] = 1
                if self.source[n] == guardian and (
                    self.guardian_bodies == "all" or page.at_us >= since
                ):
                    bodied[n] = 1
        if self.bodied is not None and self.bodied != bodied:
            raise RuntimeError("Archive.plan again with other bodies: articles already made")
        self.bodied = bodied
        return sum(bodied)


# -- the service's own upkeep: THE one place it is hooked in --------------------------


def service_upkeep(store: Any) -> tuple[str, Callable[[], None]]:
    """Start what the service runs beside its archive to keep it in shape, as `newsagg
    serve` starts it, on this store; answer what it is and how to stop it. Called before
    the first save; stopped once the archive has been measured.

    newsagg.upkeep.Upkeep with the service's defaults: a thread under the "upkeep" lease,
    its first turn 10 s after start, a step every 10 s when nothing is due, short steps
    with pauses between them while merges are due (not `catch_up()`, which a script may
    run but the service does not). On PostgreSQL it starts nothing (autovacuum does it)."""
    from newsagg.upkeep import Upkeep

    upkeep = Upkeep(store)
    upkeep.start()
    return "newsagg.upkeep.Upkeep(store).start(), as the service starts it", upkeep.stop


# -- the backends -----------------------------------------------------------------------


class Backend:
    name = ""
    engine = ""
    store: Any

    def count(self, text: str) -> int:
        """How many articles the query `text` matches (the share check)."""
        raise NotImplementedError

    def state(self) -> str:
        """What the engine says about the archive's upkeep."""
        return ""

    def explain(self, query: ArchiveQuery) -> str:
        raise NotImplementedError

    def size_mib(self) -> float:
        raise NotImplementedError

    def index_size(self) -> str:
        """The full-text index's size, and the body texts' (read once, after the searches:
        each reads the whole table)."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The environment a `newsagg serve` on this archive needs."""
        raise NotImplementedError

    def release(self) -> None:
        """Close this process's connections; the archive stays (for a server to open)."""
        self.store.close()

    def close(self) -> None: ...


class Sqlite(Backend):
    name = "SQLite"
    engine = "sqlite"

    def __init__(self, work: Path) -> None:
        from newsagg.store.sqlite import SqliteStore

        self.path = work / "archive.sqlite3"
        self.store = SqliteStore(str(self.path))
        self.store.migrate()

    def count(self, text: str) -> int:
        db = self.store.db.connection()
        sql = "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?"
        match = self.store.analyzer.query(parse(text))  # stems, as the store's search
        return db.execute(sql, (to_fts5(match),)).fetchone()[0]

    def state(self) -> str:
        db = self.store.db.connection()
        analyzed = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ).fetchone()[0]
        marks = dict(db.execute("SELECT name, value FROM meta WHERE name LIKE 'upkeep%'"))
        newest = db.execute("SELECT max(id) FROM articles").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        wal_mib = wal.stat().st_size / 2**20 if wal.exists() else 0.0
        marked = ", ".join(f"{name} {value.split()[0]}" for name, value in sorted(marks.items()))
        return (
            f"statistics {'present' if analyzed else 'never gathered'}; newest id {newest:,};"
            f" upkeep marks: {marked or 'none'}; WAL {wal_mib:.0f} MiB"
        )

    def explain(self, query: ArchiveQuery) -> str:
        from newsagg.store.archive import MAX_WINDOW
        from newsagg.store.relevance import RANKED_WINDOW

        query = self.store.analysed(query)  # stems, as the store's search builds it
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

    def index_size(self) -> str:
        db = self.store.db.connection()
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name GLOB 'articles_fts_*' ORDER BY name"
            )
        ]
        sizes: dict[str, float] = {}
        try:  # dbstat counts each table's pages, free space included (as the file holds it)
            for name in [*tables, "articles"]:
                sizes[name] = (
                    db.execute(
                        "SELECT sum(pgsize) FROM dbstat WHERE name = ? AND aggregate = TRUE",
                        (name,),
                    ).fetchone()[0]
                    or 0
                ) / 2**20
            how = "dbstat"
        except sqlite3.OperationalError:  # built without dbstat: the segments' own bytes
            sizes = {
                "articles_fts_data": db.execute(
                    "SELECT sum(length(block)) FROM articles_fts_data"
                ).fetchone()[0]
                / 2**20
            }
            how = "bytes of the segments, no dbstat"
        bodies, body_bytes = db.execute(
            "SELECT count(body), coalesce(sum(length(CAST(body AS BLOB))), 0) FROM articles"
        ).fetchone()
        index = sum(size for name, size in sizes.items() if name != "articles")
        parts = ", ".join(
            f"{name.removeprefix('articles_fts_')} {size:,.1f}"
            for name, size in sizes.items()
            if name != "articles"
        )
        table = f"; the articles table {sizes['articles']:,.0f} MiB" if "articles" in sizes else ""
        return (
            f"full-text index {index:,.0f} MiB ({how}: {parts}){table};"
            f" {bodies:,} bodies, {body_bytes / 2**20:,.1f} MiB of their text"
        )

    def env(self) -> dict[str, str]:
        return {"NEWSAGG_DATABASE": str(self.path)}

    def close(self) -> None:
        self.store.close()


class Postgres(Backend):
    """A server of its own, started as the test suite starts one (pg_server), defaults
    otherwise: autovacuum and autoanalyze run as they would."""

    name = "PostgreSQL"
    engine = "postgres"

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

    def _run(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        import psycopg

        with psycopg.connect(self.server.url(), autocommit=True) as db:
            db.execute("SET statement_timeout = 0")
            cursor = db.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def count(self, text: str) -> int:
        return self._run(
            "SELECT count(*) FROM articles WHERE search @@ %s::tsquery",
            (to_tsquery(self.store.analyzer.query(parse(text))),),  # stems, as the store's
        )[0][0]

    def state(self) -> str:
        rows = self._run(
            "SELECT n_dead_tup, n_mod_since_analyze, last_autovacuum, last_autoanalyze,"
            " autovacuum_count, autoanalyze_count FROM pg_stat_user_tables"
            " WHERE relname = 'articles'"
        )
        if not rows:
            return ""
        dead, modified, vacuumed, analyzed, vacuums, analyzes = rows[0]

        def ago(at: datetime | None) -> str:
            if at is None:
                return "never"
            return f"{(datetime.now(UTC) - at).total_seconds():.0f} s ago"

        return (
            f"autovacuum {vacuums}x (last {ago(vacuumed)}), autoanalyze {analyzes}x"
            f" (last {ago(analyzed)}); {dead:,} dead rows, {modified:,} changed since analyze"
        )

    def explain(self, query: ArchiveQuery) -> str:
        from newsagg.store.archive import PG_FIRST_WINDOW

        query = self.store.analysed(query)  # stems, as the store's search builds it

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
            rows = self._run(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", tuple(params))
            out.append(label + ("\n" if label else "") + "\n".join(row[0] for row in rows))
        return "\n".join(out)

    def size_mib(self) -> float:
        return self._run("SELECT pg_total_relation_size('articles')")[0][0] / 2**20

    def index_size(self) -> str:
        ((search, pairs, heap),) = self._run(
            "SELECT pg_relation_size('articles_search'), pg_relation_size('articles_pairs'),"
            " pg_table_size('articles')"
        )
        # pg_column_size: the bytes each value is stored in (compressed or in TOAST), read
        # without decompressing it.
        ((vectors, bodies, body_bytes),) = self._run(
            "SELECT coalesce(sum(pg_column_size(search)), 0), count(body),"
            " coalesce(sum(pg_column_size(body)), 0) FROM articles"
        )
        return (
            f"full-text indexes {(search + pairs) / 2**20:,.0f} MiB (GIN articles_search"
            f" {search / 2**20:,.0f}, articles_pairs {pairs / 2**20:,.0f}); the table"
            f" {heap / 2**20:,.0f} MiB with its TOAST, of it the search column"
            f" {vectors / 2**20:,.0f} MiB; {bodies:,} bodies, {body_bytes / 2**20:,.1f} MiB"
            " stored"
        )

    def env(self) -> dict[str, str]:
        return {"NEWSAGG_DATABASE_URL": self.server.url()}

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self.server.remove()


def open_backend(kind: str, work: Path) -> Backend:
    return Sqlite(work) if kind == "sqlite" else Postgres(work)


# -- ingest -----------------------------------------------------------------------------


@dataclass
class Ingest:
    articles: int
    saves: int
    pages: int
    late: int
    in_save_s: float  # inside ArchiveWriter.save
    wall_s: float  # generating the articles included
    # Body texts saved, by provider: (articles, words) (words: as split on spaces).
    bodies: dict[str, tuple[int, int]] = field(default_factory=dict)
    slices: list[tuple[int, float]] = field(default_factory=list)  # (articles, rate) by tenth

    @property
    def rate(self) -> float:
        """Articles per second of writing, over every article of the archive."""
        return self.articles / self.in_save_s


def ingest(store: Any, archive: Archive, plan: Plan) -> Ingest:
    """Every page of `plan` saved through the service's ArchiveWriter, in order."""
    writer = ArchiveWriter(store, BODY_HOURS)  # as the service makes it
    in_save, first, saves = 0.0, 0, 0
    began = time.perf_counter()
    step = max(1, archive.size // 10)
    next_mark, slice_from, slice_time = step, 0, 0.0
    slices: list[tuple[int, float]] = []
    seen = bytearray(archive.size)
    bodies: dict[str, tuple[int, int]] = {}
    for page in plan.pages:
        articles = [archive.article(n) for n in page.articles]
        start = time.perf_counter()
        writer.save(articles)
        spent = time.perf_counter() - start
        in_save += spent
        slice_time += spent
        saves += len(articles)
        for n, article in zip(page.articles, articles, strict=True):
            if not seen[n]:
                seen[n] = 1
                first += 1
                if article.body is not None:
                    count, words = bodies.get(article.source, (0, 0))
                    bodies[article.source] = (count + 1, words + article.body.count(" ") + 1)
        if first >= next_mark:
            rate = (first - slice_from) / max(slice_time, 1e-9)
            slices.append((first, rate))
            print(
                f"    {first:>9,} articles ({saves:,} saves): {rate:,.0f} articles/s"
                f" in the last tenth, {first / in_save:,.0f}/s so far",
                flush=True,
            )
            next_mark, slice_from, slice_time = next_mark + step, first, 0.0
    return Ingest(
        articles=first,
        saves=saves,
        pages=len(plan.pages),
        late=plan.late,
        in_save_s=in_save,
        wall_s=time.perf_counter() - began,
        slices=slices,
        bodies=bodies,
    )


# -- the queries ------------------------------------------------------------------------


def pools(archive: Archive) -> dict[str, list[str]]:
    """POOL words of each band (by the share counted while generating), spread over it,
    and the 30 % words; POOL 4-letter prefixes of rare words (each prefix matches every
    word it begins: its own share is measured and printed). A word's share is its stem's,
    and a stem is drawn once, as its most frequent word (`lessons` for `lesson`)."""
    total = archive.size
    out: dict[str, list[str]] = {}
    shares: dict[str, int] = {}
    drawn: set[str] = set()
    for word in archive.words:  # rank order: the first word of a stem is its most frequent
        stem = archive.stem_of[word]
        if stem not in drawn and stem in archive.share_counts:
            drawn.add(stem)
            shares[word] = archive.share_counts[stem]
    for band, (_label, low, high) in BANDS.items():
        inside = sorted(
            (w for w, c in shares.items() if low <= c / total < high and w not in COMMON_WORDS),
            key=lambda w: (shares[w], w),
        )
        if len(inside) > POOL:
            inside = [inside[round(i * (len(inside) - 1) / (POOL - 1))] for i in range(POOL)]
        out[band] = inside
    out["30 %"] = list(COMMON_WORDS)
    _label, low, high = BANDS["rare"]
    prefixes = sorted(
        {w[:4] for w in shares if len(w) >= 6 and w.isalpha() and low <= shares[w] / total < high}
    )
    rng = random.Random(archive.seed)
    out["prefix"] = sorted(rng.sample(prefixes, min(POOL, len(prefixes))))
    return out


# Each kind of query: (name, selective?, parameters). In `q`, each {pool} is a word drawn
# from that pool (each occurrence on its own); the other parameters are drawn as named:
# a category, a source, a 7-day window ending 0-82 days ago ("days"), newest up to 1 h-89
# days ago or now ("to"). Four kinds are measured again on their second page.
KINDS: tuple[tuple[str, bool, dict[str, str]], ...] = (
    ("newest, no q (up to an instant)", True, {"to": "to"}),
    ("newest in a category (up to an instant)", True, {"category": "category", "to": "to"}),
    ("one word (rare)", True, {"q": "{rare}"}),
    ("one word (mid)", True, {"q": "{mid}"}),
    ("one word (frequent)", True, {"q": "{frequent}"}),
    ("two words (mid frequent)", True, {"q": "{mid} {frequent}"}),
    ("phrase (frequent frequent)", True, {"q": '"{frequent} {frequent}"'}),
    ("OR (rare OR mid)", True, {"q": "{rare} OR {mid}"}),
    ("prefix (4 letters*)", True, {"q": "{prefix}*"}),
    ("word -word (mid -frequent)", True, {"q": "{mid} -{frequent}"}),
    ("title:word (mid)", True, {"q": "title:{mid}"}),
    ("word + category (mid)", True, {"q": "{mid}", "category": "category"}),
    ("word + 7-day window (mid)", True, {"q": "{mid}", "days": "days"}),
    ("word + source (mid)", True, {"q": "{mid}", "source": "source"}),
    ("word by relevance (mid)", True, {"q": "{mid}", "sort": "relevance"}),
    ("OR by relevance (rare OR mid)", True, {"q": "{rare} OR {mid}", "sort": "relevance"}),
    ("30 % word", False, {"q": "{common}"}),
    ("30 % word + category", False, {"q": "{common}", "category": "category"}),
    ("30 % word + 7-day window", False, {"q": "{common}", "days": "days"}),
    ("30 % word + rare word", True, {"q": "{common} {rare}"}),
    ("30 % word OR mid word", False, {"q": "{common} OR {mid}"}),
    ("30 % word by relevance", False, {"q": "{common}", "sort": "relevance"}),
    (
        "30 % word + category by relevance",
        False,
        {"q": "{common}", "category": "category", "sort": "relevance"},
    ),
)
SECOND_PAGE = ("one word (mid)", "OR (rare OR mid)", "30 % word", "30 % word by relevance")
POOL_NAMES = {"rare": "rare", "mid": "mid", "frequent": "frequent", "common": "30 %"}
POOL_NAMES["prefix"] = "prefix"


@dataclass(frozen=True)
class Kind:
    name: str
    selective: bool
    spec: dict[str, str]
    words: dict[str, list[str]]
    sources: tuple[str, ...]
    second_page: bool = False

    @property
    def target_ms(self) -> float:
        return SELECTIVE_P99_MS if self.selective else COMMON_P99_MS

    @property
    def pools(self) -> tuple[str, ...]:
        """The word pools its queries draw from."""
        found = re.findall(r"\{(\w+)\}", self.spec.get("q", ""))
        return tuple(dict.fromkeys(POOL_NAMES[name] for name in found))

    def make(self, rng: random.Random) -> dict[str, Any]:
        """The parameters of one query of this kind."""
        out: dict[str, Any] = {}
        for key, value in self.spec.items():
            if key == "q":
                out["q"] = re.sub(
                    r"\{(\w+)\}", lambda m: rng.choice(self.words[POOL_NAMES[m[1]]]), value
                )
            elif value == "category":
                out[key] = rng.choice(CATEGORIES)
            elif value == "source":
                out[key] = rng.choice(self.sources)
            elif value == "days":
                out[key] = rng.randrange(0, DAYS - 7)
            elif value == "to":  # a client paging back by `to`
                out[key] = None if rng.random() < 0.05 else rng.randrange(1, 24 * (DAYS - 1))
            else:
                out[key] = value
        return out


def query_kinds(archive: Archive, words: dict[str, list[str]]) -> list[Kind]:
    sources = tuple(archive.source_names)
    kinds = [Kind(name, sel, spec, words, sources) for name, sel, spec in KINDS]
    for name, selective, spec in KINDS:
        if name in SECOND_PAGE:
            kinds.append(Kind(f"page 2: {name}", selective, spec, words, sources, True))
    return kinds


def to_query(archive: Archive, params: dict[str, Any]) -> ArchiveQuery:
    fields: dict[str, Any] = {"limit": 20}
    if params.get("q"):
        fields["match"] = parse(params["q"])
    if params.get("category"):
        fields["category"] = params["category"]
    if params.get("source"):
        fields["sources"] = (params["source"],)
    if params.get("days") is not None:
        end = archive.now - timedelta(days=params["days"])
        fields |= {"published_from": end - timedelta(days=7), "published_to": end}
    if params.get("to") is not None:
        fields["published_to"] = archive.now - timedelta(hours=params["to"])
    if params.get("sort"):
        fields["sort"] = params["sort"]
    return ArchiveQuery(**fields)


def samples(kind: Kind, seed: int, runs: int) -> tuple[int, list[dict[str, Any]]]:
    """`runs` queries of `kind`: up to MAX_DISTINCT distinct ones, then the same again
    (each cycle shuffled), the distinct ones first; and how many are distinct."""
    rng = random.Random(f"{seed}:{kind.name}")
    distinct: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _ in range(50 * MAX_DISTINCT):
        params = kind.make(rng)
        distinct.setdefault(tuple(sorted(params.items())), params)
        if len(distinct) >= min(MAX_DISTINCT, runs):
            break
    unique = list(distinct.values())
    out: list[dict[str, Any]] = []
    while len(out) < runs:
        cycle = unique[:]
        rng.shuffle(cycle)
        out += cycle
    return len(unique), out[:runs]


def second_page(store: Any, query: ArchiveQuery) -> ArchiveQuery:
    rows = store.search(query)
    after = (rows[-1].position, rows[-1].id) if rows else None
    horizon = rows[-1].horizon if rows else None
    return ArchiveQuery(
        **{
            **{f: getattr(query, f) for f in ArchiveQuery.__slots__},
            "after": after,
            "horizon": horizon,
        }
    )


@dataclass
class Timing:
    distinct: int
    runs: list[float]  # ms
    capped: bool = False  # stopped by the time cap before MIN_DISTINCT runs


def timed(
    store: Any, archive: Archive, kind: Kind, repeat: int, budget_s: float, cap_s: float
) -> Timing:
    """Milliseconds per search over the kind's samples: stopped after `budget_s` once at
    least MIN_DISTINCT ran, and after `cap_s` whatever ran (so a run always ends)."""
    count, params = samples(kind, archive.seed, repeat)
    queries = [to_query(archive, p) for p in params]
    store.search(queries[0])  # warm the code path
    out: list[float] = []
    began = time.perf_counter()
    for query in queries:
        if kind.second_page:
            query = second_page(store, query)
        start = time.perf_counter()
        store.search(query)
        out.append((time.perf_counter() - start) * 1000)
        elapsed = time.perf_counter() - began
        if len(out) >= MIN_DISTINCT and elapsed > budget_s:
            break
        if elapsed > cap_s and len(out) < len(queries):
            return Timing(min(count, len(out)), out, len(out) < MIN_DISTINCT)
    return Timing(min(count, len(out)), out)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def measure(
    backend: Backend, archive: Archive, kinds: list[Kind], repeat: int, explain: bool
) -> dict[str, Timing]:
    results: dict[str, Timing] = {}
    for kind in kinds:
        runs = max(MIN_DISTINCT, repeat // 2) if kind.second_page else repeat
        timing = timed(backend.store, archive, kind, runs, budget_s=20, cap_s=60)
        results[kind.name] = timing
        high = p99(timing.runs)
        print(
            f"  {kind.name:40} p50 {statistics.median(timing.runs):7.2f} ms"
            f"  p99 {high:7.2f} ms  {'ok  ' if high <= kind.target_ms else 'MISS'}"
            f" ({timing.distinct} distinct, {len(timing.runs)} runs"
            f"{', stopped at 60 s' if timing.capped else ''})",
            flush=True,
        )
        if explain:
            _count, params = samples(kind, archive.seed, 1)
            print("    " + backend.explain(to_query(archive, params[0])).replace("\n", "\n    "))
    return results


def measured_shares(backend: Backend, archive: Archive, words: dict[str, list[str]]) -> dict:
    """Each pool word's share of the archive, counted by the database; a word whose count
    differs from the generator's is reported."""
    total = archive.size
    out: dict[str, float] = {}
    for pool, members in words.items():
        for word in members:
            text = word + "*" if pool == "prefix" else word
            found = backend.count(text)
            out[text] = found / total
            expected = archive.share(word)
            if pool != "prefix" and expected != found:
                print(f"  note: {word!r} is in {found:,} articles, generated in {expected:,}")
    return out


# -- the run ----------------------------------------------------------------------------


@dataclass
class Figures:
    ingest: Ingest
    searches: dict[str, Timing]
    shares: dict[str, float]
    upkeep: str
    state: str  # when the searches began
    state_after: str  # when they ended
    size_mib: float
    index: str  # the full-text index's size and the bodies' (Backend.index_size)
    idle_s: float
    minutes: float  # the whole run of this engine


def build(
    backend: Backend, archive: Archive, overlap_s: float, idle_s: float
) -> tuple[Ingest, Callable[[], None], str]:
    """The archive as the service leaves it: upkeep started, every page saved, left idle.
    Answers the ingest figures, how to stop the upkeep, and what it is."""
    plan = archive.plan(overlap_s)
    print(
        f"  plan: {archive.size:,} articles in {plan.saves:,} saves"
        f" ({plan.saves / archive.size:.2f} a article: the harvest's {overlap_s:.0f} s overlap"
        f" saves some again), {plan.harvest_pages:,} harvest pages and {plan.refresh_pages:,}"
        f" on-demand refreshes; {plan.late:,} articles ({plan.late / archive.size:.0%}) arrive"
        f" late, with new ids; Guardian bodies: {plan.bodies:,} ({archive.guardian_bodies})",
        flush=True,
    )
    upkeep, stop = service_upkeep(backend.store)
    print(f"  the service's upkeep: {upkeep}", flush=True)
    try:
        figures = ingest(backend.store, archive, plan)
        print(
            f"  ingest: {figures.articles:,} articles, {figures.saves:,} saves in"
            f" {figures.pages:,} calls of ArchiveWriter.save: {figures.in_save_s:.0f} s inside"
            f" it, {figures.rate:,.0f} articles/s over the whole archive"
            f" ({figures.saves / figures.in_save_s:,.0f} saves/s); {figures.wall_s:.0f} s with"
            " generating them",
            flush=True,
        )
        if idle_s:
            print(f"  idle {idle_s:.0f} s, the upkeep running", flush=True)
            time.sleep(idle_s)
    except BaseException:
        stop()
        raise
    return figures, stop, upkeep


def run(
    backends: list[str],
    size: int,
    repeat: int,
    overlap_s: float,
    idle_s: float,
    late: float,
    explain: bool,
    keep: bool,
    guardian_bodies: str = "day",
) -> tuple[Archive | None, dict[str, Figures]]:
    figures: dict[str, Figures] = {}
    work = Path(tempfile.mkdtemp(prefix="newsagg-archive-bench-"))
    archive = None
    try:
        for kind in backends:
            began = time.monotonic()
            archive = Archive(size, late=late, guardian_bodies=guardian_bodies)
            backend = open_backend(kind, work)
            try:
                print(f"\n{backend.name}: {size:,} articles, saved as the service saves them")
                ingest_figures, stop, upkeep = build(backend, archive, overlap_s, idle_s)
                try:
                    state = backend.state()
                    print(f"  {state}; {backend.size_mib():,.0f} MiB", flush=True)
                    words = pools(archive)
                    searches = measure(
                        backend, archive, query_kinds(archive, words), repeat, explain
                    )
                    after = backend.state()
                    print(f"  after the searches: {after}", flush=True)
                finally:
                    stop()
                shares = measured_shares(backend, archive, words)
                index = backend.index_size()
                print(f"  {backend.size_mib():,.0f} MiB: {index}", flush=True)
                figures[backend.name] = Figures(
                    ingest_figures,
                    searches,
                    shares,
                    upkeep,
                    state,
                    after,
                    backend.size_mib(),
                    index,
                    idle_s,
                    (time.monotonic() - began) / 60,
                )
            finally:
                if not keep or isinstance(backend, Postgres):
                    backend.close()  # a server is never kept
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return archive, figures


def bodies_text(bodies: dict[str, tuple[int, int]]) -> str:
    return (
        ", ".join(
            f"{name} {count:,} ({words / count:,.0f} words on average)"
            for name, (count, words) in sorted(bodies.items())
        )
        or "none"
    )


def share_range(shares: dict[str, float], words: list[str]) -> str:
    values = sorted(shares[w] * 100 for w in words if w in shares)
    if not values:
        return ""
    return f"{percent(values[0])}-{percent(values[-1])} %"


def percent(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def report(archive: Archive | None, figures: dict[str, Figures]) -> None:
    names = list(figures)
    if not names or archive is None:
        return
    first = figures[names[0]]
    words = pools(archive)
    print(
        f"\nThe archive as the service leaves it: {archive.size:,} articles, every one saved"
        " through ArchiveWriter.save"
    )
    for name in names:
        f = figures[name]
        slices = f.ingest.slices
        print(
            f"  {name}: {f.ingest.rate:,.0f} articles/s over all {f.ingest.articles:,}"
            f" ({f.ingest.saves:,} saves, {f.ingest.saves / f.ingest.in_save_s:,.0f}/s;"
            f" last tenth {slices[-1][1] if slices else float('nan'):,.0f} articles/s);"
            f" {f.size_mib:,.0f} MiB; idle {f.idle_s:.0f} s; upkeep: {f.upkeep};"
            f" {f.minutes:.0f} min in all"
        )
        print(f"    {f.size_mib:,.0f} MiB: {f.index}")
        print(f"    bodies saved: {bodies_text(f.ingest.bodies)}")
        print(f"    before the searches: {f.state}\n    after them: {f.state_after}")
    print("\nWords by their measured share of the articles (the database's count)")
    labels = {**{band: label for band, (label, _l, _h) in BANDS.items()}, "30 %": "30 %"}
    labels["prefix"] = "prefixes of rare words"
    for pool, members in words.items():
        keys = [w + "*" if pool == "prefix" else w for w in members]
        listed = ", ".join(f"{w} {percent(first.shares.get(w, math.nan) * 100)} %" for w in keys)
        print(
            textwrap.fill(
                f"{labels[pool]} ({len(keys)}): {listed}",
                width=100,
                initial_indent="  ",
                subsequent_indent="      ",
            )
        )
    kinds = query_kinds(archive, words)
    print(
        f"\nSearch, p50 / p99 in ms (targets: p99 <= {SELECTIVE_P99_MS:.0f} selective,"
        f" <= {COMMON_P99_MS:.0f} for a word in 30 % of the articles); distinct queries x runs"
    )
    header = f"  {'kind':40} {'share of its words':24}"
    print(header + "".join(f"{name:>34}" for name in names))
    misses = []
    for kind in kinds:
        spans = " + ".join(
            share_range(first.shares, [w + "*" if p == "prefix" else w for w in words[p]])
            for p in kind.pools
        )
        cells = []
        for name in names:
            timing = figures[name].searches.get(kind.name)
            if timing is None:
                cells.append(f"{'-':>34}")
                continue
            high = p99(timing.runs)
            ok = high <= kind.target_ms and not timing.capped
            if not ok:
                misses.append(f"{name}: {kind.name}")
            cells.append(
                f"{timing.distinct:>4} x {len(timing.runs):<4}"
                f"{statistics.median(timing.runs):7.1f} / {high:6.1f}"
                f" <={kind.target_ms:<4.0f}{'ok' if ok else 'MISS'}"
            )
        print(f"  {kind.name:40} {spans:24}" + "".join(f"{c:>34}" for c in cells))
    print("  targets missed: " + ("; ".join(misses) if misses else "none"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=200, help="runs a kind (page 2: half)")
    parser.add_argument(
        "--overlap",
        type=float,
        default=OVERLAP_SECONDS,
        help="seconds each harvest round goes back before its mark (the harvester's)",
    )
    parser.add_argument(
        "--idle", type=float, default=60.0, help="seconds idle between ingest and searches"
    )
    parser.add_argument(
        "--late",
        type=float,
        default=LATE_SHARE,
        help="share of the articles that on-demand refreshes bring late, with new ids",
    )
    parser.add_argument(
        "--guardian-bodies",
        choices=BODY_MODES,
        default="day",
        help="Guardian articles with their body: those of the last 24 h (day, as deployed)"
        " or every one (all, the worst case)",
    )
    parser.add_argument("--explain", action="store_true", help="print each kind's plan")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file (debugging)")
    args = parser.parse_args(argv)
    archive, figures = run(
        [name.strip() for name in args.backends.split(",") if name.strip()],
        args.articles,
        args.repeat,
        args.overlap,
        args.idle,
        args.late,
        args.explain,
        args.keep,
        args.guardian_bodies,
    )
    report(archive, figures)


if __name__ == "__main__":
    main()
