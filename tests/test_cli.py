"""The `newsagg` console script, run as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib

import pytest
import requests
from conftest import REPO, run_cli
from throwaway import free_port


def _newsagg(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return run_cli({"NEWSAGG_DATABASE": str(tmp_path / "cli.sqlite3")}, *args)


def test_keys_create_list_revoke(tmp_path):
    created = _newsagg(tmp_path, "keys", "create", "--name", "ci bot", "--tier", "premium")
    assert created.returncode == 0
    key = created.stdout.strip()
    assert created.stdout == key + "\n" and key.startswith("nagg_")

    listed = _newsagg(tmp_path, "keys", "list")
    assert listed.returncode == 0
    row = listed.stdout.strip().split("\t")
    assert row[0] == "1" and row[2] == "premium" and row[-1] == "ci bot"
    assert key not in listed.stdout and key[:10] in listed.stdout

    assert _newsagg(tmp_path, "keys", "revoke", "1").returncode == 0
    assert _newsagg(tmp_path, "keys", "list").stdout == ""
    again = _newsagg(tmp_path, "keys", "revoke", "1")
    assert again.returncode == 1 and "no active key" in again.stderr


def test_bad_configuration_is_reported_not_a_traceback(tmp_path):
    env_result = run_cli(
        {"NEWSAGG_DATABASE": str(tmp_path / "x.sqlite3"), "NEWSAGG_UPSTREAM_TIMEOUT": "fast"},
        "keys",
        "list",
    )
    assert env_result.returncode == 2
    assert "NEWSAGG_UPSTREAM_TIMEOUT" in env_result.stderr and "Traceback" not in env_result.stderr


def test_a_change_of_search_language_needs_a_reindex_and_says_so(tmp_path):
    """The service refuses an archive indexed for another language, saying what to run;
    `newsagg reindex` makes the index anew. Key management goes on meanwhile."""
    assert _newsagg(tmp_path, "keys", "create", "--name", "a").returncode == 0
    french = {
        "NEWSAGG_DATABASE": str(tmp_path / "cli.sqlite3"),
        "NEWSAGG_SEARCH_LANGUAGE": "french",
    }
    refused = run_cli(french, "harvest", "--once")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "newsagg reindex" in refused.stderr and "french" in refused.stderr
    assert run_cli(french, "keys", "list").returncode == 0
    reindexed = run_cli(french, "reindex")
    assert reindexed.returncode == 0
    assert re.fullmatch(
        r"search index made anew for french; .*: 0 articles in [\d.]+ s\n", reindexed.stdout
    )
    assert "newsagg reindex" not in run_cli(french, "harvest", "--once").stderr


# -- the console script: the core's CLI with demo mode wired in at the edge ---------------


def _console_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`newsagg ARGS` as installed: the console script's module, with `env` added."""
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_the_console_script_is_the_edge_entry_point():
    """The core starts no simulator (tests/test_architecture.py): the `newsagg` command is
    edge.cli, which hands newsagg.cli demo mode's upstreams."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"newsagg": "edge.cli:main"}


def test_the_core_cli_alone_refuses_demo_mode_saying_why(tmp_path):
    env = {"NEWSAGG_DATABASE": str(tmp_path / "cli.sqlite3")}
    for args, extra in [(("serve", "--demo"), {}), (("harvest", "--once"), {"NEWSAGG_DEMO": "1"})]:
        result = run_cli({**env, **extra}, *args)
        assert result.returncode == 2, result.stderr
        assert "demo mode" in result.stderr and "edge.cli" in result.stderr
        assert "Traceback" not in result.stderr


def test_harvest_once_in_demo_mode_harvests_the_simulator(tmp_path):
    """NEWSAGG_DEMO=1 reaches every command that builds a service: a simulator of its own,
    stopped when the command ends."""
    env = {"NEWSAGG_DATABASE": str(tmp_path / "demo.sqlite3"), "NEWSAGG_DEMO": "1"}
    done = _console_script(env, "harvest", "--once")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["newsapi", "guardian", "hackernews"]
    assert all(": ok, " in line for line in lines)


@pytest.mark.timeout(60)
def test_serve_demo_with_one_worker_answers_with_the_printed_key(tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "serve", "--demo", "--port", str(port)],
            env={**os.environ, "NEWSAGG_DATABASE": str(tmp_path / "demo.sqlite3")},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 45
        while True:  # a condition with a deadline
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if requests.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        printed = log.read_text()
        key = re.search(r"API key \(premium tier\): (\S+)", printed)[1]
        simulator_url = re.search(r"upstream simulator at (\S+)", printed)[1]
        reply = requests.get(
            f"{base}/articles?category=technology&limit=2",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert reply.status_code == 200 and reply.json()["articles"], reply.text
        calls = requests.get(f"{simulator_url}/_sim/calls", timeout=5).json()
        assert calls["newsapi"] >= 1  # the demo's own simulator answered
    finally:
        process.send_signal(signal.SIGTERM)
        # One worker: uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()
    with pytest.raises(requests.ConnectionError):  # gone with the command
        requests.get(f"{simulator_url}/_sim/calls", timeout=1)


def test_a_key_name_the_api_refuses_is_refused_by_the_cli_saying_why(tmp_path):
    refused = _newsagg(tmp_path, "keys", "create", "--name", "\u202egnp.exe")
    assert refused.returncode == 2, refused.stderr
    assert "name: must not contain" in refused.stderr and "U+202E" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
