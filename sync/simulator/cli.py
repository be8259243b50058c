"""`alegra-sync simulator`: serve the built-in Alegra on a local port.

The account of `--email`/`--token` is the default one. Each `--account` (repeatable) and each
word of the environment variable `SIMULATOR_ACCOUNTS` (space-separated, so `alegra-sync run`
passes it on), `EMAIL:TOKEN[:LIMIT[:WINDOW_S]]` with a token without ':', adds another account
with its own data and rate window; LIMIT and WINDOW_S default to `--rate-limit`/`--window-s`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn

from sync.simulator.accounts import AccountError, Accounts
from sync.simulator.app import create_simulator
from sync.simulator.state import SimConfig

ACCOUNTS_VARIABLE = "SIMULATOR_ACCOUNTS"
CONTRARY_VARIABLE = "SIMULATOR_CONTRARY"  # "1": contrary mode, as `--contrary`


@dataclass(frozen=True)
class AccountSpec:
    """One extra account as the command line or the environment names it."""

    email: str
    token: str
    rate_limit: int | None = None
    window_s: float | None = None


def account_spec(text: str) -> AccountSpec:
    """`EMAIL:TOKEN[:LIMIT[:WINDOW_S]]`. Raises argparse.ArgumentTypeError when malformed."""
    parts = text.split(":")
    if len(parts) < 2 or len(parts) > 4 or not all(parts[:2]):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected EMAIL:TOKEN[:RATE_LIMIT[:WINDOW_S]] (a token without ':')")
    try:
        limit = int(parts[2]) if len(parts) > 2 else None
        window = float(parts[3]) if len(parts) > 3 else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: RATE_LIMIT must be a whole number and WINDOW_S a number") from None
    return AccountSpec(parts[0], parts[1], limit, window)


def add_parser(subparsers: Any) -> None:
    defaults = SimConfig()
    parser = subparsers.add_parser(
        "simulator", help="serve a simulated Alegra API (for tests, demos and benchmarks)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--email", default=defaults.email)
    parser.add_argument("--token", default=defaults.token)
    parser.add_argument("--rate-limit", type=int, default=defaults.rate_limit)
    parser.add_argument("--window-s", type=float, default=defaults.window_s)
    parser.add_argument("--account", type=account_spec, action="append", default=[],
                        metavar="EMAIL:TOKEN[:LIMIT[:WINDOW_S]]",
                        help=f"another account, with its own data (repeatable; also "
                             f"{ACCOUNTS_VARIABLE}, space-separated)")
    parser.add_argument("--contrary", action="store_true",
                        help="answer the other way on each of the product's guesses, seeded with"
                             f" data typed by hand (sync/simulator/contrary.py; also "
                             f"{CONTRARY_VARIABLE}=1)")
    parser.add_argument("--seed-contacts", type=int, default=0, metavar="N",
                        help="start with N realistic contacts (in the default account)")
    parser.set_defaults(handler=run)


def extra_accounts(args: argparse.Namespace, environ: dict[str, str] | None = None
                   ) -> list[AccountSpec]:
    """The accounts the environment names, then those of `--account`. Raises
    argparse.ArgumentTypeError for a malformed word of the environment variable."""
    words = (os.environ if environ is None else environ).get(ACCOUNTS_VARIABLE, "").split()
    return [*map(account_spec, words), *args.account]


def add_accounts(accounts: Accounts, specs: list[AccountSpec]) -> None:
    """Add each account. Raises AccountError (taken credentials, a bad limit…)."""
    for spec in specs:
        accounts.add(spec.email, spec.token, rate_limit=spec.rate_limit, window_s=spec.window_s)


def contrary_mode(args: argparse.Namespace, environ: dict[str, str] | None = None) -> bool:
    """`--contrary`, or SIMULATOR_CONTRARY=1 (so `alegra-sync run` passes it on)."""
    value = (os.environ if environ is None else environ).get(CONTRARY_VARIABLE, "")
    return bool(args.contrary) or value.strip() == "1"


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; prints the base URL and credentials to use first."""
    config = SimConfig(email=args.email, token=args.token, rate_limit=args.rate_limit,
                       window_s=args.window_s, contrary=contrary_mode(args))
    app, state = create_simulator(config)
    accounts: Accounts = app.state.accounts
    try:
        add_accounts(accounts, extra_accounts(args))
    except (argparse.ArgumentTypeError, AccountError) as exc:
        print(f"simulator: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.seed_contacts:
        state.seed_contacts(args.seed_contacts)
    print(  # the one line an operator needs
        f"simulator: ALEGRA_BASE_URL=http://{args.host}:{args.port}/api/v1 "
        f"ALEGRA_EMAIL={config.email} ALEGRA_TOKEN={config.token}", flush=True)
    for extra in accounts.all()[1:]:
        print(f"simulator: also account {extra.config.email} ({extra.config.rate_limit} "
              f"requests per {extra.config.window_s:g} s)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws="none")
    return 0
