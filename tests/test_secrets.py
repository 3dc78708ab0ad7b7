"""No secret in any response or log line: client keys, upstream keys, through every kind of
request and upstream failure (requests' exceptions embed URLs, and the Guardian key is a
query parameter)."""

from __future__ import annotations

import logging
import socket

import pytest

from edge.app import create_app
from simulator import Fault

GUARDIAN_KEY = "guardian-secret-0f9e8d7c6b5a"
NEWSAPI_KEY = "newsapi-secret-1a2b3c4d5e6f"


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("setup", ["wrong upstream keys", "unreachable upstreams", "faults"])
def test_no_secret_in_any_response_or_log(make_service, simulator, caplog, setup):
    caplog.set_level(logging.DEBUG)
    if setup == "unreachable upstreams":
        dead = _closed_port_url()
        service = make_service(
            newsapi_key=NEWSAPI_KEY,
            guardian_key=GUARDIAN_KEY,
            newsapi_url=dead,
            guardian_url=dead,
            hackernews_url=dead,
        )
    else:
        # Wrong keys make the simulator answer 401; NewsAPI's message quotes the key it got.
        service = make_service(newsapi_key=NEWSAPI_KEY, guardian_key=GUARDIAN_KEY)
    if setup == "faults":
        simulator.set_fault("guardian", Fault("malformed"))
        simulator.set_fault("newsapi", Fault("status", status=429, retry_after=5))
    admin = service.keys.create("admin", "unlimited", admin=True).plaintext
    user = service.keys.create("user", "basic").plaintext
    bodies: list[str] = []
    with create_app(service=service).test_client() as c:
        for key in (admin, user, user + "x"):
            auth = {"Authorization": f"Bearer {key}"}
            for path in (
                "/articles",
                "/articles?q=chip",
                "/articles?category=science",
                "/sources",
                "/me",
                "/keys",
                "/articles/1",
                "/keys/999",
            ):
                response = c.get(path, headers=auth)
                bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")
            bodies.append(c.post("/keys", json={"name": "new"}, headers=auth).text)
    everything = "\n".join(bodies) + "\n" + caplog.text
    assert "503" in everything or "200" in everything  # the requests really ran
    for secret in (GUARDIAN_KEY, NEWSAPI_KEY, admin, user, admin[10:], user[10:]):
        assert secret not in everything
