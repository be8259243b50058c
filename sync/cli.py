"""`alegra-sync …`: the operator's command line.

Each command group lives in its own module under `sync/commands/` (or the simulator's package)
and exposes `add_parser(subparsers)`, which registers its sub-command with a `handler(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sync.instance import InstanceBusy
from sync.settings import CONFIG_ERROR_EXIT, SettingsError
from sync.store.db import DatabaseUnavailable

COMMAND_MODULES = (
    "sync.commands.run",          # run: web + worker (+ simulator without credentials)
    "sync.commands.partners",     # partners add/list/rotate/revoke/grant/revoke-grant
    "sync.commands.companies",    # companies add/list/check/remove/rotate-key
    "sync.commands.webhooks",     # webhooks register/list/remove
    "sync.commands.jobs",         # backfill, reconcile
    "sync.commands.status",       # status: can the cache be trusted now?
    "sync.commands.receipts",     # receipts show/retry
    "sync.commands.db",           # db backup
    "sync.commands.doctor",       # doctor: settle the guesses about Alegra (read-only)
    "sync.simulator.cli",         # simulator
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alegra-sync", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"alegra-sync: configuration error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except DatabaseUnavailable as exc:  # PostgreSQL not answering: 75, a bad file: 2
        print(f"alegra-sync: {exc.heading}: {exc}", file=sys.stderr)
        return exc.exit_status
    except InstanceBusy as exc:
        print(f"alegra-sync: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
