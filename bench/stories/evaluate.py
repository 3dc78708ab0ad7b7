"""Score story clustering against the gold stories in bench/stories/eval.jsonl: pairwise
and B-cubed precision/recall/F1 against the gold ``story`` (pairs within a day, see
``score``), and pairwise against the coarser ``storyline`` label (see README.md).

Run alone it prints the two reference rows (every article alone; the same normalized
headline together); `sweep.py` scores the service's own rules with these functions.

Usage: python bench/stories/evaluate.py [--data eval.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from newsagg.store.archive import ArticleRecord
from newsagg.stories.words import title_key

Article = dict[str, Any]
CATEGORIES = {"b": "business", "e": "entertainment", "t": "technology", "m": "health"}


def record(row: Article) -> ArticleRecord:
    """A row of the set as the archive saves an article: a NewsAPI relay of its outlet."""
    data = {
        "title": row["title"],
        "description": row["description"],
        "url": row["url"],
        "source": "newsapi",
        "publisher": row["publisher"],
        "author": None,
        "image_url": None,
        "category": CATEGORIES[row["category"]],
        "published_at": row["published_at"].replace("Z", "+00:00"),
    }
    return ArticleRecord(row["url"], 1, data)


def pairs(labels: Sequence[Hashable]) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(labels).values())


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def pairwise(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> tuple[float, float, float]:
    """Over all article pairs: precision of the pairs put together, recall of the gold pairs."""
    tp, pp, gp = pairs(list(zip(gold, pred, strict=True))), pairs(pred), pairs(gold)
    p = tp / pp if pp else 1.0
    r = tp / gp if gp else 1.0
    return p, r, f1(p, r)


def bcubed(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> tuple[float, float, float]:
    """Per article: the share of its predicted story that is gold-right, and of its gold story
    that it was given; averaged over the articles."""
    both = Counter(zip(gold, pred, strict=True))
    gs, ps = Counter(gold), Counter(pred)
    p = sum(both[g, q] / ps[q] for g, q in zip(gold, pred, strict=True)) / len(gold)
    r = sum(both[g, q] / gs[g] for g, q in zip(gold, pred, strict=True)) / len(gold)
    return p, r, f1(p, r)


def load(path: Path) -> list[Article]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score(articles: Sequence[Article], pred: Sequence[Hashable]) -> dict[str, float]:
    """The UCI ``story`` ids are per crawl day (README.md), so the main scores judge only pairs
    of articles from the same day: pairwise and B-cubed on (day, label). All pairs, across
    days too, are judged against the coarser ``storyline`` label (a lower bound)."""
    day = [a["published_at"][:10] for a in articles]
    gold = list(zip(day, (a["story"] for a in articles), strict=True))
    dpred = list(zip(day, pred, strict=True))
    p, r, f = pairwise(gold, dpred)
    bp, br, bf = bcubed(gold, dpred)
    lp, lr, lf = pairwise([a["storyline"] for a in articles], pred)
    return {
        "p": p, "r": r, "f1": f, "b3_p": bp, "b3_r": br, "b3_f1": bf,
        "line_p": lp, "line_r": lr, "line_f1": lf,
        "cross_day_pairs": pairs(pred) - pairs(dpred), "stories": len(set(pred)),
    }  # fmt: skip


HEADER = (
    f"{'clusterer':<22} |  pred | {'same-day pairs':<17} | {'same-day B-cubed':<17} | "
    f"{'all vs storyline':<17} | x-day\n{'':<22} |       | "
    + " | ".join(["  P     R     F1  "[:17]] * 3)
    + " | pairs"
)


def row(name: str, articles: Sequence[Article], pred: Sequence[Hashable]) -> str:
    s = score(articles, pred)
    return (
        f"{name:<22} | {s['stories']:5.0f} | {s['p']:.3f} {s['r']:.3f} {s['f1']:.3f} | "
        f"{s['b3_p']:.3f} {s['b3_r']:.3f} {s['b3_f1']:.3f} | "
        f"{s['line_p']:.3f} {s['line_r']:.3f} {s['line_f1']:.3f} | "
        f"{s['cross_day_pairs']:5.0f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).with_name("eval.jsonl"))
    articles = load(ap.parse_args().data)
    print(
        f"{len(articles)} articles, {len({a['story'] for a in articles})} stories, "
        f"{len({a['storyline'] for a in articles})} storylines"
    )
    print(HEADER)
    print(row("singletons", articles, list(range(len(articles)))))
    print(row("same normalized title", articles, [title_key(a["title"]) for a in articles]))


if __name__ == "__main__":
    main()
