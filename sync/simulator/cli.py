"""`alegra-sync simulator`: serve the built-in Alegra on a local port."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from sync.simulator.app import create_simulator
from sync.simulator.state import SimConfig


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
    parser.add_argument("--seed-contacts", type=int, default=0, metavar="N",
                        help="start with N realistic contacts")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; prints the base URL and credentials to use first."""
    config = SimConfig(email=args.email, token=args.token, rate_limit=args.rate_limit,
                       window_s=args.window_s)
    app, state = create_simulator(config)
    if args.seed_contacts:
        state.seed_contacts(args.seed_contacts)
    print(  # the one line an operator needs
        f"simulator: ALEGRA_BASE_URL=http://{args.host}:{args.port}/api/v1 "
        f"ALEGRA_EMAIL={config.email} ALEGRA_TOKEN={config.token}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws="none")
    return 0
