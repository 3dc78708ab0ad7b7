"""Which story an arriving article joins: the rules, free of any database.

In arrival order, each article either joins the story it is most like or founds one:
- an article with the same normalized headline as a story's member within the window joins
  that story at once;
- otherwise the candidates are the stories that had, within the window, a member holding
  at least `min_shared` of the article's significant words; the article joins the one whose
  centroid is nearest, if the cosine reaches `threshold`.
The centroid of a story counts, for each word, the members holding it; both sides are
weighted by IDF over every article clustered so far (the article's own words counted), so
a word that names an event weighs more than one every headline uses. An article joins one
story and is compared with stories, never with single members: no chain of pairs can pull
two events together. Merging stories is a separate, stricter step (`mergeable`).

Merging is stricter than joining where it matters: two stories need 3 shared words (an
article 2), and a merge weighs two whole centroids, each already a consensus of members,
rather than one headline against one.

Defaults measured on real headlines (bench/stories/README.md, `sweep.py`): joining at 0.26
and merging at 0.35 gave pairwise precision 0.906 at recall 0.550 (joining alone, 0.906 at
0.458); 2 shared words as the guard for joining (3 cut recall with no gain in precision at
equal recall); ±72 h as NewsBlur and GDELT look back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HOUR_US = 3_600_000_000
# The words a story's centroid keeps (bench/stories: no story of the evaluation set holds
# more than ~90 distinct words; a runaway story of hundreds of members many more).
CENTROID_WORDS = 100


@dataclass(frozen=True, slots=True)
class StoryRules:
    threshold: float = 0.26  # cosine to the centroid an article needs to join
    min_shared: int = 2  # significant words a candidate story must share with it
    window_us: int = 72 * HOUR_US  # how far apart in time an article and its story may be
    merge_threshold: float = 0.35  # cosine between two centroids for a merge
    merge_min_shared: int = 3  # significant words two merged stories must share


@dataclass(frozen=True, slots=True)
class Centroid:
    """A story as the rules compare an article with it."""

    story_id: int
    first_us: int
    last_us: int
    words: Mapping[str, int]  # word -> members holding it, the CENTROID_WORDS most held
    norm: float  # of `words` IDF-weighted, as of the story's last growth


def idf(articles_with_word: int, articles: int) -> float:
    """Smoothed IDF: rare words weigh more; a word in every article still weighs 1."""
    return math.log((1 + articles) / (1 + articles_with_word)) + 1.0


def norm(words: Mapping[str, int], weights: Mapping[str, float]) -> float:
    """Length of IDF-weighted counts, summed in word order: the same words give the same
    bits whatever order a database returned them in."""
    return math.sqrt(sum((words[w] * weights[w]) ** 2 for w in sorted(words)))


def kept(words: Mapping[str, int]) -> dict[str, int]:
    """A centroid's words bounded to CENTROID_WORDS, the most held (of equals, the first in
    word order): what a story of hundreds of articles is compared by stays small."""
    best = sorted(words, key=lambda w: (-words[w], w))[:CENTROID_WORDS]
    return {w: words[w] for w in sorted(best)}


def cosine(
    left: Mapping[str, int], right: Mapping[str, int], weights: Mapping[str, float]
) -> float:
    """Cosine of two word counts, each word weighted by `weights` (IDF)."""
    dot = sum(left[w] * right[w] * weights[w] ** 2 for w in sorted(left.keys() & right.keys()))
    return dot / (norm(left, weights) * norm(right, weights)) if dot else 0.0


def in_window(published_us: int, centroid: Centroid, rules: StoryRules) -> bool:
    return centroid.first_us - rules.window_us <= published_us <= centroid.last_us + rules.window_us


def nearest(
    words: set[str],
    published_us: int,
    candidates: Sequence[Centroid],
    weights: Mapping[str, float],
    rules: StoryRules,
) -> int | None:
    """The story among `candidates` an article of `words` joins, or None (it founds one).
    `weights` holds the IDF of the article's words: a centroid's length is its own."""
    mine = norm(dict.fromkeys(words, 1), weights)
    best, best_score = None, rules.threshold
    # Newest story first: of two equally near, the later one, whatever order they came in.
    for centroid in sorted(candidates, key=lambda c: (-c.last_us, -c.story_id)):
        shared = sorted(words & centroid.words.keys())
        if len(shared) < rules.min_shared or not in_window(published_us, centroid, rules):
            continue
        dot = sum(centroid.words[w] * weights[w] ** 2 for w in shared)
        score = dot / (mine * centroid.norm)
        if score > best_score or (best is None and score == best_score):
            best, best_score = centroid.story_id, score
    return best


def mergeable(
    story: Centroid, other: Centroid, weights: Mapping[str, float], rules: StoryRules
) -> bool:
    """Whether two stories tell one event, by the stricter rule of merging: more shared
    words, a higher cosine, and overlapping in time within the window. `weights`: the IDF
    of both stories' words."""
    if len(story.words.keys() & other.words.keys()) < rules.merge_min_shared:
        return False
    if other.first_us - rules.window_us > story.last_us:
        return False
    if story.first_us - rules.window_us > other.last_us:
        return False
    return cosine(story.words, other.words, weights) >= rules.merge_threshold
