"""Webhook primitives: secrets, Standard Webhooks signatures, the retry schedule, the SSRF
guard and one delivery attempt.

Nothing here knows about searches or the store: the delivery worker composes these. The
headers named here are those of the outgoing webhook request (the Standard Webhooks
contract), not of the API's own answers.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import random
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.ssl_match_hostname import CertificateError

from newsagg.errors import InvalidInput

USER_AGENT = "newsagg-webhooks/1"
# A hung system resolver must not hold a delivery (or a POST /searches) for its own timeout.
RESOLVE_DEADLINE_SECONDS = 2.0
# Enough to finish a normal reply so the connection can be reused; the body is never kept.
MAX_RESPONSE_BYTES = 64 * 1024
JITTER = 0.10

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[str]]


class TargetRefused(InvalidInput):
    """A webhook URL the service will not call: wrong scheme, or an address it must not reach."""


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form, "whsec_" + base64 of 24 bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _utc(timestamp: datetime) -> datetime:
    # standardwebhooks replaces the tzinfo rather than converting, so an aware non-UTC time
    # would be signed hours off; a naive time is taken as UTC, as the library does.
    if timestamp.tzinfo is None:
        return timestamp.replace(tzinfo=UTC)
    return timestamp.astimezone(UTC)


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The webhook-signature value: one "v1,<base64>" per secret, current secret first.

    During a rotation both the new and the previous secret sign, so a receiver still holding
    the old one keeps verifying."""
    if not secrets_:
        raise ValueError("at least one secret is needed to sign a webhook")
    data = body.decode("utf-8")
    return " ".join(Webhook(secret).sign(msg_id, _utc(timestamp), data) for secret in secrets_)


def delivery_headers(
    secrets_: Sequence[str], msg_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """The headers of one webhook request (Standard Webhooks) for `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(_utc(timestamp).timestamp())),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_backoff(text: str) -> tuple[float, ...]:
    """ "5s,5m,30m,2h" -> (5.0, 300.0, 1800.0, 7200.0): the waits before each retry.

    Raises ValueError naming the bad part; the settings code adds the variable's name."""
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        raise ValueError("the backoff schedule needs at least one duration, like 5s,5m,2h")
    delays = []
    for item in items:
        match = _DURATION.fullmatch(item)
        if match is None:
            raise ValueError(
                f"{item!r} is not a duration: use a number followed by s, m, h or d, like 5m"
            )
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        if seconds <= 0:
            raise ValueError(f"{item!r} is not a positive duration")
        delays.append(seconds)
    return tuple(delays)


def retry_delay(
    schedule: Sequence[float], attempts_made: int, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait after `attempts_made` failed attempts, ±10 % jitter (so receivers that
    failed together are not retried in lockstep); None when the schedule is used up."""
    if attempts_made < 1:
        raise ValueError("retry_delay is asked only after a failed attempt")
    if attempts_made > len(schedule):
        return None
    uniform = rng.uniform if rng is not None else random.uniform
    return schedule[attempts_made - 1] * uniform(1 - JITTER, 1 + JITTER)


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, within RESOLVE_DEADLINE_SECONDS.

    getaddrinfo cannot be cancelled, so it runs on a daemon thread of its own: on a timeout
    the caller moves on and the thread ends whenever the resolver gives up, without holding
    the process at exit (a pool thread would, and would queue later lookups behind it)."""
    future: Future[list[str]] = Future()

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            future.set_result([str(info[4][0]) for info in infos])
        except BaseException as error:  # handed to the waiting caller, not swallowed
            future.set_exception(error)

    threading.Thread(target=lookup, name="webhook-resolve", daemon=True).start()
    try:
        return future.result(timeout=RESOLVE_DEADLINE_SECONDS)
    except (TimeoutError, OSError, UnicodeError) as error:
        # UnicodeError: a name the IDNA codec rejects cannot be looked up either.
        raise TargetRefused(f"webhook_url: {host} cannot be resolved") from error


# The characters RFC 3986 allows in a URI (non-ASCII and spaces must be percent-encoded).
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
# Not public, yet global to the ipaddress module of Python 3.11: the deprecated site-local
# range (RFC 3879) and the documentation range of RFC 9637.
_MISSED = (
    (ipaddress.ip_network("fec0::/10"), "a site-local address (deprecated, not public)"),
    (ipaddress.ip_network("3fff::/20"), "a documentation address"),
)


def _why_not_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a global unicast one: global
    by `is_global`, and outside the ranges that misses."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1, 6to4 and NAT64 (RFC 6052, 8215) forms reach the embedded IPv4
        # address; Python 3.11 does not classify the IPv6 form by what it embeds.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in prefix for prefix in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _why_not_public(embedded)
        missed = next((why for net, why in _MISSED if address in net), None)
        if missed is not None:
            return missed
    if address.is_global and address not in _METADATA and not address.is_multicast:
        return None
    # Not public: say which kind, the most telling first.
    checks = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED_ADDRESS_SPACE, "a shared address space (carrier NAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
    )
    return next((reason for refused, reason in checks if refused), "not a public address")


def shown_target(url: str) -> str:
    """A webhook URL as logs may show it: its scheme and host (and port), never its
    credentials, path or query, which can carry the receiver's own token."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparseable URL)"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "(an unparseable URL)"


def _refuse_unless_public(shown: str, addresses: Sequence[str]) -> None:
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError as error:
            raise TargetRefused(f"webhook_url: {shown} resolves to an unusable address") from error
        reason = _why_not_public(address)
        if reason is not None:
            raise TargetRefused(f"webhook_url: {address} is {reason}")


def check_target(url: str, *, allow_private: bool, resolve: Resolve = system_resolve) -> list[str]:
    """The addresses a webhook to `url` may reach, or TargetRefused saying why none.

    Every resolved address must be public: one private answer among public ones is enough
    for a rebinding resolver to pick it. With `allow_private` (a trusted deployment, tests)
    http is allowed too and nothing is resolved, so the answer is []. Details never repeat
    the URL's credentials, path or query."""
    if not _URI.fullmatch(url):
        raise TargetRefused("webhook_url: not a valid URL (RFC 3986: no spaces or raw non-ASCII)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # a bad IPv6 bracket, a port out of range or not a number
        raise TargetRefused("webhook_url: not a valid URL (or a port outside 1-65535)") from error
    schemes = ("http", "https") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused(
            "webhook_url: http or https is required"
            if allow_private
            else "webhook_url: https is required"
        )
    if "@" in parts.netloc:
        raise TargetRefused("webhook_url: credentials in the URL are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("webhook_url: a host is required")
    if port == 0:
        raise TargetRefused("webhook_url: the port must be between 1 and 65535")
    if allow_private:
        return []
    if host == "localhost" or host.endswith(".localhost"):
        # RFC 6761: these names are loopback whatever a resolver says.
        raise TargetRefused(f"webhook_url: {host} is a loopback name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        _refuse_unless_public(host, [host])
        return [host]
    default_port = 443 if parts.scheme == "https" else 80
    try:
        addresses = resolve(host, port or default_port)
    except OSError as error:  # an injected resolver's failure, like system_resolve's
        raise TargetRefused(f"webhook_url: {host} cannot be resolved") from error
    if not addresses:
        raise TargetRefused(f"webhook_url: {host} cannot be resolved")
    _refuse_unless_public(host, addresses)
    return addresses


def is_success(status: int | None) -> bool:
    """Standard Webhooks: any 2xx means delivered."""
    return status is not None and 200 <= status < 300


@dataclass(frozen=True)
class Attempt:
    """One try at a delivery, as the deliveries list shows it (never the response body)."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return is_success(self.status_code)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def send(
    client: urllib3.PoolManager,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout: float = 5.0,
    allow_private: bool,
    resolve: Resolve = system_resolve,
    ca_certs: str | None = None,
) -> Attempt:
    """POST one webhook; every failure becomes an Attempt, never an exception.

    The target is checked again here, not only when the URL was saved: what a name resolves
    to changes. The request then goes to the addresses this check approved (see `post`), so
    the name is not resolved a second time and a resolver that answers differently a moment
    later (DNS rebinding) is never asked. With `allow_private` nothing is resolved here and
    the connection looks the name up itself. `client` holds the connections kept alive
    between calls (one per sender thread: it is not meant to be shared between threads);
    `ca_certs` is the CA bundle file certificates are verified with, certifi's by default."""
    started = time.monotonic()
    try:
        addresses = check_target(url, allow_private=allow_private, resolve=resolve)
    except TargetRefused as refused:
        return Attempt(None, refused.detail, _ms_since(started))
    sent = post(client, url, addresses, headers, body, timeout=timeout, ca_certs=ca_certs)
    # The duration shown covers the check (resolution) too, not only the request.
    return dataclasses.replace(sent, duration_ms=_ms_since(started))


def post(
    client: urllib3.PoolManager,
    url: str,
    addresses: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout: float = 5.0,
    ca_certs: str | None = None,
) -> Attempt:
    """POST `body` to `url` at the first of `addresses` that takes a connection, or by the
    URL's own name when `addresses` is empty; every failure becomes an Attempt.

    The URL's name stays what the request is for: it is the Host header, the TLS server name
    (SNI) and the name the certificate must be valid for, whichever address is connected to.
    The next address is tried only when no connection could be made, never after the
    request went out (so one attempt never reaches a receiver twice) nor on a TLS failure.
    `timeout` bounds every connection tried, the reply and the draining of its body
    together. Redirects are not followed. Error texts never repeat the URL: its path or
    query can carry the receiver's own token. `url` is one check_target accepted."""
    started = time.monotonic()
    deadline = started + timeout
    timed_out = f"timeout after {timeout:g} s"

    def attempt(status_code: int | None, error: str | None) -> Attempt:
        return Attempt(status_code, error, _ms_since(started))

    parts = urlsplit(url)
    scheme = parts.scheme
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Connecting to an address, urllib3 would name the address in the Host header.
    request_headers = {**headers, "host": parts.netloc}
    pool_kwargs: dict[str, Any] = {}
    if scheme == "https":
        pool_kwargs = {
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": ca_certs or certifi.where(),
            "server_hostname": host,
            "assert_hostname": host,
        }
    failure = "connection failed"
    for address in addresses or [host]:
        left = deadline - time.monotonic()
        if left <= 0:
            return attempt(None, timed_out)
        # Pools are keyed by address, port and these settings (the name among them), so a
        # kept-alive connection serves only the same name at the same address. urllib3
        # reads no proxy or .netrc settings from the environment (requests would), so no
        # proxy sees a receiver's request and no stored credentials are added to it.
        try:
            pool = client.connection_from_host(address, port, scheme, pool_kwargs=pool_kwargs)
            response = pool.urlopen(
                "POST",
                target,
                body=body,
                headers=request_headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(total=left),
                preload_content=False,
                # The body is dropped unread: decompressing it would only cost time.
                decode_content=False,
            )
        # NewConnectionError is a ConnectTimeoutError too (urllib3 keeps that for
        # compatibility): it is tested first. Neither sent anything: the next may answer.
        except NewConnectionError:
            failure = "connection failed"
            continue
        except ConnectTimeoutError:
            failure = timed_out
            continue
        except Urllib3Timeout:
            return attempt(None, timed_out)
        except SSLError as error:
            return attempt(None, _tls_failure(error))
        except (ProtocolError, OSError):
            return attempt(None, "connection failed")
        except (Urllib3Error, ValueError) as error:
            # The exception's text may quote the URL, which can carry the receiver's token.
            return attempt(None, f"request failed ({type(error).__name__})")
        # The status line already decided the outcome; the body is only drained so that
        # the connection can carry the next delivery.
        redirect = bool(response.get_redirect_location())
        _drain(response, deadline)
        return attempt(response.status, "redirect not followed" if redirect else None)
    return attempt(None, failure)


def _tls_failure(error: SSLError) -> str:
    # urllib3 wraps the ssl module's error (or its own hostname check's) as the argument.
    cause = error.args[0] if error.args else None
    if isinstance(cause, ssl.SSLCertVerificationError | CertificateError):
        return "TLS handshake failed (certificate)"
    return "TLS handshake failed"


def _drain(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
    """Read and drop at most MAX_RESPONSE_BYTES of the body until `deadline`, then give the
    connection back for reuse, or close it if the body was not read to its end (what is
    left of it would be taken for the next reply).

    read1 takes what one receive brings, so a receiver dripping bytes holds the sender no
    longer than the deadline; a stalled or cut-off body ends the drain, not the attempt."""
    finished = False
    with contextlib.suppress(Urllib3Error, OSError, ValueError):
        left = MAX_RESPONSE_BYTES
        while left > 0 and time.monotonic() < deadline:
            chunk = response.read1(min(left, 16 * 1024))
            if not chunk:
                finished = True
                break
            left -= len(chunk)
    if not finished:
        response.close()
    response.release_conn()
