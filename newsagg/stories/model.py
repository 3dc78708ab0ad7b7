"""Stories as the rest of the service reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def providers_of(text: str | None) -> tuple[str, ...]:
    """The providers of a story, as the database keeps them (comma-separated, sorted)."""
    return tuple(text.split(",")) if text else ()


@dataclass(frozen=True, slots=True)
class StoryRef:
    """What every article shows of its story."""

    id: int
    size: int
    publishers: int
    providers: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "size": self.size,
            "publishers": self.publishers,
            "providers": list(self.providers),
        }


def story_ref(
    story_id: int | None, size: int | None, publishers: int | None, providers: str | None
) -> StoryRef | None:
    """The story of a row joined to `stories` (None where the article has none)."""
    if story_id is None:
        return None
    return StoryRef(story_id, size or 0, publishers or 0, providers_of(providers))


@dataclass(frozen=True, slots=True)
class StoryRecord:
    id: int
    title: str
    lead_id: int  # the representative member (`lead_key`)
    size: int
    publishers: int
    providers: tuple[str, ...]
    first_us: int
    last_us: int

    @property
    def ref(self) -> StoryRef:
        return StoryRef(self.id, self.size, self.publishers, self.providers)
