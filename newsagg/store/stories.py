"""Stories as the database keeps them, the same SQL on both engines: each article's story
(`story_members`), each story's centroid (in its row: word -> members holding it, and the
centroid's length), the words' postings (`story_terms`: which stories had, and when last, a
member holding a word: how candidates are found), the IDF counts (`story_words`; the word
'' counts every article clustered), the headlines seen (`story_titles`) and publishers
(`story_publishers`), and the merges.

An arriving article is placed (newsagg.stories.clustering decides) in the transaction that
saves it, after the engine made saves take turns: a story is read and grown by one saver
at a time, so every instance sees the same stories. Placing one is bounded whatever the
archive holds: the candidates come from at most POSTINGS_PER_WORD stories a word (the
newest within the window), at most MAX_CANDIDATES of them are weighed, each by a centroid
of at most CENTROID_WORDS words. Merging runs in the upkeep, as bounded; a merged story
keeps its row, pointing at the one it joined (`merged_into`), so its id still answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

from newsagg.store.dialect import Connection
from newsagg.store.story_reads import IN_LIST, StoryReads
from newsagg.stories.clustering import (
    Centroid,
    StoryRules,
    idf,
    kept,
    nearest,
    norm,
)
from newsagg.stories.model import providers_of
from newsagg.stories.words import significant, title_key

# Candidates of one article (or one story, merging): the stories sharing the most of its
# words, of at most POSTINGS_PER_WORD a word, the newest. A word in a thousand stories of
# the window tells little; reading all of them made placing grow with the archive (on
# the evaluation set 50 and 200 make the same stories; reading them is most of placing).
POSTINGS_PER_WORD = 50
MAX_CANDIDATES = 10
ALL_ARTICLES = ""  # the `story_words` row counting every article clustered
REBUILD_ROWS = 2_000


class StoryState(NamedTuple):
    """What growing a story reads of it (`STATE_COLUMNS`)."""

    title: str
    lead_id: int
    lead_rank: int
    lead_us: int
    providers: str
    first_us: int
    last_us: int
    centroid: str  # JSON: word -> members holding it


STATE_COLUMNS = (
    "s.title, s.lead_id, s.lead_rank, s.lead_us, s.providers, s.first_us, s.last_us, s.centroid"
)
# An article with what placing it reads, as `Arrival.of` takes it.
ARRIVAL_COLUMNS = "a.id, a.rank, a.data, a.published_us"


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
    """Placing arrivals in stories, merging, pruning and rebuilding them."""

    story_rules: StoryRules

    def _articles_turn(self, db: Connection) -> None:
        """From here to commit, no article is saved but by this transaction (engine's own)."""
        raise NotImplementedError

    def _pipelined(self, db: Connection) -> AbstractContextManager[object]:
        """Statements whose answer is not read go to the server without waiting for it
        (PostgreSQL's pipeline mode); nothing on SQLite, which has no round trips."""
        return nullcontext()

    # -- placing arrivals ----------------------------------------------------------------

    def _place_all(self, db: Connection, arrivals: Iterable[Arrival]) -> None:
        """Each arrival joins a story or founds one, earliest first; of the same instant, by
        url: both engines place a save's articles in one order (ids are drawn in another)."""
        with self._pipelined(db):
            for arrival in sorted(arrivals, key=lambda a: (a.published_us, a.url)):
                self._place(db, arrival)

    def _place(self, db: Connection, arrival: Arrival) -> int:
        # A few statements wait for an answer (counting the words, the same headline, the
        # candidates, founding a story, the weights of a grown centroid); the writes do
        # not, so on PostgreSQL they go down the pipeline without a round trip each.
        rules, p = self.story_rules, self.db.param
        words = set(significant(arrival.title))
        key = title_key(arrival.title)
        counts = self._count_words(db, words)
        weights = {w: idf(counts[w], counts[ALL_ARTICLES]) for w in words}
        story_id, state = self._same_title(db, key, arrival.published_us) if key else (None, None)
        if story_id is None and len(words) >= rules.min_shared:
            candidates = self._candidates(db, words, arrival.published_us, None)
            story_id = nearest(
                words, arrival.published_us, [c for c, _ in candidates], weights, rules
            )
            state = next((s for c, s in candidates if c.story_id == story_id), None)
        if story_id is None:  # founded whole in one statement: most articles found one
            centroid = dict.fromkeys(sorted(words), 1)
            story_id = db.execute(
                "INSERT INTO stories(title, lead_id, lead_rank, lead_us, size, publishers,"
                " providers, first_us, last_us, updated_us, centroid, norm) VALUES"
                f" ({p}, {p}, {p}, {p}, 1, 1, {p}, {p}, {p}, {self.db.now}, {p}, {p})"
                " RETURNING id",
                (arrival.title, arrival.id, *arrival.lead_key, arrival.provider,
                 arrival.published_us, arrival.published_us,
                 json.dumps(centroid, separators=(",", ":")), norm(centroid, weights)),
            ).fetchone()[0]  # fmt: skip
            self._enlist(db, story_id, [arrival])
        else:
            self._grow(db, story_id, [arrival], state=state, known=weights)
        if words:
            db.execute(
                "INSERT INTO story_terms(story_id, word, last_us) VALUES "
                + ", ".join([f"({p}, {p}, {p})"] * len(words))
                + " ON CONFLICT (story_id, word) DO UPDATE SET last_us = CASE WHEN"
                " excluded.last_us > story_terms.last_us THEN excluded.last_us"
                " ELSE story_terms.last_us END",
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
                "SELECT article_id, story_id FROM story_members WHERE article_id IN"
                f" ({', '.join([p] * len(records))})",
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

    def _weights(self, db: Connection, words: Iterable[str]) -> dict[str, float]:
        """The IDF of these words, as the counts stand."""
        listed = sorted({*words, ALL_ARTICLES})
        counts: dict[str, int] = {}
        for start in range(0, len(listed), IN_LIST):
            part = listed[start : start + IN_LIST]
            counts.update(
                db.execute(
                    "SELECT word, articles FROM story_words WHERE word IN"
                    f" ({', '.join([self.db.param] * len(part))})",
                    part,
                ).fetchall()
            )
        seen = counts.get(ALL_ARTICLES, 0)
        return {w: idf(counts.get(w, 0), seen) for w in listed if w != ALL_ARTICLES}

    def _same_title(
        self, db: Connection, key: str, published_us: int
    ) -> tuple[int | None, StoryState | None]:
        p = self.db.param
        row = db.execute(
            f"SELECT t.story_id, t.last_us, {STATE_COLUMNS} FROM story_titles t"
            f" JOIN stories s ON s.id = t.story_id WHERE t.title_key = {p}",
            (key,),
        ).fetchone()
        if row is None or abs(row[1] - published_us) > self.story_rules.window_us:
            return None, None
        return row[0], StoryState(*row[2:])

    def _candidates(
        self, db: Connection, words: set[str], since_us: int, shared: int | None
    ) -> list[tuple[Centroid, StoryState]]:
        """In one statement, the stories that had, within the window of `since_us`, a
        member holding `shared` (else `min_shared`) of `words`: at most MAX_CANDIDATES,
        sharing the most first, each found among the POSTINGS_PER_WORD newest of a word."""
        p, rules = self.db.param, self.story_rules
        listed = sorted(words)
        postings = " UNION ALL ".join(
            f"SELECT story_id FROM (SELECT story_id FROM story_terms WHERE word = {p}"
            f" AND last_us >= {p} ORDER BY last_us DESC LIMIT {p}) AS w{n}"
            for n in range(len(listed))
        )
        found = []
        for row in db.execute(
            f"SELECT s.id, s.norm, {STATE_COLUMNS} FROM stories s WHERE s.id IN"
            f" (SELECT story_id FROM ({postings}) AS hits GROUP BY story_id"
            f" HAVING count(*) >= {p} ORDER BY count(*) DESC, story_id DESC LIMIT {p})"
            " AND s.merged_into IS NULL",
            [
                *(v for w in listed for v in (w, since_us - rules.window_us, POSTINGS_PER_WORD)),
                shared or rules.min_shared,
                MAX_CANDIDATES,
            ],
        ).fetchall():
            state = StoryState(*row[2:])
            centroid = Centroid(
                row[0], state.first_us, state.last_us, json.loads(state.centroid), row[1]
            )
            found.append((centroid, state))
        return found

    def _enlist(self, db: Connection, story_id: int, members: Sequence[Arrival]) -> None:
        """`members` are the story's, and their publishers among its publishers."""
        p = self.db.param
        self._publishers(db, story_id, members)
        db.execute(
            "INSERT INTO story_members(article_id, story_id, published_us) VALUES "
            + ", ".join([f"({p}, {p}, {p})"] * len(members))
            + " ON CONFLICT (article_id) DO UPDATE SET story_id = excluded.story_id",
            [v for m in members for v in (m.id, story_id, m.published_us)],
        )

    def _recount(
        self, db: Connection, story_id: int, members: Sequence[Arrival]
    ) -> tuple[int, int, set[str]]:
        """After members' records were replaced (another provider's, publisher, time): the
        story's publishers, and its span and providers, read anew from its members."""
        p = self.db.param
        db.execute(
            "UPDATE story_members SET published_us = (SELECT a.published_us FROM articles a"
            " WHERE a.id = story_members.article_id) WHERE article_id IN"
            f" ({', '.join([p] * len(members))})",
            [m.id for m in members],
        )
        db.execute(f"DELETE FROM story_publishers WHERE story_id = {p}", (story_id,))
        db.execute(
            "INSERT INTO story_publishers(story_id, publisher) SELECT DISTINCT m.story_id,"
            " COALESCE(a.publisher, a.source, '') FROM story_members m JOIN articles a"
            f" ON a.id = m.article_id WHERE m.story_id = {p}",
            (story_id,),
        )
        rows = db.execute(
            "SELECT min(m.published_us), max(m.published_us), a.source FROM story_members m"
            f" JOIN articles a ON a.id = m.article_id WHERE m.story_id = {p} GROUP BY a.source",
            (story_id,),
        ).fetchall()
        return min(r[0] for r in rows), max(r[1] for r in rows), {r[2] for r in rows}

    def _publishers(self, db: Connection, story_id: int, members: Sequence[Arrival]) -> None:
        p, publishers = self.db.param, sorted({m.publisher for m in members})
        db.execute(
            "INSERT INTO story_publishers(story_id, publisher) VALUES "
            + ", ".join([f"({p}, {p})"] * len(publishers))
            + " ON CONFLICT DO NOTHING",
            [v for name in publishers for v in (story_id, name)],
        )

    def _grow(
        self,
        db: Connection,
        story_id: int,
        members: Sequence[Arrival],
        counted: bool = True,
        state: StoryState | None = None,
        known: Mapping[str, float] | None = None,
    ) -> None:
        """Story `story_id` takes `members` in: they are its members, and its size,
        publishers, providers, span, representative and centroid follow. `counted=False`:
        they are members already, with a new record each. `state`: the story's, if read
        already; `known`: IDF weights already at hand."""
        p = self.db.param
        if state is None:
            state = StoryState(
                *db.execute(
                    f"SELECT {STATE_COLUMNS} FROM stories s WHERE s.id = {p}", (story_id,)
                ).fetchone()
            )
        title, lead_id, lead_rank, lead_us, providers, first_us, last_us, centroid = state
        lead = ((lead_rank, lead_us), lead_id, title)
        names = set(providers_of(providers))
        words = Counter(json.loads(centroid))
        for member in members:
            if member.id == lead[1]:  # the representative's own record changed
                lead = (member.lead_key, member.id, member.title)
            lead = min(lead, (member.lead_key, member.id, member.title))
            names.add(member.provider)
            first_us = min(first_us, member.published_us)
            last_us = max(last_us, member.published_us)
            if counted:
                words.update(set(significant(member.title)))
        grown = kept(words)
        weights = dict(known or {})
        missing = grown.keys() - weights.keys()
        if missing:
            weights.update(self._weights(db, missing))
        if counted:
            self._enlist(db, story_id, members)
        else:
            first_us, last_us, names = self._recount(db, story_id, members)
        (key_rank, key_us), lead_id, title = lead
        db.execute(
            f"UPDATE stories SET title = {p}, lead_id = {p}, lead_rank = {p}, lead_us = {p},"
            f" size = size + {p}, publishers = (SELECT count(*) FROM story_publishers"
            f" WHERE story_id = {p}), providers = {p}, first_us = {p}, last_us = {p},"
            f" updated_us = {self.db.now}, centroid = {p}, norm = {p} WHERE id = {p}",
            (title, lead_id, key_rank, key_us, len(members) if counted else 0, story_id,
             ",".join(sorted(names)), first_us, last_us,
             json.dumps(grown, separators=(",", ":")), norm(grown, weights), story_id),
        )  # fmt: skip


def arrival_of(row: Sequence[Any]) -> Arrival:
    """The Arrival of a row of ARRIVAL_COLUMNS."""
    article_id, rank, data, published_us = row
    return Arrival.of(article_id, rank, json.loads(data), published_us)
