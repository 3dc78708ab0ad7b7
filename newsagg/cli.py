"""The `newsagg` command: serve the API, manage API keys."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from newsagg.keys import TIERS, KeyRing
from newsagg.log import logging_config
from newsagg.settings import Settings, SettingsError, flagged
from newsagg.store import Store

# In-flight requests get this long to finish after SIGTERM before workers stop.
GRACEFUL_SHUTDOWN_SECONDS = 10
# The flags of `serve`; `--database` is global (every command opens the store).
SERVE_FLAGS = ("demo", "host", "port", "workers")


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    # Connexion imports Starlette's test client, which warns about httpx; not ours to fix.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import uvicorn

    from newsagg.service import with_simulator

    if settings.demo:
        # One simulator for all workers: started here; the workers get settings naming it.
        settings, simulator = with_simulator(settings)
        demo_key = KeyRing(Store(settings.database)).create("demo", "premium").plaintext
        base = f"http://{settings.host}:{settings.port}"
        print(
            f"demo mode: upstream simulator at {simulator.url}\n"
            f"API key (premium tier): {demo_key}\n"
            f"try:  curl -H 'Authorization: Bearer {demo_key}' "
            f"'{base}/articles?category=technology&limit=2'\n"
            f"Swagger UI: {base}/ui/",
            flush=True,
        )
    # Worker processes read their settings from the environment, as these were resolved.
    os.environ.update(settings.to_env())
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


def _keys_create(settings: Settings, args: argparse.Namespace) -> int:
    new = KeyRing(Store(settings.database)).create(args.name, args.tier, args.admin)
    print(new.plaintext)  # alone on stdout, so `KEY=$(newsagg keys create ...)` works
    return 0


def _keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    for key in KeyRing(Store(settings.database)).list():
        role = "admin" if key.admin else "-"
        print(f"{key.id}\t{key.prefix}…\t{key.tier}\t{role}\t{key.created_at}\t{key.name}")
    return 0


def _keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    if KeyRing(Store(settings.database)).revoke(args.id):
        return 0
    print(f"no active key with id {args.id}", file=sys.stderr)
    return 1


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
    try:
        settings = Settings.from_env().with_flags(vars(args))
    except SettingsError as exc:
        print(f"newsagg: {exc}", file=sys.stderr)
        return 2
    return args.run(settings, args)


if __name__ == "__main__":
    sys.exit(main())
