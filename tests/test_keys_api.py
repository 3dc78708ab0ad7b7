"""API keys end to end: creation, hashing at rest, 401 vs 403, revocation, /me, rate limits."""

from __future__ import annotations

import sqlite3

import pytest

from edge.app import create_app


def test_create_key_returns_it_once_with_location(client, admin_headers, service):
    response = client.post(
        "/keys", json={"name": "mobile-app", "tier": "premium"}, headers=admin_headers
    )
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/keys/{created['id']}"
    assert created["key"].startswith("nagg_") and len(created["key"]) >= 45
    assert created["prefix"] == created["key"][:10]
    assert (created["name"], created["tier"], created["admin"]) == ("mobile-app", "premium", False)

    fetched = client.get(created and f"/keys/{created['id']}", headers=admin_headers).json()
    assert "key" not in fetched and fetched == {k: v for k, v in created.items() if k != "key"}
    listed = client.get("/keys", headers=admin_headers).json()["keys"]
    assert created["id"] in [k["id"] for k in listed]
    assert all(set(k) == {"id", "name", "tier", "admin", "prefix", "created_at"} for k in listed)

    me = client.get("/me", headers={"Authorization": f"Bearer {created['key']}"})
    assert me.status_code == 200 and me.json()["key"]["id"] == created["id"]


def test_only_a_digest_is_stored(client, admin_headers, service):
    key = client.post("/keys", json={"name": "x"}, headers=admin_headers).json()["key"]
    with sqlite3.connect(service.settings.database) as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump
    assert key[10:] not in dump  # not even the secret part beyond the display prefix


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nagg_nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
)
def test_missing_or_bad_key_is_401_with_challenge(client, headers):
    response = client.get("/articles", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/keys"), ("get", "/keys/1"), ("delete", "/keys/1"), ("post", "/keys")],
)
def test_admin_operations_refuse_normal_keys_with_403(client, user_headers, method, path):
    kwargs = {"json": {"name": "x"}} if method == "post" else {}
    response = getattr(client, method)(path, headers=user_headers, **kwargs)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "This operation needs an admin key."


def test_revoked_key_is_refused_at_once(client, admin_headers):
    created = client.post("/keys", json={"name": "leaked"}, headers=admin_headers).json()
    victim = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/sources", headers=victim).status_code == 200
    assert client.delete(f"/keys/{created['id']}", headers=admin_headers).status_code == 204
    assert client.get("/sources", headers=victim).status_code == 401
    assert client.get(f"/keys/{created['id']}", headers=admin_headers).status_code == 404
    assert client.delete(f"/keys/{created['id']}", headers=admin_headers).status_code == 404
    assert created["id"] not in [
        k["id"] for k in client.get("/keys", headers=admin_headers).json()["keys"]
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"name": ""}', "application/json", 400),
        (b'{"name": "a\\u0000b"}', "application/json", 400),
        (b'{"name": "x", "tier": "gold"}', "application/json", 400),
        (b'{"name": "x", "admin": "yes"}', "application/json", 400),
        (b'{"name": "x", "key": "chosen"}', "application/json", 400),
        (b'{"tier": "basic"}', "application/json", 400),
        (b'{"name": "x"', "application/json", 400),
        (b'{"name": "\xff\xfe"}', "application/json", 400),
        (b"[]", "application/json", 400),
        (b"name=x", "application/x-www-form-urlencoded", 415),
        (b'{"name": "x"}', "text/plain", 415),
    ],
)
def test_bad_key_bodies_are_4xx_and_create_nothing(
    client, admin_headers, body, content_type, status
):
    before = client.get("/keys", headers=admin_headers).json()["keys"]
    response = client.post(
        "/keys", content=body, headers=admin_headers | {"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/keys", headers=admin_headers).json()["keys"] == before


def test_a_key_cannot_revoke_itself(client, admin_headers):
    me = client.get("/me", headers=admin_headers).json()["key"]
    response = client.delete(f"/keys/{me['id']}", headers=admin_headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/keys", headers=admin_headers).status_code == 200


def test_bootstrap_admin_key_from_settings(make_service, bearer):
    service = make_service(admin_key="nagg_bootstrap-secret-for-tests-only-0123456789")
    with create_app(service=service).test_client() as c:
        response = c.get("/keys", headers=bearer("nagg_bootstrap-secret-for-tests-only-0123456789"))
    assert response.status_code == 200
    assert [k["name"] for k in response.json()["keys"]] == ["bootstrap-admin"]


def test_rate_limit_headers_429_and_me(make_service, bearer):
    service = make_service(rate_limit_basic=3)
    limited = bearer(service.keys.create("limited", "basic").plaintext)
    other = bearer(service.keys.create("other", "basic").plaintext)
    with create_app(service=service).test_client() as c:
        remaining = [
            c.get("/sources", headers=limited).headers["x-ratelimit-remaining"] for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        refused = c.get("/sources", headers=limited)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 3500 <= int(refused.headers["retry-after"]) <= 3600
        assert refused.headers["x-ratelimit-limit"] == "3"
        # /me does not count and still answers; another key is unaffected.
        me = c.get("/me", headers=limited)
        assert me.status_code == 200
        assert me.json()["rate_limit"]["remaining"] == 0
        assert c.get("/sources", headers=other).status_code == 200
        # Rejected parameters count too, and carry the headers.
        bad = c.get("/articles?limit=0", headers=other)
        assert bad.status_code == 400 and bad.headers["x-ratelimit-remaining"] == "1"


def test_unlimited_keys_have_no_limit_headers(client, user_headers):
    response = client.get("/sources", headers=user_headers)
    assert response.status_code == 200
    assert "x-ratelimit-limit" not in response.headers
    assert client.get("/me", headers=user_headers).json()["rate_limit"] == {
        "limit": None,
        "remaining": None,
        "reset_seconds": 0,
    }


def test_health_needs_no_key(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_sources_lists_every_provider(client, user_headers):
    sources = client.get("/sources", headers=user_headers).json()["sources"]
    assert [s["name"] for s in sources] == ["newsapi", "guardian", "hackernews"]
    assert next(s for s in sources if s["name"] == "hackernews")["categories"] == [
        "general",
        "technology",
    ]
    assert all(s["enabled"] for s in sources)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/articles?category=%FF%FE", {}),
        ("/articles?q=%00%01", {}),
        ("/articles/abc", {}),
        ("/articles/0", {}),
        ("/articles/99999999999999999999999", {}),
        ("/keys/-1", {}),
        ("/articles?limit=1&limit=2&limit=99999999999999999999", {}),
        ("/articles", {"Content-Type": "application/xml"}),
    ],
)
def test_odd_input_is_a_4xx_never_a_500(client, admin_headers, path, headers):
    response = client.get(path, headers=admin_headers | headers)
    assert 400 <= response.status_code < 500 or response.status_code == 200
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_oversize_authorization_header_is_refused_not_crashed(client):
    response = client.get("/articles", headers={"Authorization": "Bearer " + "x" * 20_000})
    assert response.status_code == 401
