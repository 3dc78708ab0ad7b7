"""Cut bench/stories/eval.jsonl from the UCI News Aggregator file newsCorpora.csv.

Usage: python bench/stories/build_eval.py /path/to/newsCorpora.csv [out.jsonl]

newsCorpora.csv is tab separated, without a header: ID, TITLE, URL, PUBLISHER, CATEGORY,
STORY, HOSTNAME, TIMESTAMP (ms). The cut is deterministic (fixed seed); README.md says why
each step is there.
"""

from __future__ import annotations

import html
import itertools
import json
import random
import re
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

FIRST_DAY = date(2014, 4, 11)  # the crawl has a gap on 2014-04-10; 04-11..04-25 is unbroken
LAST_DAY = date(2014, 4, 17)  # seven whole crawl days
SEED = 20140411
# Sizes to keep per gold story, drawn per story: many singletons and small stories, a tail.
SIZE_BUCKETS: list[tuple[float, tuple[int, int]]] = [
    (0.25, (1, 1)),
    (0.15, (2, 2)),
    (0.25, (3, 5)),
    (0.20, (6, 10)),
    (0.10, (11, 20)),
    (0.05, (21, 40)),
]


def unescape(text: str) -> str:
    """The file escapes some characters with a backslash and keeps HTML entities."""
    for ch in "()?&":
        text = text.replace("\\" + ch, ch)
    return html.unescape(text).strip()


def norm(title: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", unescape(title).lower()))


def storylines(stories: dict[str, list[list[str]]]) -> dict[str, str]:
    """Join UCI stories that are one storyline re-crawled: a shared URL, or at least two shared
    headlines (5+ words) that occur in at most three stories (wider ones are round-ups)."""
    by_key: dict[str, set[str]] = defaultdict(set)
    for story, rows in stories.items():
        for r in rows:
            by_key["u " + unescape(r[2])].add(story)
            if len(norm(r[1]).split()) >= 5:
                by_key["t " + norm(r[1])].add(story)
    votes: Counter[tuple[str, str]] = Counter()
    for key, members in by_key.items():
        if 2 <= len(members) <= 3:
            weight = 2 if key.startswith("u ") else 1
            for pair in itertools.combinations(sorted(members), 2):
                votes[pair] += weight
    parent = {s: s for s in stories}

    def root(s: str) -> str:
        while parent[s] != s:
            s = parent[s]
        return s

    for (a, b), n in sorted(votes.items()):
        if n >= 2:
            ra, rb = sorted((root(a), root(b)))
            parent[rb] = ra
    return {s: root(s) for s in stories}


def crawl_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def draw_size(rng: random.Random) -> int:
    x = rng.random()
    for p, (lo, hi) in SIZE_BUCKETS:
        if x < p:
            return rng.randint(lo, hi)
        x -= p
    return 1


def pick(rng: random.Random, rows: list[list[str]], k: int) -> list[list[str]]:
    """k members, distinct publishers first (a story is many publishers), then the rest."""
    pool = rows[:]
    rng.shuffle(pool)
    seen: set[str] = set()
    first: list[list[str]] = []
    rest: list[list[str]] = []
    for r in pool:
        (rest if r[3] in seen else first).append(r)
        seen.add(r[3])
    return (first + rest)[:k]


def main() -> None:
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("eval.jsonl")
    stories: dict[str, list[list[str]]] = defaultdict(list)
    with src.open(encoding="utf-8") as f:
        for line in f:
            row = line.rstrip("\n").split("\t")
            if len(row) == 8:
                stories[row[5]].append(row)
    window = {
        s: rows
        for s, rows in stories.items()  # only stories wholly inside the window: complete ones
        if all(FIRST_DAY <= crawl_day(int(r[7])) <= LAST_DAY for r in rows)
    }
    line_of = storylines(window)
    title_stories: dict[str, set[str]] = defaultdict(set)
    for s, rows in window.items():
        for r in rows:
            title_stories[norm(r[1])].add(s)
    kept: list[tuple[list[str], str]] = []
    rng = random.Random(SEED)
    for story in sorted(window, key=lambda s: (min(int(r[7]) for r in window[s]), s)):
        # one row per URL; drop headlines the source files under two stories (no single gold)
        by_url = {unescape(r[2]): r for r in window[story] if len(title_stories[norm(r[1])]) == 1}
        for r in pick(rng, list(by_url.values()), draw_size(rng)):
            kept.append((r, story))
    rng.shuffle(kept)  # the crawl order and the UCI ids run story by story: hide both
    kept.sort(key=lambda rs: crawl_day(int(rs[0][7])))
    with out.open("w", encoding="utf-8") as f:
        for n, (r, story) in enumerate(kept, 1):
            record = {
                "id": n,
                "title": unescape(r[1]),
                "description": None,
                "publisher": unescape(r[3]),
                "published_at": crawl_day(int(r[7])).isoformat() + "T00:00:00Z",
                "category": r[4],
                "story": story,
                "storyline": line_of[story],
                "url": unescape(r[2]),
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{len(kept)} articles, {len({s for _, s in kept})} stories -> {out}")


if __name__ == "__main__":
    main()
