"""A webhook receiver on loopback for the push tests: answers from a list of statuses
(then 204), keeps every request's headers and body."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.arrived:
                    receiver.received.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 204
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                """Nothing: tests read the service's log, not this one's."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, seconds: float) -> bool:
        """Whether `count` requests have arrived within `seconds`."""
        deadline = time.monotonic() + seconds
        with self.arrived:
            return self.arrived.wait_for(
                lambda: len(self.received) >= count, max(0.0, deadline - time.monotonic())
            )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
