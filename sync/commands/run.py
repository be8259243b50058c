"""`alegra-sync run` (what `make run` calls): the web process and the worker from the Procfile,
with the simulator and a demo partner when there are no Alegra credentials. It holds the
database's run lock for its life. What it sets up and what a restart keeps:
docs/sync.md ("`alegra-sync run`").
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

from cryptography.fernet import Fernet
from honcho.environ import parse_procfile
from honcho.manager import Manager

from sync import instance
from sync.alegra.client import SIMULATOR_EMAIL, SIMULATOR_TOKEN
from sync.deployment import SIMULATOR_DATABASE, Demo, forget_demo, record_demo, simulated_store
from sync.settings import Settings, load_settings, shown_url
from sync.store.db import Database
from sync.store.partners import (
    PartnerExists,
    create_partner,
    find_partner_by_key,
    restore_partners,
    saved_partners,
)

DEMO_KEY_VAR = "DEMO_PARTNER_KEY"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="start the web process and the worker (and the simulator without credentials)"
    )
    parser.add_argument("--procfile", default="Procfile")
    parser.add_argument("--env-file", default=".env")
    parser.add_argument("--simulator-port", type=int, default=None,
                        help="the simulator's port (default: SIMULATOR_PORT, else 8001)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    env_file = Path(args.env_file)
    environ = {**read_env_file(env_file), **os.environ}
    if not Path(args.procfile).is_file():
        fail(f"no {args.procfile} here: run this from the project's directory")
        return 2
    generated: dict[str, str] = {}  # kept in memory until this run holds the lock
    if not environ.get("SECRET_KEY"):
        generated["SECRET_KEY"] = environ["SECRET_KEY"] = secrets.token_urlsafe(32)
    if args.simulator_port is not None:
        environ["SIMULATOR_PORT"] = str(args.simulator_port)
    settings = simulated_store(load_settings(env_file=None, environ=environ))
    if settings.simulated and not environ.get("CREDENTIALS_KEY"):  # the demo can add companies
        key = Fernet.generate_key().decode("ascii")
        generated["CREDENTIALS_KEY"] = environ["CREDENTIALS_KEY"] = key
        settings = simulated_store(load_settings(env_file=None, environ=environ))
    try:
        run_lock = instance.acquire(instance.anchor(settings), instance.Role.RUN)
    except instance.InstanceBusy as exc:
        fail(str(exc))
        return 1
    try:
        return _start(settings, environ, args, env_file, generated)
    except instance.InstanceBusy as exc:
        fail(str(exc))
        return 1
    finally:
        run_lock.release()


def _start(
    settings: Settings, environ: dict[str, str], args: argparse.Namespace, env_file: Path,
    generated: dict[str, str],
) -> int:
    """Holding the run lock: check the worker lock and the ports, prepare, run the processes."""
    demo: Demo | None = None
    worker_lock = _worker_lock(settings)
    try:
        for name, value in generated.items():
            set_env(env_file, name, value)
            say(f"generated a development {name} into {env_file}")
        commands = procfile_commands(Path(args.procfile))
        busy = busy_port(settings)
        if busy:
            fail(busy)
            return 1
        if settings.simulated:
            demo = _prepare_demo(settings, environ, env_file)
            if demo is None:
                return 1
            commands = simulate(commands, environ, settings.simulator_port)
    finally:
        if worker_lock is not None:
            worker_lock.release()  # the worker about to start takes it
    try:
        return run_processes(commands, child_environment(environ, sys.stdout.isatty()))
    finally:
        if demo is not None:
            forget_demo(demo)


def _worker_lock(settings: Settings) -> instance.InstanceLock | None:
    """SQLite: no worker may be running on the database (one per file). PostgreSQL: none to
    take, workers share the database through their leases (sync/instance.py)."""
    if settings.database_url is not None:
        return None
    return instance.acquire(settings.database_path, instance.Role.WORKER)


def _prepare_demo(settings: Settings, environ: dict[str, str], env_file: Path) -> Demo | None:
    """Point the processes at the simulator and its store (afresh, partners kept; PostgreSQL's
    kept as it is), make the demo partner, record the demo, print the sample; None if the store
    is open elsewhere."""
    db_path = settings.database_path
    fresh = settings.database_url is None and db_path == SIMULATOR_DATABASE
    kept: list[dict[str, Any]] = []
    if fresh:
        holders = instance.processes_with_open(db_path)
        if holders:
            fail(f"{db_path} is open in another process (pid {', '.join(map(str, holders))}): "
                 "stop it first; the demo's database is never removed while in use")
            return None
        kept = reset_demo_store(db_path)
    if settings.database_url is None:
        environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    environ["ALEGRA_BASE_URL"] = f"http://127.0.0.1:{settings.simulator_port}/api/v1"
    shown = shown_url(str(settings.database_target))
    say(simulator_line(environ["ALEGRA_BASE_URL"], shown, fresh, len(kept)))
    settings = load_settings(env_file=None, environ=environ)
    key = asyncio.run(demo_partner_key(settings, environ.get(DEMO_KEY_VAR), env_file, kept))
    demo = Demo(os.getpid(), instance.anchor(settings), settings.alegra_base_url,
                settings.public_url, settings.port, postgresql=settings.database_url is not None)
    record_demo(demo)
    print(sample_curl(settings.port, key), flush=True)
    return demo


def say(line: str) -> None:
    print(f"alegra-sync: {line}", flush=True)


def fail(line: str) -> None:
    print(f"alegra-sync: {line}", file=sys.stderr, flush=True)


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


def reset_demo_store(path: Path) -> list[dict[str, Any]]:
    """Remove the demo's store (and its -wal/-shm) for a fresh start; returns its partners'
    rows, to carry over. Only called holding both locks, with no other process using it."""
    kept = saved_partners(path)
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    return kept


def procfile_commands(path: Path) -> dict[str, str]:
    """The Procfile's process types and commands, in file order."""
    procfile = parse_procfile(path.read_text(encoding="utf-8"))
    return {str(name): str(command) for name, command in procfile.processes.items()}


def child_environment(environ: dict[str, str], on_terminal: bool = False) -> dict[str, str]:
    """The processes' environment: ours plus the virtualenv's bin first on PATH. On a terminal,
    LOG_FORMAT=auto becomes console: honcho pipes the processes' output, so they see none."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bin_dir, environ.get("PATH", os.defpath)])
    child = {**environ, "PATH": path, "PYTHONUNBUFFERED": "1"}
    if on_terminal and environ.get("LOG_FORMAT", "auto").strip().lower() == "auto":
        child["LOG_FORMAT"] = "console"
    return child


def busy_port(settings: Settings) -> str | None:
    """Why the processes could not listen (a port taken, and the setting that moves it)."""
    ports = [("PORT", settings.port)]
    if settings.simulated:
        ports.append(("SIMULATOR_PORT", settings.simulator_port))
    for name, port in ports:
        if not port_is_free(port):
            return (f"port {port} is in use by another program: set {name} (environment, .env, "
                    f"or `make run {name}=...`) to a free port")
    return None


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
    """Add the simulator process (on `port`, with the credentials the client uses)."""
    simulator = shlex.join([
        sys.executable, "-m", "sync.cli", "simulator", "--port", str(port),
        "--email", SIMULATOR_EMAIL, "--token", SIMULATOR_TOKEN,
    ])
    return {"simulator": simulator, **commands}


def simulator_line(base_url: str, db_path: Path | str, fresh: bool, partners_kept: int) -> str:
    """The one line saying what simulator mode means for this start, and what it keeps."""
    head = (f"no ALEGRA_EMAIL/ALEGRA_TOKEN set: using the built-in Alegra simulator at {base_url} "
            "(nothing reaches the real Alegra); it starts empty, ")
    if fresh:
        return head + (f"so {db_path} starts afresh too (partners and their keys kept: "
                       f"{partners_kept})")
    return head + (f"while DATABASE_URL's {db_path} is kept as it is (its cache may name "
                   "records this simulator does not have)")


async def demo_partner_key(
    settings: Settings, known: str | None, env_file: Path, kept: list[dict[str, Any]] | None = None
) -> str:
    """The demo partner's key: the one kept in `.env` if still valid, else a new partner's.
    `kept` partners (from the previous store) are put back first."""
    db = await Database.open(settings.database_target)
    try:
        await restore_partners(db, kept or [])
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
