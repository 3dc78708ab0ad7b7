"""The service's own story rules on the evaluation set: the articles saved to a SQLite store
in pages of 100 as the harvester saves them, then the upkeep's merges caught up; scored
as evaluate.py scores (same-day pairs), for each join:merge threshold pair given.

Usage: .venv/bin/python bench/stories/sweep.py 0.25:0.35 0.225:0.4 ...
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from newsagg.store.sqlite import SqliteStore
from newsagg.stories.clustering import StoryRules

sys.path.insert(0, str(Path(__file__).parent))
import evaluate


def run(rows: list[dict], rules: StoryRules) -> tuple[dict, dict]:
    """Scores after saving (joins only) and after the merges."""
    with tempfile.TemporaryDirectory() as work:
        store = SqliteStore(str(Path(work) / "stories.sqlite3"), story_rules=rules)
        store.migrate()
        ids: list[int] = []
        for start in range(0, len(rows), 100):
            ids += store.save_articles(evaluate.record(row) for row in rows[start : start + 100])
        refs = store.story_refs(ids)
        joined = evaluate.score(rows, [refs[i].id for i in ids])
        while store.merge_stories(1_000)[0]:
            pass
        refs = store.story_refs(ids)
        merged = evaluate.score(rows, [refs[i].id for i in ids])
        store.close()
        return joined, merged


def main() -> None:
    rows = evaluate.load(Path(__file__).with_name("eval.jsonl"))
    print("join  merge | stories  P      R      B3-F1 (joins only) | stories  P      R      B3-F1")
    for pair in sys.argv[1:] or ["0.25:0.35"]:
        join, merge = (float(x) for x in pair.split(":"))
        a, b = run(rows, StoryRules(threshold=join, merge_threshold=merge))
        print(
            f"{join:.3f} {merge:.2f} | {a['stories']:5d} {a['p']:.3f} {a['r']:.3f} {a['b3_f1']:.3f}"
            f" | {b['stories']:5d} {b['p']:.3f} {b['r']:.3f} {b['b3_f1']:.3f}"
        )


if __name__ == "__main__":
    main()
