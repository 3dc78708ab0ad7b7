"""Pure helpers the normalizers share: HTML to text, timestamps to UTC, canonical URLs."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from providers.base import Article, Query

TRACKING_PARAMS = frozenset({"CMP", "fbclid", "gclid", "mc_cid", "mc_eid", "ocid", "smid", "ref"})
_WHITESPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("p", "br", "li", "div"):
            self.parts.append(" ")


def html_to_text(markup: str | None) -> str | None:
    """Tags removed, entities decoded, whitespace collapsed; None when nothing is left."""
    if not markup:
        return None
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    text = _WHITESPACE.sub(" ", html.unescape("".join(extractor.parts))).strip()
    return text or None


def parse_timestamp(value: str) -> datetime:
    """Any RFC 3339 form ('Z', offsets, fractions) as an aware UTC datetime; naive is UTC."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _is_tracking(name: str) -> bool:
    return name in TRACKING_PARAMS or name.lower().startswith("utm_")


def canonical_url(url: str) -> str:
    """https, lower-case host, no default port, fragment or tracking parameters, no trailing /."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname.lower()
    if parts.port not in (None, 80, 443):
        host = f"{host}:{parts.port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    )
    return urlunsplit(("https", host, parts.path.rstrip("/"), query, ""))


def window_filter(articles: list[Article], query: Query) -> list[Article]:
    """Keep articles inside the query's published window (not every endpoint applies it)."""
    start, end = query.published_from, query.published_to
    return [
        a
        for a in articles
        if (start is None or a.published_at >= start) and (end is None or a.published_at <= end)
    ]
