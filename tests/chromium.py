"""Headless Chromium, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
no port, no WebSocket library): open a page, evaluate JavaScript in it. For tests of what a
browser does as it is (EventSource); they skip where the Debian package `chromium` is not
installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
COMMAND_SECONDS = 10.0


class Browser:
    def __init__(self, profile: Path, log: Path) -> None:
        assert CHROMIUM is not None
        to_browser, self._commands = os.pipe()  # Chromium reads commands on its fd 3
        self._replies, from_browser = os.pipe()  # and writes replies on its fd 4
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    CHROMIUM,
                    "--headless=new",
                    "--no-sandbox",  # root in a container: no user namespaces
                    "--disable-gpu",
                    "--no-first-run",
                    "--remote-debugging-pipe",
                    f"--user-data-dir={profile}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                pass_fds=(3, 4),
                preexec_fn=lambda: (os.dup2(to_browser, 3), os.dup2(from_browser, 4)),
            )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._buffer = b""
        self._session: str | None = None

    def open(self, url: str) -> None:
        """Open `url` in a new tab, which `evaluate` then speaks to."""
        target = self._call("Target.createTarget", {"url": url})["targetId"]
        attached = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]

    def evaluate(self, expression: str) -> Any:
        result = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details["text"])
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float) -> Any:
        """The value of `expression` once it is truthy; AssertionError after `seconds`."""
        deadline = time.monotonic() + seconds
        problem = "false"
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as error:  # the page's script has not run yet, say
                problem = str(error)
            else:
                if value:
                    return value
            time.sleep(0.05)
        raise AssertionError(f"still {problem} after {seconds} s: {expression}")

    def close(self) -> None:
        self._process.kill()
        self._process.wait(timeout=10)
        os.close(self._commands)
        os.close(self._replies)

    def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            reply = self._read(method, deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self, method: str, deadline: float) -> dict[str, Any]:
        """The next message (events included), waiting until `deadline` at most."""
        while b"\0" not in self._buffer:
            if self._process.poll() is not None:
                raise RuntimeError("chromium exited")
            if time.monotonic() > deadline:
                raise AssertionError(f"{method}: no reply within {COMMAND_SECONDS} s")
            os.set_blocking(self._replies, False)
            try:
                chunk = os.read(self._replies, 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)
