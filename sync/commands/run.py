"""`alegra-sync run` (what `make run` calls): the web process and the worker from the Procfile.

Without a SECRET_KEY (in the environment or `.env`) a development key is generated into `.env`.
Without Alegra credentials the built-in simulator is started too, the other processes are
pointed at it, a demo partner is made (its key kept in `.env` as DEMO_PARTNER_KEY, simulator mode
only: keys are otherwise shown once), and a ready-to-paste `curl` is printed.

The simulator keeps its accounting data in memory, so in simulator mode the store is a separate
file, `./data/alegra-sync-simulator.db`, started afresh each time (unless DATABASE_URL is set):
a cache filled from one simulator run would name contacts and accounts the next one does not
have — and a cache filled from the simulator must never meet the real Alegra.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from honcho.environ import parse_procfile
from honcho.manager import Manager

from sync.alegra.client import SIMULATOR_EMAIL, SIMULATOR_TOKEN
from sync.settings import Settings, load_settings
from sync.store.db import Database
from sync.store.partners import PartnerExists, create_partner, find_partner_by_key

DEMO_KEY_VAR = "DEMO_PARTNER_KEY"
SIMULATOR_DB = Path("data") / "alegra-sync-simulator.db"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="start the web process and the worker (and the simulator without credentials)"
    )
    parser.add_argument("--procfile", default="Procfile")
    parser.add_argument("--env-file", default=".env")
    parser.add_argument("--simulator-port", type=int, default=8001)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    env_file = Path(args.env_file)
    environ = {**read_env_file(env_file), **os.environ}
    if not environ.get("SECRET_KEY"):
        environ["SECRET_KEY"] = set_env(env_file, "SECRET_KEY", secrets.token_urlsafe(32))
        say(f"generated a development SECRET_KEY into {env_file}")
    if not Path(args.procfile).is_file():
        say(f"no {args.procfile} here: run this from the project's directory")
        return 2
    commands = procfile_commands(Path(args.procfile))
    if load_settings(env_file=None, environ=environ).simulated:
        if not port_is_free(args.simulator_port):
            say(f"port {args.simulator_port} is in use: pass --simulator-port to use another")
            return 1
        fresh_simulator_store(environ)
        commands = simulate(commands, environ, args.simulator_port)
        settings = load_settings(env_file=None, environ=environ)
        key = asyncio.run(demo_partner_key(settings, environ.get(DEMO_KEY_VAR), env_file))
        print(sample_curl(settings.port, key), flush=True)
    return run_processes(commands, child_environment(environ))


def say(line: str) -> None:
    print(f"alegra-sync: {line}", flush=True)


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines of a dotenv file (comments and blank lines skipped, quotes removed)."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def set_env(path: Path, name: str, value: str) -> str:
    """Set `name=value` in the dotenv file (replacing an earlier line; the file is created
    owner-only); returns the value."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept = [line for line in lines if line.strip().removeprefix("export ").split("=", 1)[0].strip()
            != name]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join([*kept, f"{name}={value}"]) + "\n")
    return value


def fresh_simulator_store(environ: dict[str, str]) -> None:
    """Point DATABASE_URL at a simulator-only file, emptied now (unless DATABASE_URL is set)."""
    if environ.get("DATABASE_URL"):
        return
    path = SIMULATOR_DB
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    environ["DATABASE_URL"] = f"sqlite:///./{path}"


def procfile_commands(path: Path) -> dict[str, str]:
    """The Procfile's process types and commands, in file order."""
    procfile = parse_procfile(path.read_text(encoding="utf-8"))
    return {str(name): str(command) for name, command in procfile.processes.items()}


def child_environment(environ: dict[str, str]) -> dict[str, str]:
    """The processes' environment: ours plus the virtualenv's bin first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bin_dir, environ.get("PATH", os.defpath)])
    return {**environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


def port_is_free(port: int) -> bool:
    """Nobody listens on `port` (connections in TIME_WAIT from a previous run don't count,
    as uvicorn binds with SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def simulate(commands: dict[str, str], env: dict[str, str], port: int) -> dict[str, str]:
    """Add the simulator process and point the others at it (credentials the client uses)."""
    env["ALEGRA_BASE_URL"] = f"http://127.0.0.1:{port}/api/v1"
    simulator = shlex.join([
        sys.executable, "-m", "sync.cli", "simulator", "--port", str(port),
        "--email", SIMULATOR_EMAIL, "--token", SIMULATOR_TOKEN,
    ])
    say(f"no ALEGRA_EMAIL/ALEGRA_TOKEN set: using the built-in Alegra simulator at "
        f"{env['ALEGRA_BASE_URL']} (nothing reaches the real Alegra; data starts fresh)")
    return {"simulator": simulator, **commands}


async def demo_partner_key(settings: Settings, known: str | None, env_file: Path) -> str:
    """The demo partner's key: the one kept in `.env` if still valid, else a new partner's."""
    db = await Database.open(settings.database_path)
    try:
        if known and await find_partner_by_key(db, known) is not None:
            return known
        for name in ("demo", f"demo-{secrets.token_hex(3)}"):
            try:
                _, key = await create_partner(db, name)
            except PartnerExists:
                continue
            say(f"created demo partner {name!r}; its key is kept in {env_file} as {DEMO_KEY_VAR}")
            return set_env(env_file, DEMO_KEY_VAR, key)
        raise RuntimeError("could not create a demo partner")
    finally:
        await db.close()


def sample_receipt() -> dict[str, Any]:
    """A valid receipt: a real-format RNC, an NCF unique to this start, one taxed line."""
    sequence = dt.datetime.now(dt.UTC).strftime("%m%d%H%M")
    return {
        "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": dt.date.today().isoformat(),
        "ncf": f"B01{sequence}",
        "category": "Combustible y lubricantes",
        "lines": [{"description": "Gasoil regular", "amount": "1000.00", "quantity": 2,
                   "tax_rate": 18}],
    }


def sample_curl(port: int, key: str) -> str:
    body = json.dumps(sample_receipt(), ensure_ascii=False)
    return (
        "alegra-sync: submit a sample receipt (waits up to 10 s for the bill):\n"
        f"curl -sS -X POST http://127.0.0.1:{port}/v1/receipts \\\n"
        f"  -H 'Authorization: Bearer {key}' \\\n"
        "  -H \"Idempotency-Key: demo-$(date +%s)\" \\\n"
        "  -H 'Content-Type: application/json' -H 'Prefer: wait=10' \\\n"
        f"  -d '{body}'"
    )


def run_processes(commands: dict[str, str], env: dict[str, str]) -> int:
    """Run every process with honcho until one exits or Ctrl-C; returns honcho's exit code."""
    manager = Manager()
    for name, command in commands.items():
        manager.add_process(name, command, env=env, cwd=os.getcwd())
    manager.loop()
    return int(manager.returncode or 0)
