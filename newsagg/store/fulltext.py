"""The archive's full-text index on each engine, and the query language as its match:
SQLite FTS5 columns and MATCH expressions, PostgreSQL tsvector and tsquery texts, and the
word pairs PostgreSQL narrows phrases with. Beside the archive's SQL that runs them.

Both index the same terms (newsagg.query.analysis): each field's stems, where words and
phrases are looked for, the words as written, where prefixes are, and the keys of the
queries an upstream answered with the article (newsagg.query.upstream.answer_key).
- SQLite: a contentless FTS5 table, a column per kind of term (FTS5_COLUMNS).
- PostgreSQL: one tsvector. Stems carry their positions and a label per field (title A,
  description B, body C); the words as written are lexemes marked with RAW ('_'), placed
  past every stem (label A for the title's, B for the others'), so no phrase and no word
  pair reaches them; answered queries are lexemes marked with ANSWER ('~'), without
  positions (ts_rank counts them as label D, weighed 0). Tokens hold letters and digits
  only, so no stem is ever mistaken for a marked lexeme.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from newsagg.query.analysis import Document
from newsagg.query.syntax import And, Node, Not, Or, Term, wrap

FTS5_COLUMNS = ("title", "description", "body", "title_words", "text_words", "answers")
_FTS5_FIELDS = {"any": "{title description body}", "title": "title"}
_FTS5_WORDS = {"any": "{title_words text_words}", "title": "title_words"}
RAW = "_"
ANSWER = "~"
# Word positions: stems from 1 on (at most 3 fields of MAX_FIELD_TOKENS: under 16,000), the
# words as written past them (16,383 is the last position a tsvector holds).
_TITLE_WORDS_POSITION = 16_383
_TEXT_WORDS_POSITION = 16_381
_MAX_POSITIONS = 255  # a tsvector keeps at most 256 positions of a lexeme
_TEXT_LABELS = ("B", "C")  # the description, the body


def fts5_row(document: Document, answers: list[str]) -> tuple[str, ...]:
    """SQLite: an article's values for FTS5_COLUMNS."""
    return (
        " ".join(document.title),
        " ".join(document.description),
        " ".join(document.body),
        " ".join(document.title_words),
        " ".join(document.text_words),
        " ".join(answers),
    )


def tsvector_text(document: Document, answers: list[str]) -> str:
    """PostgreSQL: an article's tsvector, as the text `::tsvector` reads (no parser, no
    dictionary: the lexemes are exactly these)."""
    positions: dict[str, list[str]] = defaultdict(list)
    position = 0
    for label, stems in zip(
        "A" + "".join(_TEXT_LABELS),
        (document.title, document.description, document.body),
        strict=True,
    ):
        for stem in stems:
            position += 1
            if len(positions[stem]) < _MAX_POSITIONS:
                positions[stem].append(f"{position}{label}")
    for word in document.title_words:
        positions[RAW + word].append(f"{_TITLE_WORDS_POSITION}A")
    for word in document.text_words:
        positions[RAW + word].append(f"{_TEXT_WORDS_POSITION}B")
    lexemes = [f"{_ts_lexeme(lexeme)}:{','.join(at)}" for lexeme, at in positions.items()]
    lexemes.extend(_ts_lexeme(ANSWER + key) for key in answers)
    return " ".join(lexemes)


def fts5_match(node: Node, answer: str | None) -> str:
    """The SQLite FTS5 MATCH expression of an analysed query (Analyzer.query), and of the
    articles an upstream answered it with (`answer`: its key, None when none count)."""
    text = to_fts5(node)
    return text if answer is None else f"({text}) OR answers : {_fts_string(answer)}"


def to_fts5(node: Node) -> str:
    """The SQLite FTS5 MATCH expression of an analysed query.

    Every token is double-quoted, so user text never reaches FTS5 as syntax. FTS5's NOT is
    binary (and left-associative), so `a b -c -d` becomes `("a" AND "b") NOT "c" NOT "d"`.
    """
    if isinstance(node, Term):
        if node.kind == "prefix":
            return f"{_FTS5_WORDS[node.field]} : {_fts_string(node.parts[0])}*"
        return f"{_FTS5_FIELDS[node.field]} : {_fts_string(' '.join(node.parts))}"
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


def tsquery_text(node: Node, answer: str | None) -> str:
    """The PostgreSQL tsquery (as text `::tsquery` reads) of an analysed query, and of the
    articles an upstream answered it with (`answer`: its key, None when none count)."""
    text = to_tsquery(node)
    return text if answer is None else f"({text}) | {answer_tsquery(answer)}"


def answer_tsquery(answer: str) -> str:
    """PostgreSQL: the tsquery of the articles an upstream answered the query of `answer`
    with."""
    return _ts_lexeme(ANSWER + answer)


def to_tsquery(node: Node) -> str:
    """The PostgreSQL tsquery of an analysed query, against `tsvector_text`'s vector."""
    if isinstance(node, Term):
        return _ts_term(node)
    if isinstance(node, Not):
        return "!" + wrap(node.child, to_tsquery(node.child))
    operator = " & " if isinstance(node, And) else " | "
    return operator.join(wrap(child, to_tsquery(child)) for child in node.children)


def _ts_term(term: Term) -> str:
    weight = "A" if term.field == "title" else ""
    if term.kind == "prefix":
        return f"{_ts_lexeme(RAW + term.parts[0])}:*{weight}"
    if term.kind == "word":
        return _ts_lexeme(term.parts[0]) + (f":{weight}" if weight else "")
    # The fields' positions follow each other in one tsvector, so a phrase is held to one
    # field: unrestricted, "beta gamma" would match the title "alpha beta" followed by the
    # description "gamma delta" (FTS5 keeps its columns apart).
    phrases = [
        "(" + " <-> ".join(f"{_ts_lexeme(part)}:{field}" for part in term.parts) + ")"
        for field in ((weight,) if weight else ("A", *_TEXT_LABELS))
    ]
    return phrases[0] if len(phrases) == 1 else "(" + " | ".join(phrases) + ")"


def to_pairs(node: Node) -> str | None:
    """PostgreSQL: a tsquery over an article's word pairs (adjacent words of one field, as
    migration 9 indexes them: 'A:climat summit' in the title, 'B:…' in the description, 'C:…'
    in the body) that every article matching `node` satisfies, or None when the query holds
    no phrase that must be present. It only narrows: `search @@` still decides.

    GIN keeps no positions, so without it a phrase of two frequent words rechecked every
    article holding both (57,000 of a million for "now now", which 124 hold: 250 ms)."""
    if isinstance(node, Term):
        if node.kind != "phrase":
            return None
        fields = ("A",) if node.field == "title" else ("A", *_TEXT_LABELS)
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
