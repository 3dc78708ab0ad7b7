"""The `newsagg` command: serve the API, manage API keys and the database schema."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from contextlib import closing

from newsagg.errors import Unavailable
from newsagg.keys import TIERS, KeyRing
from newsagg.settings import Settings, SettingsError
from newsagg.store import open_store
from newsagg.store.migrations import pending

# In-flight requests get this long to finish after SIGTERM before workers stop.
GRACEFUL_SHUTDOWN_SECONDS = 10


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # Connexion imports Starlette's test client, which warns about httpx; not ours to fix.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import uvicorn

    from newsagg.service import start_demo_simulator

    if args.demo or settings.demo:
        # One simulator for all workers: started here, handed to them through the environment.
        settings, simulator = start_demo_simulator(settings)
        os.environ.update(
            NEWSAGG_NEWSAPI_URL=settings.newsapi_url,
            NEWSAGG_GUARDIAN_URL=settings.guardian_url,
            NEWSAGG_HACKERNEWS_URL=settings.hackernews_url,
            NEWSAGG_NEWSAPI_KEY=settings.newsapi_key or "",
            NEWSAGG_GUARDIAN_KEY=settings.guardian_key or "",
        )
        os.environ.pop("NEWSAGG_DEMO", None)
        with closing(open_store(settings)) as store:
            demo_key = KeyRing(store).create("demo", "premium").plaintext
        base = f"http://{args.host}:{args.port}"
        print(
            f"demo mode: upstream simulator at {simulator.url}\n"
            f"API key (premium tier): {demo_key}\n"
            f"try:  curl -H 'Authorization: Bearer {demo_key}' "
            f"'{base}/articles?category=technology&limit=2'\n"
            f"Swagger UI: {base}/ui/",
            flush=True,
        )
    uvicorn.run(
        "edge.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=logging_config(),
        access_log=False,  # newsagg writes its own structured access line
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


def logging_config() -> dict:
    """Every line carries the request id; access lines are JSON on stdout, the rest stderr."""
    with_id = {"filters": ["request_id"], "class": "logging.StreamHandler"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "edge.observability.RequestIdFilter"}},
        "formatters": {
            "plain": {
                "format": "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
            },
            "json_line": {"format": "%(message)s"},
        },
        "handlers": {
            "default": {**with_id, "formatter": "plain", "stream": "ext://sys.stderr"},
            "access": {**with_id, "formatter": "json_line", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "newsagg.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "INFO"},
    }


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    with closing(open_store(settings)) as store:
        new = KeyRing(store).create(args.name, args.tier, args.admin)
    print(new.plaintext)  # alone on stdout, so `KEY=$(newsagg keys create ...)` works
    return 0


def _keys_list(_args: argparse.Namespace, settings: Settings) -> int:
    with closing(open_store(settings)) as store:
        keys = KeyRing(store).list()
    for key in keys:
        role = "admin" if key.admin else "-"
        print(f"{key.id}\t{key.prefix}…\t{key.tier}\t{role}\t{key.created_at}\t{key.name}")
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    with closing(open_store(settings)) as store:
        revoked = KeyRing(store).revoke(args.id)
    if revoked:
        return 0
    print(f"no active key with id {args.id}", file=sys.stderr)
    return 1


def _db_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    with closing(open_store(settings, migrate=False)) as store:
        applied = store.migrate()
        version = store.schema_version()
    for migration in applied:
        print(f"applied {migration.version} {migration.name}")
    if not applied:
        print(f"nothing to apply; schema version {version}")
    return 0


def _db_status(_args: argparse.Namespace, settings: Settings) -> int:
    with closing(open_store(settings, migrate=False)) as store:
        version = store.schema_version()
    print(f"schema version {version}")
    for migration in pending(version):
        print(f"pending {migration.version} {migration.name}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="newsagg", description=__doc__)
    root.add_argument("--database", help="SQLite file (default: $NEWSAGG_DATABASE)")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="serve from the upstream simulator")
    serve.set_defaults(run=_serve)

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
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.database:
        os.environ["NEWSAGG_DATABASE"] = args.database  # so serve's workers see it too
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"newsagg: {exc}", file=sys.stderr)
        return 2
    try:
        return args.run(args, settings)
    except SettingsError as exc:
        print(f"newsagg: {exc}", file=sys.stderr)
        return 2
    except Unavailable as exc:
        print(f"newsagg: {exc.detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
