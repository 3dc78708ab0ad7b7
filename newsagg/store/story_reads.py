"""Stories as clients read them, the same SQL on both engines: the story of each article,
stories by id (a merged one's survivor), a story's articles page by page, each story's
newest articles, what a grouped listing tests of each member, and what a story-grouped
saved search was last sent of each story."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from newsagg.store.dialect import Repository
from newsagg.stories.model import StoryRecord, StoryRef, providers_of

IN_LIST = 500
STORY_COLUMNS = "id, title, lead_id, size, publishers, providers, first_us, last_us"


class Member(NamedTuple):
    """An article of a story, with what a request's filters test (for GET /articles
    grouped by story)."""

    id: int
    data: str  # its public JSON without id and story
    title: str | None
    description: str | None
    category: str | None
    source: str | None
    body: str | None
    published_us: int
    rank: int
    image_url: str | None
    answers: frozenset[str]  # keys of the queries an upstream answered with it

    @property
    def lead_key(self) -> tuple[int, int, int]:
        """Arrival.lead_key, and the id last."""
        complete = bool(self.description and self.image_url)
        return self.rank * 2 + (0 if complete else 1), self.published_us, self.id


def _record(row: Sequence[Any]) -> StoryRecord:
    return StoryRecord(*row[:5], providers_of(row[5]), *row[6:8])


class StoryReads(Repository):
    def story_refs(self, article_ids: Sequence[int]) -> dict[int, StoryRef]:
        """The story of each of these articles (one without a story yet is left out)."""
        found: dict[int, StoryRef] = {}
        ids = list(dict.fromkeys(article_ids))
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            for article_id, *story in self.db.read(
                "SELECT m.article_id, s.id, s.size, s.publishers, s.providers FROM story_members m"
                " JOIN stories s ON s.id = m.story_id"
                f" WHERE m.article_id IN ({', '.join([self.db.param] * len(part))})",
                part,
            ):
                found[article_id] = StoryRef(*story[:3], providers_of(story[3]))
        return found

    def stories_by_id(self, story_ids: Sequence[int]) -> dict[int, StoryRecord]:
        found: dict[int, StoryRecord] = {}
        ids = list(dict.fromkeys(story_ids))
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            for row in self.db.read(
                f"SELECT {STORY_COLUMNS} FROM stories"
                f" WHERE id IN ({', '.join([self.db.param] * len(part))})"
                " AND merged_into IS NULL",
                part,
            ):
                found[row[0]] = _record(row)
        return found

    def story(self, story_id: int) -> StoryRecord | int | None:
        """The story, or the id of the story it was merged into (followed to the end),
        or None when no story ever had this id."""
        p = self.db.param
        rows = self.db.read(
            f"SELECT {STORY_COLUMNS}, merged_into FROM stories WHERE id = {p}", (story_id,)
        )
        if not rows:
            return None
        if rows[0][-1] is None:
            return _record(rows[0])
        survivor = rows[0][-1]
        while True:
            (merged,) = self.db.read(f"SELECT merged_into FROM stories WHERE id = {p}", (survivor,))
            if merged[0] is None:
                return survivor
            survivor = merged[0]

    def story_articles(
        self, story_id: int, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int, str]]:
        """A story's articles newest first, after the keyset position (published_us, id):
        (id, published_us, public JSON without the id)."""
        p = self.db.param
        where, params = f"m.story_id = {p}", [story_id]
        if after is not None:
            where += f" AND (m.published_us < {p} OR (m.published_us = {p} AND m.article_id < {p}))"
            params += [after[0], after[0], after[1]]
        return self.db.read(
            "SELECT m.article_id, m.published_us, a.data FROM story_members m JOIN articles a"
            f" ON a.id = m.article_id WHERE {where}"
            f" ORDER BY m.published_us DESC, m.article_id DESC LIMIT {p}",
            [*params, limit],
        )

    def stories_members(
        self, story_ids: Sequence[int], per_story: int
    ) -> dict[int, list[tuple[int, str]]]:
        """Each story's newest `per_story` articles, newest first: (id, public JSON)."""
        if not story_ids:
            return {}
        p = self.db.param
        found: dict[int, list[tuple[int, str]]] = {s: [] for s in story_ids}
        for story_id, article_id, data in self.db.read(
            "SELECT r.story_id, r.article_id, a.data FROM (SELECT story_id, article_id,"
            " row_number() OVER (PARTITION BY story_id ORDER BY published_us DESC,"
            " article_id DESC) AS n FROM story_members"
            f" WHERE story_id IN ({', '.join([p] * len(story_ids))})) AS r"
            f" JOIN articles a ON a.id = r.article_id WHERE r.n <= {p} ORDER BY r.story_id, r.n",
            [*story_ids, per_story],
        ):
            found[story_id].append((article_id, data))
        return found

    def stories_members_texts(self, story_ids: Sequence[int]) -> dict[int, list[Member]]:
        """Every article of these stories with what a filter tests, for grouping."""
        found: dict[int, list[Member]] = {s: [] for s in story_ids}
        ids = list(dict.fromkeys(story_ids))
        p = self.db.param
        for start in range(0, len(ids), IN_LIST):
            part = ids[start : start + IN_LIST]
            marks = ", ".join([p] * len(part))
            answers: dict[int, set[str]] = {}
            for article_id, key in self.db.read(
                "SELECT u.article_id, u.answer_key FROM upstream_answers u JOIN story_members m"
                f" ON m.article_id = u.article_id WHERE m.story_id IN ({marks})",
                part,
            ):
                answers.setdefault(article_id, set()).add(key)
            for row in self.db.read(
                "SELECT m.story_id, a.id, a.data, a.title, a.description, a.category, a.source,"
                " a.body, a.published_us, a.rank, a.image_url FROM story_members m JOIN articles a"
                f" ON a.id = m.article_id WHERE m.story_id IN ({marks})",
                part,
            ):
                found[row[0]].append(Member(*row[1:], frozenset(answers.get(row[1], ()))))
        return found

    def stories_sent(self, search_id: int, story_ids: Sequence[int]) -> dict[int, int]:
        """The size each of these stories had when last sent to a search grouped by story."""
        if not story_ids:
            return {}
        p = self.db.param
        return dict(
            self.db.read(
                f"SELECT story_id, sent_size FROM search_stories WHERE search_id = {p}"
                f" AND story_id IN ({', '.join([p] * len(story_ids))})",
                (search_id, *story_ids),
            )
        )
