"""Cache hits while others search the archive: does one client's heavy search slow down
everyone else's cache hits?

An archive of `--articles` (200,000) made the way bench/archive.py makes it (every article
through the service's ArchiveWriter, in the order harvests and on-demand refreshes bring
them, the service's upkeep running), then `newsagg serve --demo` on it: one worker, pinned
to CPU 0 (taskset), no harvester, budgets open, results fresh for an hour. Every client runs
on CPU 1 (PostgreSQL too, on that backend), so CPU 0 is the server's alone.

1. Warm-up: the hit path once (then it is a cache hit), and every search query once (their
   upstream refresh is then cached too: later searches only search the archive). Then the
   server is left idle `--idle` seconds, its own upkeep running.
2. `--rounds` rounds, alternating: cache hits alone, then the same hits while `--searchers`
   (2) clients each run heavy archive searches back to back (a 30 % word or a frequent
   one, newest first or by relevance, with and without a category: `--distinct` different
   queries, each asked for a page of 20-30 articles, so that the server's one-second
   memory of a page seldom answers them).
   Hits: `GET /articles?category=technology&limit=20`, `--rate` (200) a second, open loop
   (each request is due at its time, whatever the previous ones did) over keep-alive
   connections; a hit's latency counts from when the client could send it, waiting for a
   free connection included, so a server that stalls is charged for the requests it kept
   waiting (the client's own lateness is reported apart).

Reported, per backend: hit p50/p99 alone and with the searches, the p99's growth against
the goal (under 5 ms), how many searches ran and their p50/p99, and the client's own
lateness (a check that the client was not the bottleneck).

    .venv/bin/python bench/hits_under_search.py [--articles 200000] [--backends sqlite]
        [--rounds 3] [--duration 20] [--rate 200] [--searchers 2] [--idle 30]
or through the runner: `make bench BENCH_ARGS=--hits-only`.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import archive  # noqa: E402
from run import PATH, Server, create_key, http_get  # noqa: E402

from providers.base import PROVIDER_NAMES  # noqa: E402

GOAL_MS = 5.0  # hits' p99 may grow by less than this while others search
CONNECTIONS = 16  # the hit client's keep-alive connections


def client_cpu() -> None:
    """Clients on CPU 1, where there is one: CPU 0 is the server's."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})


# -- the clients ------------------------------------------------------------------------


@dataclass
class Hits:
    # ms, from when the client could send it: waiting for a free connection counts
    latencies: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)  # ms the client itself was late
    not_hits: int = 0


async def _hits(host: str, port: int, key: str, rate: float, seconds: float) -> Hits:
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        free.put_nowait(await asyncio.open_connection(host, port))
    out = Hits()
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        began = loop.time()  # the client's own lateness is not the server's
        out.late.append((began - due) * 1000)
        reader, writer = await free.get()  # waiting for a free connection is
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        out.latencies.append((loop.time() - began) * 1000)
        free.put_nowait((reader, writer))
        if b" 200 " not in head.split(b"\r\n", 1)[0] or b'"cache_status":"hit"' not in body:
            out.not_hits += 1

    start = loop.time() + 0.05
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not free.empty():
        _reader, writer = free.get_nowait()
        writer.close()
    return out


def hits(url: str, key: str, rate: float, seconds: float) -> Hits:
    parsed = urllib.parse.urlsplit(url)
    return asyncio.run(_hits(parsed.hostname or "", parsed.port or 80, key, rate, seconds))


def searcher(url: str, key: str, paths: list[str], stop_at: float, results: object) -> None:
    """One client: the searches in `paths`, back to back, until `stop_at` (wall clock);
    puts its latencies (ms) on the `results` queue."""
    client_cpu()
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    out: list[float] = []
    failures = 0
    rng = random.Random(os.getpid())
    for path in itertools.cycle(paths):
        if time.time() >= stop_at:
            break
        # A page size of its own: the server remembers a page for a second, and the same
        # search with another limit is searched anew (its upstream part stays cached).
        limit = rng.randrange(20, 31)
        start = time.perf_counter()
        connection.request("GET", f"{path}&limit={limit}", headers=headers)
        response = connection.getresponse()
        response.read()
        out.append((time.perf_counter() - start) * 1000)
        failures += response.status != 200
    connection.close()
    results.put((out, failures))  # type: ignore[attr-defined]


def search_paths(words: dict[str, list[str]], distinct: int, seed: int) -> list[str]:
    """Heavy searches: a 30 % word or a frequent one, newest first or by relevance, with
    or without a category; `distinct` of them, shuffled."""
    every = []
    for word in words["30 %"] + words["frequent"]:
        for sort in ("relevance", "published"):
            for category in (None, *archive.CATEGORIES):
                query = {"q": word, "sort": sort}
                if category:
                    query["category"] = category
                every.append("/articles?" + urllib.parse.urlencode(query))
    rng = random.Random(seed)
    rng.shuffle(every)
    return every[:distinct]


# -- one backend ------------------------------------------------------------------------


@dataclass
class Round:
    alone: Hits
    under: Hits
    searches: list[float]
    search_failures: int


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def measure_backend(kind: str, args: argparse.Namespace, work: Path) -> list[Round]:
    arch = archive.Archive(args.articles)
    backend = archive.open_backend(kind, work)
    server = None
    try:
        print(f"\n{backend.name}: {args.articles:,} articles, saved as the service saves them")
        _ingest, stop, _upkeep = archive.build(backend, arch, archive.OVERLAP_SECONDS, 0)
        stop()  # the server runs its own
        backend.release()
        if isinstance(backend, archive.Postgres):  # the clients' CPU: CPU 0 is the server's
            subprocess.run(
                ["taskset", "-a", "-p", "-c", "1", str(backend.server.pid)], capture_output=True
            )
        env = {
            **os.environ,
            "NEWSAGG_DATABASE": str(work / "newsagg.sqlite3"),  # PostgreSQL's URL wins
            **backend.env(),
            "NEWSAGG_CACHE_TTL": "3600",
            "NEWSAGG_HARVEST": "off",  # the archive is what it is: no harvester adding to it
            **{f"NEWSAGG_{name.upper()}_QUOTA": "1000000/second" for name in PROVIDER_NAMES},
        }
        key = create_key(env)
        serve = [sys.executable, "-m", "edge.cli", "serve", "--demo", "--port", "{port}"]
        server = Server(serve, env, work / f"{kind}.log")
        paths = search_paths(archive.pools(arch), args.distinct, arch.seed)
        warm(server.url, key, paths)
        if args.idle:
            print(f"  idle {args.idle:.0f} s (the server runs what `serve` starts)", flush=True)
            time.sleep(args.idle)
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        client_cpu()
        rounds = []
        for number in range(1, args.rounds + 1):
            alone = hits(server.url, key, args.rate, args.duration)
            under, searches, failures = with_searches(server.url, key, paths, args)
            rounds.append(Round(alone, under, searches, failures))
            print(
                f"  round {number}: hits alone p50 {statistics.median(alone.latencies):.1f}"
                f" p99 {p99(alone.latencies):.1f} ms; with {args.searchers} searching"
                f" p50 {statistics.median(under.latencies):.1f} p99 {p99(under.latencies):.1f}"
                f" ms ({len(searches)} searches, p50 {statistics.median(searches):.1f}"
                f" p99 {p99(searches):.1f} ms)",
                flush=True,
            )
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
        return rounds
    finally:
        if server is not None:
            server.stop()
        backend.close()


def warm(url: str, key: str, paths: list[str]) -> None:
    """The hit path and every search once: their upstream refreshes are then cached."""
    for _ in range(2):
        status, body = http_get(url + PATH, key)
        assert status == 200, body[:300]
    assert json.loads(body)["cache_status"] == "hit", body[:300]
    began = time.perf_counter()
    for path in paths:
        status, body = http_get(f"{url}{path}&limit=20", key)
        assert status == 200, body[:300]
    status, body = http_get(f"{url}{paths[0]}&limit=99", key)  # another page size: a hit
    assert json.loads(body)["cache_status"] == "hit", body[:300]
    print(
        f"  warm: the hit path, and {len(paths)} searches refreshed once"
        f" ({time.perf_counter() - began:.0f} s)",
        flush=True,
    )


def with_searches(
    url: str, key: str, paths: list[str], args: argparse.Namespace
) -> tuple[Hits, list[float], int]:
    """Hits measured while `args.searchers` processes search back to back (from a second
    before the hits to their end)."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    stop_at = time.time() + 1.0 + args.duration + 0.5
    share = len(paths) // max(1, args.searchers)
    processes = [
        context.Process(
            target=searcher,
            args=(url, key, paths[i * share :] + paths[: i * share], stop_at, results),
        )
        for i in range(args.searchers)
    ]
    for process in processes:
        process.start()
    time.sleep(1.0)
    under = hits(url, key, args.rate, args.duration)
    searches: list[float] = []
    failures = 0
    for _ in processes:
        latencies, failed = results.get(timeout=120)
        searches += latencies
        failures += failed
    for process in processes:
        process.join(timeout=30)
    return under, searches, failures


# -- the run ----------------------------------------------------------------------------


def report(results: dict[str, list[Round]], args: argparse.Namespace) -> None:
    print(
        f"\nHits under search: {args.articles:,} articles; `newsagg serve --demo`, one worker"
        f" on CPU 0; hits at {args.rate:g}/s over {CONNECTIONS} connections,"
        f" {args.rounds} rounds of {args.duration:g} s each way; {args.searchers} clients"
        f" searching, {args.distinct} distinct heavy searches (ms)"
    )
    print(
        f"  {'':12}{'hits alone p50 / p99':>24}{'with searches p50 / p99':>26}"
        f"{'p99 growth':>12}{'searches: n, p50 / p99':>28}{'client late p99':>17}"
    )
    for name, rounds in results.items():
        alone = [x for r in rounds for x in r.alone.latencies]
        under = [x for r in rounds for x in r.under.latencies]
        searches = [x for r in rounds for x in r.searches]
        late = [x for r in rounds for x in r.alone.late + r.under.late]
        growth = p99(under) - p99(alone)
        verdict = "ok" if growth < GOAL_MS else "MISS"
        print(
            f"  {name:12}{statistics.median(alone):>13.1f} / {p99(alone):<8.1f}"
            f"{statistics.median(under):>15.1f} / {p99(under):<8.1f}"
            f"{growth:>+8.1f} {verdict:4}"
            f"{len(searches):>12,}, {statistics.median(searches):.1f} / {p99(searches):<8.1f}"
            f"{p99(late):>12.1f}"
        )
        growths = [p99(r.under.latencies) - p99(r.alone.latencies) for r in rounds]
        not_hits = sum(r.alone.not_hits + r.under.not_hits for r in rounds)
        failures = sum(r.search_failures for r in rounds)
        print(
            f"  {'':12}{len(alone):,} hits alone, {len(under):,} with; p99 growth by round:"
            f" {', '.join(f'{g:+.1f}' for g in growths)} ms; responses not a 200 hit:"
            f" {not_hits}; searches not a 200: {failures}"
        )
    print(f"  goal: hits' p99 grows by less than {GOAL_MS:.0f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds a measurement")
    parser.add_argument("--rate", type=float, default=200.0, help="hits a second")
    parser.add_argument("--searchers", type=int, default=2)
    parser.add_argument("--distinct", type=int, default=200, help="distinct searches")
    parser.add_argument(
        "--idle", type=float, default=30.0, help="seconds the server idles before measuring"
    )
    args = parser.parse_args(argv)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset not found (Debian: apt-get install -y util-linux)")
    results: dict[str, list[Round]] = {}
    work = Path(tempfile.mkdtemp(prefix="newsagg-hits-bench-"))
    try:
        for kind in (name.strip() for name in args.backends.split(",") if name.strip()):
            name = "SQLite" if kind == "sqlite" else "PostgreSQL"
            results[name] = measure_backend(kind, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    main()
