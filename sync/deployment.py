"""Which deployment a command acts on: the one `alegra-sync run` (`make run`) starts from here.

With Alegra credentials, every process reads the same settings (environment and `.env`), so they
share the database and the Alegra account already. Without credentials, `run` is a demo: it
starts the built-in simulator on `SIMULATOR_PORT` and keeps its store in a file of its own,
`data/alegra-sync-simulator.db` (unless DATABASE_URL names another one), so that a cache filled
from the simulator never meets the real Alegra. While it runs, it records in `data/demo.json`
its pid, its database and where its simulator listens; the other commands read that record
(`command_settings`), so they act on the demo that is running, or say in one line that there is
none to talk to. The record counts only while its `run` holds the database's run lock (a demo
killed with `kill -9` leaves a record nobody trusts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from sync import instance
from sync.credentials import check_stored_tokens
from sync.settings import (
    DEFAULT_DATABASE_URL,
    PRODUCTION_BASE_URL,
    Settings,
    SettingsError,
    database_path_from_url,
    load_settings,
    shown_url,
)

SIMULATOR_DATABASE = Path("data") / "alegra-sync-simulator.db"
DEMO_STATE = Path("data") / "demo.json"


@dataclass(frozen=True)
class Demo:
    """A running `alegra-sync run` in simulator mode, as its record in data/demo.json says."""

    pid: int
    database_path: Path
    alegra_base_url: str
    public_url: str  # where its web process listens (PORT as `run` saw it)
    port: int
    # On PostgreSQL `database_path` is the run lock's anchor (`instance.anchor`), not a file.
    postgresql: bool = False


def simulated_store(settings: Settings) -> Settings:
    """In simulator mode the default database is the simulator's own file (one rule for `run`
    and every other command); an explicit DATABASE_URL, or credentials, leave it as it is."""
    if settings.simulated and settings.database_path == database_path_from_url(
        DEFAULT_DATABASE_URL
    ):
        return dataclasses.replace(settings, database_path=SIMULATOR_DATABASE)
    return settings


def record_demo(demo: Demo, state: Path = DEMO_STATE) -> None:
    state.parent.mkdir(parents=True, exist_ok=True)
    body = {"pid": demo.pid, "database": str(demo.database_path.resolve()),
            "alegra_base_url": demo.alegra_base_url, "public_url": demo.public_url,
            "port": demo.port, "postgresql": demo.postgresql}
    temporary = state.with_name(state.name + ".tmp")
    temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    temporary.replace(state)


def forget_demo(demo: Demo, state: Path = DEMO_STATE) -> None:
    """Remove the record if it is still this demo's."""
    running = _read(state)
    if running is not None and running.pid == demo.pid:
        state.unlink(missing_ok=True)


def running_demo(state: Path = DEMO_STATE) -> Demo | None:
    """The demo recorded in `state`, if its `run` still holds its database's run lock."""
    demo = _read(state)
    if demo is None:
        return None
    if instance.holder(demo.database_path, instance.Role.RUN) != demo.pid:
        return None
    return demo


def _read(state: Path) -> Demo | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        body = json.loads(state.read_text(encoding="utf-8"))
        return Demo(int(body["pid"]), Path(body["database"]), str(body["alegra_base_url"]),
                    str(body["public_url"]), int(body["port"]), bool(body.get("postgresql")))
    return None


def command_settings(*, needs_alegra: bool, env_file: str | Path = ".env") -> Settings:
    """The settings of the deployment `run` starts here, for a command (`partners`, `webhooks`,
    `backfill`, …). Without credentials: the demo's database, and the running demo's simulator.
    What `run` was given and the command was not (`make run PORT=… DATABASE_URL=…`) is the
    running demo's: its port, its PUBLIC_URL, its database.

    Raises SettingsError (one line naming ALEGRA_EMAIL) when the command needs Alegra and there
    is nothing to talk to: no credentials, no ALEGRA_BASE_URL of one's own, no running demo on
    this database. The real Alegra is never sent the simulator's credentials. Stored company
    tokens must decrypt under CREDENTIALS_KEY (a SettingsError naming it otherwise)."""
    settings = _deployment_settings(needs_alegra=needs_alegra, env_file=env_file)
    check_stored_tokens(settings)
    return settings


def _deployment_settings(*, needs_alegra: bool, env_file: str | Path) -> Settings:
    settings = simulated_store(load_settings(env_file))
    if not settings.simulated:
        return settings
    demo = running_demo()
    if (demo is not None and not demo.postgresql and settings.database_url is None
            and settings.database_path == SIMULATOR_DATABASE):
        # No database of the command's own: the demo's, where `make run DATABASE_URL=…` put it.
        settings = _on_database(settings, demo.database_path)
    ours = demo is not None and _same_file(demo.database_path, instance.anchor(settings))
    where = _where(settings)
    if demo is not None and ours:
        settings = dataclasses.replace(  # what `run` was given (`make run PORT=…`) counts
            settings, alegra_base_url=demo.alegra_base_url, port=demo.port,
            public_url=_public_url(settings, demo),
        )
        note(f"no ALEGRA_EMAIL/ALEGRA_TOKEN: acting on the running demo (pid {demo.pid}): "
             f"{where}, simulator at {demo.alegra_base_url}")
    elif settings.alegra_base_url != PRODUCTION_BASE_URL:
        note(f"no ALEGRA_EMAIL/ALEGRA_TOKEN: using the Alegra at {settings.alegra_base_url} with "
             f"the simulator's credentials, and {where}")
    elif needs_alegra:
        elsewhere = (f"; the running demo (pid {demo.pid}) uses {demo.database_path}, not "
                     f"{where}" if demo is not None else "")
        raise SettingsError(
            "ALEGRA_EMAIL", "not set (nor ALEGRA_TOKEN), and no demo is running on "
            f"{where} (`make run` starts one): no Alegra to talk to{elsewhere}",
        )
    elif settings.database_url is None and settings.database_path == SIMULATOR_DATABASE:
        state = ("the demo is not running" if demo is None else  # else: a demo on PostgreSQL
                 f"the running demo, pid {demo.pid}, uses {demo.database_path}: set its "
                 "DATABASE_URL to act on it")
        note(f"no ALEGRA_EMAIL/ALEGRA_TOKEN: acting on the demo's database "
             f"{settings.database_path} ({state})")
    return settings


def _where(settings: Settings) -> str:
    """The database for a note: the SQLite file, or PostgreSQL's URL without its password."""
    return shown_url(str(settings.database_target))


def _on_database(settings: Settings, database: Path) -> Settings:
    if _same_file(database, settings.database_path):
        return settings
    return dataclasses.replace(settings, database_path=database)


def _public_url(settings: Settings, demo: Demo) -> str:
    """The command's own PUBLIC_URL when it has one (`PUBLIC_URL=https://… webhooks register`),
    else the demo's (its web process, on the PORT `run` was given)."""
    if settings.public_url != f"http://127.0.0.1:{settings.port}":
        return settings.public_url
    return demo.public_url


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def note(line: str) -> None:
    """One line on stderr, so a command's own output (a key, a table, JSON) stays clean."""
    print(f"alegra-sync: {line}", file=sys.stderr, flush=True)
