"""One deployment, one running instance: the database's locks and the worker's heartbeat check.

Real worker processes on one SQLite file: a second one refuses and names the first's pid; after
`kill -9` of the holder a new one starts; a live process beating in `worker_state` without the
lock (an older worker during a deploy overlap) is refused too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from sync import instance
from sync.store.db import Database
from sync.worker import refuse_if_another_beats
from tests.support.procs import (
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    start_worker,
)
from tests.support.servers import RunningSimulator

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _beating_pid(db_path: Path) -> int | None:
    if not db_path.exists():
        return None
    try:
        with sqlite3.connect(db_path) as conn:
            row = conn.execute("SELECT pid FROM worker_state WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return None
    return None if row is None else int(row[0])


async def _migrated(path: Path) -> None:
    await (await Database.open(path)).close()


def _refused(proc: ManagedProcess) -> str:
    assert proc.proc is not None
    code = proc.proc.wait(timeout=30)
    assert code == 1, proc.logs()
    return proc.logs()


def test_a_lock_is_exclusive_names_its_holder_and_is_free_once_released(tmp_path: Path) -> None:
    """A second acquire on the same database and role is refused naming our pid; another role
    or another database is independent; after release it can be taken again."""
    db = tmp_path / "x.db"
    held = instance.acquire(db, instance.Role.WORKER)
    with pytest.raises(instance.InstanceBusy) as refused:
        instance.acquire(db, instance.Role.WORKER)
    assert refused.value.pid == os.getpid()
    assert f"pid {os.getpid()}" in str(refused.value)
    assert instance.holder(db, instance.Role.WORKER) == os.getpid()
    other = instance.acquire(db, instance.Role.RUN)
    elsewhere = instance.acquire(tmp_path / "y.db", instance.Role.WORKER)

    held.release()

    assert instance.holder(db, instance.Role.WORKER) is None
    instance.acquire(db, instance.Role.WORKER).release()
    other.release()
    elsewhere.release()


def test_a_fresh_heartbeat_of_a_live_process_counts_and_an_old_or_dead_one_does_not() -> None:
    """Fresh and alive → its age; too old, our own pid, or a pid that is gone → None."""
    parent = os.getppid()  # alive, not us
    fresh = (NOW - dt.timedelta(seconds=3)).isoformat()
    old = (NOW - dt.timedelta(seconds=instance.FRESH_HEARTBEAT_S + 1)).isoformat()
    gone = subprocess.Popen(["true"])
    gone.wait()

    assert instance.fresh_heartbeat(parent, fresh, NOW) == 3.0
    assert instance.fresh_heartbeat(parent, old, NOW) is None
    assert instance.fresh_heartbeat(os.getpid(), fresh, NOW) is None
    assert instance.fresh_heartbeat(gone.pid, fresh, NOW) is None
    assert instance.fresh_heartbeat(None, None, NOW) is None


@pytest.mark.anyio
async def test_the_worker_refuses_while_another_live_worker_beats(tmp_path: Path) -> None:
    """A heartbeat 2 s old from a live pid (no lock taken: an older worker) stops a new one."""
    db = await Database.open(tmp_path / "w.db")
    try:
        beat = (NOW - dt.timedelta(seconds=2)).isoformat()
        await db.execute("INSERT INTO worker_state(id, pid, beat_at) VALUES (1, ?, ?)",
                         (os.getppid(), beat))
        with pytest.raises(instance.InstanceBusy) as refused:
            await refuse_if_another_beats(db, now=NOW)
        assert f"pid {os.getppid()}" in str(refused.value)
        assert "heartbeat 2 s ago" in str(refused.value)
        await refuse_if_another_beats(db, now=NOW + dt.timedelta(minutes=1))  # stale: fine
    finally:
        await db.close()


@pytest.mark.e2e
def test_a_second_worker_refuses_and_one_starts_after_the_holder_is_killed(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """Worker B on A's database exits 1 naming A's pid, and never beats; after kill -9 of A,
    worker C starts at once (A's last heartbeat is fresh, but its pid is gone) and beats."""
    db_path = tmp_path / "one.db"
    env = product_env(db_path, alegra_base_url=simulator.base_url, email=simulator.email,
                      token=simulator.token, port=free_port())
    first = start_worker(env, tmp_path, "worker-a")
    try:
        assert first.proc is not None
        eventually(lambda: _beating_pid(db_path) == first.proc.pid, what="worker A's heartbeat")

        refused = _refused(start_worker(env, tmp_path, "worker-b"))
        assert f"a worker is already running on {db_path} (pid {first.proc.pid})" in refused
        assert "Traceback" not in refused
        assert _beating_pid(db_path) == first.proc.pid

        first.kill9()
        third = start_worker(env, tmp_path, "worker-c")
        try:
            assert third.proc is not None
            eventually(lambda: _beating_pid(db_path) == third.proc.pid, what="C's heartbeat")
        finally:
            third.stop()
    finally:
        first.stop()


@pytest.mark.e2e
def test_a_worker_refuses_while_a_lockless_worker_beats(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """A live process beating in worker_state without holding the lock (an older version's
    worker, during a deploy overlap) makes a new worker exit 1, saying so."""
    db_path = tmp_path / "overlap.db"
    env = product_env(db_path, alegra_base_url=simulator.base_url, email=simulator.email,
                      token=simulator.token, port=free_port())
    asyncio.run(_migrated(db_path))
    refused_pid = os.getpid()  # what the old worker leaves: a fresh beat from a live pid
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO worker_state(id, pid, beat_at) VALUES (1, ?, ?)",
                     (refused_pid, dt.datetime.now(dt.UTC).isoformat()))

    refused = _refused(start_worker(env, tmp_path, "worker-new"))

    assert f"a worker is already running on {db_path} (pid {refused_pid}, heartbeat" in refused
    assert _beating_pid(db_path) == refused_pid
