"""GET /articles?group=story: one row per story.

A story appears once, where its newest article passing the request's filters would
appear in the ungrouped feed; the row shows its best such article (the provider nearest
the source, then the most complete, then the earliest: `Member.lead_key`) and
`also_reported_by`, the story's other articles (at most ALSO_SHOWN; the story's `size`
counts them all). Whether a story's other articles pass the filters is decided with the
query language's reference semantics (newsagg.query.matching), which every engine is
tested to agree with: a story already shown on an earlier page is known by a newer
passing article, and skipped, with nothing in the cursor but the usual position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from newsagg.articles import FeedItem, archived_json
from newsagg.query.analysis import Analyzer
from newsagg.query.matching import matches
from newsagg.query.syntax import Node
from newsagg.query.upstream import answer_key
from newsagg.store import Store
from newsagg.store.archive import ArchivedRow, ArchiveQuery, to_us
from newsagg.store.dialect import scans
from newsagg.store.story_reads import Member

ALSO_SHOWN = 20
SCAN_FACTOR = 3  # rows read a try, per story asked for


@dataclass(frozen=True, slots=True)
class Grouped:
    rows: list[ArchivedRow]  # where each story appears (one more than the page, if any)
    items: list[FeedItem]  # what each shows


class _Filter:
    """A request's filters, tested on one article in Python."""

    def __init__(self, query: ArchiveQuery, analyzer: Analyzer) -> None:
        self._query = query
        self._match: Node | None = None if query.match is None else analyzer.query(query.match)
        self._answer = None if query.match is None else answer_key(query.match)
        self._analyzer = analyzer
        self._from = None if query.published_from is None else to_us(query.published_from)
        self._to = None if query.published_to is None else to_us(query.published_to)

    def passes(self, member: Member) -> bool:
        q = self._query
        if q.category is not None and member.category != q.category:
            return False
        if q.sources and member.source not in q.sources:
            return False
        if self._from is not None and member.published_us < self._from:
            return False
        if self._to is not None and member.published_us > self._to:
            return False
        if self._match is None:
            return True
        document = self._analyzer.document(member.title, member.description, member.body)
        return matches(self._match, document, self._answer in member.answers)


@scans
def group_by_story(store: Store, query: ArchiveQuery, limit: int) -> Grouped:
    """`limit` stories (and one more, if any) from `query`'s rows, newest first."""
    passing = _Filter(query, store.analyzer)
    rows: list[ArchivedRow] = []
    items: list[FeedItem] = []
    search = replace(query, limit=SCAN_FACTOR * (limit + 1))
    while len(rows) <= limit:
        scanned = store.search(search)
        members = store.stories_members_texts(
            sorted({row.story.id for row in scanned if row.story is not None})
        )
        for row in scanned:
            if row.story is None:  # not placed yet: a story of its own
                rows.append(row)
                items.append(FeedItem.archived(row.id, row.data, None))
            else:
                shown = _shown(row, members[row.story.id], passing)
                if shown is not None:
                    rows.append(row)
                    items.append(shown)
            if len(rows) > limit:
                break
        if len(scanned) < search.limit:
            break
        last = scanned[-1]
        search = replace(search, after=(last.position, last.id))
    return Grouped(rows, items)


def _shown(row: ArchivedRow, members: list[Member], passing: _Filter) -> FeedItem | None:
    """What `row`'s story shows, if `row` is where it appears (its newest passing member).
    A row missing from its story's members (a merge between the two reads) shows itself."""
    if all(m.id != row.id for m in members):
        return FeedItem.archived(row.id, row.data, row.story)
    shown = [m for m in members if m.id == row.id or passing.passes(m)]
    newest = max(shown, key=lambda m: (m.published_us, m.id))
    if newest.id != row.id:
        return None
    best = min(shown, key=_lead)
    also = [
        {"id": m.id, "publisher": fields["publisher"], "source": fields["source"],
         "url": fields["url"]}
        for m in sorted(members, key=_lead)
        if m.id != best.id
        for fields in (json.loads(m.data),)
    ][:ALSO_SHOWN]  # fmt: skip
    body = archived_json(best.id, best.data, row.story)
    extra = json.dumps(also, separators=(",", ":")).encode()
    item = FeedItem.archived(best.id, best.data, row.story)
    return FeedItem(item.id, item.article, body[:-1] + b',"also_reported_by":' + extra + b"}")


def _lead(member: Member) -> tuple[int, int, int]:
    return member.lead_key
