"""Live bodies against their documented schemas, with the strict OpenAPI 3.0 validator.

Schemathesis samples; this walks every (operation, documented status) pair on purpose,
drives the app into each one (upstream faults, exhausted keys, revoked keys, self-revoke),
and checks the answer with `openapi_schema_validator.OAS30Validator`: the validator
Connexion uses, which applies OpenAPI 3.0.3's rule that `nullable` only acts beside
`type`. A body such as `"last_error": null` passes only if the schema really admits it.
Routing-level errors (unknown path 404, 405) have no operation; their bodies are checked
against `Problem`. Rate-limit headers on an answer must be documented for its status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pg_server
import pytest
from conftest import merge_article
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from edge.app import create_app, load_spec
from newsagg.service import Service
from simulator import Fault, Simulator

SPEC: dict[str, Any] = load_spec()
SPEC_URI = "urn:newsagg:openapi"
# The whole spec is one resource, so every `#/components/...` reference in it resolves.
REGISTRY = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(SPEC))
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
PROVIDERS = ("newsapi", "guardian", "hackernews")


DATABASE_DOWN = {"$ref": "#/components/responses/DatabaseUnavailable"}


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (path template, method, operation)."""
    return {
        operation["operationId"]: (path, method, operation)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }


OPERATIONS = _operations()


def _documented(operation_id: str, status: int) -> tuple[str, dict[str, Any]] | None:
    """The documented response for a status: (its JSON pointer, the response object)."""
    path, method, operation = OPERATIONS[operation_id]
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    pointer = f"/paths/{_escape(path)}/{method}/responses/{status}"
    if "$ref" in response:
        pointer = response["$ref"].removeprefix("#")
        response = SPEC["components"]["responses"][pointer.rsplit("/", 1)[-1]]
    return pointer, response


def _validator(pointer: str) -> OAS30Validator:
    return OAS30Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"}, registry=REGISTRY, format_checker=oas30_format_checker
    )


@dataclass
class Findings:
    seen: set[tuple[str, int]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def check(self, operation_id: str | None, response: Any, expected: int) -> Any:
        where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
        if response.status_code != expected:
            self.problems.append(f"{where}: expected {expected}")
            return response
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if operation_id is None:  # routing-level: no operation, still a problem document
            self._body(where, response, "/components/schemas/Problem", media_type)
            return response
        self.seen.add((operation_id, expected))
        documented = _documented(operation_id, expected)
        if documented is None:
            self.problems.append(f"{where}: status not documented for {operation_id}")
            return response
        pointer, spec_response = documented
        content = spec_response.get("content", {})
        if not content:
            if response.content:
                self.problems.append(f"{where}: documented without a body, got one")
        elif media_type not in content:
            self.problems.append(f"{where}: {media_type!r} is not one of {list(content)}")
        else:
            schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
            self._body(where, response, schema_pointer, media_type)
        headers = spec_response.get("headers", {})
        for name in RATE_LIMIT_HEADERS:
            if name in response.headers and name not in headers:
                self.problems.append(f"{where}: carries {name}, undocumented for this status")
        if expected == 401 and response.headers.get("www-authenticate") != "Bearer":
            self.problems.append(f"{where}: no WWW-Authenticate: Bearer")
        return response

    def _body(self, where: str, response: Any, schema_pointer: str, media_type: str) -> None:
        body = response.json() if media_type.endswith("json") else response.text
        for error in _validator(schema_pointer).iter_errors(body):
            self.problems.append(f"{where}: {error.json_path}: {error.message}")


@pytest.fixture
def limited_service(make_service: Callable[..., Service]) -> Service:
    # Limited tiers, so rate-limit headers appear; basic allows one request an hour.
    # Short event streams, so that reading one to its end takes a moment; two searches a key.
    # Articles join a story on arrival only with the same title, so that the upkeep has two
    # stories of one event to merge (a merged story's id answers 308).
    return make_service(
        rate_limit_basic=1, stream_seconds=0.1, search_limit_premium=2, story_threshold=1.0
    )


def _url(path: str, **ids: int) -> str:
    """An operation's URL for these ids; a feed's with a well-formed token."""
    url = path.format(**ids)
    return f"{url}?token={'A' * 32}" if url.startswith("/feeds/") else url


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.timeout(60)
def test_every_documented_status_has_a_live_body_that_validates(
    limited_service: Service, simulator: Simulator
) -> None:
    findings = Findings()
    keys = limited_service.keys
    admin = _bearer(keys.create("bodies-admin", "premium", admin=True).plaintext)
    user = _bearer(keys.create("bodies-user", "premium").plaintext)
    spent = _bearer(keys.create("bodies-spent", "basic", admin=True).plaintext)
    check = findings.check

    with create_app(service=limited_service).test_client() as c:
        # Before any upstream call: every provider's last_error is null.
        check("listSources", c.get("/sources", headers=admin), 200)
        page = check("listArticles", c.get("/articles?limit=5", headers=admin), 200)
        etag = {"If-None-Match": page.headers["etag"]}
        check("listArticles", c.get("/articles?limit=5", headers=admin | etag), 304)
        article_id = page.json()["articles"][0]["id"]
        one = check("getArticle", c.get(f"/articles/{article_id}", headers=admin), 200)
        etag = {"If-None-Match": one.headers["etag"]}
        check("getArticle", c.get(f"/articles/{article_id}", headers=admin | etag), 304)
        check("getArticle", c.get("/articles/999999999", headers=admin), 404)

        # Stories: two of one event, apart on arrival, then merged by the upkeep.
        archive = limited_service.feed.archive
        archive.save([merge_article(1, "Zanzibar ferry strike halts Pemba crossings", 30)])
        archive.save(
            [merge_article(2, "Pemba crossings halted as Zanzibar ferry strike spreads", 10)]
        )
        listed = check("listStories", c.get("/stories?q=zanzibar", headers=admin), 200)
        etag = {"If-None-Match": listed.headers["etag"]}
        check("listStories", c.get("/stories?q=zanzibar", headers=admin | etag), 304)
        older, younger = sorted(story["id"] for story in listed.json()["stories"])
        story = check("getStory", c.get(f"/stories/{younger}", headers=admin), 200)
        etag = {"If-None-Match": story.headers["etag"]}
        check("getStory", c.get(f"/stories/{younger}", headers=admin | etag), 304)
        limited_service.store.merge_stories(10_000)
        moved = c.get(f"/stories/{younger}", headers=admin, follow_redirects=False)
        check("getStory", moved, 308)
        check("getStory", c.get("/stories/999999999", headers=admin), 404)
        check("getMe", c.get("/me", headers=admin), 200)
        check("getHealth", c.get("/health"), 200)
        check("getMetrics", c.get("/metrics", headers=admin), 200)

        created = check("createKey", c.post("/keys", json={"name": "b"}, headers=admin), 201)
        key_id = created.json()["id"]
        check("listKeys", c.get("/keys", headers=admin), 200)
        check("getKey", c.get(f"/keys/{key_id}", headers=admin), 200)
        check("revokeKey", c.delete(f"/keys/{key_id}", headers=admin), 204)
        check("getKey", c.get(f"/keys/{key_id}", headers=admin), 404)
        check("revokeKey", c.delete(f"/keys/{key_id}", headers=admin), 404)
        own_id = c.get("/me", headers=admin).json()["key"]["id"]
        check("revokeKey", c.delete(f"/keys/{own_id}", headers=admin), 409)
        plain = admin | {"Content-Type": "text/plain"}
        check("createKey", c.post("/keys", content=b'{"name": "b"}', headers=plain), 415)
        # One byte over NEWSAGG_MAX_BODY_BYTES (64 KiB by default): refused before it is read.
        huge = {"content": b" " * 65537, "headers": admin | {"Content-Type": "application/json"}}
        check("createKey", c.post("/keys", **huge), 413)
        check("createKey", c.post("/keys", json={"name": ""}, headers=admin), 400)

        # Saved searches: a public IP literal as the webhook (nothing is sent: push is off).
        hook = {"webhook_url": "https://93.184.216.34/hook"}
        made = check(
            "createSearch", c.post("/searches", json={"name": "s", **hook}, headers=admin), 201
        )
        search_id = made.json()["id"]
        s = f"/searches/{search_id}"
        check("createSearch", c.post("/searches", json={"name": ""}, headers=admin), 400)
        check("createSearch", c.post("/searches", content=b'{"name": "b"}', headers=plain), 415)
        check("createSearch", c.post("/searches", **huge), 413)
        bare = c.post("/searches", json={"name": "uncached", "q": "uncached"}, headers=admin)
        bare_id = check("createSearch", bare, 201).json()["id"]
        check("createSearch", c.post("/searches", json={"name": "third"}, headers=admin), 409)
        check("listSearches", c.get("/searches", headers=admin), 200)
        check("getSearch", c.get(s, headers=admin), 200)
        check("getSearch", c.get("/searches/999999", headers=admin), 404)
        check("updateSearch", c.patch(s, json={"name": "t"}, headers=admin), 200)
        check("updateSearch", c.patch(s, json={"q": '"open'}, headers=admin), 400)
        check("updateSearch", c.patch(s, content=b'{"name": "b"}', headers=plain), 415)
        check("updateSearch", c.patch(s, **huge), 413)
        check("updateSearch", c.patch("/searches/999999", json={"name": "t"}, headers=admin), 404)
        found = check("listSearchArticles", c.get(f"{s}/articles", headers=admin), 200)
        etag = {"If-None-Match": found.headers["etag"]}
        check("listSearchArticles", c.get(f"{s}/articles", headers=admin | etag), 304)
        check("listSearchArticles", c.get("/searches/999999/articles", headers=admin), 404)
        check("streamSearchEvents", c.get(f"{s}/events", headers=admin), 200)
        check("streamSearchEvents", c.get("/searches/999999/events", headers=admin), 404)
        check("listSearchDeliveries", c.get(f"{s}/deliveries", headers=admin), 200)
        check("listSearchDeliveries", c.get("/searches/999999/deliveries", headers=admin), 404)
        for operation_id, action, status in (
            ("rotateWebhookSecret", "webhook/secret", 200),
            ("pingWebhook", "webhook/ping", 202),
            ("rotateFeedToken", "feed-token", 200),
        ):
            check(operation_id, c.post(f"{s}/{action}", headers=admin), status)
            check(operation_id, c.post(f"/searches/999999/{action}", headers=admin), 404)
            if operation_id != "rotateFeedToken":
                check(operation_id, c.post(f"/searches/{bare_id}/{action}", headers=admin), 409)
        feed_url = c.get(s, headers=admin).json()["feed_url"]
        feed = check("getFeed", c.get(feed_url), 200)
        check("getFeed", c.get(feed_url, headers={"If-None-Match": feed.headers["etag"]}), 304)
        check("getFeed", c.get(f"/feeds/{search_id}?token={'A' * 32}"), 404)
        events_url = c.get(s, headers=admin).json()["events_url"]
        check("streamSearchEvents", c.get(events_url), 200)
        check("streamSearchEvents", c.get(f"{s}/events?token={'A' * 32}"), 404)
        check("deleteSearch", c.delete(s, headers=admin), 204)
        check("deleteSearch", c.delete(s, headers=admin), 404)

        # Every upstream failing, on a query nothing is cached for: 503; then each
        # provider's last_error is an object.
        for name in PROVIDERS:
            simulator.set_fault(name, Fault("status", status=500))
        check("listArticles", c.get("/articles?q=uncached", headers=admin), 503)
        check("listSearchArticles", c.get(f"/searches/{bare_id}/articles", headers=admin), 503)
        simulator.clear_faults()
        check("listSources", c.get("/sources", headers=admin), 200)

        check(None, c.get("/no-such-path", headers=admin), 404)
        check(None, c.put("/articles", headers=admin), 405)

        # The spent key gets one request, then 429 everywhere it is counted.
        assert c.get("/sources", headers=spent).status_code == 200
        for operation_id, (path, method, operation) in OPERATIONS.items():
            url = _url(
                path, article_id=article_id, key_id=key_id, search_id=search_id, story_id=older
            )
            body = {"json": {"name": "b"}} if method in ("post", "patch") else {}
            secured = operation.get("security", SPEC["security"]) != []
            if "429" in operation["responses"]:
                check(operation_id, c.request(method, url, headers=spent, **body), 429)
            if secured:
                check(operation_id, c.request(method, url, **body), 401)
            if "403" in operation["responses"]:
                check(operation_id, c.request(method, url, headers=user, **body), 403)
            # strict_validation: an unknown query parameter is a 400 on every operation.
            odd = f"{url}{'&' if '?' in url else '?'}colour=red"
            check(operation_id, c.request(method, odd, headers=admin, **body), 400)

    documented = {
        (operation_id, int(status))
        for operation_id, (_path, _method, operation) in OPERATIONS.items()
        for status, response in operation["responses"].items()
        if response != DATABASE_DOWN  # the next test's business
    }
    assert findings.problems == []
    assert documented - findings.seen == set(), "documented statuses never provoked"


@pytest.mark.timeout(60)
def test_every_operation_answers_its_documented_503_while_postgres_is_down(
    make_service: Callable[..., Service],
) -> None:
    findings = Findings()
    try:
        server = pg_server.new_server()  # its own: stopping it must not hurt other tests
    except pg_server.NoServer as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        service = make_service(database_url=server.url())
        admin = _bearer(service.keys.create("bodies-admin", "premium", admin=True).plaintext)
        with create_app(service=service).test_client() as c:
            server.stop()
            for operation_id, (path, method, operation) in OPERATIONS.items():
                if operation["responses"].get("503") == DATABASE_DOWN:
                    url = _url(path, article_id=1, key_id=1, search_id=1, story_id=1)
                    body = {"json": {"name": "b"}} if method in ("post", "patch") else {}
                    answer = c.request(method, url, headers=admin, **body)
                    findings.check(operation_id, answer, 503)
                    assert int(answer.headers["retry-after"]) > 0
    finally:
        server.remove()
    documented = {
        operation_id
        for operation_id, (_path, _method, operation) in OPERATIONS.items()
        if operation["responses"].get("503") == DATABASE_DOWN
    }
    assert findings.problems == []
    assert documented == {operation_id for operation_id, _status in findings.seen}
    assert len(documented) >= 8  # every authenticated operation but the feed's own 503
