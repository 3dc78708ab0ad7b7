"""The `newsagg` command: serve the API, harvest, manage API keys.

Its console script is edge.cli, which hands `main` demo mode's upstreams (the simulator,
which nothing in the core imports); run as `python -m newsagg.cli`, it has none to offer.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext

from newsagg.errors import InvalidInput, Unavailable
from newsagg.key_cache import key_cache_for
from newsagg.keys import KeyRing
from newsagg.log import logging_config
from newsagg.metrics import multiprocess_dir
from newsagg.settings import Settings, SettingsError, flagged
from newsagg.shared import RedisLink
from newsagg.store import open_store
from newsagg.store.migrations import pending
from newsagg.tiers import TIERS
from providers.base import PROVIDER_NAMES

# In-flight requests get this long to finish after SIGTERM before workers stop.
GRACEFUL_SHUTDOWN_SECONDS = 10
# The flags of `serve`; `--database` is global (every command opens the store).
SERVE_FLAGS = ("demo", "host", "port", "workers")

# Demo mode's upstreams, which the core cannot start (the simulator is not its to import):
# given settings that ask for demo mode, a context that runs upstreams for them and yields
# the settings naming those (demo off) and the address of their simulator. The entry point
# (edge.cli) passes edge.demo.simulated to `main`.
DemoUpstreams = Callable[[Settings], AbstractContextManager[tuple[Settings, str]]]


def _no_demo_upstreams(_settings: Settings) -> AbstractContextManager[tuple[Settings, str]]:
    raise SettingsError(
        "demo mode (--demo, NEWSAGG_DEMO) needs the upstream simulator, which the `newsagg`"
        " command wires in (python -m edge.cli); python -m newsagg.cli has none"
    )


def _upstreams(
    settings: Settings, args: argparse.Namespace
) -> AbstractContextManager[tuple[Settings, str | None]]:
    """For the command's run: the settings naming their upstreams, and in demo mode the
    address of the simulator started for them (stopped when the run ends)."""
    if settings.demo:
        return args.demo_upstreams(settings)
    return nullcontext((settings, None))


def _announce_demo(settings: Settings, simulator_url: str) -> None:
    """A premium key for the newcomer, printed with a request to try and the Swagger UI."""
    with closing(open_store(settings)) as store:
        demo_key = KeyRing(store).create("demo", "premium").plaintext
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"demo mode: upstream simulator at {simulator_url}\n"
        f"API key (premium tier): {demo_key}\n"
        f"try:  curl -H 'Authorization: Bearer {demo_key}' "
        f"'{base}/articles?category=technology&limit=2'\n"
        f"Swagger UI: {base}/ui/",
        flush=True,
    )


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Connexion imports Starlette's test client, which warns about httpx; not ours to fix.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import uvicorn

    # In demo mode, one simulator for all workers: started here, and the workers get
    # settings naming it.
    with _upstreams(settings, args) as (settings, simulator_url):
        if simulator_url is not None:
            _announce_demo(settings, simulator_url)
        # Worker processes read their settings from the environment, as these were resolved.
        os.environ.update(settings.to_env())
        with multiprocess_dir(settings.workers):  # /metrics sums every worker's counts
            uvicorn.run(
                "edge.app:app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_config=logging_config(),
                access_log=False,  # newsagg writes its own structured access line
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            )
    return 0


def _harvest(settings: Settings, args: argparse.Namespace) -> int:
    """One round of the providers whose turn has come, under the harvester's lease (a
    running `newsagg serve` that holds it is left to do its work). A provider that fails
    is reported, not an error: the next round tries again."""
    from newsagg.service import build_service

    # The service closes (its harvester stopped) before demo mode's simulator stops.
    with (
        _upstreams(settings, args) as (settings, _simulator_url),
        closing(build_service(settings)) as service,
    ):
        harvester = service.harvester
        assert harvester is not None  # build_service always builds one
        if not harvester.leadership.hold():
            print("another harvester holds the lead; nothing done")
            return 0
        try:
            reports = harvester.round()
        finally:
            harvester.leadership.release()
        done = {report.provider for report in reports}
        for report in reports:
            print(report.summary())
        for name in PROVIDER_NAMES:
            if name not in done:
                upcoming = harvester.standing(name).next_harvest_at
                when = (
                    "not harvested"
                    if upcoming is None
                    else f"next run {upcoming:%Y-%m-%d %H:%M:%S}"
                )
                print(f"{name}: not due; {when}")
    return 0


def _keys_create(settings: Settings, args: argparse.Namespace) -> int:
    with closing(open_store(settings)) as store:
        new = KeyRing(store).create(args.name, args.tier, args.admin)
    print(new.plaintext)  # alone on stdout, so `KEY=$(newsagg keys create ...)` works
    return 0


def _keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    with closing(open_store(settings)) as store:
        keys = KeyRing(store).list()
    for key in keys:
        role = "admin" if key.admin else "-"
        print(f"{key.id}\t{key.prefix}…\t{key.tier}\t{role}\t{key.created_at}\t{key.name}")
    return 0


def _keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    # With Redis, running instances may remember the key: the revocation waits until
    # none does (newsagg.key_cache), so give this command the instances' environment.
    link = RedisLink(settings.redis_url) if settings.redis_url else None
    try:
        with closing(open_store(settings)) as store:
            revoked = KeyRing(store, key_cache_for(settings, link)).revoke(args.id)
    finally:
        if link is not None:
            link.close()
    if revoked:
        return 0
    print(f"no active key with id {args.id}", file=sys.stderr)
    return 1


def _db_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    with closing(open_store(settings, migrate=False)) as store:
        applied = store.migrate()
        version = store.schema_version()
    for migration in applied:
        print(f"applied {migration.version} {migration.name}")
    if not applied:
        print(f"nothing to apply; schema version {version}")
    return 0


def _db_status(settings: Settings, _args: argparse.Namespace) -> int:
    with closing(open_store(settings, migrate=False)) as store:
        version = store.schema_version()
    print(f"schema version {version}")
    for migration in pending(version):
        print(f"pending {migration.version} {migration.name}")
    return 0


def _reindex(settings: Settings, _args: argparse.Namespace) -> int:
    with closing(open_store(settings)) as store:
        started = time.monotonic()
        count = store.reindex()
        print(
            f"search index made anew for {store.analyzer.identity}: {count} articles"
            f" in {time.monotonic() - started:.1f} s"
        )
    return 0


def _stories_rebuild(settings: Settings, _args: argparse.Namespace) -> int:
    with closing(open_store(settings)) as store:
        started = time.monotonic()
        count = store.rebuild_stories()
        merged = 0
        while True:  # then the upkeep's merges, caught up
            looked, step_merged = store.merge_stories(1_000)
            merged += step_merged
            if not looked:
                break
        print(
            f"stories made anew: {count} articles placed, {merged} stories merged"
            f" in {time.monotonic() - started:.1f} s"
        )
    return 0


def _add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Flags for these settings, described by the settings table; values parsed by it too."""
    for name, flag, meaning in flagged():
        if name in names:
            if name == "demo":
                parser.add_argument(flag, dest=name, action="store_true", help=meaning)
            else:
                parser.add_argument(flag, dest=name, metavar=name.upper(), help=meaning)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="newsagg", description=__doc__)
    _add_setting_flags(root, ("database",))
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    _add_setting_flags(serve, SERVE_FLAGS)
    serve.set_defaults(run=_serve)

    harvest = commands.add_parser(
        "harvest", help="harvest the upstreams into the archive (as `serve` does)"
    )
    harvest.add_argument(
        "--once",
        action="store_true",
        required=True,
        help="one round of the providers whose turn has come, then exit (for cron)",
    )
    harvest.set_defaults(run=_harvest)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key; prints it, once")
    create.add_argument("--name", required=True)
    create.add_argument("--tier", choices=TIERS, default="basic")
    create.add_argument("--admin", action="store_true")
    create.set_defaults(run=_keys_create)
    keys.add_parser("list", help="list active keys").set_defaults(run=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=_keys_revoke)

    db = commands.add_parser("db", help="the database schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("migrate", help="apply pending migrations").set_defaults(run=_db_migrate)
    db.add_parser("status", help="schema version and pending migrations").set_defaults(
        run=_db_status
    )
    commands.add_parser(
        "reindex",
        help="make the archive's search index anew for NEWSAGG_SEARCH_LANGUAGE (after"
        " changing it; with the service stopped)",
    ).set_defaults(run=_reindex)
    stories = commands.add_parser("stories", help="the archive's stories").add_subparsers(
        dest="stories_command", required=True
    )
    stories.add_parser(
        "rebuild",
        help="place every article in a story anew, earliest first, with the current"
        " NEWSAGG_STORY_* settings (after changing them; story ids change)",
    ).set_defaults(run=_stories_rebuild)
    return root


def main(argv: Sequence[str] | None = None, demo_upstreams: DemoUpstreams | None = None) -> int:
    """Run the command `argv` names; `demo_upstreams` serve demo mode (see DemoUpstreams)."""
    args = parser().parse_args(argv)
    args.demo_upstreams = demo_upstreams or _no_demo_upstreams
    try:
        return args.run(Settings.from_env().with_flags(vars(args)), args)
    except SettingsError as exc:
        print(f"newsagg: {exc}", file=sys.stderr)
        return 2
    except InvalidInput as exc:  # e.g. a key name the API would refuse too
        print(f"newsagg: {exc.detail}", file=sys.stderr)
        return 2
    except Unavailable as exc:  # the database is unreachable: say so, no traceback
        print(f"newsagg: {exc.detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
