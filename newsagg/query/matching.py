"""The meaning of the query language: whether an article matches, evaluated in Python.

Every engine's rendering is tested against it, and the push matcher tests new articles with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsagg.query.syntax import And, Node, Not, Term
from newsagg.query.tokens import tokens


@dataclass(frozen=True, slots=True)
class Field:
    """One field's tokens in order (for phrases and prefixes) and as a set (for words)."""

    tokens: list[str]
    words: frozenset[str]


Fields = tuple[Field, Field]  # an article's title and description


def fields_of(title: str | None, body: str | None) -> Fields:
    """An article's tokens, to test it against many queries (`matches_fields`)."""
    return _field(title), _field(body)


def _field(text: str | None) -> Field:
    found = tokens(text or "")
    return Field(found, frozenset(found))


def matches(node: Node, title: str | None, body: str | None) -> bool:
    """Whether an article matches, evaluated in Python over the shared tokens.

    This is the meaning of the language: every engine's rendering is tested against it.
    """
    return _eval(node, fields_of(title, body))


def matches_fields(node: Node, fields: Fields) -> bool:
    """`matches` for an article tokenised once by `fields_of`."""
    return _eval(node, fields)


def _eval(node: Node, fields: Fields) -> bool:
    if isinstance(node, Term):
        searched = fields[:1] if node.field == "title" else fields
        return any(_term_in(node, field) for field in searched)
    if isinstance(node, Not):
        return not _eval(node.child, fields)
    if isinstance(node, And):
        return all(_eval(child, fields) for child in node.children)
    return any(_eval(child, fields) for child in node.children)


def _term_in(term: Term, field: Field) -> bool:
    if term.kind == "prefix":
        return any(token.startswith(term.parts[0]) for token in field.tokens)
    # A phrase is consecutive tokens within one field; a word is a phrase of one. The set
    # answers a word at once, and rules out most phrases before they are looked for.
    if term.parts[0] not in field.words:
        return False
    size, found = len(term.parts), field.tokens
    return size == 1 or any(
        tuple(found[i : i + size]) == term.parts for i in range(len(found) - size + 1)
    )
