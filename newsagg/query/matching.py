"""The meaning of the query language: whether an article matches, evaluated in Python.

Every engine's rendering is tested against it, and the push matcher tests new articles with
it. It reads an analysed query (`Analyzer.query`: words and phrases as stems) against an
analysed article (`Analyzer.document`): a word or phrase matches consecutive stems within
one field (title, description or body; `title:` only the title), a prefix the beginning of
a word as written. An article an upstream returned for the query, asked exactly, matches
too (`answered`).
"""

from __future__ import annotations

from dataclasses import dataclass

from newsagg.query.analysis import Document
from newsagg.query.syntax import And, Node, Not, Term


@dataclass(frozen=True, slots=True)
class Field:
    """One field's stems in order (for phrases) and as a set (for words)."""

    tokens: tuple[str, ...]
    words: frozenset[str]


@dataclass(frozen=True, slots=True)
class Fields:
    """An article's terms, ready to test against many queries (`matches_fields`)."""

    title: Field
    texts: tuple[Field, ...]  # the description and the body
    title_words: tuple[str, ...]
    text_words: tuple[str, ...]


def fields_of(document: Document) -> Fields:
    return Fields(
        _field(document.title),
        (_field(document.description), _field(document.body)),
        document.title_words,
        document.text_words,
    )


def _field(stems: tuple[str, ...]) -> Field:
    return Field(stems, frozenset(stems))


def matches(node: Node, document: Document, answered: bool = False) -> bool:
    """Whether an article matches an analysed query: the meaning of the language, which
    every engine's rendering is tested against. `answered`: an upstream returned the
    article for this very query."""
    return answered or _eval(node, fields_of(document))


def matches_fields(node: Node, fields: Fields) -> bool:
    """`matches` (without upstream answers) for an article analysed once by `fields_of`."""
    return _eval(node, fields)


def _eval(node: Node, fields: Fields) -> bool:
    if isinstance(node, Term):
        return _term_in(node, fields)
    if isinstance(node, Not):
        return not _eval(node.child, fields)
    if isinstance(node, And):
        return all(_eval(child, fields) for child in node.children)
    return any(_eval(child, fields) for child in node.children)


def _term_in(term: Term, fields: Fields) -> bool:
    if term.kind == "prefix":
        words = (
            fields.title_words
            if term.field == "title"
            else (*fields.title_words, *fields.text_words)
        )
        return any(word.startswith(term.parts[0]) for word in words)
    searched = (fields.title,) if term.field == "title" else (fields.title, *fields.texts)
    return any(_phrase_in(term.parts, field) for field in searched)


def _phrase_in(parts: tuple[str, ...], field: Field) -> bool:
    # A phrase is consecutive stems within one field; a word is a phrase of one. The set
    # answers a word at once, and rules out most phrases before they are looked for.
    if parts[0] not in field.words:
        return False
    size, found = len(parts), field.tokens
    return size == 1 or any(found[i : i + size] == parts for i in range(len(found) - size + 1))
