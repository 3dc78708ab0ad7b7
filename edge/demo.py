"""Demo mode, wired at the edge: the upstream simulator started, the settings pointed at it.

The core never sees the simulator. `newsagg.service.build_service` takes settings that
name their upstreams; whatever starts a service in demo mode (the `newsagg` command, see
edge.cli; the app factory, see edge.app; tests and benchmarks) starts the simulator here,
builds from the settings this module hands back, and stops the simulator when done.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from newsagg.settings import Settings
from simulator import Simulator

# Demo mode: the simulator publishes a story this often, so the archive visibly grows.
DEMO_TICKER_SECONDS = 20.0


def pointed_at(settings: Settings, simulator: Simulator) -> Settings:
    """The settings with every provider's URL and key those of a running simulator.

    `demo` is off in the result: these settings no longer ask for a simulator, they name
    one (so worker processes given them do not start their own)."""
    return replace(
        settings,
        newsapi_url=simulator.base_url("newsapi"),
        guardian_url=simulator.base_url("guardian"),
        hackernews_url=simulator.base_url("hackernews"),
        newsapi_key=simulator.newsapi_key,
        guardian_key=simulator.guardian_key,
        demo=False,
    )


def with_simulator(settings: Settings) -> tuple[Settings, Simulator]:
    """Start the upstream simulator and point every provider at it (demo mode); the caller
    stops the simulator."""
    simulator = Simulator(ticker_seconds=DEMO_TICKER_SECONDS)
    simulator.start()
    # A demo only this machine can reach may call a webhook receiver on this machine (the
    # newcomer's): no one else holds a key to make it call anything.
    local = settings.webhook_allow_private or is_loopback(settings.host)
    # The pace travels with the settings, to worker processes too: they see a simulator
    # named, not demo mode.
    demo = replace(pointed_at(settings, simulator), harvest_pace="demo")
    public = settings.public_url or listen_url(settings)
    return replace(demo, webhook_allow_private=local, public_url=public), simulator


def listen_url(settings: Settings) -> str:
    """Where `newsagg serve` listens, as a URL this machine's browser reaches."""
    host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address `serve` listens on) is reachable from this machine only."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def simulated(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """Demo mode's upstreams while the block runs: a simulator started, `settings` pointed
    at it, and its address (what `newsagg.cli` is handed as its demo upstreams)."""
    pointed, simulator = with_simulator(settings)
    try:
        yield pointed, simulator.url
    finally:
        simulator.stop()


@contextmanager
def upstreams(settings: Settings) -> Iterator[Settings]:
    """The settings to build a service from while the block runs: `settings` as they are,
    or, when they ask for demo mode, pointed at a simulator that stops with the block."""
    if not settings.demo:
        yield settings
        return
    with simulated(settings) as (pointed, _address):
        yield pointed
