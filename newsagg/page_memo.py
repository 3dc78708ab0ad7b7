"""Pages that needed no refresh, remembered for a moment: a repeat does not search the
archive again, and the edge can remember its rendering under the page's key.

A page is remembered for PAGE_MEMO_SECONDS, or until this process saves articles (the
archive writer's generation is part of the key): what other processes (the harvester
among them) add becomes visible after at most that long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

from cachetools import LRUCache

from newsagg.archive_writer import ArchiveWriter
from newsagg.feed_page import FeedPage
from newsagg.request import FeedRequest

REMEMBERED_PAGES = 1024
PAGE_MEMO_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Remembered:
    page: FeedPage
    made_at: float  # monotonic


class PageMemo:
    def __init__(self, archive: ArchiveWriter) -> None:
        self._archive = archive
        self._pages: LRUCache[Hashable, _Remembered] = LRUCache(maxsize=REMEMBERED_PAGES)
        self._searching: set[Hashable] = set()  # remembered pages being searched anew
        self._lock = threading.Lock()

    def key(self, request: FeedRequest, versions: Sequence[tuple[str, float]]) -> Hashable:
        """What identifies the page of `request` made of these cache entries (provider,
        version) while this process saves nothing."""
        return (request, tuple(versions), self._archive.generation)

    def recall(self, key: Hashable | None) -> FeedPage | None:
        """The page remembered under `key` while it is young. Once it is older, one request
        searches again (until `searched`) and the others keep getting it meanwhile: no herd
        of identical searches when it expires under load."""
        if key is None:
            return None
        now = time.monotonic()
        with self._lock:
            remembered = self._pages.get(key)
            if remembered is None:
                return None
            if now - remembered.made_at < PAGE_MEMO_SECONDS or key in self._searching:
                return remembered.page
            self._searching.add(key)
            return None

    def searched(self, key: Hashable | None) -> None:
        """The search for `key` is over, made or failed."""
        with self._lock:
            self._searching.discard(key)

    def remember(self, key: Hashable | None, page: FeedPage) -> FeedPage:
        """`page`, made now, remembered under `key` (when it has one) and bearing it with
        the moment it was made: what the edge remembers its rendering under."""
        if key is None:
            return page
        made_at = time.monotonic()
        page = replace(page, key=(key, made_at))
        with self._lock:
            self._pages[key] = _Remembered(page, made_at)
        return page
