"""Upstream answers recorded from the real services, replayed by the simulator.

A recording is one body NewsAPI or the Guardian really sent for one `q`, kept with the
endpoint it came from (tests/recall/ holds some, each saying where it came from):

    {"provider": "guardian", "endpoint": "/search", "q": "economics OR finance",
     "source": {...}, "body": {"response": {"status": "ok", "results": [...], ...}}}

Replayed, its articles are moved in time, all by the same amount, so the newest was
published a few minutes ago (newsagg windows and prunes by age; old stories would vanish
or be kept out of a harvest). The order and the spacing stay, unless the recording spans
more than `within`: then the gaps shrink in proportion, so every article fits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ENDPOINTS = {"guardian": ("/search",), "newsapi": ("/v2/everything", "/v2/top-headlines")}
STAMPS = {"guardian": "webPublicationDate", "newsapi": "publishedAt"}
NEWEST_AGE = timedelta(minutes=3)  # the newest replayed article: a few minutes old


@dataclass(frozen=True)
class Recording:
    provider: str  # "guardian" | "newsapi"
    endpoint: str  # "/search" | "/v2/everything" | "/v2/top-headlines"
    q: str
    body: Mapping[str, Any]
    source: Mapping[str, Any] = field(default_factory=dict)
    # What a newsagg user sends GET /articles for the same question, where the recorded q
    # or endpoint says it otherwise (NewsAPI's top headlines: a category); default: the q.
    ask: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse what could not be replayed, saying why."""
        if self.endpoint not in ENDPOINTS.get(self.provider, ()):
            raise ValueError(f"no replay of {self.provider!r} {self.endpoint!r}")
        if not isinstance(self.q, str):
            raise ValueError("q must be a string")
        if not isinstance(self.body, Mapping) or not isinstance(items(self), list):
            raise ValueError(f"the body holds no {self.provider} result list")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recording:
        """A recording as tests/recall/ keeps them; ValueError naming what is missing."""
        missing = {"provider", "endpoint", "q", "body"} - set(data)
        if missing:
            raise ValueError(f"a recording needs {', '.join(sorted(missing))}")
        return cls(
            provider=data["provider"],
            endpoint=data["endpoint"],
            q=data["q"],
            body=data["body"],
            source=data.get("source", {}),
            ask=data.get("ask", {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def items(recording: Recording) -> Any:
    """The recorded articles (NewsAPI) or results (the Guardian), as recorded."""
    if recording.provider == "guardian":
        response = recording.body.get("response")
        return response.get("results") if isinstance(response, Mapping) else None
    return recording.body.get("articles")


def _published(item: Any, stamp: str) -> datetime | None:
    """When an item says it was published; None for an unreadable time or NewsAPI's
    removed placeholders (published "1970-01-01": not a time to move, nor to count)."""
    if not isinstance(item, Mapping) or item.get("title") == "[Removed]":
        return None
    value = item.get(stamp)
    try:
        moment = datetime.fromisoformat(str(value).strip().upper())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def shifted(
    recording: Recording, now: datetime, within: timedelta | None = None
) -> list[dict[str, Any]]:
    """The recorded items, in their order, each a copy published as many seconds before the
    newest as it was (scaled down to fit `within` if the recording spans more), the newest
    NEWEST_AGE before `now`. Times are written as the upstreams write them (UTC, `Z`); an
    item without a readable time keeps the one it has."""
    stamp = STAMPS[recording.provider]
    recorded = [dict(item) if isinstance(item, Mapping) else item for item in items(recording)]
    moments = [_published(item, stamp) for item in recorded]
    known = [m for m in moments if m is not None]
    if not known:
        return recorded
    newest = max(known)
    span = (newest - min(known)).total_seconds()
    scale = 1.0
    if within is not None and span > within.total_seconds() > 0:
        scale = within.total_seconds() / span
    top = (now - NEWEST_AGE).astimezone(UTC).replace(microsecond=0)
    for item, moment in zip(recorded, moments, strict=True):
        if moment is not None:
            age = timedelta(seconds=round((newest - moment).total_seconds() * scale))
            item[stamp] = (top - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    return recorded


@dataclass
class Replay:
    """A recording as the simulator serves it: its items moved in time once, at replay;
    `served` counts the requests it answered (one that never did was asked otherwise)."""

    recording: Recording
    items: list[dict[str, Any]]
    served: int = 0

    def guardian_page(self, page: int, size: int, fields: set[str]) -> dict[str, Any]:
        """The Guardian's answer: the recording on page 1, no results past it, `fields`
        (from show-fields) deciding what each result's fields hold."""
        results = [served_fields(r, fields) for r in self.items] if page == 1 else []
        recorded = self.recording.body["response"]
        return {
            "response": {
                **{k: v for k, v in recorded.items() if k != "results"},
                "status": "ok",
                "total": len(self.items),
                "startIndex": (page - 1) * size + 1,
                "pageSize": size,
                "currentPage": page,
                "pages": 1,
                "results": results,
            }
        }

    def newsapi_page(self, page: int) -> dict[str, Any]:
        """NewsAPI's answer: the recording on page 1, no articles past it."""
        body = dict(self.recording.body)
        body["articles"] = list(self.items) if page == 1 else []
        return body


def show_fields(value: str | None) -> set[str] | None:
    """The Guardian fields a `show-fields` value asks for; None without the parameter (no
    `fields` at all then), {"all"} for every one."""
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def served_fields(result: Any, fields: set[str] | None) -> Any:
    """A Guardian result as served for `show-fields`: no `fields` without the parameter,
    and the body text only to those who ask for it (`bodyText` or `all`), as the real API."""
    if not isinstance(result, Mapping) or "fields" not in result:
        return result
    if fields is None:
        return {k: v for k, v in result.items() if k != "fields"}
    if "all" in fields or "bodyText" in fields or not isinstance(result["fields"], Mapping):
        return result
    kept = {k: v for k, v in result["fields"].items() if k != "bodyText"}
    return {**result, "fields": kept}
