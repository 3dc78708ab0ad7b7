"""Pure helpers the normalizers share: HTML to text, timestamps to UTC, canonical URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit, urlunsplit

from providers.base import Article, Query

TRACKING_PARAMS = frozenset({"CMP", "fbclid", "gclid", "mc_cid", "mc_eid", "ocid", "smid", "ref"})
_WHITESPACE = re.compile(r"\s+")
# RFC 3339 date-time (either separator, any case, any fraction), offset optional: a naive
# stamp is taken as UTC. fromisoformat alone would also take dates, week dates and "+01".
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_BLOCK_TAGS = frozenset({"p", "br", "li", "div", "h1", "h2", "h3", "h4", "tr", "td", "blockquote"})
_HIDDEN_TAGS = frozenset({"script", "style"})


class _TextExtractor(HTMLParser):
    """Collects text nodes; entities (named and numeric) are decoded once, by the parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")  # "<p>One</p><p>Two</p>" reads "One Two", not "OneTwo"

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(markup: str | None) -> str | None:
    """Tags removed, entities decoded, whitespace collapsed; None when nothing is left."""
    if not markup:
        return None
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    text = _WHITESPACE.sub(" ", "".join(extractor.parts)).strip()
    return text or None


def parse_timestamp(value: object, *, require_offset: bool = False) -> datetime:
    """Any RFC 3339 form ('Z', offsets, fractions) as an aware UTC datetime.

    Upstreams sometimes leave the offset out (taken as UTC); a client must not
    (`require_offset`): its "08:00" could mean any zone.
    """
    match = _RFC3339.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or (require_offset and not match["offset"]):
        raise ValueError("not an RFC 3339 timestamp")
    date, time, fraction, offset = match.group("date", "time", "fraction", "offset")
    # fromisoformat takes at most 6 fraction digits: finer precision is noise for news.
    text = f"{date}T{time}" + (f".{fraction[:6]}" if fraction else "") + (offset or "").upper()
    parsed = datetime.fromisoformat(text)  # ValueError for a 13th month, a 25th hour, ...
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _is_tracking(name: str) -> bool:
    return name in TRACKING_PARAMS or name.lower().startswith("utm_")


def canonical_url(url: str) -> str:
    """https, lower-case host, no default port, fragment or tracking parameters, no trailing /.

    The remaining query parameters keep their order and their original encoding, so two
    spellings of the same story compare equal without the URL being rewritten otherwise.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    host = parts.hostname.lower()  # drops any user:password@ too
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port  # ValueError for a port that is not a number in range
    if port not in (None, 80, 443):
        host = f"{host}:{port}"
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and not _is_tracking(unquote(pair.partition("=")[0]))
    ]
    return urlunsplit(("https", host, parts.path.rstrip("/"), "&".join(kept), ""))


def optional_url(value: object) -> str | None:
    """An http(s) URL as sent (image links are shown, not compared), else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def window_filter(articles: list[Article], query: Query) -> list[Article]:
    """Keep articles inside the query's published window (not every endpoint applies it)."""
    start, end = query.published_from, query.published_to
    return [
        a
        for a in articles
        if (start is None or a.published_at >= start) and (end is None or a.published_at <= end)
    ]
