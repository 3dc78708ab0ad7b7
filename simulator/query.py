"""The upstreams' query languages, as the simulator understands them.

Written here, not imported from newsagg: the simulator stands for foreign services, so it
stays an independent check of how newsagg renders its own query language for each.

A boolean q (NewsAPI's, the Guardian's) parses to a tree; the tree compiles to a matcher
over a document, and reduces to a canonical form under which two spellings of one query
(`a b` and `"a" AND "b"`, `+a -b` and `a AND NOT b`) are equal: what a replayed recording
is keyed on, since newsagg asks in its own rendering of the q the recording was made with.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

Document = list[list[str]]  # each searched field's word tokens
Matcher = Callable[[Document], bool]
Lexeme = tuple[str, Any]  # (kind, value): "(" / ")" / "op" / "sign" / "term"
# ("term", tokens) | ("not", tree) | ("and", trees) | ("or", trees); ("term", ()) is no
# constraint at all.
Tree = tuple[Any, ...]

_WORD = re.compile(r"[^\W_]+")
_TAG = re.compile(r"<[^>]*>")
_LEXEME = re.compile(r'\s*(?:(?P<paren>[()])|"(?P<phrase>[^"]*)"|(?P<quote>")|(?P<word>[^\s()"]+))')
_ALGOLIA_TERM = re.compile(r'(?P<sign>-?)(?:"(?P<phrase>[^"]*)"?|(?P<word>\S+))')
_OR, _AND, _NOT, _CLOSE = ("op", "OR"), ("op", "AND"), ("op", "NOT"), (")", None)
ANYTHING: Tree = ("term", ())


class QuerySyntaxError(ValueError):
    """A q the upstream refuses: unbalanced quotes or parentheses, an operator lacking a term."""


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def document(*texts: str | None) -> Document:
    """The searched fields as word tokens, HTML stripped and entities decoded."""
    return [tokens(html.unescape(_TAG.sub(" ", text))) for text in texts if text]


def _contains(doc: Document, phrase: tuple[str, ...] | list[str]) -> bool:
    """Whether one field holds these tokens in a row: a word with punctuation inside
    (covid-19, AT&T) is the phrase of its tokens; phrases never span two fields."""
    size = len(phrase)
    wanted = list(phrase)
    return any(field[i : i + size] == wanted for field in doc for i in range(len(field) - size + 1))


def _lex(q: str, signs: bool) -> list[Lexeme]:
    """Split a boolean q; with `signs` (NewsAPI), a leading + or - is an operator."""
    lexemes: list[Lexeme] = []
    for match in _LEXEME.finditer(q.rstrip()):
        if match["quote"]:
            raise QuerySyntaxError("unbalanced quotes")
        if match["paren"]:
            lexemes.append((match["paren"], None))
        elif match["phrase"] is not None:
            lexemes.append(("term", tuple(tokens(match["phrase"]))))
        else:
            word = match["word"]
            if signs and word[0] in "+-":
                lexemes.append(("sign", word[0]))
                word = word[1:]
            if word in ("AND", "OR", "NOT"):
                lexemes.append(("op", word))
            elif word:
                lexemes.append(("term", tuple(tokens(word))))
    return lexemes


class _BooleanParser:
    """Recursive descent over q := or; or := and (OR and)*; and := unary ([AND] unary)*;
    unary := NOT unary | - unary | + unary | ( or ) | term. NOT binds tightest, then AND."""

    def __init__(self, lexemes: list[Lexeme]) -> None:
        self._lexemes = lexemes
        self._at = 0

    def parse(self) -> Tree:
        if not self._lexemes:
            return ANYTHING
        tree = self._disjunction()
        if self._peek() is not None:
            raise QuerySyntaxError("unbalanced parentheses")
        return tree

    def _peek(self) -> Lexeme | None:
        return self._lexemes[self._at] if self._at < len(self._lexemes) else None

    def _take(self) -> Lexeme | None:
        lexeme = self._peek()
        self._at += 1
        return lexeme

    def _disjunction(self) -> Tree:
        terms = [self._conjunction()]
        while self._peek() == _OR:
            self._take()
            terms.append(self._conjunction())
        return terms[0] if len(terms) == 1 else ("or", tuple(terms))

    def _conjunction(self) -> Tree:
        terms = [self._unary()]
        while (lexeme := self._peek()) is not None and lexeme not in (_OR, _CLOSE):
            if lexeme == _AND:
                self._take()
            terms.append(self._unary())
        return terms[0] if len(terms) == 1 else ("and", tuple(terms))

    def _unary(self) -> Tree:
        lexeme = self._take()
        if lexeme is None:
            raise QuerySyntaxError("an operator lacks its term")
        if lexeme in (_NOT, ("sign", "-")):
            return ("not", self._unary())
        if lexeme == ("sign", "+"):
            return self._unary()
        if lexeme == ("(", None):
            inner = self._disjunction()
            if self._take() != _CLOSE:
                raise QuerySyntaxError("unbalanced parentheses")
            return inner
        if lexeme[0] == "term":
            return ("term", lexeme[1])
        raise QuerySyntaxError(f"unexpected {lexeme[1] or lexeme[0]!r}")


def parse_boolean(q: str, *, signs: bool) -> Tree:
    """NewsAPI's (signs=True: also +must, -mustnot) or the Guardian's q as a tree."""
    return _BooleanParser(_lex(q, signs)).parse()


def compile_tree(tree: Tree) -> Matcher:
    kind = tree[0]
    if kind == "term":
        phrase = tree[1]
        if not phrase:  # nothing but punctuation: no constraint, as search engines drop it
            return lambda _doc: True
        return lambda doc: _contains(doc, phrase)
    if kind == "not":
        negated = compile_tree(tree[1])
        return lambda doc: not negated(doc)
    parts = [compile_tree(child) for child in tree[1]]
    if kind == "and":
        return lambda doc: all(part(doc) for part in parts)
    return lambda doc: any(part(doc) for part in parts)


def boolean_query(q: str, *, signs: bool) -> Matcher:
    """NewsAPI's or the Guardian's q as a matcher."""
    return compile_tree(parse_boolean(q, signs=signs))


def canonical(tree: Tree) -> Tree:
    """One form for every spelling of a query: nested ANDs and ORs flattened, their parts
    sorted and deduplicated, a part that constrains nothing dropped from an AND."""
    kind = tree[0]
    if kind == "term":
        return tree
    if kind == "not":
        return ("not", canonical(tree[1]))
    parts: set[Tree] = set()
    for child in (canonical(child) for child in tree[1]):
        parts.update(child[1] if child[0] == kind else (child,))
    if kind == "and":
        parts.discard(ANYTHING)
    ordered = tuple(sorted(parts, key=repr))
    if not ordered:
        return ANYTHING
    return ordered[0] if len(ordered) == 1 else (kind, ordered)


def algolia_query(q: str) -> Matcher:
    """Algolia's advancedSyntax: every word required, "phrase", -word excludes. No OR (it is
    a word like any other) and no parentheses (punctuation); it never refuses a query."""
    required: list[list[str]] = []
    excluded: list[list[str]] = []
    for match in _ALGOLIA_TERM.finditer(q):
        phrase = tokens(match["phrase"] if match["phrase"] is not None else match["word"])
        if phrase:
            (excluded if match["sign"] else required).append(phrase)
    return lambda doc: (
        all(_contains(doc, p) for p in required) and not any(_contains(doc, p) for p in excluded)
    )
