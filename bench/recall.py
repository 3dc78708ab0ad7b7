"""Recall against the upstreams: of the articles a real upstream returned for a real query
(the recordings in tests/recall/, replayed by the simulator), what share newsagg returns
for that query, `GET /articles?q=<q>&source=<provider>&limit=100`, every page followed.

For each recording, three ways of asking:
  (a) on demand: a fresh service, an empty archive, the upstream answering with the
      recording;
  (b) the archive alone, the query never asked upstream: a fresh service whose one
      harvest round read the recording's articles in the upstream's listings
      (`Simulator.replay(..., as_harvest=True)`), then every upstream failing;
  (c) the archive alone after (a): the service of (a), every upstream failing (a page is
      always read from the archive: newsagg.feed).
Shares count canonical URLs (providers.text.canonical_url, as newsagg compares them).
Recorded times are moved to end a few minutes ago, their spacing shrunk to fit WITHIN so
the Guardian's first harvest (a day back) reaches every article.

Services are built as the tests build them (tests/conftest.py: the same settings, its
PostgreSQL server and fresh databases); run by hand:
    .venv/bin/python bench/recall.py [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import conftest  # noqa: E402  (the tests' helpers: settings, databases, servers)
import pg_server  # noqa: E402
from recall_data import recorded_urls, recordings  # noqa: E402

from edge.app import create_app  # noqa: E402
from edge.demo import pointed_at  # noqa: E402
from newsagg.service import Service, build_service  # noqa: E402
from newsagg.settings import Settings  # noqa: E402
from providers.base import PROVIDER_NAMES  # noqa: E402
from providers.text import canonical_url  # noqa: E402
from simulator import Fault, Simulator  # noqa: E402
from simulator.replay import Recording  # noqa: E402

WITHIN = timedelta(hours=12)
MAX_PAGES = 50


@dataclass
class Row:
    recording: Recording
    upstream: set[str]
    found: dict[str, set[str]]
    notes: list[str]


class Backends:
    """Where each service keeps its data: a new SQLite file, or a new database on a
    PostgreSQL server of the bench's own (the suite's pg_server)."""

    def __init__(self, backend: str, stack: ExitStack, work: Path) -> None:
        self.backend, self._stack, self._work, self._count = backend, stack, work, 0
        if backend == "postgres":
            server = pg_server.new_server()
            stack.callback(server.remove)
            self._admin_url = server.url()

    def changes(self) -> dict[str, Any]:
        self._count += 1
        if self.backend == "sqlite":
            return {"database": str(self._work / f"recall-{self._count}.sqlite3")}
        url = self._stack.enter_context(conftest.fresh_database(self._admin_url))
        return {"database_url": url}


def base_settings(simulator: Simulator, work: Path) -> Settings:
    """The tests' `settings` fixture: every provider on the simulator, budgets wide open."""
    return pointed_at(
        Settings(
            database=str(work / "unused.sqlite3"),
            upstream_timeout=1.0,
            harvest=False,
            push=False,
            **{f"{name}_quota": conftest.UNBUDGETED for name in PROVIDER_NAMES},
        ),
        simulator,
    )


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    service = build_service(settings)
    try:
        yield service
    finally:
        service.close()


def asked(
    service: Service, recording: Recording, notes: list[str], harvested: bool = False
) -> set[str]:
    """Every page of newsagg's answer to the recording's q, as canonical URLs. `harvested`:
    the articles came in the harvest, which files a recording's top headlines under the
    category it happened to read them in; the question is then asked without a category
    (one only makes newsagg ask NewsAPI's top headlines on demand)."""
    key = service.keys.create("recall-bench", "unlimited").plaintext
    params = {"q": recording.q, "source": recording.provider, "limit": 100, **recording.ask}
    if harvested:
        params.pop("category", None)
    urls: set[str] = set()
    with create_app(service=service).test_client() as client:
        for _ in range(MAX_PAGES):
            reply = client.get(
                "/articles", params=params, headers={"Authorization": f"Bearer {key}"}
            )
            if reply.status_code != 200:
                notes.append(f"{reply.status_code}: {reply.json().get('detail', '')[:80]}")
                break
            page = reply.json()
            urls.update(canonical_url(article["url"]) for article in page["articles"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    return urls


def failing(simulator: Simulator) -> None:
    for name in PROVIDER_NAMES:
        simulator.set_fault(name, Fault("status", status=500))


def measure(recording: Recording, simulator: Simulator, base: Settings, where: Backends) -> Row:
    row = Row(recording, recorded_urls(recording), {}, [])
    simulator.clear_faults()  # and every replay before
    replay = simulator.replay(recording, within=WITHIN)
    with running(replace(base, **where.changes())) as service:
        row.found["a"] = asked(service, recording, row.notes)
        if not replay.served:
            row.notes.append(
                f"(a): newsagg never asked {recording.endpoint} for this query (another "
                "endpoint, or a q that means something else): the recording did not answer"
            )
        failing(simulator)
        row.found["c"] = asked(service, recording, row.notes)

    simulator.clear_faults()
    simulator.replay(recording, as_harvest=True, within=WITHIN)
    with running(replace(base, **where.changes())) as service:
        harvester = service.harvester
        if harvester is None or not harvester.leadership.hold():
            raise RuntimeError("no harvester to run")
        for report in harvester.round(force=True):
            if report.provider == recording.provider and report.outcome != "ok":
                row.notes.append(f"harvest {report.outcome}: {report.message}")
        failing(simulator)
        row.found["b"] = asked(service, recording, row.notes, harvested=True)
    simulator.clear_faults()
    return row


def code(q: str) -> str:
    """A q as a Markdown code span in a table cell (one with backticks needs two)."""
    q = q.replace("|", "\\|")
    return f"`` {q} ``" if "`" in q else f"`{q}`"


def share(found: set[str], upstream: set[str]) -> str:
    return f"{100 * len(found & upstream) / len(upstream):.0f} %" if upstream else "-"


def table(rows: list[Row]) -> str:
    lines = [
        "| query | provider | upstream articles | (a) on demand | (b) archive, harvested "
        "| (c) archive, after (a) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [code(row.recording.q), row.recording.provider, str(len(row.upstream))]
        cells += [share(row.found[k], row.upstream) for k in "abc"]
        lines.append("| " + " | ".join(cells) + " |")
    total = sum(len(row.upstream) for row in rows)
    hits = [sum(len(row.found[k] & row.upstream) for row in rows) for k in "abc"]
    lines.append(
        f"| **total** | | {total} | " + " | ".join(f"{100 * h / total:.0f} %" for h in hits) + " |"
    )
    notes = [
        f"- {code(row.recording.q)}: {note}" for row in rows for note in dict.fromkeys(row.notes)
    ]
    return "\n".join(lines + (["", *notes] if notes else []))


def run(backend: str) -> str:
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recall-")))
        simulator = stack.enter_context(Simulator(newsapi_quota=None))
        where = Backends(backend, stack, work)
        base = base_settings(simulator, work)
        rows = [measure(recording, simulator, base, where) for recording in recordings()]
    return table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = parser.parse_args()
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        print(f"\n### {backend}\n\n{run(backend)}")


if __name__ == "__main__":
    main()
