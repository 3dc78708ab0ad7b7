"""Malformed requests get a problem+json 4xx, never a 500, and never reach a handler
unvalidated: a body's Content-Type missing, wrong or in another case; a body too large
(refused before it is read, announced or chunked); JSON nested too deep; values far past
their limit, which a `detail` names by field and limit without repeating them.

In-process through the real app (`create_app(service=...)`), and over real HTTP (uvicorn
on loopback) where the framing of the request is the point.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import LiveServer, problem_detail

from edge.app import create_app, load_spec
from newsagg.settings import Settings, SettingsError

pytestmark = pytest.mark.timeout(60)

DEFAULT_LIMIT = 64 * 1024
JSON_DEPTH = 32  # edge.connexion_ext.MAX_JSON_DEPTH, as the spec states it


# -- the operations that take a body, from the spec ----------------------------------------


@dataclass
class BodyOperation:
    operation_id: str
    method: str
    path: str  # path parameters filled in
    valid: dict[str, Any]  # the spec's first example
    accepted: int  # the status a valid body gets


def body_operations(search_id: int) -> list[BodyOperation]:
    """Every operation of the spec that takes a body, with a path naming real resources."""
    found = []
    for template, item in load_spec()["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body is None:
                continue
            media = body["content"]["application/json"]
            assert list(body["content"]) == ["application/json"], operation["operationId"]
            found.append(
                BodyOperation(
                    operation["operationId"],
                    method.upper(),
                    template.replace("{search_id}", str(search_id)),
                    next(iter(media["examples"].values()))["value"],
                    min(int(s) for s in operation["responses"] if s.startswith("2")),
                )
            )
    assert {o.operation_id for o in found} >= {"createKey", "createSearch", "updateSearch"}
    return found


@pytest.fixture
def app_client(service) -> Iterator[Any]:
    with create_app(service=service).test_client() as test_client:
        yield test_client


@pytest.fixture
def admin(service) -> dict[str, str]:
    key = service.keys.create("a", "unlimited", admin=True).plaintext
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def operations(app_client, admin) -> list[BodyOperation]:
    made = app_client.post("/searches", json={"name": "existing"}, headers=admin)
    assert made.status_code == 201, made.text
    return body_operations(made.json()["id"])


def state(client, admin: dict[str, str]) -> Any:
    """What a handler that ran would have changed: every key and every search."""
    keys = client.get("/keys", headers=admin).json()
    searches = client.get("/searches", headers=admin).json()
    return keys, searches


def send(client, op: BodyOperation, headers: dict[str, str], body: bytes | Any) -> Any:
    content = body if isinstance(body, bytes | Iterator) else json.dumps(body).encode()
    return client.request(op.method, op.path, content=content, headers=headers)


# -- Content-Type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "APPLICATION/JSON",
        "Application/Json; Charset=UTF-8",
        # RFC 8259 defines no charset for application/json: JSON is UTF-8, whatever it says.
        "application/json;charset=bogus",
        "application/json;charset=latin-1",
    ],
)
def test_a_json_media_type_in_any_case_is_validated_and_accepted(
    app_client, admin, operations, content_type
):
    """Media types are case-insensitive (RFC 9110 8.3.1): the body is validated as JSON
    whatever the case, so a bad body is a 400 and a good one is accepted."""
    headers = {**admin, "Content-Type": content_type}
    for op in operations:
        before = state(app_client, admin)
        bad = send(app_client, op, headers, {**op.valid, "unknown_field": 1})
        assert "unknown_field" in problem_detail(bad, 400), op.operation_id
        not_json = send(app_client, op, headers, b"{not json")
        problem_detail(not_json, 400)
        not_utf8 = send(app_client, op, headers, b'{"name": "caf\xe9"}')
        problem_detail(not_utf8, 400)
        assert state(app_client, admin) == before, op.operation_id  # no handler ran
        good = send(app_client, op, headers, op.valid)
        assert good.status_code == op.accepted, (op.operation_id, good.text)


def test_a_body_without_an_accepted_content_type_is_415(app_client, admin, operations):
    """A body without Content-Type is 415, not guessed at (RFC 9110 8.3: the recipient may
    assume application/octet-stream, which no operation takes); so is any media type but
    JSON. The detail says what to send, and no handler runs."""
    before = state(app_client, admin)
    for op in operations:
        for content_type in (
            None,
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json-patch+json",
            "*/*",
            "application/" + "x" * 5000,
        ):
            headers = dict(admin)
            if content_type is not None:
                headers["Content-Type"] = content_type
            answer = send(app_client, op, headers, op.valid)
            detail = problem_detail(answer, 415)
            assert "application/json" in detail, (op.operation_id, content_type, detail)
            assert len(detail) < 200 and "x" * 50 not in detail
    assert state(app_client, admin) == before


def test_every_operation_with_a_body_documents_413_and_415():
    spec = load_spec()
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                responses = operation["responses"]
                assert {"400", "413", "415"} <= set(responses), operation["operationId"]
                assert responses["413"] == {"$ref": "#/components/responses/ContentTooLarge"}


# -- size -----------------------------------------------------------------------------------


def test_the_body_limit_is_a_setting():
    assert Settings().max_body_bytes == DEFAULT_LIMIT
    assert Settings.from_env({"NEWSAGG_MAX_BODY_BYTES": "2048"}).max_body_bytes == 2048
    for bad in ("0", "-1", "64k", "1e6"):
        with pytest.raises(SettingsError, match="NEWSAGG_MAX_BODY_BYTES"):
            Settings.from_env({"NEWSAGG_MAX_BODY_BYTES": bad})


def _padded(size: int) -> bytes:
    """A JSON body of exactly `size` bytes (a search whose name is padded with spaces)."""
    head = b'{"name": "padded"'
    return head + b" " * (size - len(head) - 1) + b"}"


def test_a_body_over_the_limit_is_413_and_one_at_it_is_read(make_service, bearer):
    service = make_service(max_body_bytes=2048)
    key = bearer(service.keys.create("k", "unlimited").plaintext)
    headers = {**key, "Content-Type": "application/json"}
    with create_app(service=service).test_client() as c:
        at_limit = c.post("/searches", content=_padded(2048), headers=headers)
        assert at_limit.status_code == 201, at_limit.text
        over = c.post("/searches", content=_padded(2049), headers=headers)
        assert problem_detail(over, 413) == "The request body is larger than 2048 bytes."
        # Chunked (no Content-Length): counted as it arrives.
        chunked = c.post("/searches", content=iter([_padded(2049)]), headers=headers)
        assert "content-length" not in chunked.request.headers
        problem_detail(chunked, 413)
        assert c.get("/searches", headers=key).json()["count"] == 1


def test_a_small_chunked_body_is_validated_and_accepted(client, user_headers):
    headers = {**user_headers, "Content-Type": "application/json"}
    made = client.post("/searches", content=iter([b'{"name": ', b'"chunked"}']), headers=headers)
    assert made.request.headers["transfer-encoding"] == "chunked"
    assert made.status_code == 201, made.text
    bad = client.post("/searches", content=iter([b'{"nam": ', b'"chunked"}']), headers=headers)
    assert "nam" in problem_detail(bad, 400)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the HTTP/1.1 answer on `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(status_line.split()[1]), headers, body


def _request_head(port: int, key: str, framing: str) -> bytes:
    return (
        f"POST /searches HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


@pytest.fixture
def live(service) -> Iterator[tuple[int, str]]:
    """The app under uvicorn: its port, and a key."""
    key = service.keys.create("live", "unlimited").plaintext
    with LiveServer(service) as server:
        yield int(server.url.rsplit(":", 1)[1]), key


def test_an_announced_oversize_body_is_refused_before_it_is_sent(live):
    """Content-Length over the limit: the answer comes while the body has not been sent at
    all (a server that read it first would wait here until the socket timed out)."""
    port, key = live
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request_head(port, key, "Content-Length: 30000000"))
        status, headers, body = _answer(sock)
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["detail"] == f"The request body is larger than {DEFAULT_LIMIT} bytes."


def test_a_chunked_oversize_body_is_refused_when_it_passes_the_limit(live):
    """Chunked: the answer comes once the limit is passed, while the client is still
    sending (it never sends the last chunk)."""
    port, key = live
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_request_head(port, key, "Transfer-Encoding: chunked"))
        chunk = b'{"name": "' + b"a" * 16374  # 16 KiB of a body that never ends
        sending = True

        def keep_sending() -> None:
            try:
                for _ in range(64):  # 1 MiB at most, then the client gives up
                    if not sending:
                        return
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass  # the server answered and closed

        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        try:
            status, headers, _body = _answer(sock)
        finally:
            sending = False
        sender.join(10)
    assert status == 413 and headers["content-type"] == "application/problem+json"


def test_over_http_a_body_without_content_type_is_415_and_long_urls_are_problems(live):
    port, key = live
    body = b'{"name": "no type"}'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /searches HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        status, headers, answer = _answer(sock)
    assert status == 415 and headers["content-type"] == "application/problem+json"
    # A URL the server lets through, however long, is the app's to answer: with a problem.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /articles?q={'a' * 60000} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {key}\r\n\r\n"
            ).encode()
        )
        status, headers, answer = _answer(sock)
    assert status == 400 and headers["content-type"] == "application/problem+json"
    assert json.loads(answer)["detail"] == "q: longer than 500 characters"
    # Past the server's own limit (httptools: a request target of 65,535 bytes) the server
    # answers before the app can, in plain text (README: Limits).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /articles?q={'a' * 100_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, answer = _answer(sock)
    assert status == 400 and headers["content-type"].startswith("text/plain")


# -- depth ----------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    """A search body whose `x` is `depth` arrays deep (the body itself one level more)."""
    return b'{"name": "a", "x": ' + b"[" * depth + b"]" * depth + b"}"


def test_json_nested_deeper_than_the_bound_is_a_400(client, user_headers):
    headers = {**user_headers, "Content-Type": "application/json"}
    for depth in (JSON_DEPTH, 1000, 30_000):  # 30,000 deep: 60 KB, within the size limit
        refused = client.post("/searches", content=_nested(depth), headers=headers)
        detail = problem_detail(refused, 400)
        assert detail == f"The request body is nested deeper than {JSON_DEPTH} levels.", depth
    # At the bound it is parsed (and refused for its unknown field, as any body would be).
    within = client.post("/searches", content=_nested(JSON_DEPTH - 1), headers=headers)
    assert "x" in problem_detail(within, 400) and "nested" not in within.text
    # Brackets inside a string are text, not nesting.
    text = client.post("/searches", json={"name": "[" * 90 + "{"}, headers=user_headers)
    assert text.status_code == 201, text.text


# -- what a detail repeats --------------------------------------------------------------------


def _short(detail: str, filler: str = "a") -> str:
    assert len(detail) <= 200, detail[:300]
    assert filler * 41 not in detail, detail
    return detail


@pytest.mark.parametrize("length", [501, 8000, 60_000])
def test_a_long_q_is_named_with_its_limit_never_repeated(client, user_headers, length):
    answer = client.get("/articles", params={"q": "a" * length}, headers=user_headers)
    assert problem_detail(answer, 400) == "q: longer than 500 characters"
    body = client.post("/searches", json={"name": "x", "q": "a" * length}, headers=user_headers)
    if length < DEFAULT_LIMIT:
        assert problem_detail(body, 400) == "q: longer than 500 characters"
    else:
        problem_detail(body, 413)


def test_no_detail_repeats_more_than_a_short_prefix_of_a_value(client, user_headers, admin_headers):
    long = "a" * 5000
    cases = [
        ("GET", f"/articles?category={long}", None, "category"),
        ("GET", f"/articles?source={long}", None, "source"),
        ("GET", f"/articles?limit={'9' * 5000}", None, "limit"),
        ("GET", f"/articles?from={long}", None, "from"),
        ("GET", f"/articles?{long}=1", None, "parameter"),
        ("GET", f"/articles/{'9' * 5000}", None, ""),
        ("POST", "/searches", {"name": long}, "name: longer than 100 characters"),
        ("POST", "/searches", {"name": "x", "webhook_url": "https://x.example/" + long}, "2000"),
        ("POST", "/searches", {"name": "x", long: 1}, ""),
        ("POST", "/searches", {"name": "x", "category": long}, "category"),
        ("POST", "/searches", {"name": "x", "source": [long]}, "source"),
        ("POST", "/searches", {"name": "x", "paused": long}, "paused"),
        ("POST", "/searches", {"name": "x", "q": f'"{long[:400]}'}, "q"),
        ("POST", "/keys", {"name": "x", "tier": long}, "tier"),
        ("POST", "/searches", {"name": "x", "paused": int("9" * 4000)}, "paused"),
        ("POST", "/searches", b'{"name": "x", "paused": ' + b"9" * 5000 + b"}", "number"),
    ]
    for method, url, body, names in cases:
        headers = admin_headers if url == "/keys" else user_headers
        if isinstance(body, bytes):
            sent = {"content": body, "headers": {**headers, "Content-Type": "application/json"}}
        else:
            sent = {"json": body, "headers": headers}
        answer = client.request(method, url, **sent)
        assert answer.status_code in (400, 404), (url[:60], answer.text[:300])
        detail = _short(problem_detail(answer, answer.status_code), "a")
        assert "9" * 41 not in detail, detail
        assert names in detail, (names, detail)


def test_problem_details_never_dump_a_schema(client, user_headers):
    answer = client.post("/searches", json={"name": 5}, headers=user_headers)
    detail = problem_detail(answer, 400)
    assert detail.startswith("name: ") and "Failed validating" not in detail
    assert re.fullmatch(r"[^\n]{1,200}", detail)
