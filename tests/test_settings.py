"""Settings: one table serves the environment, the CLI, worker processes and the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsagg.cli import parser
from newsagg.service import with_simulator
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
