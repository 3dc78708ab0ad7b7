"""The query language in each upstream's own syntax: the texts to ask it for a parsed `q`.

Upstream renderings may only broaden: the archive filters exactly afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

from newsagg.query.syntax import Node, Not, Or, Term, describe, wrap
from providers.base import ProviderName, Query

NEWSAPI_MAX_LENGTH = 500
HACKERNEWS_MAX_QUERIES = 4

# Upstreams cannot express a prefix or a title restriction. Their query may only be broader
# than the tree (the archive filters exactly afterwards), so such a term is dropped: None
# below means "no constraint". Broadening an excluded part would narrow the result, so a
# Not whose part is not exactly expressible is dropped whole.


def to_newsapi(node: Node) -> str | None:
    """NewsAPI `q` (quoted words and phrases, AND/OR/NOT, parentheses), or None to ask
    without a query when nothing positive survives or the text passes NewsAPI's 500 chars."""
    text = _boolean(node)
    return text if text is not None and len(text) <= NEWSAPI_MAX_LENGTH else None


def to_guardian(node: Node) -> str | None:
    """The Guardian's `q` (same shape as NewsAPI's), or None to ask without a query."""
    return _boolean(node)


def _boolean(node: Node) -> str | None:
    if isinstance(node, Term):
        return None if node.kind == "prefix" else '"' + " ".join(node.parts) + '"'
    if isinstance(node, Not):
        child = _boolean(node.child) if _exact(node.child) else None
        return None if child is None else "NOT " + wrap(node.child, child)
    rendered = [(child, _boolean(child)) for child in node.children]
    if isinstance(node, Or):
        if any(text is None for _, text in rendered):
            return None
        return " OR ".join(wrap(child, text) for child, text in rendered if text is not None)
    # Positive terms first: a query opening with NOT reads as "everything except" upstream.
    kept = sorted(
        ((child, text) for child, text in rendered if text is not None),
        key=lambda pair: isinstance(pair[0], Not),
    )
    if not kept or isinstance(kept[0][0], Not):
        return None
    return " AND ".join(wrap(child, text) for child, text in kept)


def _exact(node: Node) -> bool:
    """Whether an upstream can express the node without broadening it."""
    if isinstance(node, Term):
        return node.kind != "prefix" and node.field == "any"
    if isinstance(node, Not):
        return _exact(node.child)
    return all(_exact(child) for child in node.children)


# The upstreams whose answer to a query asked exactly counts as matches (answer_key). Not
# Hacker News: its search forgives typos and completes the last word as a prefix, so
# what it answers may hold none of the words asked.
ANSWERING: frozenset[ProviderName] = frozenset({"newsapi", "guardian"})


def answer_key(node: Node | None) -> str | None:
    """The key of a query an upstream can be asked exactly (no prefix, no `title:`),
    under which the articles it answers with count as matches of it for as long as the
    archive keeps them; None for any other. A hash of the canonical text: every instance
    and every provider asked the same query use the same key."""
    if node is None or not _exact(node):
        return None
    return hashlib.sha256(describe(node).encode()).hexdigest()[:20]


def counted_answer(name: ProviderName, node: Node | None) -> str | None:
    """The key under which `name`'s answer to `node` counts as matches of it (answer_key),
    or None where it does not: an upstream that judges by rules of its own, a query it
    cannot be asked exactly."""
    if node is None or name not in ANSWERING:
        return None
    # NewsAPI past its 500 characters is asked without a query.
    asked_exactly = UPSTREAM_QUERIES[name](node) == [_boolean(node)]
    return answer_key(node) if asked_exactly else None


def to_hackernews(node: Node) -> list[str | None]:
    """HN Algolia queries (advancedSyntax) whose union covers the tree.

    Algolia has no OR and no parentheses, only required words, `"phrases"` and `-exclusions`,
    so the tree is expanded into disjunctive normal form: one query per conjunct. More than
    HACKERNEWS_MAX_QUERIES conjuncts, or one without a positive term, gives `[None]`: a single
    query without text (the latest stories), the broadest answer.
    """
    try:
        conjuncts = _dnf(node)
    except _TooMany:
        return [None]
    if any(all(literal.startswith("-") for literal in conjunct) for conjunct in conjuncts):
        return [None]
    return [" ".join(conjunct) for conjunct in conjuncts]


class _TooMany(Exception):
    """The expansion passed HACKERNEWS_MAX_QUERIES conjuncts."""


def _dnf(node: Node) -> list[tuple[str, ...]]:
    """The node's minimal conjuncts, expanded bottom-up and given up on (`_TooMany`) as soon
    as any part needs more than the limit: a query of 20 terms in OR groups would otherwise
    expand into thousands of conjuncts first. Giving up on a part whose conjuncts a later
    AND would have absorbed only asks more broadly, which the archive's filter corrects."""
    if isinstance(node, Term):
        return [()] if node.kind == "prefix" else [(_hn_term(node),)]
    if isinstance(node, Not):
        # Algolia excludes single words and phrases only; anything else is dropped (broader).
        child = node.child
        plain = isinstance(child, Term) and _exact(child)
        return [("-" + _hn_term(child),)] if plain else [()]
    if isinstance(node, Or):
        return _bounded([conjunct for child in node.children for conjunct in _dnf(child)])
    combined: list[tuple[str, ...]] = [()]
    for child in node.children:
        right_side = _dnf(child)
        combined = _bounded(
            [tuple(dict.fromkeys(left + right)) for left in combined for right in right_side]
        )
    return combined


def _hn_term(term: Term) -> str:
    # Tokens are lower-case letters and digits: only phrases need quotes.
    return term.parts[0] if term.kind == "word" else '"' + " ".join(term.parts) + '"'


def _bounded(conjuncts: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The conjuncts without duplicates and without those a smaller one already covers
    (`a b` under `a`); `_TooMany` past the limit. At most (limit x limit) come in."""
    unique = list(dict.fromkeys(conjuncts))
    sets = [frozenset(conjunct) for conjunct in unique]
    minimal = [
        conjunct
        for conjunct, own in zip(unique, sets, strict=True)
        if not any(other < own for other in sets)
    ]
    if len(minimal) > HACKERNEWS_MAX_QUERIES:
        raise _TooMany
    return minimal


# Each upstream's rendering of a parsed q: the texts to ask it (None: no text at all).
UPSTREAM_QUERIES: dict[ProviderName, Callable[[Node], list[str | None]]] = {
    "newsapi": lambda node: [to_newsapi(node)],
    "guardian": lambda node: [to_guardian(node)],
    "hackernews": to_hackernews,
}


def upstream_queries(name: ProviderName, request_query: Query, match: Node | None) -> list[Query]:
    """The queries to send `name` for a request: its q in that upstream's own syntax, as
    broad as needed for the archive to find every match (what an upstream cannot express
    is asked in parts or left to the archive)."""
    if match is None:
        return [request_query]
    return [replace(request_query, q=text) for text in UPSTREAM_QUERIES[name](match)]
