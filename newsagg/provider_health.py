"""What each provider did lately: last success and last error, for GET /sources."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class LastError:
    code: str
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Health:
    last_success_at: datetime | None = None
    last_error: LastError | None = None


class ProviderHealth:
    def __init__(self) -> None:
        self._by_name: dict[str, Health] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Health:
        with self._lock:
            return self._by_name.get(name, Health())

    def succeeded(self, name: str) -> None:
        with self._lock:
            before = self._by_name.get(name, Health())
            self._by_name[name] = Health(datetime.now(UTC), before.last_error)

    def failed(self, name: str, code: str, message: str) -> None:
        with self._lock:
            before = self._by_name.get(name, Health())
            self._by_name[name] = Health(
                before.last_success_at, LastError(code, message, datetime.now(UTC))
            )
