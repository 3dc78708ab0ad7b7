"""Settings: one table serves the environment, the CLI, worker processes and the README."""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path

import pytest

from edge.demo import with_simulator
from newsagg.cli import parser
from newsagg.settings import Settings, SettingsError, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_shows_the_settings_table():
    assert markdown_table() in README.read_text()


def test_settings_survive_the_trip_to_worker_processes():
    settings = Settings.from_env(
        {
            "NEWSAGG_RATE_LIMIT_BASIC": "none",
            "NEWSAGG_RATE_LIMIT_UNLIMITED": "5",
            "NEWSAGG_CORS_ORIGINS": "https://a.example, https://b.example",
            "NEWSAGG_DEMO": "1",
            "NEWSAGG_GUARDIAN_KEY": "g",
            "NEWSAGG_PORT": "9000",
        }
    )
    assert settings.hourly_limit("basic") is None and settings.hourly_limit("unlimited") == 5
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()


def test_flags_override_the_environment_and_are_checked_the_same_way():
    args = parser().parse_args(["--database", "x.db", "serve", "--port", "9001", "--demo"])
    settings = Settings.from_env({"NEWSAGG_PORT": "8001"}).with_flags(vars(args))
    assert (settings.database, settings.port, settings.demo) == ("x.db", 9001, True)
    bad = parser().parse_args(["serve", "--workers", "0"])
    with pytest.raises(SettingsError, match="--workers"):
        Settings().with_flags(vars(bad))


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("NEWSAGG_CACHE_TTL", "soon"),
        ("NEWSAGG_UPSTREAM_TIMEOUT", "0"),
        ("NEWSAGG_RATE_LIMIT_PREMIUM", "-3"),
        ("NEWSAGG_PORT", "70000"),
    ],
)
def test_unusable_values_are_refused_by_name(name, raw):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


SWITCHES = [f.metadata["env"] for f in fields(Settings) if isinstance(f.default, bool)]


@pytest.mark.parametrize("name", SWITCHES)
def test_a_switch_is_one_of_its_words_or_refused(name):
    """One strict parser for every on/off setting: a typo is a start-up error, never a
    silent on (or off)."""
    for word, value in [("on", True), ("OFF", False), (" yes ", True), ("0", False)]:
        assert Settings.from_env({name: word}) == Settings.from_env({name: str(int(value))})
    for raw in ["maybe", "enabled", "2", "tru", "o n"]:
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({name: raw})
        message = str(refused.value)
        assert name in message and repr(raw) in message
        assert all(word in message for word in ("on", "off", "1/0", "true/false", "yes/no"))


def test_a_digit_python_cannot_convert_is_a_settings_error():
    """'²'.isdigit() is True and int('²') fails: a bare ValueError naming nothing, once."""
    with pytest.raises(SettingsError, match="NEWSAGG_PORT must be a whole number 1-65535"):
        Settings.from_env({"NEWSAGG_PORT": "²"})


# Free text: credentials, a file name, and the database and Redis URLs, which their
# clients check when the service opens them (also a SettingsError naming the variable).
FREE_TEXT = {
    "NEWSAGG_DATABASE",
    "NEWSAGG_DATABASE_URL",
    "NEWSAGG_REDIS_URL",
    "NEWSAGG_ADMIN_KEY",
    "NEWSAGG_NEWSAPI_KEY",
    "NEWSAGG_GUARDIAN_KEY",
}
PARSED = [f.metadata["env"] for f in fields(Settings) if f.metadata["env"] not in FREE_TEXT]
# What Python's own parsers take or trip over: other scripts' digits, digit separators, a
# number longer than int() converts, non-finite floats, words.
GARBAGE = ["²", "٣", "1_000", "9" * 5000, "-1e999", "a b/c", "½"]


@pytest.mark.parametrize("name", PARSED)
def test_every_parser_refuses_garbage_by_name(name):
    for raw in GARBAGE:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("NEWSAGG_CACHE_TTL", "nan"),
        ("NEWSAGG_UPSTREAM_TIMEOUT", "inf"),
        ("NEWSAGG_ON_DEMAND_SHARE", "nan"),
        ("NEWSAGG_RATE_LIMIT_BASIC", "²"),
        ("NEWSAGG_ARCHIVE_DAYS", "٣"),
        ("NEWSAGG_HARVEST_PACE", "fast"),
        ("NEWSAGG_NEWSAPI_URL", "newsapi.org"),
        ("NEWSAGG_GUARDIAN_URL", "http://host:99999"),
        ("NEWSAGG_CORS_ORIGINS", "https://app.example/path"),
        ("NEWSAGG_HOST", "local host"),
    ],
)
def test_values_python_would_take_are_refused_too(name, raw):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_each_enumerated_setting_takes_exactly_the_words_of_its_type():
    hints = typing.get_type_hints(Settings)
    enumerated = [f for f in fields(Settings) if typing.get_origin(hints[f.name]) is typing.Literal]
    assert enumerated
    for f in enumerated:
        name = f.metadata["env"]
        for word in typing.get_args(hints[f.name]):
            assert getattr(Settings.from_env({name: word.upper()}), f.name) == word
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: "none of these"})


def test_secrets_stay_out_of_the_repr():
    settings = Settings(admin_key="adm-secret", newsapi_key="n-secret", guardian_key="g-secret")
    assert "secret" not in repr(settings) and "cache_ttl" in repr(settings)


def test_a_demo_on_loopback_may_call_webhooks_on_this_machine():
    """Only the newcomer reaches a demo on loopback, so their local receiver may be called;
    a demo other machines can reach keeps the SSRF guard."""
    for host, allowed in [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("news.example", False),
    ]:
        demo, simulator = with_simulator(Settings(demo=True, host=host))
        simulator.stop()
        assert demo.webhook_allow_private is allowed, host
