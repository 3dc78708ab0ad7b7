"""Stories as the database keeps them, the same SQL on both engines: each article's story,
each story's centroid (`story_terms`: word -> members holding it, and when a member last
brought it), the IDF counts (`story_words`; the word '' counts every article clustered),
the headlines seen (`story_titles`) and publishers (`story_publishers`), and the merges.

An arriving article is placed (newsagg.stories.clustering decides) in the transaction that
saves it, after the engine made saves take turns: a story is read and grown by one saver
at a time, so every instance sees the same stories. Merging runs in the upkeep; a merged
story keeps its row, pointing at the one it joined (`merged_into`), so its id still
answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from newsagg.store.dialect import Connection
from newsagg.store.story_reads import IN_LIST, StoryReads
from newsagg.stories.clustering import Centroid, StoryRules, idf, mergeable, nearest
from newsagg.stories.model import providers_of
from newsagg.stories.words import significant, title_key

# Candidate stories weighed for one article, those sharing the most words first: a
# headline of common words would otherwise weigh hundreds.
MAX_CANDIDATES = 50
ALL_ARTICLES = ""  # the `story_words` row counting every article clustered
MERGED_UPTO = "stories_merged_upto"  # `meta`: updated_us the merge step has looked at
REBUILD_ROWS = 2_000


class Arrival(NamedTuple):
    """A newly archived article, as placing it in a story reads it."""

    id: int
    url: str
    title: str
    publisher: str
    provider: str
    rank: int  # its provider's priority (newsagg.archive_writer.PROVIDER_PRIORITY)
    complete: bool  # it has a description and an image
    published_us: int

    @classmethod
    def of(cls, article_id: int, rank: int, data: dict[str, Any], published_us: int) -> Arrival:
        return cls(
            article_id,
            data["url"],
            data.get("title") or "",
            data.get("publisher") or data.get("source") or "",
            data.get("source") or "",
            rank,
            bool(data.get("description") and data.get("image_url")),
            published_us,
        )

    @property
    def lead_key(self) -> tuple[int, int]:
        """How a story's representative is chosen, least first: the provider nearest the
        source (Guardian, NewsAPI, Hacker News), then the most complete (a description
        and an image), then the earliest."""
        return self.rank * 2 + (0 if self.complete else 1), self.published_us


class Stories(StoryReads):
    """Placing arrivals in stories, reading stories, merging and rebuilding them."""

    story_rules: StoryRules

    def _articles_turn(self, db: Connection) -> None:
        """From here to commit, no article is saved but by this transaction (engine's own)."""
        raise NotImplementedError

    # -- placing arrivals ----------------------------------------------------------------

    def _place_all(self, db: Connection, arrivals: Iterable[Arrival]) -> None:
        """Each arrival joins a story or founds one, earliest first; of the same instant, by
        url: both engines place a save's articles in one order (ids are drawn in another)."""
        for arrival in sorted(arrivals, key=lambda a: (a.published_us, a.url)):
            self._place(db, arrival)

    def _place(self, db: Connection, arrival: Arrival) -> int:
        rules, p = self.story_rules, self.db.param
        words = set(significant(arrival.title))
        key = title_key(arrival.title)
        counts = self._count_words(db, words)
        story_id = self._same_title(db, key, arrival.published_us) if key else None
        if story_id is None and len(words) >= rules.min_shared:
            candidates = self._candidates(db, words, arrival.published_us)
            if candidates:
                seen = counts[ALL_ARTICLES]
                others = {w for c in candidates for w in c.words} - counts.keys()
                counts.update(self._word_counts(db, others))
                weights = {w: idf(counts.get(w, 0), seen) for w in words | others}
                story_id = nearest(words, arrival.published_us, candidates, weights, rules)
        if story_id is None:
            story_id = db.execute(
                "INSERT INTO stories(title, lead_id, lead_rank, lead_us, size, publishers,"
                " providers, first_us, last_us, updated_us)"
                f" VALUES ({p}, {p}, {p}, {p}, 0, 0, '', {p}, {p}, {self.db.now}) RETURNING id",
                (arrival.title, arrival.id, *arrival.lead_key, arrival.published_us,
                 arrival.published_us),
            ).fetchone()[0]  # fmt: skip
        self._grow(db, story_id, [arrival])
        if words:
            db.execute(
                "INSERT INTO story_terms(story_id, word, members, last_us) VALUES "
                + ", ".join([f"({p}, {p}, 1, {p})"] * len(words))
                + " ON CONFLICT (story_id, word) DO UPDATE SET members = story_terms.members"
                " + 1, last_us = CASE WHEN excluded.last_us > story_terms.last_us"
                " THEN excluded.last_us ELSE story_terms.last_us END",
                [v for w in sorted(words) for v in (story_id, w, arrival.published_us)],
            )
        if key:
            db.execute(
                f"INSERT INTO story_titles(title_key, story_id, last_us) VALUES ({p}, {p}, {p})"
                " ON CONFLICT (title_key) DO UPDATE SET story_id = excluded.story_id,"
                " last_us = excluded.last_us",
                (key, story_id, arrival.published_us),
            )
        return story_id

    def _replaced(self, db: Connection, records: Sequence[Arrival]) -> None:
        """Articles whose record a better-ranked (or changed) one replaced: their stories
        take in the new provider, publisher, time and representative (not a member more)."""
        if not records:
            return
        p = self.db.param
        placed = dict(
            db.execute(
                f"SELECT id, story_id FROM articles WHERE id IN ({', '.join([p] * len(records))})"
                " AND story_id IS NOT NULL",
                [record.id for record in records],
            ).fetchall()
        )
        by_story: dict[int, list[Arrival]] = {}
        for record in records:
            if record.id in placed:
                by_story.setdefault(placed[record.id], []).append(record)
        for story_id, members in sorted(by_story.items()):
            self._grow(db, story_id, members, counted=False)

    def _count_words(self, db: Connection, words: set[str]) -> dict[str, int]:
        """Count an article's words (and the article) into the IDF counts; the new counts."""
        p, counted = self.db.param, sorted(words | {ALL_ARTICLES})
        return dict(
            db.execute(
                "INSERT INTO story_words(word, articles) VALUES "
                + ", ".join([f"({p}, 1)"] * len(counted))
                + " ON CONFLICT (word) DO UPDATE SET articles = story_words.articles + 1"
                " RETURNING word, articles",
                counted,
            ).fetchall()
        )

    def _word_counts(self, db: Connection, words: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        listed = sorted(words)
        for start in range(0, len(listed), IN_LIST):
            part = listed[start : start + IN_LIST]
            found.update(
                db.execute(
                    "SELECT word, articles FROM story_words WHERE word IN"
                    f" ({', '.join([self.db.param] * len(part))})",
                    part,
                ).fetchall()
            )
        return found

    def _same_title(self, db: Connection, key: str, published_us: int) -> int | None:
        p = self.db.param
        row = db.execute(
            f"SELECT story_id, last_us FROM story_titles WHERE title_key = {p}", (key,)
        ).fetchone()
        if row is None or abs(row[1] - published_us) > self.story_rules.window_us:
            return None
        return row[0]

    def _candidates(self, db: Connection, words: set[str], published_us: int) -> list[Centroid]:
        """The stories that had, within the window, a member holding `min_shared` of
        `words`: at most MAX_CANDIDATES, sharing the most first."""
        p, rules = self.db.param, self.story_rules
        listed = sorted(words)
        shared = Counter(
            story_id
            for (story_id,) in db.execute(
                f"SELECT story_id FROM story_terms WHERE word IN ({', '.join([p] * len(listed))})"
                f" AND last_us >= {p}",
                [*listed, published_us - rules.window_us],
            ).fetchall()
        )
        chosen = sorted(
            (s for s, n in shared.items() if n >= rules.min_shared),
            key=lambda s: (-shared[s], -s),
        )[:MAX_CANDIDATES]
        return self._centroids(db, chosen)

    def _centroids(self, db: Connection, story_ids: Sequence[int]) -> list[Centroid]:
        if not story_ids:
            return []
        marks = ", ".join([self.db.param] * len(story_ids))
        spans = {
            row[0]: row[1:]
            for row in db.execute(
                f"SELECT id, first_us, last_us FROM stories WHERE id IN ({marks})"
                " AND merged_into IS NULL",
                list(story_ids),
            ).fetchall()
        }
        words: dict[int, dict[str, int]] = {s: {} for s in spans}
        for story_id, word, members in db.execute(
            f"SELECT story_id, word, members FROM story_terms WHERE story_id IN ({marks})",
            list(story_ids),
        ).fetchall():
            if story_id in words:
                words[story_id][word] = members
        return [Centroid(s, *spans[s], words[s]) for s in spans]

    def _grow(
        self, db: Connection, story_id: int, members: Sequence[Arrival], counted: bool = True
    ) -> None:
        """Story `story_id` takes `members` in: its articles point at it, and its size,
        publishers, providers, span and representative follow. `counted=False`: they are
        members already, with a new record each."""
        p = self.db.param
        title, lead_id, lead_rank, lead_us, providers, first_us, last_us = db.execute(
            "SELECT title, lead_id, lead_rank, lead_us, providers, first_us, last_us"
            f" FROM stories WHERE id = {p}",
            (story_id,),
        ).fetchone()
        lead = ((lead_rank, lead_us), lead_id, title)
        names = set(providers_of(providers))
        for member in members:
            if member.id == lead[1]:  # the representative's own record changed
                lead = (member.lead_key, member.id, member.title)
            lead = min(lead, (member.lead_key, member.id, member.title))
            names.add(member.provider)
            first_us, last_us = (
                min(first_us, member.published_us),
                max(last_us, member.published_us),
            )
        publishers = sorted({m.publisher for m in members})
        new_publishers = len(
            db.execute(
                "INSERT INTO story_publishers(story_id, publisher) VALUES "
                + ", ".join([f"({p}, {p})"] * len(publishers))
                + " ON CONFLICT DO NOTHING RETURNING publisher",
                [v for name in publishers for v in (story_id, name)],
            ).fetchall()
        )
        ids = [m.id for m in members] if counted else []
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            db.execute(
                f"UPDATE articles SET story_id = {p} WHERE id IN ({', '.join([p] * len(part))})",
                [story_id, *part],
            )
        if not counted:  # a member's time may have moved either way: the span anew
            first_us, last_us = db.execute(
                f"SELECT min(published_us), max(published_us) FROM articles WHERE story_id = {p}",
                (story_id,),
            ).fetchone()
        (key_rank, key_us), lead_id, title = lead
        db.execute(
            f"UPDATE stories SET title = {p}, lead_id = {p}, lead_rank = {p}, lead_us = {p},"
            f" size = size + {p}, publishers = publishers + {p}, providers = {p},"
            f" first_us = {p}, last_us = {p}, updated_us = {self.db.now} WHERE id = {p}",
            (title, lead_id, key_rank, key_us, len(members) if counted else 0, new_publishers,
             ",".join(sorted(names)), first_us, last_us, story_id),
        )  # fmt: skip

    # -- merging and rebuilding ----------------------------------------------------------

    def place_strays(self, limit: int) -> int:
        """Articles without a story (saved by an instance of an older release while a newer
        one migrated) placed in one, at most `limit`; how many."""
        p = self.db.param
        with self.db.transaction() as db:
            self._articles_turn(db)
            rows = db.execute(
                "SELECT id, rank, data, published_us FROM articles WHERE story_id IS NULL"
                f" ORDER BY id LIMIT {p}",
                (limit,),
            ).fetchall()
            self._place_all(
                db, [Arrival.of(i, rank, json.loads(data), us) for i, rank, data, us in rows]
            )
            return len(rows)

    def merge_stories(self, limit: int) -> tuple[int, int]:
        """The periodic, stricter step: stories grown since the last step are compared with
        the stories sharing their words (mergeable); the younger of two that tell one event
        joins the older, whose id it then points at. At most `limit` stories looked at:
        (how many were, how many merged)."""
        rules, p, merged = self.story_rules, self.db.param, 0
        with self.db.transaction() as db:
            self._articles_turn(db)
            row = db.execute(f"SELECT value FROM meta WHERE name = {p}", (MERGED_UPTO,)).fetchone()
            since = int(row[0]) if row else 0
            grown = db.execute(
                f"SELECT id, updated_us FROM stories WHERE updated_us > {p}"
                f" AND merged_into IS NULL ORDER BY updated_us, id LIMIT {p}",
                (since, limit),
            ).fetchall()
            if not grown:
                return 0, 0
            seen = self._word_counts(db, {ALL_ARTICLES}).get(ALL_ARTICLES, 0)
            gone: set[int] = set()
            for story_id, _ in grown:
                if story_id in gone:
                    continue
                (story,) = self._centroids(db, [story_id]) or (None,)
                if story is None or len(story.words) < rules.merge_min_shared:
                    continue
                shared = Counter(
                    other
                    for (other,) in db.execute(
                        "SELECT story_id FROM story_terms WHERE word IN"
                        f" ({', '.join([p] * len(story.words))}) AND last_us >= {p}"
                        f" AND story_id <> {p}",
                        [*sorted(story.words), story.first_us - rules.window_us, story_id],
                    ).fetchall()
                )
                chosen = sorted(
                    (s for s, n in shared.items() if n >= rules.merge_min_shared),
                    key=lambda s: (-shared[s], s),
                )[:MAX_CANDIDATES]
                others = [c for c in self._centroids(db, chosen) if c.story_id not in gone]
                words = set(story.words).union(*(c.words for c in others))
                counts = self._word_counts(db, words)
                weights = {w: idf(counts.get(w, 0), seen) for w in words}
                for other in sorted(others, key=lambda c: c.story_id):
                    if mergeable(story, other, weights, rules):
                        older, younger = sorted((story_id, other.story_id))
                        self._merge(db, younger, older)
                        gone.add(younger)
                        merged += 1
                        break
            db.execute(f"DELETE FROM meta WHERE name = {p}", (MERGED_UPTO,))
            db.execute(
                f"INSERT INTO meta(name, value) VALUES ({p}, {p})",
                (MERGED_UPTO, str(grown[-1][1])),
            )
        return len(grown), merged

    def _merge(self, db: Connection, younger: int, older: int) -> None:
        """Story `younger` joins `older`: its articles, words, titles and publishers move,
        and its row points at `older` from now on."""
        p = self.db.param
        members = [
            Arrival(*row[:6], bool(row[6]), row[7])
            for row in db.execute(
                "SELECT a.id, a.url, COALESCE(a.title, ''), COALESCE(a.publisher, a.source, ''),"
                " COALESCE(a.source, ''), a.rank, CASE WHEN a.description IS NOT NULL AND"
                " a.image_url IS NOT NULL THEN 1 ELSE 0 END, a.published_us FROM articles a"
                f" WHERE a.story_id = {p}",
                (younger,),
            ).fetchall()
        ]
        for word, members_holding, last_us in db.execute(
            f"SELECT word, members, last_us FROM story_terms WHERE story_id = {p}",
            (younger,),
        ).fetchall():
            db.execute(
                f"INSERT INTO story_terms(story_id, word, members, last_us) VALUES ({p}, {p},"
                f" {p}, {p}) ON CONFLICT (story_id, word) DO UPDATE SET members ="
                " story_terms.members + excluded.members, last_us = CASE WHEN"
                " excluded.last_us > story_terms.last_us THEN excluded.last_us"
                " ELSE story_terms.last_us END",
                (older, word, members_holding, last_us),
            )
        db.execute(f"DELETE FROM story_terms WHERE story_id = {p}", (younger,))
        db.execute(f"DELETE FROM story_publishers WHERE story_id = {p}", (younger,))
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
            "INSERT INTO story_publishers(story_id, publisher) SELECT DISTINCT story_id,"
            f" COALESCE(publisher, source, '') FROM articles WHERE story_id IN ({partly})",
            (before_us,),
        )
        db.execute(
            "UPDATE stories SET size = (SELECT count(*) FROM articles a WHERE a.story_id ="
            " stories.id), publishers = (SELECT count(*) FROM story_publishers s"
            " WHERE s.story_id = stories.id), first_us = (SELECT min(published_us) FROM"
            f" articles a WHERE a.story_id = stories.id) WHERE first_us < {p}"
            " AND merged_into IS NULL",
            (before_us,),
        )

    def _rebuild_stories(self, db: Connection) -> int:
        """Every story made anew from the archive, earliest article first; how many
        articles were placed."""
        for table in ("story_terms", "story_words", "story_titles", "story_publishers"):
            db.execute(f"DELETE FROM {table}")
        db.execute("UPDATE articles SET story_id = NULL")
        db.execute("DELETE FROM stories")
        p, done, after = self.db.param, 0, (-(2**62), 0)
        while True:
            rows = db.execute(
                f"SELECT id, rank, data, published_us FROM articles WHERE published_us > {p}"
                f" OR (published_us = {p} AND id > {p}) ORDER BY published_us, id"
                f" LIMIT {p}",
                (after[0], after[0], after[1], REBUILD_ROWS),
            ).fetchall()
            if not rows:
                return done
            for article_id, rank, data, published_us in rows:
                self._place(db, Arrival.of(article_id, rank, json.loads(data), published_us))
            done += len(rows)
            after = (rows[-1][3], rows[-1][0])
