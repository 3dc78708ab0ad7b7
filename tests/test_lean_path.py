"""The lean path answers exactly what Connexion's full path answers.

Two apps over one service: one with the lean path, one without. Each request is sent to
the lean app once to warm it (with a key of its own), then to both apps with two keys in
the same state (same tier, same history), and the answers are compared: status, headers
(but Date and X-Request-ID) and body. A metric shows the lean app really took its lean
path where it should.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from edge.app import create_app
from newsagg.service import Service

IGNORED_HEADERS = {"date", "x-request-id"}


@dataclass
class Pair:
    service: Service
    full: object
    lean: object
    keys: dict[str, tuple[str, str]]  # role -> (full app's key, lean app's key)
    warm_key: str

    def shapes(self, result: str) -> float:
        return (
            self.service.metrics.registry.get_sample_value(
                "newsagg_request_shapes_total", {"result": result}
            )
            or 0.0
        )


@pytest.fixture
def pair(make_service: Callable[..., Service]) -> Iterator[Pair]:
    service = make_service(rate_limit_basic=4)
    no_lean = replace(service, settings=replace(service.settings, lean_path=False))

    def key(tier: str) -> str:
        return service.keys.create(f"{tier}-key", tier).plaintext

    keys = {
        role: (key(tier), key(tier)) for role, tier in [("user", "premium"), ("basic", "basic")]
    }
    with (
        create_app(service=no_lean).test_client() as full,
        create_app(service=service).test_client() as lean,
    ):
        yield Pair(service, full, lean, keys, key("unlimited"))


def _bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def _answer(response) -> tuple[int, list[tuple[str, str]], object]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in IGNORED_HEADERS)
    body: object = response.content
    if response.request.url.path == "/me" and response.status_code == 200:
        body = {**response.json(), "key": "(the caller's own)"}  # two keys, same standing
    return response.status_code, headers, body


def compare(pair: Pair, path: str, role: str | None = "user", headers: dict | None = None):
    """Warm the lean app with the shape, then send it to both apps; answers must match."""
    headers = headers or {}
    pair.lean.get(path, headers={**_bearer(pair.warm_key), **headers})
    full_key, lean_key = pair.keys[role] if role else (None, None)
    full = pair.full.get(path, headers={**_bearer(full_key), **headers})
    lean = pair.lean.get(path, headers={**_bearer(lean_key), **headers})
    assert _answer(lean) == _answer(full), path
    return full


def test_valid_repeats_take_the_lean_path_and_answer_the_same(pair):
    before = pair.shapes("remembered")
    page = compare(pair, "/articles?category=technology&limit=5")
    assert page.status_code == 200 and page.json()["count"] == 5
    article_id = page.json()["articles"][0]["id"]
    for path in (
        "/articles?q=power&source=guardian&source=newsapi",
        f"/articles/{article_id}",
        "/sources",
        "/me",
    ):
        assert compare(pair, path).status_code == 200, path
    assert pair.shapes("remembered") - before == 5


def test_conditional_requests_are_the_same_304(pair):
    etag = compare(pair, "/articles?category=science").headers["etag"]
    revalidated = compare(pair, "/articles?category=science", headers={"If-None-Match": etag})
    assert revalidated.status_code == 304 and revalidated.content == b""


def test_errors_the_handler_raises_are_the_same_problem(pair):
    assert compare(pair, "/articles/999999").status_code == 404
    assert compare(pair, "/articles?cursor=bm90LWEtY3Vyc29y").status_code == 400


def test_refused_shapes_are_never_remembered(pair):
    before = pair.shapes("remembered")
    for path in ("/articles?limit=500", "/articles?colour=red", "/articles?category=weather"):
        assert compare(pair, path).status_code == 400, path
    assert pair.shapes("remembered") == before


def test_keys_are_checked_on_every_request(pair):
    path = "/articles?category=business"
    compare(pair, path)
    assert compare(pair, path, role=None).status_code == 401  # no key
    unknown = compare(pair, path, role=None, headers={"Authorization": "Bearer nagg_not-a-key"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"] == "Bearer"
    for plaintext in pair.keys["user"]:
        record = pair.service.keys.verify(plaintext)
        pair.service.keys.revoke(record.id)
    assert compare(pair, path).status_code == 401  # revoked: refused at once


def test_the_rate_limit_counts_and_refuses_the_same(pair):
    path = "/articles?category=health"
    statuses = [compare(pair, path, role="basic").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]


def test_operations_outside_the_plain_bearer_check_always_take_the_full_path(pair):
    admin = pair.service.keys.create("admin", "unlimited", admin=True).plaintext
    before = pair.shapes("remembered")
    for _ in range(2):
        pair.lean.get("/health")
        pair.lean.get("/keys", headers=_bearer(admin))
        assert pair.lean.get("/keys", headers=_bearer(pair.warm_key)).status_code == 403
    assert pair.shapes("remembered") == before
