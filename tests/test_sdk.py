"""A Python client generated from the spec by openapi-python-client (warnings are errors),
driven against a live server: the spec is good enough for users' generators."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.app import SPEC_PATH

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdk")
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(SPEC_PATH),
            "--output-path",
            str(out / "newsagg_client"),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # The generator formats its output with ruff, which lives beside it in the venv.
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("newsagg_client")
    finally:
        sys.path.remove(str(out))


def test_generated_client_names_read_well(sdk):
    # Module per tag, function per operationId, model per schema: what a user types.
    for module in (
        "articles.list_articles",
        "articles.get_article",
        "sources.list_sources",
        "account.get_me",
        "keys.create_key",
        "keys.list_keys",
        "keys.get_key",
        "keys.revoke_key",
        "health.get_health",
        "operations.get_metrics",
    ):
        assert importlib.import_module(f"newsagg_client.api.{module}").sync_detailed
    models = importlib.import_module("newsagg_client.models")
    for model in (
        "Article",
        "ArticlePage",
        "Source",
        "SourceStatus",
        "Key",
        "NewKey",
        "NewKeyRequest",
        "Problem",
        "Me",
        "RateLimit",
        "Category",
        "Tier",
    ):
        assert hasattr(models, model), model


def test_generated_client_against_a_live_server(sdk, live_server, service):
    from newsagg_client import AuthenticatedClient
    from newsagg_client.api.articles import get_article, list_articles
    from newsagg_client.api.keys import create_key, get_key, revoke_key
    from newsagg_client.api.sources import list_sources
    from newsagg_client.models import ArticlePage, Category, NewKey, NewKeyRequest, Problem, Tier

    admin_key = service.keys.create("sdk-admin", "unlimited", admin=True).plaintext
    admin = AuthenticatedClient(base_url=live_server.url, token=admin_key)

    first = list_articles.sync(client=admin, category=Category.TECHNOLOGY, limit=3)
    assert isinstance(first, ArticlePage) and first.count == 3
    seen = [a.id for a in first.articles]
    cursor = first.next_cursor
    while cursor:
        page = list_articles.sync(
            client=admin, category=Category.TECHNOLOGY, limit=3, cursor=cursor
        )
        seen += [a.id for a in page.articles]
        cursor = page.next_cursor
    everything = list_articles.sync(client=admin, category=Category.TECHNOLOGY, limit=100)
    assert seen == [a.id for a in everything.articles]

    article = get_article.sync(client=admin, article_id=seen[0])
    assert article.id == seen[0] and article.title == first.articles[0].title

    created = create_key.sync(client=admin, body=NewKeyRequest(name="from-sdk", tier=Tier.PREMIUM))
    assert isinstance(created, NewKey) and created.key.startswith("nagg_")
    user = AuthenticatedClient(base_url=live_server.url, token=created.key)
    assert len(list_sources.sync(client=user).sources) == 3
    assert get_key.sync(client=admin, key_id=created.id).name == "from-sdk"
    assert revoke_key.sync_detailed(client=admin, key_id=created.id).status_code == 204

    refused = list_sources.sync_detailed(client=user)
    assert refused.status_code == 401 and isinstance(refused.parsed, Problem)
    assert refused.parsed.status == 401
    missing = get_article.sync_detailed(client=admin, article_id=10**9)
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
    assert missing.parsed.detail == f"No article with id {10**9}."


def test_generated_source_model_admits_a_null_last_error(sdk):
    # The spec's `anyOf: [SourceError, null-only]` must become `SourceError | None`.
    from newsagg_client.models import Source, SourceError

    healthy = {
        "name": "newsapi",
        "enabled": True,
        "categories": ["technology"],
        "state": "closed",
        "retry_in_seconds": 0,
        "last_success_at": None,
        "last_error": None,
        "budget": {
            "limits": [
                {
                    "limit": "100/day",
                    "amount": 100,
                    "window_seconds": 86400,
                    "used": 1,
                    "remaining": 99,
                }
            ],
            "next_call_at": None,
        },
        "harvest": None,
    }
    assert Source.from_dict(healthy).last_error is None
    failed = {
        **healthy,
        "last_error": {"code": "upstream_error", "message": "m", "at": "2026-11-25T08:02:40+00:00"},
    }
    parsed = Source.from_dict(failed)
    assert isinstance(parsed.last_error, SourceError) and parsed.last_error.code == "upstream_error"
    assert parsed.to_dict() == failed
