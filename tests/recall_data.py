"""The recordings of real upstream answers in tests/recall/, as the recall test and
bench/recall.py read them."""

from __future__ import annotations

from pathlib import Path

from providers.text import canonical_url
from simulator.replay import Recording, items

RECORDINGS = Path(__file__).resolve().parent / "recall"
URL_KEYS = {"guardian": "webUrl", "newsapi": "url"}


def recordings() -> list[Recording]:
    return [Recording.load(path) for path in sorted(RECORDINGS.glob("*.json"))]


def recorded_urls(recording: Recording) -> set[str]:
    """The recording's articles as canonical URLs, as newsagg compares them (NewsAPI's
    removed placeholders, which newsagg drops by design, and URLs that are none left out)."""
    urls = set()
    for item in items(recording):
        if item.get("title") == "[Removed]":
            continue
        try:
            urls.add(canonical_url(item[URL_KEYS[recording.provider]]))
        except (KeyError, TypeError, ValueError):
            continue
    return urls
