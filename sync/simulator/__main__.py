"""`python -m sync.simulator …`: the simulator alone, without the product's command line."""

from __future__ import annotations

import argparse
import sys

from sync.simulator import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.simulator")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulator", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
