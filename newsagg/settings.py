"""Configuration: every setting declared once, with its type, default, variable and meaning.

`Settings` is read from the environment (`from_env`), handed to worker processes the same
way (`to_env`), overridden by CLI flags (`flag`), and printed as the README's configuration
table (`markdown_table`, kept equal to the README by a test).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from newsagg.query.analysis import LANGUAGES
from newsagg.stories.clustering import HOUR_US, StoryRules
from newsagg.tiers import Tier

Parse = Callable[[str, str], Any]  # (variable name, raw text) -> value; SettingsError if unusable


class SettingsError(ValueError):
    """An environment variable or flag holds a value that cannot be used."""


def _text(_name: str, raw: str) -> str:
    return raw


def _nonblank(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingsError(f"{name} must not be blank")
    return raw


# Numbers as people write them, in ASCII digits: not `inf`, `nan`, `1_000` or the digits of
# other scripts (`٣`, `²`), which Python's float() and int() take, or trip over with an
# error that names no setting.
_REAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE = re.compile(r"[0-9]+")


def _real(raw: str) -> float | None:
    """The finite number `raw` writes, else None."""
    text = raw.strip()
    value = float(text) if _REAL.fullmatch(text) else None
    return value if value is not None and math.isfinite(value) else None


def _integer(raw: str) -> int | None:
    """The whole number `raw` writes in decimal digits (no sign), else None."""
    text = raw.strip()
    if not _WHOLE.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:  # longer than int() converts (sys.get_int_max_str_digits)
        return None


def _number(minimum: float) -> Parse:
    def parse(name: str, raw: str) -> float:
        value = _real(raw)
        if value is None:
            raise SettingsError(f"{name} must be a number, not {raw!r}")
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum:g}, not {raw!r}")
        return value

    return parse


def _whole(minimum: int, maximum: int) -> Parse:
    def parse(name: str, raw: str) -> int:
        value = _integer(raw)
        if value is None or not minimum <= value <= maximum:
            raise SettingsError(f"{name} must be a whole number {minimum}-{maximum}, not {raw!r}")
        return value

    return parse


def _hourly_limit(name: str, raw: str) -> int | None:
    if raw.strip().lower() == "none":
        return None
    value = _integer(raw)
    if value is None or value < 1:
        raise SettingsError(f"{name} must be a positive whole number or 'none', not {raw!r}")
    return value


def _choice(*choices: str) -> Parse:
    """One of these words, in any case (a `Literal` setting's: a test keeps them equal)."""

    def parse(name: str, raw: str) -> str:
        if raw.strip().lower() not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw.strip().lower()

    return parse


_ON, _OFF = ("on", "1", "true", "yes"), ("off", "0", "false", "no")


def _switch(name: str, raw: str) -> bool:
    """`on` or `off`; also 1/0, true/false, yes/no (as `to_env` and people write them), in
    any case. Anything else is refused: a typo must not turn a setting on or off."""
    word = raw.strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise SettingsError(f"{name} must be on or off (or 1/0, true/false, yes/no), not {raw!r}")


def _fraction(name: str, raw: str) -> float:
    value = _real(raw)
    if value is None or not 0 <= value <= 1:
        raise SettingsError(f"{name} must be a number from 0 to 1, not {raw!r}")
    return value


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def _host(name: str, raw: str) -> str:
    """An IP address (v4 or v6) or a host name, to listen on."""
    text = raw.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if len(text) > 253 or not _HOSTNAME.fullmatch(text):
            raise SettingsError(
                f"{name} must be an IP address or a host name (like 127.0.0.1, ::1 or"
                f" localhost), not {raw!r}"
            ) from None
    return text


def _is_http_url(text: str) -> bool:
    """Whether `text` is an http(s) URL with a host, and a port in range if it has one."""
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0  # ValueError: not a number in range
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and port_ok


def _http_url(name: str, raw: str) -> str:
    """An http(s) URL with a host; kept as given, stripped."""
    if not _is_http_url(raw.strip()):
        raise SettingsError(f"{name} must be an http:// or https:// URL, not {raw!r}")
    return raw.strip()


def _public_url(name: str, raw: str) -> str:
    """An http(s) URL without a query or fragment, without its trailing slash."""
    url = _http_url(name, raw).rstrip("/")
    if urlsplit(url).query or urlsplit(url).fragment:
        raise SettingsError(f"{name} must be a base URL, without a query or fragment")
    return url


def _quota(name: str, raw: str) -> str:
    """Rates in the `limits` notation joined by `;` (`50/12 hours;100/day`), each at least
    one call; kept as the text given, stripped (newsagg.budget parses it again)."""
    import limits  # here, so that reading settings costs nothing more when budgets are unused

    text = raw.strip()
    try:
        items = limits.parse_many(text)
    except ValueError:
        items = []
    if not items:
        raise SettingsError(
            f"{name} must be rates like '50/12 hours;100/day' (amount/window joined by ';'),"
            f" not {raw!r}"
        )
    if any(item.amount < 1 for item in items):
        raise SettingsError(f"{name} must allow at least 1 call per window, not {raw!r}")
    return text


def _backoff(name: str, raw: str) -> str:
    """Comma-separated durations (`5s,5m,2h`); kept as the text given, stripped."""
    from newsagg.push.webhooks import parse_backoff  # here: reading settings stays light

    try:
        parse_backoff(raw)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None
    return raw.strip()


def _origins(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated browser origins (`https://app.example`, `http://localhost:3000`), or
    `*` for any."""
    origins = tuple(item.strip() for item in raw.split(",") if item.strip())
    for origin in origins:
        parts = urlsplit(origin) if _is_http_url(origin) else None
        if origin != "*" and (
            parts is None or "@" in parts.netloc or parts.path or parts.query or parts.fragment
        ):
            raise SettingsError(
                f"{name} must be origins like https://app.example (scheme://host[:port]),"
                f" comma-separated, or *; not {origin!r}"
            )
    return origins


def setting(
    env: str,
    default: Any,
    meaning: str,
    parse: Parse = _text,
    *,
    flag: str | None = None,
    secret: bool = False,
    shown_default: str | None = None,
) -> Any:
    """A Settings field: its environment variable, meaning and parser travel with it."""
    return field(
        default=default,
        metadata={
            "env": env,
            "meaning": meaning,
            "parse": parse,
            "flag": flag,
            "secret": secret,
            "shown_default": shown_default,
        },
    )


@dataclass(frozen=True)
class Settings:
    database: str = setting(
        "NEWSAGG_DATABASE",
        "newsagg.sqlite3",
        "SQLite file for keys, article ids and the service's secrets (the embedded default)",
        _nonblank,
        flag="--database",
        shown_default="`newsagg.sqlite3` in the working directory",
    )
    database_url: str | None = setting(
        "NEWSAGG_DATABASE_URL",
        None,
        "`postgresql://user:password@host:5432/db`: PostgreSQL holds keys, article ids and"
        " secrets instead of SQLite, shared by every instance",
        secret=True,  # it may carry a password
    )
    redis_url: str | None = setting(
        "NEWSAGG_REDIS_URL",
        None,
        "`redis://host:6379/0`: Redis holds what instances share besides the database (rate-limit"
        " windows, cached provider results, single-flight, provider health); in-process when"
        " unset or unreachable",
        secret=True,  # it may carry a password
    )
    key_cache_seconds: float = setting(
        "NEWSAGG_KEY_CACHE_SECONDS",
        5.0,
        "how long a process may trust a key it checked in the store, with Redis; a revocation"
        " still acts at once (it waits for every process to forget it, or at most this long"
        " when one does not answer). On SQLite without Redis, keys are trusted until anything"
        " is committed to the file. 0: every request checks its key in the store",
        _number(0),
    )
    admin_key: str | None = setting(
        "NEWSAGG_ADMIN_KEY",
        None,
        "optional bootstrap admin key (plaintext), registered at start-up",
        secret=True,
    )
    newsapi_key: str | None = setting(
        "NEWSAGG_NEWSAPI_KEY",
        None,
        "NewsAPI.org key; without one NewsAPI is `disabled`",
        secret=True,
    )
    guardian_key: str | None = setting(
        "NEWSAGG_GUARDIAN_KEY",
        None,
        "Guardian Open Platform key; without one the Guardian is `disabled`",
        secret=True,
    )
    newsapi_url: str = setting(
        "NEWSAGG_NEWSAPI_URL", "https://newsapi.org", "NewsAPI base URL", _http_url
    )
    guardian_url: str = setting(
        "NEWSAGG_GUARDIAN_URL", "https://content.guardianapis.com", "Guardian base URL", _http_url
    )
    hackernews_url: str = setting(
        "NEWSAGG_HACKERNEWS_URL",
        "https://hn.algolia.com",
        "Hacker News (Algolia) base URL",
        _http_url,
    )
    cache_ttl: float = setting(
        "NEWSAGG_CACHE_TTL", 300.0, "seconds a fetched result is fresh", _number(0)
    )
    cache_max_stale: float = setting(
        "NEWSAGG_CACHE_MAX_STALE",
        3600.0,
        "seconds past its freshness a result may still be served when its provider fails",
        _number(0),
    )
    upstream_timeout: float = setting(
        "NEWSAGG_UPSTREAM_TIMEOUT",
        5.0,
        "seconds a provider may take in one request, retries included",
        _number(0.1),
    )
    newsapi_quota: str = setting(
        "NEWSAGG_NEWSAPI_QUOTA",
        "50/12 hours;100/day",
        "NewsAPI's call budget: rates in the `limits` notation (`amount/window`), several joined"
        " by `;`; newsagg never makes more calls than any of them allows in any moving window",
        _quota,
    )
    guardian_quota: str = setting(
        "NEWSAGG_GUARDIAN_QUOTA",
        "1/second;500/day",
        "the Guardian's call budget, in the same notation",
        _quota,
    )
    hackernews_quota: str = setting(
        "NEWSAGG_HACKERNEWS_QUOTA",
        "10000/hour",
        "Hacker News (Algolia)'s call budget, in the same notation",
        _quota,
    )
    on_demand_share: float = setting(
        "NEWSAGG_ON_DEMAND_SHARE",
        0.2,
        "the part (0-1) of each upstream budget kept for refreshes on demand (a client's"
        " request); the rest belongs to the harvester. Each API key may spend at most 10 %"
        " (basic), 25 % (premium) or 100 % (unlimited) of that part",
        _fraction,
    )
    harvest: bool = setting(
        "NEWSAGG_HARVEST",
        True,
        "`on` or `off`: the background harvester inside `newsagg serve`",
        _switch,
    )
    harvest_pace: Literal["budget", "demo"] = setting(
        "NEWSAGG_HARVEST_PACE",
        "budget",
        "how often the harvester visits each provider: `budget` (as often as its budget"
        " allows, minutes apart) or `demo` (seconds apart; what `--demo` sets, whose"
        " simulator publishes a story every 20 s)",
        _choice("budget", "demo"),
    )
    archive_days: int = setting(
        "NEWSAGG_ARCHIVE_DAYS",
        90,
        "days an article is kept in the archive (`0`: every article forever)",
        _whole(0, 36_500),
    )
    search_language: str = setting(
        "NEWSAGG_SEARCH_LANGUAGE",
        "english",
        "the language `q` and the archive stem words in (`election` finds `elections`): a"
        " Snowball language (`english`, `french`, `german`, `spanish`, ...) or `none` (words"
        " as written). A change of it takes `newsagg reindex` before the service starts",
        _choice(*LANGUAGES),
    )
    story_threshold: float = setting(
        "NEWSAGG_STORY_THRESHOLD",
        StoryRules().threshold,
        "how alike (cosine of IDF-weighted headline words, 0-1) an arriving article must be"
        " to a story's centroid to join it: lower groups more and errs more (the README's"
        " quality table sweeps it)",
        _fraction,
    )
    story_merge_threshold: float = setting(
        "NEWSAGG_STORY_MERGE_THRESHOLD",
        StoryRules().merge_threshold,
        "how alike two stories' centroids must be for the upkeep to merge them (stricter"
        " than joining)",
        _fraction,
    )
    story_window_hours: float = setting(
        "NEWSAGG_STORY_WINDOW_HOURS",
        StoryRules().window_us / HOUR_US,
        "how far apart in time an article and the story it joins may be",
        _number(1),
    )
    guardian_body_hours: float = setting(
        "NEWSAGG_GUARDIAN_BODY_HOURS",
        24.0,
        "hours a Guardian article's body text stays searchable after it was fetched (the"
        " Guardian's Open Platform terms limit how long its content may be kept); then it"
        " leaves the index and the database, and the article's title and trail stay. `0`:"
        " never asked for nor indexed",
        _number(0),
    )
    push: bool = setting(
        "NEWSAGG_PUSH",
        True,
        "`on` or `off`: inside `newsagg serve`, matching new articles against saved searches"
        " and delivering their webhooks (one instance at a time does it, as with the harvester)",
        _switch,
    )
    search_limit_basic: int = setting(
        "NEWSAGG_SEARCH_LIMIT_BASIC",
        10,
        "saved searches a `basic` key may hold",
        _whole(0, 1_000_000),
    )
    search_limit_premium: int = setting(
        "NEWSAGG_SEARCH_LIMIT_PREMIUM",
        100,
        "saved searches a `premium` key may hold",
        _whole(0, 1_000_000),
    )
    search_limit_unlimited: int = setting(
        "NEWSAGG_SEARCH_LIMIT_UNLIMITED",
        1000,
        "saved searches an `unlimited` key may hold",
        _whole(0, 1_000_000),
    )
    webhook_backoff: str = setting(
        "NEWSAGG_WEBHOOK_BACKOFF",
        "5s,5m,30m,2h,5h,10h,10h",
        "the waits before each retry of a failed webhook delivery (`s`, `m`, `h`, `d`; each"
        " ±10 % jitter); after the last the delivery fails and the search's webhook is disabled",
        _backoff,
    )
    webhook_allow_private: bool = setting(
        "NEWSAGG_WEBHOOK_ALLOW_PRIVATE",
        False,
        "`on` allows webhooks to http URLs and to loopback, private and link-local addresses"
        " (development and tests only: it lets API keys make the service call its own network);"
        " `--demo` on a loopback `--host` turns it on",
        _switch,
    )
    webhook_senders: int = setting(
        "NEWSAGG_WEBHOOK_SENDERS",
        64,
        "webhook attempts in flight at once in the instance that delivers (each on its own,"
        " with its own 5 s deadline; a thread each, mostly waiting on the network); one in"
        " eight is kept for keys that used little sender time lately",
        _whole(1, 4096),
    )
    webhook_in_flight_per_key: int = setting(
        "NEWSAGG_WEBHOOK_IN_FLIGHT_PER_KEY",
        4,
        "webhook attempts of one API key's searches in flight at once: slow or hanging"
        " receivers hold at most this many senders, the others serve other keys",
        _whole(1, 4096),
    )
    webhook_pings_per_minute: int = setting(
        "NEWSAGG_WEBHOOK_PINGS_PER_MINUTE",
        5,
        "`POST /searches/{id}/webhook/ping` calls one search may make in any 60 s; past it,"
        " 429 with `Retry-After`",
        _whole(1, 1_000_000),
    )
    stream_seconds: float = setting(
        "NEWSAGG_STREAM_SECONDS",
        300.0,
        "how long one event stream (`GET /searches/{id}/events`) stays open before the client"
        " reconnects with `Last-Event-ID` (EventSource does that by itself)",
        _number(0.1),
    )
    stream_limit_basic: int = setting(
        "NEWSAGG_STREAM_LIMIT_BASIC",
        10,
        "event streams a `basic` key may hold open at once in one process (past it, 429 with"
        " `Retry-After`; open streams are never cut off)",
        _whole(1, 1_000_000),
    )
    stream_limit_premium: int = setting(
        "NEWSAGG_STREAM_LIMIT_PREMIUM",
        100,
        "event streams a `premium` key may hold open at once in one process",
        _whole(1, 1_000_000),
    )
    stream_limit_unlimited: int = setting(
        "NEWSAGG_STREAM_LIMIT_UNLIMITED",
        1000,
        "event streams an `unlimited` key may hold open at once in one process",
        _whole(1, 1_000_000),
    )
    rate_limit_basic: int | None = setting(
        "NEWSAGG_RATE_LIMIT_BASIC",
        100,
        "requests per hour of a `basic` key (`none`: no limit)",
        _hourly_limit,
    )
    rate_limit_premium: int | None = setting(
        "NEWSAGG_RATE_LIMIT_PREMIUM",
        1000,
        "requests per hour of a `premium` key (`none`: no limit)",
        _hourly_limit,
    )
    rate_limit_unlimited: int | None = setting(
        "NEWSAGG_RATE_LIMIT_UNLIMITED",
        None,
        "requests per hour of an `unlimited` key (`none`: no limit)",
        _hourly_limit,
        shown_default="`none`",
    )
    rate_limit_windows: Literal["auto", "process", "database", "redis"] = setting(
        "NEWSAGG_RATE_LIMIT_WINDOWS",
        "auto",
        "where rate-limit windows live: `process` (each worker process its own), `database`"
        " (the SQLite file or PostgreSQL, shared by every process using it), `redis`, or"
        " `auto`: Redis when `NEWSAGG_REDIS_URL` is set, else the database with several"
        " workers or with PostgreSQL, else the process",
        _choice("auto", "process", "database", "redis"),
    )
    cors_origins: tuple[str, ...] = setting(
        "NEWSAGG_CORS_ORIGINS",
        (),
        "comma-separated browser origins allowed to call the API (CORS off when empty)",
        _origins,
    )
    max_body_bytes: int = setting(
        "NEWSAGG_MAX_BODY_BYTES",
        65536,
        "the largest request body accepted, in bytes; a larger one is refused with 413 before"
        " it is read (by its Content-Length, or as a chunked body passes the limit)",
        _whole(1024, 1 << 30),
    )
    demo: bool = setting(
        "NEWSAGG_DEMO",
        False,
        "serve from the bundled upstream simulator: no internet, no upstream keys",
        _switch,
        flag="--demo",
    )
    lean_path: bool = setting(
        "NEWSAGG_LEAN_PATH",
        True,
        "answer exact repeats of a GET that Connexion accepted without validating them again"
        " (key check and rate limit still run)",
        _switch,
    )
    public_url: str | None = setting(
        "NEWSAGG_PUBLIC_URL",
        None,
        "`https://news.example.com`: the URL clients reach the service at (behind a proxy,"
        " the proxy's). The feed and event-stream URLs a search gives out, Atom links and"
        " feed entry ids, and Swagger UI's server are made from it. Unset: demo mode uses"
        " its listen address; otherwise they follow each request's `Host` header",
        _public_url,
    )
    host: str = setting(
        "NEWSAGG_HOST",
        "127.0.0.1",
        "address `newsagg serve` listens on",
        _host,
        flag="--host",
    )
    port: int = setting(
        "NEWSAGG_PORT", 8000, "port `newsagg serve` listens on", _whole(1, 65535), flag="--port"
    )
    workers: int = setting(
        "NEWSAGG_WORKERS", 1, "worker processes of `newsagg serve`", _whole(1, 64), flag="--workers"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Unset or empty variables keep their defaults."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "")
            if raw != "":
                values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that make `from_env` give these settings back (for worker processes)."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                env[f.metadata["env"]] = "none" if f.metadata["parse"] is _hourly_limit else ""
            elif isinstance(value, bool):
                env[f.metadata["env"]] = "1" if value else "0"
            elif isinstance(value, tuple):
                env[f.metadata["env"]] = ",".join(value)
            else:
                env[f.metadata["env"]] = str(value)
        return env

    def with_flags(self, flags: Mapping[str, str | bool | None]) -> Settings:
        """These settings overridden by CLI flags given (`flags` maps field name -> raw value)."""
        changes = {}
        for f in fields(self):
            raw = flags.get(f.name)
            if raw is None or raw is False:
                continue
            changes[f.name] = True if raw is True else f.metadata["parse"](f.metadata["flag"], raw)
        return replace(self, **changes)

    def story_rules(self) -> StoryRules:
        return StoryRules(
            threshold=self.story_threshold,
            merge_threshold=self.story_merge_threshold,
            window_us=round(self.story_window_hours * HOUR_US),
        )

    def search_limit(self, tier: Tier) -> int:
        """How many saved searches a key of `tier` may hold."""
        return getattr(self, f"search_limit_{tier}")

    def stream_limit(self, tier: Tier) -> int:
        """How many event streams a key of `tier` may hold open at once (per process)."""
        return getattr(self, f"stream_limit_{tier}")

    def hourly_limit(self, tier: Tier) -> int | None:
        """The request limit per hour of a key of `tier`; None for no limit."""
        return getattr(self, f"rate_limit_{tier}")

    def windows_live_in(self) -> Literal["process", "database", "redis"]:
        """Where the rate-limit windows live, `auto` decided: as widely shared as the
        deployment asks for, and no wider. Redis when it is configured; else the database
        when several processes use it (several workers, or PostgreSQL, which exists to be
        shared by instances); else the process, because one process needs no sharing and
        an in-memory hit costs microseconds where a database transaction costs tens."""
        if self.rate_limit_windows != "auto":
            return self.rate_limit_windows
        if self.redis_url:
            return "redis"
        if self.workers > 1 or self.database_url:
            return "database"
        return "process"

    def __repr__(self) -> str:
        # Never print credentials, even in a traceback or a debug log.
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if not f.metadata["secret"]
        )
        return f"Settings({shown})"


def flagged() -> list[tuple[str, str, str]]:
    """(field name, flag, meaning) of every setting that has a CLI flag."""
    return [
        (f.name, f.metadata["flag"], f.metadata["meaning"])
        for f in fields(Settings)
        if f.metadata["flag"]
    ]


def markdown_table() -> str:
    """The README's configuration table."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.metadata["shown_default"]
        if default is None:
            value = f.default
            if value is None or value == ():
                default = "unset"
            elif isinstance(value, bool):
                default = "on" if value else "off"
            else:
                default = f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
        flag = f" (flag `{f.metadata['flag']}`)" if f.metadata["flag"] else ""
        rows.append(f"| `{f.metadata['env']}` | {f.metadata['meaning']}{flag} | {default} |")
    return "\n".join(rows)
