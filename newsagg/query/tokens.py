"""Text as the query language sees it: one tokenizer for both sides.

Articles and queries are cut with `tokens` (then stemmed: newsagg.query.analysis), so
SQLite FTS5, PostgreSQL and the Python reference (newsagg.query.matching) all see the
same tokens.
"""

from __future__ import annotations

import re
import unicodedata

# Letters and digits only: underscore and every punctuation mark separate tokens.
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Cut text into tokens; indexing and querying share this so every engine agrees."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())
