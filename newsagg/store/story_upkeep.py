"""The stories' upkeep, the same SQL on both engines: articles without a story placed, the
periodic merges (bounded as placing is), and stories following the articles pruned or
placed anew (`newsagg stories rebuild`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from newsagg.store.dialect import Connection
from newsagg.store.migrations import NEWEST_ARTICLE_ID
from newsagg.store.stories import (
    ARRIVAL_COLUMNS,
    REBUILD_ROWS,
    STATE_COLUMNS,
    Stories,
    StoryState,
    arrival_of,
)
from newsagg.stories.clustering import Centroid, mergeable

STRAYS_UPTO = "stories_strays_upto"  # `meta`: the article id place_strays looked up to
STRAY_SPAN = 5_000  # article ids a step of place_strays looks at
MERGED_UPTO = "stories_merged_upto"  # `meta`: "updated_us id" the merge step looked at last
# A story looks for the stories it may merge with through its words most held: each one
# looked up costs its postings, and a story's rarely held words tell the least of it.
MERGE_WORDS = 12


def _telling(words: Mapping[str, int]) -> set[str]:
    """The MERGE_WORDS words most held by a story's members (of equals, in word order)."""
    return set(sorted(words, key=lambda w: (-words[w], w))[:MERGE_WORDS])


class StoryUpkeep(Stories):
    def place_strays(self, limit: int) -> int:
        """Articles without a story (saved by an instance of an older release while a newer
        one migrated) placed in one, at most `limit`; how many. A step looks at the
        articles arrived since the last look, STRAY_SPAN ids at most (`STRAYS_UPTO`): it
        costs what arrived, never the archive."""
        p = self.db.param
        with self.db.transaction() as db:
            self._articles_turn(db)
            row = db.execute(f"SELECT value FROM meta WHERE name = {p}", (STRAYS_UPTO,)).fetchone()
            upto = int(row[0]) if row else 0
            rows = db.execute(
                f"SELECT {ARRIVAL_COLUMNS} FROM articles a WHERE a.id > {p} AND a.id <= {p}"
                " AND NOT EXISTS (SELECT 1 FROM story_members m WHERE m.article_id = a.id)"
                f" ORDER BY a.id LIMIT {p}",
                (upto, upto + STRAY_SPAN, limit),
            ).fetchall()
            self._place_all(db, [arrival_of(row) for row in rows])
            # Less than a step's worth: every article of the span has a story now.
            upto = rows[-1][0] if len(rows) == limit else upto + STRAY_SPAN
            self._strays_upto(db, min(upto, db.execute(NEWEST_ARTICLE_ID).fetchone()[0]))
            return len(rows)

    def _strays_upto(self, db: Connection, article_id: int) -> None:
        p = self.db.param
        db.execute(f"DELETE FROM meta WHERE name = {p}", (STRAYS_UPTO,))
        db.execute(
            f"INSERT INTO meta(name, value) VALUES ({p}, {p})", (STRAYS_UPTO, str(article_id))
        )

    def merge_stories(self, limit: int, budget_seconds: float = float("inf")) -> tuple[int, int]:
        """The periodic, stricter step: stories grown since the last step are compared with
        the stories sharing their words (mergeable); the younger of two that tell one event
        joins the older, whose id it then points at. At most `limit` stories looked at, and
        none more once `budget_seconds` are spent (the step holds the writers' turn):
        (how many were, how many merged)."""
        p, merged, started = self.db.param, 0, time.perf_counter()
        with self.db.transaction() as db:
            self._articles_turn(db)
            row = db.execute(f"SELECT value FROM meta WHERE name = {p}", (MERGED_UPTO,)).fetchone()
            since_us, since_id = (int(part) for part in (row[0] if row else "0 0").split())
            grown = db.execute(
                f"SELECT s.id, s.updated_us, s.norm, {STATE_COLUMNS} FROM stories s"
                f" WHERE (s.updated_us > {p} OR (s.updated_us = {p} AND s.id > {p}))"
                f" AND s.merged_into IS NULL ORDER BY s.updated_us, s.id LIMIT {p}",
                (since_us, since_us, since_id, limit),
            ).fetchall()
            gone: set[int] = set()
            looked = 0
            for story_id, updated_us, story_norm, *values in grown:
                if looked and time.perf_counter() - started > budget_seconds:
                    break
                looked += 1
                since_us, since_id = updated_us, story_id
                if story_id in gone:
                    continue
                state = StoryState(*values)
                story = Centroid(
                    story_id, state.first_us, state.last_us, json.loads(state.centroid), story_norm
                )
                merged += self._merge_one(db, story, gone)
            if looked:
                db.execute(f"DELETE FROM meta WHERE name = {p}", (MERGED_UPTO,))
                db.execute(
                    f"INSERT INTO meta(name, value) VALUES ({p}, {p})",
                    (MERGED_UPTO, f"{since_us} {since_id}"),
                )
        return looked, merged

    def _merge_one(self, db: Connection, story: Centroid, gone: set[int]) -> int:
        """Story `story` merged with the first (lowest id) candidate that tells its event,
        if any: 1 if so (the younger's id then in `gone`), else 0."""
        rules = self.story_rules
        if len(story.words) < rules.merge_min_shared:
            return 0
        others = [
            c
            for c, _ in self._candidates(
                db, _telling(story.words), story.first_us, rules.merge_min_shared
            )
            if c.story_id != story.story_id and c.story_id not in gone
        ]
        weights = self._weights(db, set(story.words).union(*(c.words for c in others)))
        for other in sorted(others, key=lambda c: c.story_id):
            if mergeable(story, other, weights, rules):
                older, younger = sorted((story.story_id, other.story_id))
                self._merge(db, younger, older)
                gone.add(younger)
                return 1
        return 0

    def _merge(self, db: Connection, younger: int, older: int) -> None:
        """Story `younger` joins `older`: its articles, words, titles and publishers move,
        and its row points at `older` from now on."""
        p = self.db.param
        members = [
            arrival_of(row)
            for row in db.execute(
                f"SELECT {ARRIVAL_COLUMNS} FROM articles a JOIN story_members m"
                f" ON m.article_id = a.id WHERE m.story_id = {p}",
                (younger,),
            ).fetchall()
        ]
        for word, last_us in db.execute(
            f"SELECT word, last_us FROM story_terms WHERE story_id = {p}", (younger,)
        ).fetchall():
            db.execute(
                f"INSERT INTO story_terms(story_id, word, last_us) VALUES ({p}, {p}, {p})"
                " ON CONFLICT (story_id, word) DO UPDATE SET last_us = CASE WHEN"
                " excluded.last_us > story_terms.last_us THEN excluded.last_us"
                " ELSE story_terms.last_us END",
                (older, word, last_us),
            )
        for table in ("story_terms", "story_publishers"):
            db.execute(f"DELETE FROM {table} WHERE story_id = {p}", (younger,))
        db.execute(f"UPDATE story_titles SET story_id = {p} WHERE story_id = {p}", (older, younger))
        if members:
            self._grow(db, older, members)
        db.execute(
            f"UPDATE stories SET merged_into = {p}, size = 0 WHERE id = {p}", (older, younger)
        )

    def _prune_stories(self, db: Connection, before_us: int) -> None:
        """After the articles published before `before_us` were deleted: the stories they
        all belonged to go, and those they partly did count what is left."""
        p = self.db.param
        db.execute(f"DELETE FROM story_members WHERE published_us < {p}", (before_us,))
        for table in ("story_terms", "story_publishers", "story_titles", "search_stories"):
            db.execute(
                f"DELETE FROM {table} WHERE story_id IN"
                f" (SELECT id FROM stories WHERE last_us < {p})",
                (before_us,),
            )
        db.execute(f"DELETE FROM stories WHERE last_us < {p}", (before_us,))
        partly = f"SELECT id FROM stories WHERE first_us < {p} AND merged_into IS NULL"
        db.execute(f"DELETE FROM story_publishers WHERE story_id IN ({partly})", (before_us,))
        db.execute(
            "INSERT INTO story_publishers(story_id, publisher) SELECT DISTINCT m.story_id,"
            " COALESCE(a.publisher, a.source, '') FROM story_members m JOIN articles a"
            f" ON a.id = m.article_id WHERE m.story_id IN ({partly})",
            (before_us,),
        )
        db.execute(
            "UPDATE stories SET size = (SELECT count(*) FROM story_members m WHERE m.story_id"
            " = stories.id), publishers = (SELECT count(*) FROM story_publishers s"
            " WHERE s.story_id = stories.id), first_us = (SELECT min(published_us) FROM"
            f" story_members m WHERE m.story_id = stories.id) WHERE first_us < {p}"
            " AND merged_into IS NULL",
            (before_us,),
        )

    def _rebuild_stories(self, db: Connection) -> int:
        """Every story made anew from the archive, earliest article first; how many
        articles were placed."""
        for table in ("story_members", "story_terms", "story_words", "story_titles",
                      "story_publishers", "search_stories", "stories"):  # fmt: skip
            db.execute(f"DELETE FROM {table}")
        p, done, after = self.db.param, 0, (-(2**62), 0)
        while True:
            rows = db.execute(
                f"SELECT {ARRIVAL_COLUMNS} FROM articles a WHERE a.published_us > {p}"
                f" OR (a.published_us = {p} AND a.id > {p}) ORDER BY a.published_us, a.id"
                f" LIMIT {p}",
                (after[0], after[0], after[1], REBUILD_ROWS),
            ).fetchall()
            if not rows:
                self._strays_upto(db, db.execute(NEWEST_ARTICLE_ID).fetchone()[0])
                return done
            with self._pipelined(db):
                for row in rows:
                    self._place(db, arrival_of(row))
            done += len(rows)
            after = (rows[-1][3], rows[-1][0])
