"""What SQLite's full-text index layout costs to write, and what its prefix index buys:
the archive's articles (bench/archive.py's generator, bodies as deployed) indexed into
FTS5 tables of each layout, 500 entries a statement and a transaction, on a file in WAL
mode; then prefix queries against the words as written (count capped as the store caps it).

    .venv/bin/python bench/fts5_layout.py [--articles 40000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import archive as generator  # noqa: E402  (bench/archive.py)

from newsagg.query.analysis import Analyzer  # noqa: E402
from newsagg.query.tokens import tokens  # noqa: E402
from newsagg.store.archive import COUNT_CAP  # noqa: E402
from newsagg.store.fulltext import FTS5_COLUMNS, fts5_row  # noqa: E402

PREFIXES = ("bat", "batt", "elec", "clim", "comp", "new", "fold", "judg", "rege")
ROWS = 500


def indexed(db: sqlite3.Connection, rows: list[tuple[str, ...]], options: str) -> float:
    """Entries a second, writing `rows` into a new FTS5 table with these options."""
    columns = ", ".join(f"c{n}" for n in range(len(rows[0])))
    db.execute(
        f"CREATE VIRTUAL TABLE f USING fts5({columns}, content='',"
        f" tokenize='unicode61 remove_diacritics 0'{options})"
    )
    marks = "(" + ", ".join(["?"] * (len(rows[0]) + 1)) + ")"
    started = time.perf_counter()
    for start in range(0, len(rows), ROWS):
        part = rows[start : start + ROWS]
        db.execute("BEGIN")
        db.execute(
            f"INSERT INTO f(rowid, {columns}) VALUES {', '.join([marks] * len(part))}",
            [value for n, row in enumerate(part) for value in (start + n + 1, *row)],
        )
        db.execute("COMMIT")
    return len(rows) / (time.perf_counter() - started)


def prefix_ms(db: sqlite3.Connection, prefix: str) -> float:
    """Median of 15: how many match (up to COUNT_CAP), then the newest 5,000's matches."""
    match, newest = f'{{c3 c4}} : "{prefix}"*', db.execute("SELECT max(rowid) FROM f").fetchone()[0]
    times = []
    for _ in range(15):
        started = time.perf_counter()
        db.execute(
            "SELECT count(*) FROM (SELECT rowid FROM f WHERE f MATCH ? LIMIT ?)", (match, COUNT_CAP)
        ).fetchone()
        db.execute(
            "SELECT rowid FROM f WHERE f MATCH ? AND rowid > ?", (match, newest - 5000)
        ).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=40_000)
    size = parser.parse_args().articles
    source = generator.Archive(size)
    source.plan(600)  # decides which articles carry a body
    analyzer = Analyzer()
    articles = [source.article(n) for n in range(size)]
    now = [fts5_row(analyzer.document(a.title, a.description, a.body), []) for a in articles]
    before = [(" ".join(tokens(a.title)), " ".join(tokens(a.description or ""))) for a in articles]
    layouts = [
        ("before: title, description as written; prefix 3 4 5", before, ", prefix='3 4 5'"),
        (f"now: {', '.join(FTS5_COLUMNS)}; prefix 3 4 5", now, ", prefix='3 4 5'"),
        ("now, without a prefix index", now, ""),
    ]
    print(f"{size:,} articles")
    for name, rows, options in layouts:
        with tempfile.TemporaryDirectory() as work:
            db = sqlite3.connect(Path(work) / "f.sqlite3", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            rate = indexed(db, rows, options)
            line = f"  {name}: {rate:,.0f} entries/s"
            if rows is now:
                db.execute("INSERT INTO f(f) VALUES ('optimize')")
                line += "; prefix queries, median ms: " + ", ".join(
                    f"{p}* {prefix_ms(db, p):.1f}" for p in PREFIXES
                )
            db.close()
            print(line, flush=True)


if __name__ == "__main__":
    main()
