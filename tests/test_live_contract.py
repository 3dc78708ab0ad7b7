"""The live fuzzing gate: `newsagg serve --demo` on a loopback port, the schemathesis CLI
against it with every check and every phase (stateful included), once with an admin key
and once with a normal key. Zero findings, or the test fails with schemathesis's report."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from edge.app import SPEC_PATH

ADMIN_KEY = "nagg_live-fuzz-admin-key-0123456789abcdefghijklmnopq"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory) -> Iterator[tuple[str, str]]:
    port = _free_port()
    log = tmp_path_factory.mktemp("live-log") / "server.log"
    env = {
        **os.environ,
        "NEWSAGG_DATABASE": str(tmp_path_factory.mktemp("live") / "live.sqlite3"),
        "NEWSAGG_ADMIN_KEY": ADMIN_KEY,
        "NEWSAGG_UPSTREAM_TIMEOUT": "2",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "newsagg.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        # A file, not a pipe nobody reads: a full pipe would block the server's logging.
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # wait for the condition "it answers", with a deadline
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the server did not start: {log.read_text()}")
        time.sleep(0.05)
    yield url, _create_key(url)
    server.send_signal(signal.SIGINT)
    server.wait(timeout=15)


def _create_key(url: str) -> str:
    """A normal key, made before fuzzing: the admin run may revoke any key, itself included."""
    created = requests.post(
        f"{url}/keys",
        json={"name": "fuzzer", "tier": "unlimited"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert created.status_code == 201
    return created.json()["key"]


def _fuzz(url: str, key: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            str(SPEC_PATH),
            "--url",
            url,
            "-H",
            f"Authorization: Bearer {key}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "50",
            "--seed",
            "20261125",
            "--suppress-health-check",
            "all",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_live_fuzzing_with_a_normal_key_finds_nothing(live_url):
    url, normal_key = live_url
    result = _fuzz(url, normal_key)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_live_fuzzing_with_an_admin_key_finds_nothing(live_url):
    url, _normal_key = live_url
    result = _fuzz(url, ADMIN_KEY)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # The stateful phase must really walk the key lifecycle, not just start it. Which links
    # a run reaches depends a little on timing (an empty page has no article to follow),
    # so ask for most of them, not all.
    covered = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", result.stdout)
    assert covered, result.stdout[-3000:]
    assert int(covered[1]) >= 0.75 * int(covered[2]) > 0, covered[0]
