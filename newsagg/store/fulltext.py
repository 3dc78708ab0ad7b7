"""The query language as each database engine's full-text match: SQLite FTS5, PostgreSQL
tsquery, and the word pairs PostgreSQL narrows phrases with. Beside the archive's SQL that
runs them.
"""

from __future__ import annotations

import itertools

from newsagg.query.syntax import And, Node, Not, Or, Term, wrap


def to_fts5(node: Node) -> str:
    """The SQLite FTS5 MATCH expression over columns `title` and `body`.

    Every token is double-quoted, so user text never reaches FTS5 as syntax. FTS5's NOT is
    binary (and left-associative), so `a b -c -d` becomes `("a" AND "b") NOT "c" NOT "d"`.
    """
    if isinstance(node, Term):
        phrase = _fts_string(" ".join(node.parts)) + ("*" if node.kind == "prefix" else "")
        return f"title : {phrase}" if node.field == "title" else phrase
    if isinstance(node, Not):
        raise ValueError("FTS5 cannot exclude without a positive term; parse() never builds this")
    if isinstance(node, Or):
        return " OR ".join(wrap(child, to_fts5(child)) for child in node.children)
    positive = [child for child in node.children if not isinstance(child, Not)]
    excluded = [child.child for child in node.children if isinstance(child, Not)]
    text = " AND ".join(wrap(child, to_fts5(child)) for child in positive)
    if excluded:
        text = f"({text})" + "".join(f" NOT {wrap(child, to_fts5(child))}" for child in excluded)
    return text


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def to_tsquery(node: Node) -> str:
    """The input of PostgreSQL `to_tsquery('simple', %s)`.

    It runs against `setweight(to_tsvector('simple', index_text(title)), 'A') ||
    setweight(to_tsvector('simple', index_text(description)), 'B')`, so `title:` is weight A.
    """
    if isinstance(node, Term):
        return _ts_term(node)
    if isinstance(node, Not):
        return "!" + wrap(node.child, to_tsquery(node.child))
    operator = " & " if isinstance(node, And) else " | "
    return operator.join(wrap(child, to_tsquery(child)) for child in node.children)


def _ts_term(term: Term) -> str:
    weight = "A" if term.field == "title" else ""
    if term.kind == "prefix":
        return f"{_ts_lexeme(term.parts[0])}:*{weight}"
    if term.kind == "word":
        return _ts_lexeme(term.parts[0]) + (f":{weight}" if weight else "")
    # The description's positions follow the title's in one tsvector, so a phrase is held
    # to one field: unrestricted, "beta gamma" would match the title "alpha beta" followed
    # by the description "gamma delta" (FTS5 keeps its columns apart).
    phrases = [
        "(" + " <-> ".join(f"{_ts_lexeme(part)}:{field}" for part in term.parts) + ")"
        for field in ((weight,) if weight else ("A", "B"))
    ]
    return phrases[0] if len(phrases) == 1 else "(" + " | ".join(phrases) + ")"


def to_pairs(node: Node) -> str | None:
    """PostgreSQL: a tsquery over an article's word pairs (adjacent words of one field, as
    migration 9 indexes them: 'A:climate summit' in the title, 'B:…' in the description)
    that every article matching `node` satisfies, or None when the query holds no phrase
    that must be present. It only narrows: `search @@` still decides.

    GIN keeps no positions, so without it a phrase of two frequent words rechecked every
    article holding both (57,000 of a million for "now now", which 124 hold: 250 ms)."""
    if isinstance(node, Term):
        if node.kind != "phrase":
            return None
        fields = ("A",) if node.field == "title" else ("A", "B")
        pairs = [
            "(" + " | ".join(_ts_lexeme(f"{field}:{a} {b}") for field in fields) + ")"
            for a, b in itertools.pairwise(node.parts)
        ]
        return " & ".join(pairs)
    if isinstance(node, Not):
        return None
    parts = [to_pairs(child) for child in node.children]
    if isinstance(node, Or):  # implied only if every alternative implies something
        return None if None in parts else " | ".join(f"({part})" for part in parts)
    required = [f"({part})" for part in parts if part is not None]
    return " & ".join(required) or None


def _ts_lexeme(token: str) -> str:
    escaped = token.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"
