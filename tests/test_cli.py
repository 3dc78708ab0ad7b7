"""The `newsagg` console script, run as a user runs it."""

from __future__ import annotations

import subprocess

from conftest import run_cli


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
