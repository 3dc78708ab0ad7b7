"""HTTP caching, CORS, request ids, the access log and /metrics."""

from __future__ import annotations

import json
import logging

from edge.app import create_app


def test_etag_and_304(client, user_headers, service):
    first = client.get("/articles?category=science", headers=user_headers)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == f"private, max-age={int(service.settings.cache_ttl)}"
    again = client.get("/articles?category=science", headers=user_headers | {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    listed = client.get(
        "/articles?category=science",
        headers=user_headers | {"If-None-Match": f'"x", {etag.removeprefix("W/")}'},
    )
    assert listed.status_code == 304
    other = client.get(
        "/articles?category=science", headers=user_headers | {"If-None-Match": '"x"'}
    )
    assert other.status_code == 200 and other.json()["articles"] == first.json()["articles"]

    article_id = first.json()["articles"][0]["id"]
    one = client.get(f"/articles/{article_id}", headers=user_headers)
    not_modified = client.get(
        f"/articles/{article_id}", headers=user_headers | {"If-None-Match": one.headers["etag"]}
    )
    assert not_modified.status_code == 304


def test_a_revalidation_answered_304_is_not_charged(make_service, bearer):
    service = make_service(rate_limit_basic=10)
    key = bearer(service.keys.create("revalidating", "basic").plaintext)
    with create_app(service=service).test_client() as c:
        first = c.get("/articles?category=science", headers=key)
        assert first.headers["x-ratelimit-remaining"] == "9"
        for _ in range(3):  # the first repeat is judged by Connexion, the others take the lean path
            unchanged = c.get(
                "/articles?category=science", headers=key | {"If-None-Match": first.headers["etag"]}
            )
            assert unchanged.status_code == 304
            assert unchanged.headers["x-ratelimit-remaining"] == "9"
        assert c.get("/me", headers=key).json()["rate_limit"]["remaining"] == 9
        changed = c.get("/articles?category=health", headers=key)  # a 200 is charged
        assert changed.headers["x-ratelimit-remaining"] == "8"


def test_cors_is_off_by_default(client, user_headers):
    response = client.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_preflight_and_exposed_headers(make_service, bearer):
    service = make_service(cors_origins=("https://app.example",))
    key = bearer(service.keys.create("browser", "basic").plaintext)
    with create_app(service=service).test_client() as c:
        preflight = c.options(
            "/articles",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization,if-none-match",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        response = c.get("/sources", headers=key | {"Origin": "https://app.example"})
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        exposed = response.headers["access-control-expose-headers"].lower()
        assert "x-ratelimit-remaining" in exposed and "etag" in exposed
        assert "www-authenticate" in exposed  # a script can tell why it got a 401
        refused = c.options(
            "/articles",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert refused.headers.get("access-control-allow-origin") != "https://evil.example"


def test_request_id_is_echoed_or_generated(client, user_headers):
    given = client.get("/sources", headers=user_headers | {"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = client.get("/nope")
    assert len(generated.headers["x-request-id"]) == 32
    forged = client.get("/health", headers={"X-Request-ID": "bad id\ninjected"})
    assert forged.headers["x-request-id"] != "bad id\ninjected"


def test_one_json_access_line_per_request_without_the_key(client, user_headers, caplog):
    caplog.set_level(logging.INFO, logger="newsagg.access")
    key = user_headers["Authorization"].split()[1]
    client.get("/articles?limit=1&q=secret+words", headers=user_headers | {"X-Request-ID": "r-1"})
    client.get("/keys", headers=user_headers)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "newsagg.access"]
    assert [(line["operation"], line["status"]) for line in lines] == [
        ("listArticles", 200),
        ("listKeys", 403),
    ]
    assert lines[0]["request_id"] == "r-1" and lines[0]["key_prefix"] == key[:10]
    assert lines[0]["duration_ms"] > 0 and lines[0]["path"] == "/articles"
    assert key not in caplog.text and "secret words" not in caplog.text


def test_metrics_are_admin_only_and_count(client, user_headers, admin_headers):
    client.get("/articles?category=technology", headers=user_headers)
    client.get("/articles?category=technology", headers=user_headers)
    assert client.get("/metrics", headers=user_headers).status_code == 403
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'newsagg_requests_total{operation="listArticles",status="200"} 2.0' in text
    assert 'newsagg_upstream_calls_total{outcome="ok",provider="guardian"} 1.0' in text
    assert 'newsagg_cache_lookups_total{result="hit"} 3.0' in text
    assert 'newsagg_cache_lookups_total{result="miss"} 3.0' in text
    assert "newsagg_request_duration_seconds_bucket" in text
