"""Push as browsers use it, with no code of ours in the browser: the README's page
(examples/eventsource.html) in headless Chromium opens a saved search's `events_url` with
`EventSource`, from another origin, and lists what arrives; when the server ends the stream
the browser reconnects by itself with Last-Event-ID and misses nothing.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from chromium import CHROMIUM, Browser
from conftest import REPO, LiveServer, new_story

from newsagg.metrics import Metrics
from newsagg.push.matcher import Matcher
from newsagg.service import Service

pytestmark = pytest.mark.timeout(90)

PAGE = REPO / "examples" / "eventsource.html"
ITEMS = "[...document.querySelectorAll('li')].map(li => li.dataset.id + ' ' + li.textContent)"


def test_the_readme_shows_the_page_the_browser_test_opens():
    assert PAGE.read_text().strip() in (REPO / "README.md").read_text()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: object) -> None:
        """Nothing: the test reads no request log."""


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[str]:
    """A static server of examples/ on another loopback port: another origin."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGE.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium (Debian: apt-get install chromium)"
)
def test_eventsource_in_chromium_gets_every_match_and_resumes_after_a_drop(
    make_service: Callable[..., Service], page_origin: str, tmp_path: Path
):
    service = make_service(cors_origins=(page_origin,), stream_seconds=2.0)
    key = service.keys.create("browser", "basic")
    search = service.searches.create(key.record, {"name": "quokkas", "q": "quokka"}).search
    events_url = f"{{base}}/searches/{search.id}/events?token={service.searches.feed_token(search)}"
    matcher = Matcher(service.store, Metrics())

    def arrives(title: str) -> None:
        service.feed.archive.save([new_story(title)])
        matcher.run_until_caught_up(lambda: True)

    with LiveServer(service) as server:
        browser = Browser(tmp_path / "profile", tmp_path / "chromium.log")
        try:
            url = events_url.format(base=server.url)
            browser.open(f"{page_origin}/eventsource.html?events={quote(url, safe='')}")
            browser.wait_for("events.readyState === EventSource.OPEN", 20)
            arrives("Quokka census")
            browser.wait_for(f"{ITEMS}.length === 1", 10)
            # The server ends the stream after 2 s; the browser waits `retry` (5 s) before
            # it reconnects. What matches meanwhile comes on the new stream.
            browser.wait_for("events.readyState === EventSource.CONNECTING", 10)
            arrives("Quokka selfie")
            browser.wait_for(f"{ITEMS}.length === 2", 20)
            arrives("Quokka festival")
            items = browser.wait_for(f"{ITEMS}.length === 3 && {ITEMS}", 10)
        finally:
            browser.close()
    ids = [int(item.split(" ", 1)[0]) for item in reversed(items)]
    assert [item.split(" ", 1)[1] for item in reversed(items)] == [
        "Quokka census",
        "Quokka selfie",
        "Quokka festival",
    ]
    assert ids == sorted(set(ids))  # in order, none twice
