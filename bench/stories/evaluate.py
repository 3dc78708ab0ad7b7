"""Score story clustering against the gold stories in bench/stories/eval.jsonl.

A clusterer is ``cluster(articles) -> labels``: one label per article, in input order. The
script scores a baseline (the centroid rule of issue 26) over a sweep of its threshold:
pairwise and B-cubed precision/recall/F1 against the gold ``story`` (pairs within a day, see
``score``), and pairwise against the coarser ``storyline`` label (see README.md).

Usage: python bench/stories/evaluate.py [--data eval.jsonl] [--min-shared 2 3]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

Article = dict[str, Any]
Clusterer = Callable[[Sequence[Article]], list[int]]

TOKEN = re.compile(r"[a-z0-9]+")
_STOP_WORDS = """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just may me might more most must my no nor not now of off on once only or other our
    ours out over own same she should so some such than that the their theirs them then there
    these they this those through to too under until up upon very via vs was we were what when
    where which while who whom why will with would you your yours
    says said say update updated exclusive video photos photo watch report reports live first
    one two new"""
STOP = frozenset(_STOP_WORDS.split())


def significant(text: str) -> list[str]:
    """Lowercase letter/digit tokens that are not stop words, plural ``s`` stripped."""
    words = []
    for w in TOKEN.findall(text.lower()):
        if len(w) < 2 or w in STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        words.append(w)
    return words


def norm_title(title: str) -> str:
    return " ".join(TOKEN.findall(title.lower()))


def when(article: Article) -> datetime:
    return datetime.fromisoformat(article["published_at"].replace("Z", "+00:00"))


@dataclass
class Story:
    last: datetime
    terms: Counter[str] = field(default_factory=Counter)  # word -> members holding it


def baseline(
    articles: Sequence[Article],
    threshold: float = 0.25,
    min_shared: int = 2,
    window: timedelta = timedelta(hours=72),
    use_description: bool = False,
) -> list[int]:
    """Incremental, no chaining: in time order each article joins the best story seen within
    the window (TF-IDF cosine to the story centroid >= threshold and >= min_shared significant
    words in common) or founds a new one. A same normalized title joins at once."""
    order = sorted(range(len(articles)), key=lambda i: (articles[i]["published_at"], i))
    df: Counter[str] = Counter()
    stories: list[Story] = []
    postings: dict[str, set[int]] = defaultdict(set)  # the full-text index, story level
    by_title: dict[str, int] = {}
    labels = [0] * len(articles)
    for n_seen, i in enumerate(order, 1):
        a, t = articles[i], when(articles[i])
        text = a["title"]
        if use_description and a.get("description"):
            text += " " + a["description"]
        bag = set(significant(text))
        df.update(bag)

        def idf(w: str, n: int = n_seen) -> float:
            return math.log((1 + n) / (1 + df[w])) + 1.0

        best = by_title.get(norm_title(a["title"]))
        if best is not None and t - stories[best].last > window:
            best = None
        if best is None:
            shared: Counter[int] = Counter()
            for w in bag:
                shared.update(postings.get(w, ()))
            a_norm = math.sqrt(sum(idf(w) ** 2 for w in bag)) or 1.0
            best_score = threshold
            for s, k in shared.items():
                story = stories[s]
                if k < min_shared or abs(t - story.last) > window:
                    continue
                c_norm = math.sqrt(sum((c * idf(w)) ** 2 for w, c in story.terms.items()))
                dot = sum(story.terms[w] * idf(w) ** 2 for w in bag if w in story.terms)
                score = dot / (a_norm * c_norm)
                if score >= best_score:
                    best, best_score = s, score
        if best is None:
            best = len(stories)
            stories.append(Story(last=t))
        story = stories[best]
        story.terms.update(bag)
        story.last = max(story.last, t)
        for w in bag:
            postings[w].add(best)
        by_title.setdefault(norm_title(a["title"]), best)
        labels[i] = best
    return labels


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
    f"{'all vs storyline':<17} | x-day |  ms\n{'':<22} |       | "
    + " | ".join(["  P     R     F1  "[:17]] * 3)
    + " | pairs | /art"
)


def row(name: str, articles: Sequence[Article], pred: Sequence[Hashable], ms: float) -> str:
    s = score(articles, pred)
    return (
        f"{name:<22} | {s['stories']:5.0f} | {s['p']:.3f} {s['r']:.3f} {s['f1']:.3f} | "
        f"{s['b3_p']:.3f} {s['b3_r']:.3f} {s['b3_f1']:.3f} | "
        f"{s['line_p']:.3f} {s['line_r']:.3f} {s['line_f1']:.3f} | "
        f"{s['cross_day_pairs']:5.0f} | {ms:.3f}"
    )


def timed(cluster: Clusterer, articles: Sequence[Article]) -> tuple[list[int], float]:
    start = time.perf_counter()
    labels = cluster(articles)
    return labels, (time.perf_counter() - start) * 1000 / len(articles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).with_name("eval.jsonl"))
    ap.add_argument("--min-shared", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--thresholds", type=float, nargs="+")
    args = ap.parse_args()
    articles = load(args.data)
    thresholds = args.thresholds or [round(0.2 + 0.05 * k, 2) for k in range(9)]
    print(
        f"{len(articles)} articles, {len({a['story'] for a in articles})} stories, "
        f"{len({a['storyline'] for a in articles})} storylines"
    )
    modes = [("title", False)]
    if any(a.get("description") for a in articles):
        modes.append(("title+desc", True))
    else:
        print("no article has a description: title+description would equal title only")
    print(HEADER)
    ids = list(range(len(articles)))
    print(row("singletons", articles, ids, 0.0))
    titles = [norm_title(a["title"]) for a in articles]
    print(row("same normalized title", articles, titles, 0.0))
    for mode, use_desc in modes:
        for k in args.min_shared:
            for th in thresholds:
                cluster = partial(baseline, threshold=th, min_shared=k, use_description=use_desc)
                labels, ms = timed(cluster, articles)
                print(row(f"{mode} th={th:.2f} k={k}", articles, labels, ms))


if __name__ == "__main__":
    main()
