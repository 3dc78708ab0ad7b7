"""The `newsagg` command: serve the API, manage API keys."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from newsagg.keys import TIERS, KeyRing
from newsagg.settings import Settings, SettingsError
from newsagg.store import Store

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
        demo_key = KeyRing(Store(settings.database)).create("demo", "premium").plaintext
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
    new = KeyRing(Store(settings.database)).create(args.name, args.tier, args.admin)
    print(new.plaintext)  # alone on stdout, so `KEY=$(newsagg keys create ...)` works
    return 0


def _keys_list(_args: argparse.Namespace, settings: Settings) -> int:
    for key in KeyRing(Store(settings.database)).list():
        role = "admin" if key.admin else "-"
        print(f"{key.id}\t{key.prefix}…\t{key.tier}\t{role}\t{key.created_at}\t{key.name}")
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    if KeyRing(Store(settings.database)).revoke(args.id):
        return 0
    print(f"no active key with id {args.id}", file=sys.stderr)
    return 1


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
    return args.run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
