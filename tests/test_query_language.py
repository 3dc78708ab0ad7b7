"""The query language of `q`: its parser, its Python meaning, and every engine's rendering.

FTS5 renderings run against a real in-memory SQLite FTS5 table and must return exactly the
rows `matches` accepts; upstream renderings are checked by tiny evaluators of each upstream's
syntax to return a superset of them.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Callable, Iterator

import pytest

from newsagg.errors import InvalidInput
from newsagg.query.analysis import Analyzer
from newsagg.query.matching import matches
from newsagg.query.syntax import And, Node, Not, Or, QuerySyntaxError, Term, describe, parse
from newsagg.query.tokens import tokens
from newsagg.query.upstream import to_guardian, to_hackernews, to_newsapi
from newsagg.store.fulltext import (
    FTS5_COLUMNS,
    fts5_match,
    fts5_row,
    to_fts5,
    to_pairs,
    to_tsquery,
    tsquery_text,
    tsvector_text,
)

ENGLISH = Analyzer()
LITERAL = Analyzer("none")

pytestmark = pytest.mark.timeout(30)


def word(token: str, field: str = "any") -> Term:
    return Term("word", (token,), field)  # type: ignore[arg-type]


# --- tokenizer ------------------------------------------------------------------------------


def test_tokens_normalise_case_width_and_split_on_punctuation():
    assert tokens("Café ZÜRICH covid-19 AT&T snake_case Straße \uff21\uff22\uff23 \ufb01ne") == [
        "café",
        "zürich",
        "covid",
        "19",
        "at",
        "t",
        "snake",
        "case",
        "strasse",
        "abc",
        "fine",
    ]


# --- parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("climate summit", "climate AND summit"),
        ("climate AND summit", "climate AND summit"),
        ("climate OR weather", "climate OR weather"),
        ("(climate OR weather) paris", "(climate OR weather) AND paris"),
        # AND binds tighter than OR, NOT tighter than AND
        ("a b OR c", "(a AND b) OR c"),
        ("a OR b c", "a OR (b AND c)"),
        ("a AND b OR c AND d", "(a AND b) OR (c AND d)"),
        ("NOT a b", "NOT a AND b"),
        ("b -a", "b AND NOT a"),
        ("b NOT a", "b AND NOT a"),
        ('b -"world cup"', 'b AND NOT "world cup"'),
        ("c NOT (a OR b)", "c AND NOT (a OR b)"),
        ("c -(a OR b)", "c AND NOT (a OR b)"),
        ("c -(a -b)", "c AND NOT (a AND NOT b)"),
        # lower-case operators are words
        ("not and or", "not AND and AND or"),
        ('"climate summit"', '"climate summit"'),
        ('"Climate"', "climate"),
        ("clim*", "clim*"),
        ("Zür*", "zür*"),
        ("title:climate", "title:climate"),
        ('title:"climate summit"', 'title:"climate summit"'),
        ("title:clim*", "title:clim*"),
        ("title:covid-19", 'title:"covid 19"'),
        ("foo:bar", '"foo bar"'),
        ("covid-19", '"covid 19"'),
        ("AT&T", '"at t"'),
        ('5"', "5"),
        ('screen"phone', '"screen phone"'),
        ("(((((a)))))", "a"),
        ("a (b c) (d OR (e OR f))", "a AND b AND c AND (d OR e OR f)"),
        ("(a OR b)(c)", "(a OR b) AND c"),
        ("NOT(a OR b)c", "NOT (a OR b) AND c"),
    ],
)
def test_parse_canonical_form(query: str, canonical: str):
    tree = parse(query)
    assert describe(tree) == canonical
    assert parse(describe(tree)) == tree


def test_parse_builds_flat_trees():
    assert parse("a (b c) OR (d OR e)") == Or(
        (
            And((word("a"), word("b"), word("c"))),
            *[
                word("d"),
                word("e"),
            ],
        )
    )
    assert parse("title:clim* -covid-19") == And(
        (Term("prefix", ("clim",), "title"), Not(Term("phrase", ("covid", "19"))))
    )
    assert parse("((a))") == word("a")


def test_bounds_are_inclusive():
    assert isinstance(parse(" ".join(f"w{i}" for i in range(20))), And)
    assert parse("a" * 500) == word("a" * 500)
    assert parse("(((((a) b) c) d) e)") == And(tuple(word(t) for t in "abcde"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "q: is empty"),
        ("   ", "q: is empty"),
        ("x" * 501, "q: longer than 500 characters"),
        (" ".join(f"w{i}" for i in range(21)), "q: more than 20 terms (term 21 at character 71)"),
        ("((((((a))))))", "q: parentheses nested deeper than 5 at character 6"),
        ('"climate summit', "q: unclosed quote at character 1"),
        ('a title:"b', "q: unclosed quote at character 9"),
        ("a (b", "q: unclosed '(' at character 3"),
        ("(", "q: unclosed '(' at character 1"),
        ("a) b", "q: unmatched ')' at character 2"),
        (")", "q: unmatched ')' at character 1"),
        ("(a OR b))", "q: unmatched ')' at character 9"),
        ("a ()", "q: empty parentheses at character 3"),
        ("OR a", "q: OR at character 1 needs a term on each side"),
        ("a OR", "q: OR at character 3 needs a term on each side"),
        ("a OR OR b", "q: OR at character 3 needs a term on each side"),
        ("(a OR)", "q: OR at character 4 needs a term on each side"),
        ("AND a", "q: AND at character 1 needs a term on each side"),
        ("a AND", "q: AND at character 3 needs a term on each side"),
        ("a AND OR b", "q: AND at character 3 needs a term on each side"),
        ("(AND a)", "q: AND at character 2 needs a term on each side"),
        ("a NOT", "q: NOT at character 3 needs a term after it"),
        ("a -OR b", "q: '-' at character 3 needs a term after it"),
        ("a -", "q: '-' at character 3 needs a term right after it"),
        ("a - b", "q: '-' at character 3 needs a term right after it"),
        ("(a -)", "q: '-' at character 4 needs a term right after it"),
        ("NOT a", "q: needs at least one term that is not excluded"),
        ("-a", "q: needs at least one term that is not excluded"),
        ("-a -b", "q: needs at least one term that is not excluded"),
        ("-(a OR b)", "q: needs at least one term that is not excluded"),
        ("--a b", "q: the part at character 2 needs at least one term that is not excluded"),
        ("a OR -b", "q: the part at character 6 needs at least one term that is not excluded"),
        ("(-a) b", "q: the part at character 2 needs at least one term that is not excluded"),
        (
            "a OR (b -c) OR NOT d -e",
            "q: the part at character 16 needs at least one term that is not excluded",
        ),
        ("cl*", "q: prefix 'cl*' at character 1 needs at least 3 characters before *"),
        ("a title:cl*", "q: prefix 'cl*' at character 3 needs at least 3 characters before *"),
        ("c-lim*", "q: prefix 'c-lim*' at character 1 must be letters and digits only before *"),
        ("clim**", "q: prefix 'clim**' at character 1 must be letters and digits only before *"),
        ("*", "q: '*' at character 1 has no letters or digits"),
        ("a &&&", "q: '&&&' at character 3 has no letters or digits"),
        ('""', "q: phrase at character 1 has no letters or digits"),
        ('title:"!?"', "q: phrase at character 7 has no letters or digits"),
        (
            "title:(a OR b)",
            "q: title: at character 1 applies to one word or phrase, not to parentheses",
        ),
        ("title: a", "q: title: at character 1 needs a word or phrase right after it"),
        ("a title:", "q: title: at character 3 needs a word or phrase right after it"),
    ],
)
def test_syntax_errors_say_what_and_where(query: str, message: str):
    with pytest.raises(QuerySyntaxError) as raised:
        parse(query)
    assert str(raised.value) == message
    assert raised.value.detail == message
    assert isinstance(raised.value, InvalidInput)


# --- reference semantics ----------------------------------------------------------------------


def means(
    q: str,
    title: str | None,
    description: str | None,
    body: str | None = None,
    analyzer: Analyzer = ENGLISH,
) -> bool:
    """Whether the article matches `q`, by the reference semantics."""
    return matches(analyzer.query(parse(q)), analyzer.document(title, description, body))


def test_matches_reads_fields_phrases_and_prefixes():
    assert means('"climate summit"', "Climate summit opens", None)
    assert not means('"climate summit"', "Summit: climate", None)
    # a phrase never spans the end of the title and the start of the description, nor the
    # end of the description and the start of the body
    assert not means('"climate summit"', "On climate", "Summit talks")
    assert not means('"climate summit"', None, "On climate", "Summit talks")
    assert means("title:climate", "Climate", "x")
    assert not means("title:climate", "x", "climate")
    assert not means("title:climate", "x", None, "climate")
    assert means("clim*", None, "Climbing")
    assert means("clim*", None, None, "Climbing")
    assert not means("title:clim*", None, "Climbing")
    assert not means("clim*", None, "acclimate")
    assert means("a -b", "a", None)
    assert not means("a -b", "a", "b")
    assert not means("a -b", "a", None, "b")


@pytest.mark.parametrize(
    ("q", "text"),
    [
        ("election", "Elections held"),
        ("elections", "The election"),
        ("economic", "Economics explained"),
        ("economics", "An economic view"),
        ("headline", "Headlines today"),
        ("headlines", "The headline"),
        ('"climate summit"', "Climate summits begin"),
        ('title:"running race"', "Runs race"),
    ],
)
def test_words_and_phrases_match_on_stems(q: str, text: str):
    if q.startswith("title:"):
        assert means(q, text, None)
        assert not means(q, None, text)
        assert not means(q, "Runner race", None)  # "runner" is no stem of "running"
        return
    assert means(q, text, None)
    assert means(q, None, None, text)  # in the body as well
    assert not means(q, text, None, analyzer=LITERAL)  # and only by stems


def test_a_prefix_matches_words_as_written_not_their_stems():
    assert means("happi*", "Happiness", None)
    assert not means("happi*", "Happy days", None)  # the stem of "happy" is "happi"
    assert means("happy*", "Happy days", None)
    assert means("runn*", "Running", None)  # whose stem is "run"


# --- SQLite FTS5 ------------------------------------------------------------------------------

ROWS: list[tuple[str | None, str | None]] = [
    ("Climate summit opens in Paris", "Leaders gather to discuss weather extremes."),
    ("Weather warning for Paris", "Storms expected; climate scientists comment."),
    ("Football: Paris wins the cup", "A climate of celebration after the league summit."),
    ("Summit on climate finance", "Bankers meet in Zürich."),
    ("Climatologists warn of heat", "New study on rising temperatures."),
    ("COVID-19 cases fall", "Health officials in Zürich report covid 19 data."),
    ("Covid vaccine update", "The 19 regions report."),
    ("AT&T announces new network", "The telecom giant said little."),
    ("Café culture in Vienna", "Coffee houses thrive."),
    ("Cafe prices rise", "Written without the accent."),
    ("Zürich bank merger", "Swiss regulators approve."),
    ("Zurich insurance results", "Written without the umlaut."),
    ("Battery breakthrough", "Drones fly longer with new battery chemistry."),
    ("Drone delivery starts", "Parcels by air."),
    ("Tennis open final", "Golf and football news later."),
    ("Golf major preview", "Players arrive."),
    ("Election results", "Climate was not on the ballot."),
    ("Python 3.12 released", "snake_case stays."),
    ('The 5" screen phone', "Phone makers ship 5 inch screens."),
    ("Summit climate talks stall", "No deal in Paris."),
    (None, "Body only: a climate summit mention."),
    ("Title only climate", None),
    ("Weather and football", "Rain stops play."),
    ("Straße closed in Berlin", "Road works."),
    ("Strasse reopened", "Traffic flows."),
    ("World Cup football final", "Paris celebrates the world cup."),
    ("Climbing season opens", "Everest permits issued."),
    ("Paris fashion week", "Designers show climate-friendly fabrics."),
    ("Not and or", "Lower-case operators are plain words."),
    ("Heatwave hits Europe", "Weather services warn."),
]

FTS5_QUERIES = [
    "climate",
    "climate summit",
    "climate AND summit",
    '"climate summit"',
    '"summit climate"',
    "climate OR weather",
    "(climate OR weather) paris",
    "climate summit OR weather paris",
    "climate -football",
    "climate NOT football",
    "paris NOT (football OR fashion)",
    "paris -(football OR fashion)",
    "paris -football -fashion",
    "paris -football -fashion -summit",
    'football -"world cup"',
    "clim*",
    "-climate clim*",
    "title:clim*",
    "title:climate",
    'title:"climate summit"',
    "title:climate -summit",
    "(title:climate OR title:weather) -paris",
    "covid-19",
    "covid -covid-19",
    "AT&T",
    "café",
    "Zürich",
    "zurich",
    "STRASSE",
    '5"',
    'screen"phone',
    "not and or",
    "python:3",
    "battery OR drone",
    "(battery OR drone*) -air",
    "((paris OR zürich) (climate OR summit)) -(football OR bankers)",
]


def fts5_table(rows: list[tuple[str | None, str | None]]) -> sqlite3.Connection:
    """The archive's FTS5 table (as migration 11 makes it), holding `rows` (title,
    description), each row's body the description again."""
    db = sqlite3.connect(":memory:")
    db.execute(
        f"CREATE VIRTUAL TABLE t USING fts5({', '.join(FTS5_COLUMNS)}, content='',"
        " tokenize = 'unicode61 remove_diacritics 0')"
    )
    db.executemany(
        f"INSERT INTO t(rowid, {', '.join(FTS5_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (i, *fts5_row(ENGLISH.document(title, description, description), []))
            for i, (title, description) in enumerate(rows)
        ],
    )
    return db


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    db = fts5_table(ROWS)
    yield db
    db.close()


def fts_rows(db: sqlite3.Connection, tree: Node) -> set[int]:
    found = db.execute(
        "SELECT rowid FROM t WHERE t MATCH ?", (to_fts5(ENGLISH.query(tree)),)
    ).fetchall()
    return {rowid for (rowid,) in found}


def expected_rows(tree: Node, rows: list[tuple[str | None, str | None]]) -> set[int]:
    node = ENGLISH.query(tree)
    return {
        i
        for i, (title, description) in enumerate(rows)
        if matches(node, ENGLISH.document(title, description, description))
    }


@pytest.mark.parametrize("query", FTS5_QUERIES)
def test_fts5_returns_exactly_the_rows_matches_accepts(fts: sqlite3.Connection, query: str):
    tree = parse(query)
    expected = expected_rows(tree, ROWS)
    # each query must separate the rows, or the comparison proves nothing
    assert 0 < len(expected) < len(ROWS)
    assert fts_rows(fts, tree) == expected


def test_fts5_renderings():
    any_field, words = "{title description body} : ", "{title_words text_words} : "
    assert to_fts5(parse("climate")) == any_field + '"climate"'
    assert to_fts5(parse("covid-19 clim*")) == f'{any_field}"covid 19" AND {words}"clim"*'
    assert to_fts5(parse('title:"climate summit" OR title:clim*')) == (
        'title : "climate summit" OR title_words : "clim"*'
    )
    a, b, c, d, e = (f'{any_field}"{token}"' for token in "abcde")
    assert to_fts5(parse("a b -c -(d OR e)")) == f"({a} AND {b}) NOT {c} NOT ({d} OR {e})"
    assert to_fts5(parse("(a -b) OR c")) == f"(({a}) NOT {b}) OR {c}"
    assert fts5_match(parse("a"), "k1") == f'({a}) OR answers : "k1"'
    with pytest.raises(ValueError):
        to_fts5(Not(word("a")))


@pytest.mark.parametrize(
    "hostile",
    [
        '") OR *',
        'x") OR ("',
        "NEAR(",
        "NEAR(a b, 2)",
        "title:*",
        "title : x",
        "'; DROP TABLE t; --",
        "{title body}: x",
        "body:climate",
        "rowid:1",
        "^climate",
        "climate + summit",
        '"a" OR "b"*',
        "a:b:c",
        "x\\y",
        "\x00",
        "AND OR NOT",
        "* OR climate",
    ],
)
def test_hostile_text_is_refused_or_quoted(fts: sqlite3.Connection, hostile: str):
    try:
        tree = parse(hostile)
    except QuerySyntaxError as error:
        assert str(error).startswith("q: ")
        return
    # FTS5 raises sqlite3.OperationalError on syntax it does not accept: none may get through
    assert fts_rows(fts, tree) == expected_rows(tree, ROWS)


# --- PostgreSQL tsquery -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tsquery"),
    [
        ("climate", "'climate'"),
        ("title:climate", "'climate':A"),
        ("clim*", "'_clim':*"),
        ("title:clim*", "'_clim':*A"),
        (
            '"climate summit"',
            "(('climate':A <-> 'summit':A) | ('climate':B <-> 'summit':B)"
            " | ('climate':C <-> 'summit':C))",
        ),
        ('title:"climate summit"', "('climate':A <-> 'summit':A)"),
        (
            "covid-19 OR AT&T",
            "(('covid':A <-> '19':A) | ('covid':B <-> '19':B) | ('covid':C <-> '19':C))"
            " | (('at':A <-> 't':A) | ('at':B <-> 't':B) | ('at':C <-> 't':C))",
        ),
        ("(a OR b) c -d -(e OR f)", "('a' | 'b') & 'c' & !'d' & !('e' | 'f')"),
        ("a b OR c", "('a' & 'b') | 'c'"),
    ],
)
def test_tsquery_renderings(query: str, tsquery: str):
    assert to_tsquery(parse(query)) == tsquery


def test_tsvector_holds_stems_by_field_words_as_written_and_answers():
    document = ENGLISH.document("Elections now", "The economy", "Economies grow")
    assert tsvector_text(document, ["k1"]) == (
        "'elect':1A 'now':2A 'the':3B 'economi':4B,5C 'grow':6C"
        " '_elections':16383A '_now':16383A '_the':16381B '_economy':16381B"
        " '_economies':16381B '_grow':16381B '~k1'"
    )
    assert tsquery_text(parse("a"), "k1") == "('a') | '~k1'"


@pytest.mark.parametrize(
    ("query", "pairs"),
    [
        ("climate summit", None),  # no phrase: nothing to narrow by
        ('"climate summit"', "('A:climate summit' | 'B:climate summit' | 'C:climate summit')"),
        ('title:"new climate summit"', "('A:new climate') & ('A:climate summit')"),
        (
            'paris "climate summit" -"cold war"',
            "(('A:climate summit' | 'B:climate summit' | 'C:climate summit'))",
        ),
        ('"a b" OR c', None),  # c alone matches without any pair
        ('"a b" OR "c d"', "(('A:a b' | 'B:a b' | 'C:a b')) | (('A:c d' | 'B:c d' | 'C:c d'))"),
    ],
)
def test_pairs_are_what_every_match_must_hold(query: str, pairs: str | None):
    assert to_pairs(parse(query)) == pairs


def test_tsquery_escapes_quotes_and_backslashes():
    # tokens never hold these, but a hand-built tree must not break out of the lexeme
    assert to_tsquery(word("o'k\\")) == "'o''k\\\\'"


# --- upstream renderings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "newsapi"),
    [
        ("climate summit", '"climate" AND "summit"'),
        ('"climate summit" OR covid-19', '"climate summit" OR "covid 19"'),
        ("(climate OR weather) paris", '("climate" OR "weather") AND "paris"'),
        ("-football paris", '"paris" AND NOT "football"'),
        ("paris -(golf OR tennis)", '"paris" AND NOT ("golf" OR "tennis")'),
        ("title:climate", '"climate"'),
        ("clim* paris", '"paris"'),
        ("clim*", None),
        ("clim* OR paris", None),
        ("(clim* -x) OR paris", None),
        ("paris -clim*", '"paris"'),
        ("paris -title:climate", '"paris"'),
        ("paris -(a OR clim*)", '"paris"'),
        ("paris -(a -title:b)", '"paris"'),
        ("paris -(a -b)", '"paris" AND NOT ("a" AND NOT "b")'),
    ],
)
def test_newsapi_and_guardian_renderings(query: str, newsapi: str | None):
    assert to_newsapi(parse(query)) == newsapi
    assert to_guardian(parse(query)) == newsapi


def test_newsapi_gives_up_past_its_500_characters():
    long_query = " OR ".join(f"{'x' * 19}{i % 10}" for i in range(20))
    tree = parse(long_query)
    assert len(long_query) <= 500
    assert len(to_guardian(tree) or "") > 500
    assert to_newsapi(tree) is None


@pytest.mark.parametrize(
    ("query", "hackernews"),
    [
        ("battery OR drone", ["battery", "drone"]),
        ("(a OR b) c -d", ["a c -d", "b c -d"]),
        ('"climate summit" -"world cup"', ['"climate summit" -"world cup"']),
        ("title:covid-19", ['"covid 19"']),
        ("a -(b OR c)", ["a"]),
        ("a -title:b", ["a"]),
        ("a clim*", ["a"]),
        ("(a OR clim*) b", ["b"]),  # `a b` is covered by `b`
        ("(a OR b) (c OR d)", ["a c", "a d", "b c", "b d"]),
        ("(a OR b) (c OR d OR e)", [None]),
        ("clim* -a", [None]),
        ("a OR (clim* -b)", [None]),
        ("a a OR a", ["a"]),
    ],
)
def test_hackernews_renderings(query: str, hackernews: list[str | None]):
    assert to_hackernews(parse(query)) == hackernews


# --- property: every rendering agrees with `matches` ----------------------------------------

VOCABULARY = ["apple", "apricot", "banana", "band", "cherry"]
ATOMS = [*VOCABULARY, "apr*", "ban*", '"apple banana"', '"band apple"', "apple-cherry"]


def random_query(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth >= 2 or roll < 0.4:
        atom = rng.choice(ATOMS)
        return "title:" + atom if rng.random() < 0.2 else atom
    if roll < 0.55:
        return rng.choice(["-", "NOT "]) + random_query(rng, depth + 1)
    joiner = rng.choice([" ", " AND ", " OR "])
    parts = [random_query(rng, depth + 1) for _ in range(rng.randint(2, 3))]
    text = joiner.join(parts)
    return f"({text})" if rng.random() < 0.5 else text


def random_text(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    return " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(0, 4)))


def random_trees(count: int) -> list[Node]:
    rng = random.Random(20240601)
    trees: list[Node] = []
    while len(trees) < count:
        try:
            trees.append(parse(random_query(rng)))
        except QuerySyntaxError:
            continue
    return trees


RANDOM_ROWS = [
    (random_text(rng), random_text(rng)) for rng in [random.Random(7)] for _ in range(40)
]


def contains(fields: list[list[str]], phrase: list[str]) -> bool:
    size = len(phrase)
    return any(
        field[i : i + size] == phrase for field in fields for i in range(len(field) - size + 1)
    )


def boolean_evaluator(text: str) -> Callable[[list[list[str]]], bool]:
    """Evaluate NewsAPI/Guardian syntax: quoted phrases, AND, OR, NOT, parentheses."""
    lexemes = re.findall(r'"[^"]*"|\(|\)|AND|OR|NOT|\S+', text)
    assert all(re.fullmatch(r'"[^"]+"|[()]|AND|OR|NOT', lexeme) for lexeme in lexemes), text
    position = 0

    def take() -> str | None:
        nonlocal position
        position += 1
        return lexemes[position - 1] if position <= len(lexemes) else None

    def peek() -> str | None:
        return lexemes[position] if position < len(lexemes) else None

    def either() -> Callable[[list[list[str]]], bool]:
        operands = [both()]
        while peek() == "OR":
            take()
            operands.append(both())
        return lambda fields: any(operand(fields) for operand in operands)

    def both() -> Callable[[list[list[str]]], bool]:
        operands = [unary()]
        while peek() == "AND":
            take()
            operands.append(unary())
        return lambda fields: all(operand(fields) for operand in operands)

    def unary() -> Callable[[list[list[str]]], bool]:
        lexeme = take()
        assert lexeme is not None
        if lexeme == "NOT":
            inner = unary()
            return lambda fields: not inner(fields)
        if lexeme == "(":
            inner = either()
            assert take() == ")"
            return inner
        phrase = lexeme.strip('"').split(" ")
        return lambda fields: contains(fields, phrase)

    evaluate = either()
    assert peek() is None, text
    return evaluate


def hackernews_matches(queries: list[str | None], fields: list[list[str]]) -> bool:
    """Algolia advancedSyntax: every literal required, `-` excludes; the queries are OR-ed."""
    for query in queries:
        if query is None:
            return True
        literals = re.findall(r'-?"[^"]+"|\S+', query)
        if all(
            contains(fields, literal.lstrip("-").strip('"').split(" ")) != literal.startswith("-")
            for literal in literals
        ):
            return True
    return False


TREES = random_trees(300)


def test_random_trees_cover_every_kind_of_node():
    kinds = {type(node).__name__ for tree in TREES for node in walk(tree)}
    assert kinds == {"Term", "And", "Or", "Not"}
    terms = {
        (node.kind, node.field) for tree in TREES for node in walk(tree) if isinstance(node, Term)
    }
    assert terms == {
        (kind, field) for kind in ("word", "phrase", "prefix") for field in ("any", "title")
    }


def walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Not):
        yield from walk(node.child)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from walk(child)


def test_random_trees_fts5_equals_matches_and_describe_round_trips():
    db = fts5_table(RANDOM_ROWS)
    for tree in TREES:
        assert fts_rows(db, tree) == expected_rows(tree, RANDOM_ROWS), describe(tree)
        assert parse(describe(tree)) == tree


def test_random_trees_upstreams_return_a_superset():
    broadened = 0
    for tree in TREES:
        renderings = {
            "newsapi": to_newsapi(tree),
            "guardian": to_guardian(tree),
        }
        evaluators = {
            name: (boolean_evaluator(text) if text is not None else lambda _fields: True)
            for name, text in renderings.items()
        }
        hackernews = to_hackernews(tree)
        for title, body in RANDOM_ROWS:
            fields = [tokens(title or ""), tokens(body or "")]
            # The renderings broaden the language's structure; the upstreams stem as well.
            exact = matches(tree, LITERAL.document(title, body))
            upstream = {name: evaluate(fields) for name, evaluate in evaluators.items()}
            upstream["hackernews"] = hackernews_matches(hackernews, fields)
            assert not exact or all(upstream.values()), (describe(tree), title, body, upstream)
            broadened += not exact and upstream["newsapi"]
    # the property holds trivially if every rendering asked for everything
    assert broadened > 0
    assert sum(to_newsapi(tree) is not None for tree in TREES) > len(TREES) // 3
    assert sum(to_hackernews(tree) != [None] for tree in TREES) > len(TREES) // 3
