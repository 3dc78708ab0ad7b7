"""The one query language of `q`, parsed once into a tree that every rendering reads.

Grammar (operators are upper case only; lower-case `and`, `or`, `not` are plain words):

- words, all required: `climate summit`; `AND` may be written out: `climate AND summit`
- either: `climate OR weather`; grouping: `(climate OR weather) paris`
- exclusion: `-football` or `NOT football`; also `-"world cup"`, `NOT (golf OR tennis)`
- phrase: `"climate summit"`; prefix: `clim*` (at least 3 letters or digits before `*`)
- title only: `title:climate`, `title:"climate summit"`, `title:clim*` (`title` is the only
  field; any other `name:value` is searched as the phrase `"name value"`)
- punctuation inside a word makes a phrase of its parts: `covid-19` is `"covid 19"`,
  `AT&T` is `"at t"`; matching ignores case and accents are kept (`café` is not `cafe`)

Precedence: `NOT`/`-` binds tightest, then `AND` (written or implied), then `OR`, so
`a b OR c` is `(a AND b) OR c`. Every part joined by `OR`, and the whole query, needs at least
one term that is not excluded: `-football` alone or `a OR -b` is refused.

Bounds: at most 500 characters, 20 terms, and parentheses nested 5 deep. A malformed query
raises QuerySyntaxError (a 400 whose detail starts with `q: ` and names the character).

"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from newsagg.errors import InvalidInput
from newsagg.query.tokens import tokens

MAX_LENGTH = 500
MAX_TERMS = 20
MAX_DEPTH = 5
MIN_PREFIX = 3

_KEYWORDS = {"AND": "and", "OR": "or", "NOT": "not"}
_FIELD = "title:"


class QuerySyntaxError(InvalidInput):
    """`q` is malformed; the message says what and at which character (1-based)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"q: {message}")


@dataclass(frozen=True, slots=True)
class Term:
    kind: Literal["word", "phrase", "prefix"]
    parts: tuple[str, ...]
    field: Literal["any", "title"] = "any"


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node = Term | And | Or | Not


# ---------------------------------------------------------------------------------------------
# Lexing


@dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: Literal["term", "and", "or", "not", "(", ")"]
    pos: int  # 1-based character position in the user's text, for error messages
    text: str
    term: Term | None = None


def _lex(text: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            lexemes.append(_Lexeme(char, i + 1, char))
            i += 1
        elif char == "-":
            _check_minus(text, i)
            lexemes.append(_Lexeme("not", i + 1, "'-'"))
            i += 1
        else:
            lexeme, i = _lex_term(text, i)
            lexemes.append(lexeme)
    _check_term_count(lexemes)
    return lexemes


def _check_minus(text: str, i: int) -> None:
    # `a - b` is more likely a typo than an exclusion, so the term must follow at once.
    following = text[i + 1 : i + 2]
    if not following or following.isspace() or following == ")":
        raise QuerySyntaxError(f"'-' at character {i + 1} needs a term right after it")


def _check_term_count(lexemes: list[_Lexeme]) -> None:
    terms = [lexeme for lexeme in lexemes if lexeme.kind == "term"]
    if len(terms) > MAX_TERMS:
        extra = terms[MAX_TERMS]
        raise QuerySyntaxError(
            f"more than {MAX_TERMS} terms (term {MAX_TERMS + 1} at character {extra.pos})"
        )


def _lex_term(text: str, start: int) -> tuple[_Lexeme, int]:
    """A keyword, a phrase, a word or a `title:` term starting at `start`; returns the end."""
    pos = start + 1
    field: Literal["any", "title"] = "any"
    i = start
    if text.startswith(_FIELD, i):
        field = "title"
        i += len(_FIELD)
        _check_field_target(text, i, pos)
    if text[i] == '"':
        close = text.find('"', i + 1)
        if close < 0:
            raise QuerySyntaxError(f"unclosed quote at character {i + 1}")
        term = _phrase_term(text[i + 1 : close], field, i + 1)
        return _Lexeme("term", pos, text[start : close + 1], term), close + 1
    end = _word_end(text, i)
    raw = text[i:end]
    if field == "any" and raw in _KEYWORDS:
        return _Lexeme(_KEYWORDS[raw], pos, raw), end
    return _Lexeme("term", pos, text[start:end], _word_term(raw, field, pos)), end


def _check_field_target(text: str, i: int, pos: int) -> None:
    following = text[i : i + 1]
    if following == "(":
        raise QuerySyntaxError(
            f"title: at character {pos} applies to one word or phrase, not to parentheses"
        )
    if not following or following.isspace() or following == ")":
        raise QuerySyntaxError(f"title: at character {pos} needs a word or phrase right after it")


def _word_end(text: str, i: int) -> int:
    # A quote inside a word is punctuation like any other: `5"` is the word 5.
    while i < len(text) and not text[i].isspace() and text[i] not in "()":
        i += 1
    return i


def _phrase_term(raw: str, field: Literal["any", "title"], pos: int) -> Term:
    parts = tuple(tokens(raw))
    if not parts:
        raise QuerySyntaxError(f"phrase at character {pos} has no letters or digits")
    return Term("word" if len(parts) == 1 else "phrase", parts, field)


def _word_term(raw: str, field: Literal["any", "title"], pos: int) -> Term:
    parts = tuple(tokens(raw))
    if not parts:
        raise QuerySyntaxError(f"'{raw}' at character {pos} has no letters or digits")
    if raw.endswith("*"):
        return _prefix_term(raw, parts, field, pos)
    return Term("word" if len(parts) == 1 else "phrase", parts, field)


def _prefix_term(
    raw: str, parts: tuple[str, ...], field: Literal["any", "title"], pos: int
) -> Term:
    stem = unicodedata.normalize("NFKC", raw[:-1]).casefold()
    # Engines expand one token only; `covid-1*` would need a phrase ending in a prefix.
    if parts != (stem,):
        raise QuerySyntaxError(
            f"prefix '{raw}' at character {pos} must be letters and digits only before *"
        )
    if len(stem) < MIN_PREFIX:
        # Short stems expand to most of the index and make every engine slow.
        raise QuerySyntaxError(
            f"prefix '{raw}' at character {pos} needs at least {MIN_PREFIX} characters before *"
        )
    return Term("prefix", parts, field)


# ---------------------------------------------------------------------------------------------
# Parsing


def parse(text: str) -> Node:
    """Parse `q` once into a tree that every engine's rendering starts from.

    Raises QuerySyntaxError for anything malformed or outside the bounds.
    """
    if len(text) > MAX_LENGTH:
        raise QuerySyntaxError(f"longer than {MAX_LENGTH} characters")
    return _Parser(_lex(text)).parse()


def _join(kind: type[And] | type[Or], children: list[Node]) -> Node:
    # `a (b c)` and `a b c` are one And: flat trees make renderings and cache keys canonical.
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def _excluded_only(node: Node) -> bool:
    return isinstance(node, Not) or (
        isinstance(node, And) and all(isinstance(child, Not) for child in node.children)
    )


class _Parser:
    """Recursive descent: or := and (OR and)*; and := unary (AND? unary)*;
    unary := (NOT | -) unary | term | '(' or ')'."""

    def __init__(self, lexemes: list[_Lexeme]) -> None:
        self.lexemes = lexemes
        self.i = 0
        self.depth = 0

    def peek(self) -> _Lexeme | None:
        return self.lexemes[self.i] if self.i < len(self.lexemes) else None

    def parse(self) -> Node:
        node = self.or_expr(None)
        extra = self.peek()
        if extra is not None:  # or_expr stops only at the end or at a ')'
            raise QuerySyntaxError(f"unmatched ')' at character {extra.pos}")
        return node

    def or_expr(self, context: _Lexeme | None) -> Node:
        operands = [self.and_expr(context)]
        while (lexeme := self.peek()) is not None and lexeme.kind == "or":
            self.i += 1
            operands.append(self.and_expr(lexeme))
        self.check_positive(operands)
        return _join(Or, [node for node, _ in operands])

    def check_positive(self, operands: list[tuple[Node, int]]) -> None:
        # An exclusion alone would ask for "everything except", which no engine answers well.
        for node, pos in operands:
            if not _excluded_only(node):
                continue
            if len(operands) == 1 and self.depth == 0:
                raise QuerySyntaxError("needs at least one term that is not excluded")
            raise QuerySyntaxError(
                f"the part at character {pos} needs at least one term that is not excluded"
            )

    def and_expr(self, context: _Lexeme | None) -> tuple[Node, int]:
        start = self.i
        children = [self.unary(context)]
        while (lexeme := self.peek()) is not None and lexeme.kind not in ("or", ")"):
            if lexeme.kind == "and":
                self.i += 1
                children.append(self.unary(lexeme))
            else:
                children.append(self.unary(None))
        return _join(And, children), self.lexemes[start].pos

    def unary(self, context: _Lexeme | None) -> Node:
        lexeme = self.peek()
        if lexeme is None or lexeme.kind in ("and", "or", ")"):
            raise self.missing_term(context)
        self.i += 1
        if lexeme.kind == "not":
            return self.exclusion(lexeme)
        if lexeme.kind == "(":
            return self.group(lexeme)
        assert lexeme.term is not None
        return lexeme.term

    def exclusion(self, operator: _Lexeme) -> Node:
        start = self.i
        child = self.unary(operator)
        # `--a` would mean `a` through a double negation no engine renders the same way.
        if isinstance(child, Not):
            raise QuerySyntaxError(
                f"the part at character {self.lexemes[start].pos} needs at least one term "
                "that is not excluded"
            )
        return Not(child)

    def group(self, opening: _Lexeme) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(
                f"parentheses nested deeper than {MAX_DEPTH} at character {opening.pos}"
            )
        node = self.or_expr(opening)
        if self.peek() is None:
            raise QuerySyntaxError(f"unclosed '(' at character {opening.pos}")
        self.i += 1  # the ')' that or_expr stopped at
        self.depth -= 1
        return node

    def missing_term(self, context: _Lexeme | None) -> QuerySyntaxError:
        """The error for a term that should come next but does not, worded for its context."""
        lexeme = self.peek()
        if context is not None and context.kind in ("and", "or"):
            return QuerySyntaxError(
                f"{context.text} at character {context.pos} needs a term on each side"
            )
        if context is not None and context.kind == "not":
            return QuerySyntaxError(
                f"{context.text} at character {context.pos} needs a term after it"
            )
        if lexeme is not None and lexeme.kind in ("and", "or"):
            return QuerySyntaxError(
                f"{lexeme.text} at character {lexeme.pos} needs a term on each side"
            )
        if context is not None:  # an opening parenthesis
            if lexeme is None:
                return QuerySyntaxError(f"unclosed '(' at character {context.pos}")
            return QuerySyntaxError(f"empty parentheses at character {context.pos}")
        if lexeme is None:
            return QuerySyntaxError("is empty")
        return QuerySyntaxError(f"unmatched ')' at character {lexeme.pos}")


# ---------------------------------------------------------------------------------------------
# Back to text


def wrap(node: Node, text: str) -> str:
    """Parenthesise a rendered And/Or so it can sit inside any operator of any engine."""
    return f"({text})" if isinstance(node, And | Or) else text


def describe(node: Node) -> str:
    """A canonical text of the tree for logs and cache keys; parse(describe(t)) == t."""
    if isinstance(node, Term):
        text = {
            "word": node.parts[0],
            "phrase": '"' + " ".join(node.parts) + '"',
            "prefix": node.parts[0] + "*",
        }[node.kind]
        return _FIELD + text if node.field == "title" else text
    if isinstance(node, Not):
        return "NOT " + wrap(node.child, describe(node.child))
    operator = " AND " if isinstance(node, And) else " OR "
    return operator.join(wrap(child, describe(child)) for child in node.children)
