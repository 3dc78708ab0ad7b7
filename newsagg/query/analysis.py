"""Text as the archive's index and the query language see it: one analyzer for both sides.

Text is cut into tokens (newsagg.query.tokens), and each token is reduced to its Snowball
stem in the archive's language (PyStemmer, the C build of the algorithms PostgreSQL's own
configurations use). Articles are indexed with
`Analyzer.document` and queries analysed with `Analyzer.query`, so SQLite FTS5,
PostgreSQL and the Python reference (newsagg.query.matching) all see the same terms:
`election` and `elections` are one stem; a prefix (`clim*`) is looked for among the words
as written, which the index keeps beside the stems.
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass, replace

import Stemmer

from newsagg.query.syntax import And, Node, Not, Or, Term
from newsagg.query.tokens import tokens

NO_STEMMING = "none"
# The languages a Snowball stemmer exists for, and `none` (words as written).
LANGUAGES: tuple[str, ...] = (*Stemmer.algorithms(), NO_STEMMING)
# An index holds at most this many tokens of a field (a long read runs to 10,000 words):
# PostgreSQL's word positions end at 16,383, the three fields' stems follow each other and
# the words as written are placed past them (newsagg.store.fulltext), so every engine
# holds the same tokens.
MAX_FIELD_TOKENS = 5_000
# Longer tokens are not indexed (no word is that long; PostgreSQL refuses lexemes of 2 kB).
MAX_TOKEN_CHARS = 255


@dataclass(frozen=True, slots=True)
class Document:
    """An article's text as the index holds it: each field's stems in order (words and
    phrases match them), and the distinct words as written (prefixes match those)."""

    title: tuple[str, ...]
    description: tuple[str, ...]
    body: tuple[str, ...]  # NewsAPI's content, the Guardian's body text: never shown
    title_words: tuple[str, ...]
    text_words: tuple[str, ...]  # of the description and the body


class Analyzer:
    """Tokens, then stems in one language (`none`: tokens as they are)."""

    def __init__(self, language: str = "english") -> None:
        if language not in LANGUAGES:
            raise ValueError(f"no Snowball stemmer for {language!r}")
        self.language = language
        # What an index made with this analyzer is bound to: another stemmer version or
        # Unicode version could cut or stem the same text differently (see `newsagg reindex`).
        self.identity = (
            f"{language}; snowball {Stemmer.version()}; unicode {unicodedata.unidata_version}"
        )
        self._local = threading.local()  # a PyStemmer stemmer is not safe across threads

    def stems(self, words: list[str]) -> list[str]:
        if self.language == NO_STEMMING:
            return words
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer(self.language)
        return stemmer.stemWords(words)

    def document(
        self, title: str | None, description: str | None, body: str | None = None
    ) -> Document:
        """The index's terms of an article's title, description and body text."""
        title_words = _indexed(title)
        description_words = _indexed(description)
        body_words = _indexed(body)
        return Document(
            tuple(self.stems(title_words)),
            tuple(self.stems(description_words)),
            tuple(self.stems(body_words)),
            tuple(dict.fromkeys(title_words)),
            tuple(dict.fromkeys(description_words + body_words)),
        )

    def query(self, node: Node) -> Node:
        """The tree with every word and phrase as stems; prefixes stay as written."""
        if isinstance(node, Term):
            if node.kind == "prefix":
                return node
            return replace(node, parts=tuple(self.stems(list(node.parts))))
        if isinstance(node, Not):
            return Not(self.query(node.child))
        children = tuple(self.query(child) for child in node.children)
        return And(children) if isinstance(node, And) else Or(children)


def _indexed(text: str | None) -> list[str]:
    return [token for token in tokens(text or "") if len(token) <= MAX_TOKEN_CHARS][
        :MAX_FIELD_TOKENS
    ]
