"""Configuration, read once from the environment (CLI flags override it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_URLS = {
    "newsapi": "https://newsapi.org",
    "guardian": "https://content.guardianapis.com",
    "hackernews": "https://hn.algolia.com",
}


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def _optional_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """An hourly limit: a positive integer, or `none` for no limit."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() == "none":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive integer or 'none', not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    database: str = "newsagg.sqlite3"
    # PostgreSQL instead of SQLite, shared by every instance; may hold a password.
    database_url: str | None = None
    admin_key: str | None = None
    newsapi_key: str | None = None
    guardian_key: str | None = None
    newsapi_url: str = DEFAULT_URLS["newsapi"]
    guardian_url: str = DEFAULT_URLS["guardian"]
    hackernews_url: str = DEFAULT_URLS["hackernews"]
    cache_ttl: float = 300.0
    cache_max_stale: float = 3600.0  # how long past its TTL a result may be served on error
    upstream_timeout: float = 5.0
    demo: bool = False
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none by default
    # Hourly request limit per tier; None means no limit.
    rate_limits: dict[str, int | None] = field(
        default_factory=lambda: {"basic": 100, "premium": 1000, "unlimited": None}
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database=env.get("NEWSAGG_DATABASE") or cls.database,
            database_url=env.get("NEWSAGG_DATABASE_URL") or None,
            admin_key=env.get("NEWSAGG_ADMIN_KEY") or None,
            newsapi_key=env.get("NEWSAGG_NEWSAPI_KEY") or None,
            guardian_key=env.get("NEWSAGG_GUARDIAN_KEY") or None,
            newsapi_url=env.get("NEWSAGG_NEWSAPI_URL") or DEFAULT_URLS["newsapi"],
            guardian_url=env.get("NEWSAGG_GUARDIAN_URL") or DEFAULT_URLS["guardian"],
            hackernews_url=env.get("NEWSAGG_HACKERNEWS_URL") or DEFAULT_URLS["hackernews"],
            cache_ttl=_number(env, "NEWSAGG_CACHE_TTL", 300.0, 0.0),
            cache_max_stale=_number(env, "NEWSAGG_CACHE_MAX_STALE", 3600.0, 0.0),
            upstream_timeout=_number(env, "NEWSAGG_UPSTREAM_TIMEOUT", 5.0, 0.1),
            demo=env.get("NEWSAGG_DEMO", "") not in ("", "0", "false", "no"),
            cors_origins=tuple(
                o.strip() for o in env.get("NEWSAGG_CORS_ORIGINS", "").split(",") if o.strip()
            ),
            rate_limits={
                "basic": _optional_int(env, "NEWSAGG_RATE_LIMIT_BASIC", 100),
                "premium": _optional_int(env, "NEWSAGG_RATE_LIMIT_PREMIUM", 1000),
                "unlimited": _optional_int(env, "NEWSAGG_RATE_LIMIT_UNLIMITED", None),
            },
        )

    def __repr__(self) -> str:
        # Never print credentials, even in a traceback or a debug log.
        return (
            f"Settings(database={self.database!r}, demo={self.demo}, "
            f"cache_ttl={self.cache_ttl}, upstream_timeout={self.upstream_timeout})"
        )
