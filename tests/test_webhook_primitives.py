"""The webhook primitives of newsagg/push/webhooks.py, one by one: signing secrets, Standard
Webhooks headers (checked with the standardwebhooks library a receiver would use), the retry
schedule and its jitter, the SSRF guard (with injected resolvers: no DNS is ever asked), and
one delivery attempt against a real HTTP receiver on 127.0.0.1, and over TLS (certificates
from trustme) to a checked address under a name that does not resolve at all.
"""

from __future__ import annotations

import base64
import json
import pathlib
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

import pytest
import trustme
import urllib3
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from urllib3 import HTTPConnectionPool

from newsagg.errors import InvalidInput
from newsagg.push.webhooks import (
    USER_AGENT,
    Attempt,
    Resolve,
    TargetRefused,
    check_target,
    delivery_headers,
    is_success,
    new_secret,
    parse_backoff,
    post,
    retry_delay,
    send,
    signature_header,
)

BODY = json.dumps(
    {"type": "webhook.ping", "data": {"search_id": 7, "articles": [], "note": "Café ✓"}},
    ensure_ascii=False,
).encode("utf-8")
# The library rejects timestamps more than 5 minutes from its own clock, so what it verifies
# is signed "now"; the exact-value checks use a fixed time instead.
FIXED = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
FIXED_UNIX = "1704164645"


# --- secrets ----------------------------------------------------------------------------------


def test_new_secret_is_whsec_and_base64_of_24_bytes() -> None:
    secret = new_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    Webhook(secret)  # the library accepts it as a secret


def test_new_secret_differs_each_call() -> None:
    assert new_secret() != new_secret()


# --- signatures and headers -------------------------------------------------------------------


def test_delivery_headers_verify_with_standardwebhooks() -> None:
    secret = new_secret()
    headers = delivery_headers([secret], "msg_abc", datetime.now(UTC), BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == USER_AGENT
    version, signature = headers["webhook-signature"].split(",")
    assert version == "v1"
    assert len(base64.b64decode(signature, validate=True)) == 32  # HMAC-SHA256


def test_wrong_secret_or_changed_body_fails_verification() -> None:
    secret = new_secret()
    headers = delivery_headers([secret], "msg_abc", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"7", b"8"), headers)


def test_rotation_sends_two_signatures_each_secret_verifies_alone() -> None:
    current, previous = new_secret(), new_secret()
    now = datetime.now(UTC)
    headers = delivery_headers([current, previous], "msg_rot", now, BODY)
    parts = headers["webhook-signature"].split(" ")
    assert parts == [
        signature_header([current], "msg_rot", now, BODY),
        signature_header([previous], "msg_rot", now, BODY),
    ]
    assert Webhook(current).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(previous).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_webhook_timestamp_is_unix_seconds_of_the_given_time() -> None:
    headers = delivery_headers([new_secret()], "msg_t", FIXED, BODY)
    assert headers["webhook-timestamp"] == FIXED_UNIX


def test_aware_non_utc_and_naive_times_sign_the_same_instant_as_utc() -> None:
    secret = new_secret()
    india = FIXED.astimezone(timezone(timedelta(hours=5, minutes=30)))
    naive = FIXED.replace(tzinfo=None)  # taken as UTC
    expected = delivery_headers([secret], "msg_tz", FIXED, BODY)
    assert delivery_headers([secret], "msg_tz", india, BODY) == expected
    assert delivery_headers([secret], "msg_tz", naive, BODY) == expected


def test_non_utc_now_still_verifies() -> None:
    # Signed hours off, the library's 5-minute tolerance would reject it.
    secret = new_secret()
    now_west = datetime.now(timezone(timedelta(hours=-7)))
    headers = delivery_headers([secret], "msg_w", now_west, BODY)
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_no_secret_raises_value_error() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "msg_x", FIXED, BODY)
    with pytest.raises(ValueError, match="at least one secret"):
        delivery_headers([], "msg_x", FIXED, BODY)


# --- backoff schedule -------------------------------------------------------------------------


def test_parse_backoff_default_schedule() -> None:
    assert parse_backoff("5s,5m,30m,2h,5h,10h,10h") == (
        5.0,
        300.0,
        1800.0,
        7200.0,
        18000.0,
        36000.0,
        36000.0,
    )


def test_parse_backoff_allows_spaces_around_items_fractions_and_days() -> None:
    assert parse_backoff(" 5s , 1.5m,1d ") == (5.0, 90.0, 86400.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one duration"),
        ("   ", "at least one duration"),
        ("5x", "'5x' is not a duration"),
        ("5", "'5' is not a duration"),
        ("-5s", "'-5s' is not a duration"),
        ("5 s", "'5 s' is not a duration"),
        ("5s,,5m", "'' is not a duration"),
        ("5s,5m,", "'' is not a duration"),
        ("0s", "'0s' is not a positive duration"),
        ("5s,0.0m", "'0.0m' is not a positive duration"),
    ],
)
def test_parse_backoff_rejects_and_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_backoff(text)
    assert message in str(raised.value)


# --- retry delay ------------------------------------------------------------------------------


SCHEDULE = (5.0, 300.0, 1800.0)


def test_retry_delay_is_the_scheduled_wait_with_seeded_jitter() -> None:
    rng, twin = random.Random(1234), random.Random(1234)
    for attempts_made, base in enumerate(SCHEDULE, start=1):
        delay = retry_delay(SCHEDULE, attempts_made, rng)
        assert delay is not None
        assert base * 0.9 <= delay <= base * 1.1
        assert delay == pytest.approx(base * twin.uniform(0.9, 1.1))


def test_retry_delay_jitter_spreads_within_ten_percent() -> None:
    rng = random.Random(7)
    delays = [retry_delay(SCHEDULE, 2, rng) for _ in range(200)]
    assert all(d is not None and 270.0 <= d <= 330.0 for d in delays)
    assert min(delays) < 285.0 and max(delays) > 315.0  # not a constant: really jittered


def test_retry_delay_none_once_schedule_is_used() -> None:
    assert retry_delay(SCHEDULE, len(SCHEDULE) + 1, random.Random(0)) is None
    assert retry_delay(SCHEDULE, 100, random.Random(0)) is None
    assert retry_delay((), 1, random.Random(0)) is None


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_retry_delay_needs_a_failed_attempt(attempts_made: int) -> None:
    with pytest.raises(ValueError):
        retry_delay(SCHEDULE, attempts_made, random.Random(0))


# --- SSRF guard -------------------------------------------------------------------------------

PATH_AND_SECRETS = ("secret-path", "tok3n", "us3r", "pa55")


class FakeResolver:
    """Answers from a table and records what was asked; a name not in it fails the test."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise AssertionError(f"unexpected lookup of {host}")
        return list(self.table[host])


def no_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} must not be resolved")


def failing_resolve(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def refusal(url: str, resolve: Resolve = no_resolve, *, allow_private: bool = False) -> str:
    with pytest.raises(TargetRefused) as raised:
        check_target(url, allow_private=allow_private, resolve=resolve)
    detail = raised.value.detail
    assert isinstance(raised.value, InvalidInput)
    assert detail.startswith("webhook_url: ")
    for leaked in PATH_AND_SECRETS:
        assert leaked not in detail
    return detail


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://93.184.216.34/secret-path?t=tok3n", "webhook_url: https is required"),
        ("ftp://93.184.216.34/secret-path", "webhook_url: https is required"),
        ("https://127.0.0.1/secret-path?t=tok3n", "webhook_url: 127.0.0.1 is a loopback address"),
        (
            "https://169.254.169.254/latest/secret-path",
            "webhook_url: 169.254.169.254 is a cloud metadata address",
        ),
        ("https://169.254.1.1/secret-path", "webhook_url: 169.254.1.1 is a link-local address"),
        ("https://[::1]/secret-path", "webhook_url: ::1 is a loopback address"),
        ("https://10.0.0.1/secret-path", "webhook_url: 10.0.0.1 is a private address"),
        ("https://192.168.1.1/secret-path", "webhook_url: 192.168.1.1 is a private address"),
        (
            "https://100.64.0.1/secret-path",
            "webhook_url: 100.64.0.1 is a shared address space (carrier NAT) address",
        ),
        ("https://0.0.0.0/secret-path", "webhook_url: 0.0.0.0 is an unspecified address"),
        ("https://224.0.0.1/secret-path", "webhook_url: 224.0.0.1 is a multicast address"),
        ("https://localhost/secret-path", "webhook_url: localhost is a loopback name"),
        ("https://a.localhost:8443/secret-path", "webhook_url: a.localhost is a loopback name"),
        ("https://LocalHost./secret-path", "webhook_url: localhost is a loopback name"),
        (
            "https://us3r:pa55@93.184.216.34/secret-path",
            "webhook_url: credentials in the URL are not allowed",
        ),
        (
            "https://tok3n@hooks.example.com/secret-path",
            "webhook_url: credentials in the URL are not allowed",
        ),
        (
            "https://93.184.216.34:0/secret-path",
            "webhook_url: the port must be between 1 and 65535",
        ),
        (
            "https://93.184.216.34:70000/secret-path",
            "webhook_url: not a valid URL (or a port outside 1-65535)",
        ),
        ("https:///secret-path", "webhook_url: a host is required"),
    ],
)
def test_check_target_refuses(url: str, detail: str) -> None:
    assert refusal(url) == detail


def test_check_target_refuses_ipv4_mapped_loopback() -> None:
    # The text of the IPv6 form differs between Python versions; what it embeds decides.
    assert refusal("https://[::ffff:127.0.0.1]/secret-path").endswith(" is a loopback address")
    assert refusal("https://[2002:7f00:1::]/secret-path").endswith(" is a loopback address")
    # NAT64: the well-known prefix and the local-use one, each holding 127.0.0.1 / 10.0.0.1.
    assert refusal("https://[64:ff9b::7f00:1]/secret-path").endswith(" is a loopback address")
    assert refusal("https://[64:ff9b:1::a00:1]/secret-path").endswith(" is a private address")


def test_check_target_refuses_the_deprecated_site_local_range() -> None:
    # fec0::/10 (RFC 3879 deprecated it; Python 3.11 still calls it global).
    assert refusal("https://[fec0::1]/secret-path") == (
        "webhook_url: fec0::1 is a site-local address (deprecated, not public)"
    )
    assert refusal("https://[feff:ffff::1]/secret-path").endswith(
        " is a site-local address (deprecated, not public)"
    )
    resolve = FakeResolver({"site.example.com": ["93.184.216.34", "fec0::5"]})
    assert refusal("https://site.example.com/secret-path", resolve).startswith(
        "webhook_url: fec0::5 is a site-local"
    )


def test_check_target_refuses_the_ipv6_documentation_range_of_rfc_9637() -> None:
    # 3fff::/20 (RFC 9637), which the ipaddress module of Python 3.11 does not know.
    assert refusal("https://[3fff::1]/secret-path") == (
        "webhook_url: 3fff::1 is a documentation address"
    )
    assert refusal("https://[3fff:fff:ffff::1]/secret-path").endswith(" documentation address")
    resolve = FakeResolver({"docs.example.com": ["3fff:0:1::2"]})
    assert refusal("https://docs.example.com/secret-path", resolve).endswith(
        " is a documentation address"
    )
    # Next to it, 3fff:1000:: is outside the /20: public as far as this check goes.
    assert check_target("https://[3fff:1000::1]/", allow_private=False, resolve=no_resolve) == [
        "3fff:1000::1"
    ]


def test_check_target_refuses_a_name_resolving_to_a_private_address() -> None:
    resolve = FakeResolver({"internal.example.com": ["10.1.2.3"]})
    detail = refusal("https://internal.example.com/secret-path?t=tok3n", resolve)
    assert detail == "webhook_url: 10.1.2.3 is a private address"
    assert resolve.calls == [("internal.example.com", 443)]


def test_check_target_refuses_when_any_resolved_address_is_private() -> None:
    resolve = FakeResolver({"rebind.example.com": ["93.184.216.34", "192.168.0.7"]})
    detail = refusal("https://rebind.example.com/secret-path", resolve)
    assert detail == "webhook_url: 192.168.0.7 is a private address"


def test_check_target_refuses_a_name_resolving_to_ipv6_loopback() -> None:
    resolve = FakeResolver({"six.example.com": ["2606:2800:220:1:248:1893:25c8:1946", "::1"]})
    assert refusal("https://six.example.com/", resolve) == "webhook_url: ::1 is a loopback address"


def test_check_target_refuses_when_the_resolver_fails() -> None:
    detail = refusal("https://gone.example.com/secret-path", failing_resolve)
    assert detail == "webhook_url: gone.example.com cannot be resolved"


def test_check_target_refuses_when_the_resolver_finds_nothing() -> None:
    resolve = FakeResolver({"empty.example.com": []})
    detail = refusal("https://empty.example.com/secret-path", resolve)
    assert detail == "webhook_url: empty.example.com cannot be resolved"


def test_check_target_refuses_an_unparseable_resolved_address() -> None:
    resolve = FakeResolver({"odd.example.com": ["not-an-address"]})
    detail = refusal("https://odd.example.com/secret-path", resolve)
    assert detail == "webhook_url: odd.example.com resolves to an unusable address"


def test_check_target_accepts_a_public_ip_literal_without_resolving() -> None:
    assert check_target(
        "https://93.184.216.34/hook?t=1", allow_private=False, resolve=no_resolve
    ) == ["93.184.216.34"]
    assert check_target(
        "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/hook",
        allow_private=False,
        resolve=no_resolve,
    ) == ["2606:2800:220:1:248:1893:25c8:1946"]


def test_check_target_accepts_a_name_resolving_to_public_addresses() -> None:
    addresses = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    resolve = FakeResolver({"hooks.example.com": addresses})
    first = check_target("https://hooks.example.com/in", allow_private=False, resolve=resolve)
    # Case and a trailing dot do not change the name; an explicit port is what is asked.
    second = check_target("https://Hooks.Example.com.:8443/x", allow_private=False, resolve=resolve)
    assert first == second == addresses
    assert resolve.calls == [("hooks.example.com", 443), ("hooks.example.com", 8443)]


def test_check_target_allow_private_permits_http_and_private_without_resolving() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://10.0.0.1/hook", "http://localhost/h"):
        assert check_target(url, allow_private=True, resolve=no_resolve) == []


def test_check_target_allow_private_still_checks_the_url_itself() -> None:
    assert (
        refusal("ftp://127.0.0.1/secret-path", allow_private=True)
        == "webhook_url: http or https is required"
    )
    assert (
        refusal("http://us3r:pa55@127.0.0.1/secret-path", allow_private=True)
        == "webhook_url: credentials in the URL are not allowed"
    )
    assert (
        refusal("http://127.0.0.1:0/secret-path", allow_private=True)
        == "webhook_url: the port must be between 1 and 65535"
    )


# --- one delivery attempt ---------------------------------------------------------------------


def test_is_success_is_any_2xx() -> None:
    assert [is_success(s) for s in (None, 199, 200, 204, 299, 300, 500)] == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert Attempt(204, None, 1).ok and not Attempt(None, "connection failed", 1).ok


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # "answer"; "block" (say nothing until released); "stall_body" (headers, then a body
    # that stops short until released); "drip" (a long body, a byte every 50 ms).
    mode: str = "answer"


class Receiver:
    """A webhook receiver on 127.0.0.1: records each request and answers from `replies`
    (200 once they run out).

    With `tls` it speaks HTTPS with that context, records the server name (SNI) each TLS
    handshake asks for, and keeps connections alive (HTTP/1.1) so reuse can be seen."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.replies: list[Reply] = []
        self.server_names: list[str | None] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if tls is None else "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                lowered = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(self.path, lowered, body))
                    reply = receiver.replies.pop(0) if receiver.replies else Reply()
                if reply.mode == "block":
                    receiver.release.wait(timeout=10)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.mode == "drip":
                    self.send_header("Content-Length", "10000")
                    self.end_headers()
                    for _ in range(10000):
                        if receiver.release.wait(timeout=0.05):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    return
                if reply.mode == "stall_body":
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    receiver.release.wait(timeout=10)
                    return
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up (the timeout tests) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        if tls is not None:
            tls.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
            # The handshake happens on the first read, in the request's own thread: a client
            # that refuses the certificate does not hold the accepting loop.
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.thread = threading.Thread(
            # shutdown() waits for the loop to poll: a short interval keeps teardown fast.
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def client() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager() as pools:
        yield pools


@pytest.fixture
def secret() -> str:
    return new_secret()


def headers_for(secret: str) -> dict[str, str]:
    return delivery_headers([secret], "msg_send", datetime.now(UTC), BODY)


def test_send_200_is_ok_and_the_receiver_verifies_it(
    receiver: Receiver, client: urllib3.PoolManager, secret: str
) -> None:
    attempt = send(client, receiver.url, headers_for(secret), BODY, allow_private=True)
    assert (attempt.status_code, attempt.error, attempt.ok) == (200, None, True)
    assert attempt.duration_ms >= 0
    [received] = receiver.requests
    assert received.path == "/hook"
    assert received.body == BODY
    assert received.headers["webhook-id"] == "msg_send"
    assert received.headers["user-agent"] == USER_AGENT
    assert Webhook(secret).verify(received.body, received.headers) == json.loads(BODY)


def test_send_500_is_not_ok(receiver: Receiver, client: urllib3.PoolManager, secret: str) -> None:
    receiver.replies.append(Reply(500))
    attempt = send(client, receiver.url, headers_for(secret), BODY, allow_private=True)
    assert (attempt.status_code, attempt.error, attempt.ok) == (500, None, False)
    assert len(receiver.requests) == 1


def test_send_does_not_follow_a_redirect(
    receiver: Receiver, client: urllib3.PoolManager, secret: str
) -> None:
    receiver.replies.append(Reply(302, {"Location": "/elsewhere"}))
    attempt = send(client, receiver.url, headers_for(secret), BODY, allow_private=True)
    assert (attempt.status_code, attempt.error, attempt.ok) == (
        302,
        "redirect not followed",
        False,
    )
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_send_to_a_closed_port_is_connection_failed(
    client: urllib3.PoolManager, secret: str
) -> None:
    # Bound but not listening: the port stays ours and every connection is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        attempt = send(
            client, f"http://127.0.0.1:{port}/hook", headers_for(secret), BODY, allow_private=True
        )
    assert (attempt.status_code, attempt.error, attempt.ok) == (None, "connection failed", False)


def test_send_times_out_on_a_silent_receiver(
    receiver: Receiver, client: urllib3.PoolManager, secret: str
) -> None:
    receiver.replies.append(Reply(mode="block"))
    try:
        attempt = send(
            client, receiver.url, headers_for(secret), BODY, timeout=0.3, allow_private=True
        )
    finally:
        receiver.release.set()
    assert (attempt.status_code, attempt.error) == (None, "timeout after 0.3 s")
    assert attempt.duration_ms >= 250
    assert len(receiver.requests) == 1


def test_send_keeps_the_status_when_the_body_stalls(
    receiver: Receiver, client: urllib3.PoolManager, secret: str
) -> None:
    # The status line decides; draining a stalled body must not raise out of send().
    receiver.replies.append(Reply(200, mode="stall_body"))
    try:
        attempt = send(
            client, receiver.url, headers_for(secret), BODY, timeout=0.3, allow_private=True
        )
    finally:
        receiver.release.set()
    assert (attempt.status_code, attempt.error, attempt.ok) == (200, None, True)


def test_a_dripping_body_holds_send_no_longer_than_its_timeout(
    receiver: Receiver, client: urllib3.PoolManager, secret: str
) -> None:
    # Each byte comes well within the per-read timeout: only the overall deadline ends it.
    receiver.replies.append(Reply(200, mode="drip"))
    started = time.monotonic()
    try:
        attempt = send(
            client, receiver.url, headers_for(secret), BODY, timeout=0.5, allow_private=True
        )
    finally:
        receiver.release.set()
    assert (attempt.status_code, attempt.ok) == (200, True)
    assert time.monotonic() - started < 1.5  # the body would take 500 s


class NoRequestClient(urllib3.PoolManager):
    def connection_from_host(self, *args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a refused target must not be connected to")


def test_send_refused_target_makes_no_request(receiver: Receiver, secret: str) -> None:
    port = receiver.port
    with NoRequestClient() as client:
        attempt = send(
            client,
            f"https://127.0.0.1:{port}/secret-path?t=tok3n",
            headers_for(secret),
            BODY,
            allow_private=False,
            resolve=no_resolve,
        )
        named = send(
            client,
            "https://internal.example.com/hook",
            headers_for(secret),
            BODY,
            allow_private=False,
            resolve=FakeResolver({"internal.example.com": ["127.0.0.1"]}),
        )
    assert (attempt.status_code, attempt.error, attempt.ok) == (
        None,
        "webhook_url: 127.0.0.1 is a loopback address",
        False,
    )
    assert (named.status_code, named.error) == (
        None,
        "webhook_url: 127.0.0.1 is a loopback address",
    )
    assert receiver.requests == []


# --- the checked address, over TLS ------------------------------------------------------------

# Reserved (RFC 2606) and unresolvable here: a request that reaches the receiver under this
# name cannot have looked it up.
NAME = "hooks.example"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: pathlib.Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def tls_receiver(ca: trustme.CA, name: str) -> Receiver:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(name).configure_cert(context)
    return Receiver(context)


@pytest.fixture
def https_receiver(ca: trustme.CA) -> Iterator[Receiver]:
    server = tls_receiver(ca, NAME)
    yield server
    server.close()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host the process passes to getaddrinfo from here on (urllib3 passes even an
    address through it, which answers without asking any resolver)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def spy(host: object, *args: object, **kwargs: object) -> object:
        asked.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    return asked


def test_post_reaches_the_checked_address_under_the_urls_name(
    https_receiver: Receiver,
    client: urllib3.PoolManager,
    ca_file: str,
    secret: str,
    lookups: list[str],
) -> None:
    port = https_receiver.port
    url = f"https://{NAME}:{port}/hook?t=tok3n"
    first = post(client, url, ["127.0.0.1"], headers_for(secret), BODY, ca_certs=ca_file)
    second = post(client, url, ["127.0.0.1"], headers_for(secret), BODY, ca_certs=ca_file)
    assert (first.status_code, first.error, first.ok) == (200, None, True)
    assert (second.status_code, second.error) == (200, None)
    assert NAME not in lookups  # only the address was ever handed to getaddrinfo
    for received in https_receiver.requests:
        assert received.path == "/hook?t=tok3n"
        assert received.headers["host"] == f"{NAME}:{port}"
        assert received.headers["user-agent"] == USER_AGENT
        assert received.body == BODY
        assert Webhook(secret).verify(received.body, received.headers) == json.loads(BODY)
    assert len(https_receiver.requests) == 2
    # One handshake, asking for the name: the second request reused the connection.
    assert https_receiver.server_names == [NAME]


def test_post_refuses_a_certificate_for_another_name(
    ca: trustme.CA, client: urllib3.PoolManager, ca_file: str, secret: str
) -> None:
    other = tls_receiver(ca, "other.example")
    try:
        url = f"https://{NAME}:{other.port}/secret-path?t=tok3n"
        attempt = post(client, url, ["127.0.0.1"], headers_for(secret), BODY, ca_certs=ca_file)
    finally:
        other.close()
    assert (attempt.status_code, attempt.error, attempt.ok) == (
        None,
        "TLS handshake failed (certificate)",
        False,
    )
    assert other.requests == []
    assert other.server_names == [NAME]


def test_post_verifies_with_certifi_by_default(
    https_receiver: Receiver, client: urllib3.PoolManager, secret: str
) -> None:
    # The test CA is not in certifi's bundle: production would refuse this receiver.
    url = f"https://{NAME}:{https_receiver.port}/secret-path?t=tok3n"
    attempt = post(client, url, ["127.0.0.1"], headers_for(secret), BODY)
    assert (attempt.status_code, attempt.error) == (None, "TLS handshake failed (certificate)")
    assert https_receiver.requests == []


def test_post_moves_on_to_the_next_address_only_when_it_cannot_connect(
    https_receiver: Receiver, client: urllib3.PoolManager, ca_file: str, secret: str
) -> None:
    # All of 127/8 is loopback; the receiver listens on 127.0.0.1 only, so 127.0.0.2 and
    # 127.0.0.3 refuse the connection at once.
    url = f"https://{NAME}:{https_receiver.port}/hook"
    https_receiver.replies.append(Reply(500))
    answered = post(
        client,
        url,
        ["127.0.0.2", "127.0.0.1", "127.0.0.1"],
        headers_for(secret),
        BODY,
        ca_certs=ca_file,
    )
    # A status, even 500, is the receiver's answer: the address after it is not tried.
    assert (answered.status_code, answered.error) == (500, None)
    assert len(https_receiver.requests) == 1
    assert https_receiver.requests[0].headers["host"] == f"{NAME}:{https_receiver.port}"
    refused = post(
        client, url, ["127.0.0.2", "127.0.0.3"], headers_for(secret), BODY, ca_certs=ca_file
    )
    assert (refused.status_code, refused.error) == (None, "connection failed")
    assert len(https_receiver.requests) == 1


class RebindingResolver:
    """Answers a public address first and loopback after, as a rebinding attacker's DNS
    server would between the check and a second lookup."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return ["93.184.216.34"] if self.calls == 1 else ["127.0.0.1"]


class RoutedClient(urllib3.PoolManager):
    """Records the address each connection is asked for and takes it to 127.0.0.1, the
    test's stand-in for the route to that public address (no network beyond loopback)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def connection_from_host(
        self,
        host: str | None,
        port: int | None = None,
        scheme: str | None = "http",
        pool_kwargs: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        self.asked.append(str(host))
        return super().connection_from_host("127.0.0.1", port, scheme, pool_kwargs)


def test_send_connects_to_the_address_it_checked_not_to_a_second_answer(
    https_receiver: Receiver, ca_file: str, secret: str, lookups: list[str]
) -> None:
    resolve = RebindingResolver()
    url = f"https://{NAME}:{https_receiver.port}/hook"
    with RoutedClient() as client:

        def send_once() -> Attempt:
            return send(
                client,
                url,
                headers_for(secret),
                BODY,
                allow_private=False,
                resolve=resolve,
                ca_certs=ca_file,
            )

        sent = send_once()
        assert (sent.status_code, sent.error, sent.ok) == (200, None, True)
        assert resolve.calls == 1  # the name was looked up once, for the check
        assert client.asked == ["93.184.216.34"]
        # The next send checks again, and this time the answer is refused before any
        # connection is asked for.
        again = send_once()
        assert (again.status_code, again.error) == (
            None,
            "webhook_url: 127.0.0.1 is a loopback address",
        )
        assert client.asked == ["93.184.216.34"]
    assert NAME not in lookups
    [received] = https_receiver.requests
    assert received.headers["host"] == f"{NAME}:{https_receiver.port}"
    assert https_receiver.server_names == [NAME]
