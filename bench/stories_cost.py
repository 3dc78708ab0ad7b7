"""What grouping articles into stories costs, on the archive of bench/archive.py: 1,000,000
articles on SQLite and on PostgreSQL, generated, planned and saved exactly as that bench
saves them (its Archive, its plan, its `ingest` through ArchiveWriter, the service's
upkeep started by its `service_upkeep`; nothing tuned that the service does not tune).
Per engine:

1. Clustering cost per article. The store instance's bound `_place_all` (the step of
   `save_articles` that places a save's new articles in stories, inside its transaction)
   is wrapped by a timer: seconds and arrivals per call; per-article cost = call time /
   arrivals, p50/p99 over the calls with at least one arrival (a save of articles already
   kept places nothing), and placing's share of the time inside ArchiveWriter.save.
2. Ingest rate with and without clustering, side by side in one run. The archive is built
   to its last `--ab` articles (the archive's first saves of each of the last `--ab`
   articles, with every other save of theirs: overlap re-saves, late refreshes); then the
   rest of the plan (the same pages, the same sizes, in order) is saved with batches
   alternating between the real `_place_all` and a no-op (one toggle per kind of page,
   harvest or refresh, so both sides get the same mix of page sizes). Why alternating:
   this is a shared 2-core machine whose speed drifts by tens of percent over minutes
   (other processes, PostgreSQL's autovacuum, the upkeep's merges, the page cache), so
   two separate runs, or two halves one after the other, would compare the machine's
   moods; pages interleaved within one run see the same archive size, the same upkeep
   and the same noise, and their ratio is what is left. The articles saved with the
   no-op are placed afterwards (one transaction, as a late save would), so the stories
   measured next are whole.
   Before the alternation, `--profile` placements are saved with each statement of the
   placing timed (a proxy over the connection: execute + fetch, by statement) and under
   cProfile; those are left out of every other figure.
3. GET /stories: `StoryBook(store, CursorCodec(...)).list(FeedRequest.parse(limit=20, ...),
   sort)` (what the handler calls; no HTTP): trending with no filter, newest, trending in
   category=technology, trending for a frequent word (5-25 % of the articles) and for a
   rare one (0.1-0.5 %), the words from bench/archive.py's pools, cycled; `--runs` runs a
   kind (stopped after 60 s once 20 ran; the table says how many ran). After `--idle` s
   idle, as bench/archive.py idles before its searches.
4. `--search`: bench/archive.py's own search measurement (`measure`, every kind of query)
   on the same archive, to show its targets still hold with stories in the schema.

    .venv/bin/python bench/stories_cost.py [--articles 1000000] [--backends sqlite,postgres]
        [--ab 20000] [--runs 200] [--idle 60] [--profile 300] [--search]

Goals (the stories issue): clustering p99 <= 5 ms an article; ingest rate down by at most
30 %; GET /stories p99 <= 50 ms; the search targets of bench/archive.py still held.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import archive as bench_archive  # noqa: E402
from archive import (  # noqa: E402
    BODY_HOURS,
    LATE_SHARE,
    Archive,
    Backend,
    Page,
    Postgres,
    ingest,
    measure,
    p99,
    pools,
    query_kinds,
    service_upkeep,
)

from newsagg.archive_writer import ArchiveWriter  # noqa: E402
from newsagg.cursor import CursorCodec  # noqa: E402
from newsagg.harvest import OVERLAP_SECONDS  # noqa: E402
from newsagg.request import FeedRequest  # noqa: E402
from newsagg.stories.listing import StoryBook  # noqa: E402

CLUSTER_P99_MS, DROP_MAX, STORIES_P99_MS = 5.0, 0.30, 50.0
STORY_TABLES = ("stories", "story_terms", "story_words", "story_titles", "story_publishers")


# -- the timer around _place_all ----------------------------------------------------------


class Timed:
    """A connection whose statements are timed (execute and the fetches of its cursor),
    each under its first words."""

    def __init__(self, db: Any, spent: dict[str, list[float]]) -> None:
        self._db, self._spent = db, spent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        key = statement_key(sql)
        start = time.perf_counter()
        cursor = self._db.execute(sql, *args)
        self._spent[key].append(time.perf_counter() - start)
        return TimedCursor(cursor, self._spent[key])


class TimedCursor:
    def __init__(self, cursor: Any, spent: list[float]) -> None:
        self._cursor, self._spent = cursor, spent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def _timed(self, name: str) -> Any:
        start = time.perf_counter()
        out = getattr(self._cursor, name)()
        self._spent[-1] += time.perf_counter() - start
        return out

    def fetchone(self) -> Any:
        return self._timed("fetchone")

    def fetchall(self) -> Any:
        return self._timed("fetchall")


def statement_key(sql: str) -> str:
    words = sql.replace("(", " (").split()
    head = " ".join(words[:3]) if words[0] == "INSERT" else " ".join(words[:2])
    where = sql.find(" WHERE ")
    cond = " ".join(sql[where + 7 :].split()[:1]) if where >= 0 and words[0] != "INSERT" else ""
    table = next((w for i, w in enumerate(words) if i and words[i - 1] == "FROM"), "")
    if words[0] == "SELECT":
        return f"SELECT {words[1].rstrip(',')}... FROM {table} WHERE {cond}"
    if words[0] == "UPDATE":
        return f"UPDATE {words[1]} SET {words[3]}..."
    return head


@dataclass
class Placing:
    """Stands in for the store's bound `_place_all`: times it, or (off) does nothing and
    keeps the arrivals for later."""

    real: Any
    on: bool = True
    phase: str = "build"
    calls: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    skipped: list[Any] = field(default_factory=list)
    profile: cProfile.Profile | None = None
    statements: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    keep: bool = True  # off: keep the arrivals for later
    next_note: int = 2_000

    def __call__(self, db: Any, arrivals: Any) -> None:
        arrivals = list(arrivals)
        if not self.on:
            if self.keep:
                self.skipped += arrivals
            return
        if self.profile is not None:
            self.profile.enable()
            try:
                self.real(Timed(db, self.statements), arrivals)
            finally:
                self.profile.disable()
            self.calls["profiled"].append((0.0, len(arrivals)))
            return
        start = time.perf_counter()
        self.real(db, arrivals)
        calls = self.calls[self.phase]
        calls.append((time.perf_counter() - start, len(arrivals)))
        placed = sum(n for _, n in calls)
        if placed >= self.next_note:  # progress, so that a run stopped early still tells
            self.next_note = placed + 2_000
            costs = per_article_ms(calls)
            recent = per_article_ms(calls[-500:])
            print(
                f"      placing ({self.phase}): {placed:,} articles, {len(costs):,} calls,"
                f" {sum(s for s, _ in calls):.0f} s; per article p50"
                f" {statistics.median(costs):.2f} p99 {p99(costs):.2f} ms (last 500 calls:"
                f" {statistics.median(recent):.2f} / {p99(recent):.2f}) at {time.strftime('%X')}",
                flush=True,
            )


def per_article_ms(calls: list[tuple[float, int]]) -> list[float]:
    return [seconds * 1000 / n for seconds, n in calls if n]


# -- the run ------------------------------------------------------------------------------


@dataclass
class Side:
    pages: int = 0
    saves: int = 0
    new: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.new / self.seconds if self.seconds else float("nan")


@dataclass
class Figures:
    engine: str
    size: int
    build: Any  # archive.Ingest
    build_place_s: float
    build_calls: list[tuple[float, int]]
    ab: dict[str, Side]
    ab_calls: list[tuple[float, int]]
    statements: dict[str, list[float]]
    profiled: int
    profile_text: str
    catch_up: tuple[int, float]
    listing: dict[str, tuple[list[float], float]]  # kind: (ms, stories a page)
    story_state: str
    searches: dict[str, Any] | None
    search_kinds: list[Any]
    minutes: float


def split(pages: list[Page], count: int) -> tuple[list[Page], list[Page]]:
    """The pages until the first saves of `count` articles, and the rest (in order)."""
    seen, first = set(), 0
    if count <= 0:
        return [], pages
    for i, page in enumerate(pages):
        for n in page.articles:
            if n not in seen:
                seen.add(n)
                first += 1
        if first >= count:
            return pages[: i + 1], pages[i + 1 :]
    return pages, []


def save_pages(
    writer: ArchiveWriter, archive: Archive, pages: list[Page], seen: bytearray
) -> list[tuple[Page, float, int]]:
    out = []
    for page in pages:
        articles = [archive.article(n) for n in page.articles]
        start = time.perf_counter()
        writer.save(articles)
        spent = time.perf_counter() - start
        new = 0
        for n in page.articles:
            if not seen[n]:
                seen[n] = 1
                new += 1
        out.append((page, spent, new))
    return out


def sql_rows(backend: Backend, sql: str) -> list[Any]:
    if isinstance(backend, Postgres):
        return backend._run(sql)
    return backend.store.db.connection().execute(sql).fetchall()


def story_state(backend: Backend) -> str:
    ((stories, live, largest),) = sql_rows(
        backend,
        "SELECT count(*), sum(CASE WHEN merged_into IS NULL THEN 1 ELSE 0 END), max(size)"
        " FROM stories",
    )
    ((placed, articles),) = sql_rows(
        backend, "SELECT (SELECT count(*) FROM story_members), (SELECT count(*) FROM articles)"
    )
    ((terms,),) = sql_rows(backend, "SELECT count(*) FROM story_terms")
    sizes = []
    for table in STORY_TABLES:
        try:
            if isinstance(backend, Postgres):
                ((size,),) = sql_rows(backend, f"SELECT pg_total_relation_size('{table}')")
            else:
                ((size,),) = sql_rows(
                    backend,
                    f"SELECT sum(pgsize) FROM dbstat WHERE name = '{table}'"
                    f" OR tbl_name = '{table}'",
                )
            sizes.append(f"{table} {(size or 0) / 2**20:,.0f}")
        except (sqlite3.OperationalError, sqlite3.DatabaseError):
            try:  # dbstat has no tbl_name column: indexes left out
                ((size,),) = sql_rows(
                    backend,
                    f"SELECT sum(pgsize) FROM dbstat WHERE name = '{table}' AND aggregate = TRUE",
                )
                sizes.append(f"{table} {(size or 0) / 2**20:,.0f} (table only)")
            except sqlite3.OperationalError:
                break
    multi = sql_rows(backend, "SELECT count(*) FROM stories WHERE size > 1")[0][0]
    return (
        f"{articles:,} articles, {placed:,} in a story; {stories:,} stories ({live:,} not"
        f" merged, {multi:,} of 2+ articles, largest {largest:,}); {terms:,} story_terms rows;"
        f" MiB: {', '.join(sizes) or 'n/a'}"
    )


def listing_kinds(words: dict[str, list[str]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [
        ("trending, no filter", "trending", [{}]),
        ("newest, no filter", "newest", [{}]),
        ("trending, category=technology", "trending", [{"category": "technology"}]),
        ("trending, q=frequent word (5-25 %)", "trending", [{"q": w} for w in words["frequent"]]),
        ("trending, q=rare word (0.1-0.5 %)", "trending", [{"q": w} for w in words["rare"]]),
    ]


def time_listing(
    book: StoryBook, params: list[dict[str, Any]], sort: str, runs: int
) -> tuple[list[float], float]:
    requests = [FeedRequest.parse(limit=20, **p) for p in params]
    book.list(requests[0], sort)  # warm the code path
    out, listed = [], 0
    began = time.perf_counter()
    for i in range(runs):
        request = requests[i % len(requests)]
        start = time.perf_counter()
        page = book.list(request, sort)
        out.append((time.perf_counter() - start) * 1000)
        listed += len(page.stories)
        if len(out) >= 20 and time.perf_counter() - began > 60:
            break
    return out, listed / len(out)


def run_engine(kind: str, args: argparse.Namespace, work: Path) -> Figures:
    began = time.monotonic()
    archive = Archive(args.articles, late=args.late)
    backend = bench_archive.open_backend(kind, work)
    store = backend.store
    try:
        print(f"\n{backend.name}: {args.articles:,} articles, saved as the service saves them")
        plan = archive.plan(args.overlap)
        build_pages, rest = split(plan.pages, args.articles - args.ab)
        unclustered: list[Page] = []
        if args.cluster_last is not None:
            unclustered, build_pages = split(
                build_pages, args.articles - args.ab - args.cluster_last
            )
            print(
                f"  NOT AS THE SERVICE: the first {len(unclustered):,} pages saved with a no-op"
                f" _place_all (no stories); clustering from there on (the last"
                f" {args.cluster_last + args.ab:,} articles): a lower bound on the cost",
                flush=True,
            )
        print(
            f"  plan: {plan.saves:,} saves in {len(plan.pages):,} pages; built with"
            f" {len(build_pages):,} pages, then {len(rest):,} pages for the rest"
            f" (the last {args.ab:,} articles); Guardian bodies: {plan.bodies:,}",
            flush=True,
        )
        placing = Placing(store._place_all)
        store._place_all = placing  # the instance's: what save_articles calls
        upkeep, stop = service_upkeep(store)
        print(f"  the service's upkeep: {upkeep}", flush=True)
        try:
            # 1. the archive, built by bench/archive.py's ingest
            if unclustered:
                placing.on, placing.keep = False, False
                pre = ingest(store, archive, dataclasses.replace(plan, pages=unclustered))
                print(
                    f"  without stories: {pre.articles:,} articles in {pre.in_save_s:.0f} s"
                    f" inside save, {pre.rate:,.0f} articles/s",
                    flush=True,
                )
                placing.on, placing.keep = True, True
            built = ingest(store, archive, dataclasses.replace(plan, pages=build_pages))
            build_calls = list(placing.calls["build"])
            place_s = sum(s for s, _ in build_calls)
            costs = per_article_ms(build_calls)
            print(
                f"  built: {built.articles:,} articles ({built.saves:,} saves) in"
                f" {built.in_save_s:.0f} s inside save, {built.rate:,.0f} articles/s;"
                f" placing {place_s:.0f} s ({place_s / built.in_save_s:.0%} of it);"
                f" per article p50 {statistics.median(costs):.2f} ms,"
                f" p99 {p99(costs):.2f} ms over {len(costs):,} calls",
                flush=True,
            )
            seen = bytearray(archive.size)
            for page in build_pages:
                for n in page.articles:
                    seen[n] = 1
            writer = ArchiveWriter(store, BODY_HOURS)

            # profiled placements: statements timed, under cProfile (left out elsewhere)
            profile_pages, profiled = [], 0
            while rest and profiled < args.profile:
                page = rest.pop(0)
                profile_pages.append(page)
                profiled += sum(1 for n in page.articles if not seen[n])
            profile_text = ""
            if profile_pages:
                placing.profile = cProfile.Profile()
                save_pages(writer, archive, profile_pages, seen)
                stream = io.StringIO()
                stats = pstats.Stats(placing.profile, stream=stream)
                stats.sort_stats("tottime").print_stats(12)
                profile_text = stream.getvalue()
                placing.profile = None
            profiled = sum(n for _, n in placing.calls["profiled"])

            # 2. with and without clustering, alternating
            placing.phase, placing.next_note = "ab", 500
            ab = {"clustering": Side(), "no-op": Side()}
            toggles = {"harvest": True, "refresh": True}
            t0 = time.perf_counter()
            for page in rest:
                on = toggles[page.kind]
                toggles[page.kind] = not on
                placing.on = on
                ((_, spent, new),) = save_pages(writer, archive, [page], seen)
                side = ab["clustering" if on else "no-op"]
                side.pages += 1
                side.saves += len(page.articles)
                side.new += new
                side.seconds += spent
            placing.on = True
            ab_s = time.perf_counter() - t0
            on, off = ab["clustering"], ab["no-op"]
            print(
                f"  alternating ({ab_s:.0f} s): with clustering {on.new:,} articles"
                f" ({on.saves:,} saves, {on.pages:,} pages) in {on.seconds:.1f} s ="
                f" {on.rate:,.0f}/s; no-op {off.new:,} ({off.saves:,}, {off.pages:,}) in"
                f" {off.seconds:.1f} s = {off.rate:,.0f}/s; drop {1 - on.rate / off.rate:.1%}",
                flush=True,
            )
            # the no-op side's articles placed now, so the stories are whole
            catch_up = (len(placing.skipped), 0.0)
            if placing.skipped:
                placing.phase = "catch-up"
                start = time.perf_counter()
                with store.db.transaction() as db:
                    store._articles_turn(db)
                    placing(db, placing.skipped)
                catch_up = (len(placing.skipped), time.perf_counter() - start)
                placing.skipped = []

            if args.idle:
                print(f"  idle {args.idle:.0f} s, the upkeep running", flush=True)
                time.sleep(args.idle)
            state = story_state(backend)
            print(f"  stories: {state}", flush=True)

            # 3. GET /stories
            words = pools(archive)
            book = StoryBook(store, CursorCodec(b"x" * 32))
            listing = {}
            for name, sort, params in listing_kinds(words):
                ms, per_page = time_listing(book, params, sort, args.runs)
                listing[name] = (ms, per_page)
                print(
                    f"  GET /stories {name:38} p50 {statistics.median(ms):7.2f} ms"
                    f"  p99 {p99(ms):7.2f} ms ({len(ms)} runs, {per_page:.1f} stories a page)",
                    flush=True,
                )

            # 4. bench/archive.py's searches
            searches, kinds = None, []
            if args.search:
                kinds = query_kinds(archive, words)
                searches = measure(backend, archive, kinds, args.repeat, False)
        finally:
            stop()
        return Figures(
            backend.name,
            args.articles,
            built,
            place_s,
            build_calls,
            ab,
            list(placing.calls["ab"]),
            dict(placing.statements),
            profiled,
            profile_text,
            catch_up,
            listing,
            state,
            searches,
            kinds,
            (time.monotonic() - began) / 60,
        )
    finally:
        backend.close()


# -- the report ---------------------------------------------------------------------------


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        cpu = ""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu or platform.machine()}), {mem:.0f} GiB, shared;"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {p99(values):.2f}"


def report(all_figures: list[Figures], args: argparse.Namespace) -> None:
    print(f"\nMachine: {machine()}")
    print("\n| engine | figure | p50 / p99 (or value) | goal | sample |\n|---|---|---|---|---|")
    for f in all_figures:
        e, size = f.engine, f"{f.size:,} articles"
        b = per_article_ms(f.build_calls)
        tenth = f.build_calls[-max(1, len(f.build_calls) // 10) :]
        t = per_article_ms(tenth)
        a = per_article_ms(f.ab_calls)
        ok = "ok" if p99(a or b) <= CLUSTER_P99_MS else "MISS"
        print(
            f"| {e} | clustering per article, whole build | {ms(b)} ms | p99 <= 5 ms |"
            f" {len(b):,} saves placing {sum(n for _, n in f.build_calls):,} articles,"
            + (
                f" the last {args.cluster_last + args.ab:,} only (before: no stories, NOT as"
                " the service) |"
                if args.cluster_last is not None
                else f" 0 -> {f.build.articles:,} archived |"
            )
        )
        print(
            f"| {e} | clustering per article, last tenth of the build | {ms(t)} ms |"
            f" p99 <= 5 ms | {len(t):,} saves, {sum(n for _, n in tenth):,} articles |"
        )
        if a:
            print(
                f"| {e} | clustering per article, at full size | {ms(a)} ms | p99 <= 5 ms"
                f" **{ok}** | {len(a):,} saves, {sum(n for _, n in f.ab_calls):,} articles,"
                f" {f.size - args.ab:,} -> {f.size:,} archived |"
            )
        share = f.build_place_s / f.build.in_save_s
        print(
            f"| {e} | share of save time spent placing (build) | {share:.1%} | - |"
            f" {f.build_place_s:.0f} s of {f.build.in_save_s:.0f} s inside"
            f" ArchiveWriter.save, {size} |"
        )
        on, off = f.ab["clustering"], f.ab["no-op"]
        if on.seconds and off.seconds:
            drop = 1 - on.rate / off.rate
            print(
                f"| {e} | ingest with / without clustering | {on.rate:,.0f} / {off.rate:,.0f}"
                f" articles/s, drop **{drop:.1%}** | drop <= 30 %"
                f" {'ok' if drop <= DROP_MAX else 'MISS'} | alternating pages at"
                f" {f.size - args.ab:,} -> {f.size:,}: {on.new:,} articles ({on.saves:,}"
                f" saves, {on.pages:,} pages) vs {off.new:,} ({off.saves:,}, {off.pages:,}) |"
            )
        for name, (values, per_page) in f.listing.items():
            high = p99(values)
            print(
                f"| {e} | GET /stories {name} | {ms(values)} ms | p99 <= 50 ms"
                f" {'ok' if high <= STORIES_P99_MS else 'MISS'} | {len(values)} runs,"
                f" {per_page:.0f} stories a page, {size} |"
            )
        if f.searches is None:
            print(f"| {e} | bench/archive.py search targets | not run | - | - |")
        else:
            misses = [
                k.name
                for k in f.search_kinds
                if k.name in f.searches and p99(f.searches[k.name].runs) > k.target_ms
            ]
            print(
                f"| {e} | bench/archive.py search targets | {len(f.searches) - len(misses)}"
                f" of {len(f.searches)} kinds held | all | {args.repeat} runs a kind (page 2:"
                f" half), {size}; missed: {', '.join(misses) or 'none'} |"
            )
    for f in all_figures:
        print(
            f"\n{f.engine}: {f.minutes:.0f} min in all; build {f.build.in_save_s:.0f} s inside"
            f" save ({f.build.wall_s:.0f} s with generating); the no-op side's"
            f" {f.catch_up[0]:,} articles placed afterwards in {f.catch_up[1]:.1f} s;"
            f" stories: {f.story_state}"
        )
        if f.statements:
            total = sum(sum(v) for v in f.statements.values())
            print(
                f"  the placing's statements over {f.profiled:,} profiled placements"
                f" (their time, total {total * 1000:.0f} ms ="
                f" {total * 1000 / max(f.profiled, 1):.2f} ms an article; under cProfile):"
            )
            for key, values in sorted(f.statements.items(), key=lambda kv: -sum(kv[1])):
                print(
                    f"    {sum(values) / total:6.1%} {sum(values) * 1000:8.1f} ms"
                    f" {len(values):6,}x  {statistics.mean(values) * 1000:6.3f} ms each  {key}"
                )
        if f.profile_text:
            lines = [ln for ln in f.profile_text.splitlines() if ln.strip()]
            print("  cProfile, by own time:\n    " + "\n    ".join(lines[:22]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--ab", type=int, default=20_000, help="articles saved alternating")
    parser.add_argument("--runs", type=int, default=200, help="GET /stories runs a kind")
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--profile", type=int, default=300, help="placements profiled")
    parser.add_argument(
        "--cluster-last",
        type=int,
        default=None,
        help="NOT as the service: a no-op _place_all until the last N (+ --ab) articles",
    )
    parser.add_argument("--search", action="store_true", help="bench/archive.py's searches")
    parser.add_argument("--repeat", type=int, default=200, help="search runs a kind")
    parser.add_argument("--overlap", type=float, default=OVERLAP_SECONDS)
    parser.add_argument("--late", type=float, default=LATE_SHARE)
    args = parser.parse_args(argv)
    print(" ".join(["bench/stories_cost.py", *(argv if argv is not None else sys.argv[1:])]))
    print(f"Machine: {machine()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="newsagg-stories-bench-"))
    done: list[Figures] = []
    try:
        for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
            done.append(run_engine(kind, args, work))
            report(done[-1:], args)  # each engine's as soon as it is measured
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(done) > 1:
        report(done, args)


if __name__ == "__main__":
    main()
