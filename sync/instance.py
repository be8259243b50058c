"""One deployment, one running instance: `flock(2)` locks beside the SQLite database
(`<database>.worker.lock`, `<database>.run.lock`), plus the worker's check for another
worker's fresh heartbeat. Design: docs/sync.md ("One instance per database").

On PostgreSQL (`anchor`) the worker takes no lock: any number of workers, on any hosts, share
the database, each company held by one of them through its lease (sync/leasing.py). Only
`alegra-sync run` keeps its run lock, a file under ./data named for the database: one `run`
per database on this machine (its ports and its demo record, data/demo.json, are this
machine's). Not an advisory lock in PostgreSQL: `run` would hold a connection open for its life
only for this, and several `run`s on several machines sharing one database is what PostgreSQL
is for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sync.settings import Settings

# A heartbeat younger than this, from a live process, is a running worker (it beats every 2 s).
FRESH_HEARTBEAT_S = 10.0


class Role(enum.StrEnum):
    """Who holds a lock: one of each per database."""

    WORKER = "worker"
    RUN = "run"


class InstanceBusy(Exception):
    """Another process holds this database's lock for the role (or is beating as its worker)."""

    def __init__(self, database: Path, role: Role, pid: int | None, detail: str = "") -> None:
        who = f"pid {pid}" if pid else "another process"
        what = "`alegra-sync run`" if role is Role.RUN else "a worker"
        super().__init__(
            f"{what} is already running on {database} ({who}{detail}); "
            "stop it first (one deployment, one running instance)"
        )
        self.database = database
        self.role = role
        self.pid = pid


@dataclass
class InstanceLock:
    """A held lock; released by `release()` or when the process ends."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = -1


def anchor(settings: Settings) -> Path:
    """What the deployment's locks sit beside: the SQLite file, or on PostgreSQL a name under
    ./data for the database (`data/postgresql-host-5432-dbname`; no file is made by that name)."""
    if settings.database_url is None:
        return settings.database_path
    from sync.store.engine_pg import describe  # noqa: PLC0415 -- psycopg only when used

    return Path("data") / re.sub(r"[^\w.]+", "-", describe(settings.database_url)).strip("-")


def lock_path(database: Path, role: Role) -> Path:
    return database.with_name(f"{database.name}.{role.value}.lock")


def acquire(database: Path, role: Role) -> InstanceLock:
    """Take the role's lock on `database` now, or raise InstanceBusy naming the holder."""
    path = lock_path(database, role)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy(database, role, path) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return InstanceLock(path, fd)


def holder(database: Path, role: Role) -> int | None:
    """The pid holding the role's lock on `database` (0 if it wrote none yet), None if free."""
    path = lock_path(database, role)
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _recorded_pid(path) or 0
    finally:
        os.close(fd)
    return None


def _busy(database: Path, role: Role, path: Path) -> InstanceBusy:
    """Name the holder: the pid it wrote, or, when that one has exited, the processes it left
    holding the lock (children of a `run` killed with -9 inherit its descriptor and keep it)."""
    pid = _recorded_pid(path)
    if pid and pid_alive(pid):
        return InstanceBusy(database, role, pid)
    left = processes_with_open(path)
    detail = f" has exited; processes it started still run: pid {', '.join(map(str, left))}"
    return InstanceBusy(database, role, pid, detail if pid and left else "")


def _recorded_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text(encoding="ascii").strip())
    return None


def pid_alive(pid: int) -> bool:
    """A process with this pid exists on this machine (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def fresh_heartbeat(pid: int | None, beat_at: str | None, now: dt.datetime) -> float | None:
    """The age in seconds of another worker's heartbeat if it counts as running, else None.

    It counts when it is younger than FRESH_HEARTBEAT_S and its pid is alive and not ours: a
    killed worker's last beat (its pid gone) does not stop its replacement."""
    if pid is None or beat_at is None or pid == os.getpid() or not pid_alive(pid):
        return None
    age = max((now - dt.datetime.fromisoformat(beat_at)).total_seconds(), 0.0)
    return age if age <= FRESH_HEARTBEAT_S else None


def processes_with_open(path: Path) -> list[int]:
    """Other processes of this machine holding `path` open (Linux /proc; [] where unknown).

    Only what this user may inspect is seen; that covers every process of a local demo."""
    proc = Path("/proc")
    if not proc.is_dir() or not path.exists():
        return []
    target = path.resolve()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if any(_points_at(fd, target) for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
    return sorted(found)


def _points_at(fd: Path, target: Path) -> bool:
    with contextlib.suppress(OSError):
        return Path(os.readlink(fd)) == target
    return False
