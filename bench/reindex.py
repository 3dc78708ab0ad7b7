"""`store.reindex()` at scale: how long `newsagg reindex` (and migration 11, which calls
the same) takes to make the whole full-text index anew, on SQLite and on PostgreSQL.

The archive is bench/archive.py's (the same generator, plan and saves through the
service's ArchiveWriter, body texts as deployed: NewsAPI's content on every NewsAPI
article, the Guardian's bodyText on those of the timeline's last 24 h, or on every one
with `--guardian-bodies all`), built without the service's upkeep and without idling:
the reindex reads every article's title, description, body and upstream answers, so how
the index was left before does not matter to it, only what the articles hold. SQLite can
instead reindex a file bench/archive.py kept (`--sqlite-file`, from its `--keep`); a
PostgreSQL server is never kept, so it is built anew (a throwaway server, as
bench/archive.py starts one: tests/pg_server.py).

Timed: `store.reindex()` alone, as the CLI calls it (one transaction; SQLite: FTS5's
'delete-all' then every article indexed again, 2,000 read at a time; PostgreSQL: every
row's `search` vector written again). Printed: seconds, and seconds per million articles.

    .venv/bin/python bench/reindex.py [--articles 100000] [--backends sqlite,postgres]
        [--guardian-bodies day] [--sqlite-file PATH]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive  # bench/archive.py: the corpus and the backends


def reindexed(backend: archive.Backend, articles: int) -> float:
    """Seconds `store.reindex()` took; checks it indexed every article."""
    began = time.perf_counter()
    done = backend.store.reindex()
    seconds = time.perf_counter() - began
    if done != articles:
        raise RuntimeError(f"reindex indexed {done:,} articles, the archive holds {articles:,}")
    return seconds


def built(kind: str, work: Path, size: int, guardian_bodies: str) -> tuple[archive.Backend, int]:
    """A new archive of `size` articles on engine `kind`, saved as bench/archive.py saves
    it; the backend and how many articles it holds."""
    corpus = archive.Archive(size, guardian_bodies=guardian_bodies)
    plan = corpus.plan(archive.OVERLAP_SECONDS)
    backend = archive.open_backend(kind, work)
    try:
        figures = archive.ingest(backend.store, corpus, plan)
    except BaseException:
        backend.close()
        raise
    print(
        f"  built: {figures.articles:,} articles ({figures.rate:,.0f} articles/s saved);"
        f" bodies: {archive.bodies_text(figures.bodies)}",
        flush=True,
    )
    return backend, figures.articles


def kept(path: Path) -> tuple[archive.Backend, int]:
    """A SQLite archive bench/archive.py kept, opened as it opens its own."""
    backend = archive.Sqlite(path.parent)
    if backend.path != path:
        backend.close()
        raise SystemExit(f"{path}: bench/archive.py keeps its archive as archive.sqlite3")
    articles = backend.store.db.connection().execute("SELECT count(*) FROM articles").fetchone()
    return backend, articles[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--guardian-bodies", choices=archive.BODY_MODES, default="day")
    parser.add_argument(
        "--sqlite-file",
        type=Path,
        help="reindex this archive.sqlite3 (kept by bench/archive.py --keep) instead of"
        " building one",
    )
    args = parser.parse_args(argv)
    results: list[tuple[str, int, float]] = []
    work = Path(tempfile.mkdtemp(prefix="newsagg-reindex-bench-"))
    try:
        for kind in [name.strip() for name in args.backends.split(",") if name.strip()]:
            reuse = kind == "sqlite" and args.sqlite_file is not None
            print(
                f"\n{kind}: " + (f"{args.sqlite_file}" if reuse else f"{args.articles:,} articles"),
                flush=True,
            )
            backend, articles = (
                kept(args.sqlite_file)
                if reuse
                else built(kind, work, args.articles, args.guardian_bodies)
            )
            try:
                print(f"  {backend.size_mib():,.0f} MiB; {backend.index_size()}", flush=True)
                seconds = reindexed(backend, articles)
                print(
                    f"  store.reindex(): {seconds:,.1f} s, {seconds * 1e6 / articles:,.0f} s"
                    " per million articles",
                    flush=True,
                )
                print(f"  after: {backend.size_mib():,.0f} MiB; {backend.index_size()}")
                results.append((backend.name, articles, seconds))
            finally:
                backend.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nstore.reindex() (Guardian bodies: {args.guardian_bodies})")
    for name, articles, seconds in results:
        print(
            f"  {name:10} {articles:>9,} articles  {seconds:8.1f} s"
            f"  {seconds * 1e6 / articles:8,.0f} s per million"
        )


if __name__ == "__main__":
    main()
