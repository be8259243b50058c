"""`make run` as a newcomer meets it: the README's commands act on the running demo, a second
`run` is refused without touching the first, Ctrl-C stops it, and a restart keeps the partners.

`alegra-sync run` runs on a pseudo-terminal (as under `make run` in a shell), in a project
directory of its own with no credentials; the other commands run from the same directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sync import instance
from sync.commands.run import read_env_file
from tests.deployment.demo import TerminalRun
from tests.support.procs import ROOT, eventually, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NO_RECEIPT = "/v1/receipts/rcp_000000000000000000000000"


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sync.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _status(port: int, key: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{NO_RECEIPT}",
                     headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code


def _key(out: str) -> str:
    found = re.search(r"^(as_\S+)$", out, re.MULTILINE)
    assert found is not None, out
    return found.group(1)


def _web_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_commands_act_on_the_running_demo_and_a_second_run_changes_nothing(
    tmp_path: Path,
) -> None:
    """While the demo runs, `partners add` makes a key the demo accepts and `webhooks list`
    asks the demo's simulator; a second `run` (another simulator port: the old advice) exits 1
    naming the first's pid, and the first's database, WAL and .env are untouched. After
    Ctrl-C, `webhooks list` says in one line that there is nothing to talk to; a restart keeps
    the partners' keys. On a terminal the worker's logs are not JSON."""
    shutil.copy(ROOT / "Procfile", tmp_path / "Procfile")
    env = {k: v for k, v in os.environ.items() if not k.startswith(
        ("ALEGRA_", "DATABASE_", "SECRET_", "PUBLIC_", "DEMO_", "LOG_FORMAT", "SIMULATOR_"))}
    port, sim_port = free_port(), free_port()
    env.update(PORT=str(port), SIMULATOR_PORT=str(sim_port))
    database = tmp_path / "data" / "alegra-sync-simulator.db"

    first = TerminalRun(tmp_path, env)
    try:
        first.started()
        eventually(lambda: _web_up(port), 20, "the demo's web process")
        started = next(line for line in first.output().splitlines() if "worker.started" in line)
        assert '"event"' not in started, started  # console, not JSON
        assert f"127.0.0.1:{sim_port}" in first.output()

        added = _cli(tmp_path, env, "partners", "add", "acme")
        assert added.returncode == 0, added.stderr
        acme = _key(added.stdout)
        assert _status(port, acme) == 404  # authenticated (no such receipt), not 401
        listed = _cli(tmp_path, env, "webhooks", "list")
        assert (listed.returncode, listed.stdout.strip()) == (0, "no subscriptions in Alegra")
        assert f"running demo (pid {first.proc.pid})" in listed.stderr

        dotenv = (tmp_path / ".env").read_bytes()
        inode = database.stat().st_ino
        assert database.with_name(database.name + "-wal").exists()
        second = subprocess.run(
            [sys.executable, "-m", "sync.cli", "run", "--simulator-port", str(free_port())],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"already running on data/alegra-sync-simulator.db (pid {first.proc.pid})" in (
            second.stderr)
        assert second.stdout == ""
        assert (tmp_path / ".env").read_bytes() == dotenv
        assert database.stat().st_ino == inode
        assert database.with_name(database.name + "-wal").exists()
        demo_key = read_env_file(tmp_path / ".env")["DEMO_PARTNER_KEY"]
        assert (_status(port, demo_key), _status(port, acme)) == (404, 404)
        assert first.proc.poll() is None
    finally:
        first.interrupt()

    stopped = _cli(tmp_path, env, "webhooks", "list")
    assert stopped.returncode == 2
    assert len(stopped.stderr.strip().splitlines()) == 1, stopped.stderr
    assert "ALEGRA_EMAIL" in stopped.stderr
    assert "no demo is running" in stopped.stderr

    again = TerminalRun(tmp_path, env)
    try:
        again.started()
        eventually(lambda: _web_up(port), 20, "the restarted web process")
        assert "partners and their keys kept: 2" in again.output()
        assert (_status(port, acme), _status(port, demo_key)) == (404, 404)
        assert read_env_file(tmp_path / ".env")["DEMO_PARTNER_KEY"] == demo_key
    finally:
        again.interrupt()


def test_after_kill_9_the_leftovers_are_named_and_once_gone_a_new_run_starts(
    tmp_path: Path,
) -> None:
    """kill -9 of `run` alone leaves its processes running: a new `run` is refused and names
    them. Once they are killed too, a new `run` starts on the same database, and the commands
    follow the new demo, not the dead one's record."""
    shutil.copy(ROOT / "Procfile", tmp_path / "Procfile")
    env = {k: v for k, v in os.environ.items() if not k.startswith(
        ("ALEGRA_", "DATABASE_", "SECRET_", "PUBLIC_", "DEMO_", "SIMULATOR_"))}
    env.update(PORT=str(free_port()), SIMULATOR_PORT=str(free_port()), LOG_FORMAT="json")

    first = TerminalRun(tmp_path, env)
    leftovers: list[int] = []
    try:
        first.started()
        leftovers = descendants(first.proc.pid)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)

        refused = subprocess.run(
            [sys.executable, "-m", "sync.cli", "run"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"pid {first.proc.pid} has exited; processes it started still run" in (
            refused.stderr)
    finally:
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    eventually(lambda: not instance_busy(tmp_path), 20, "the leftovers to exit")
    second = TerminalRun(tmp_path, env)
    try:
        second.started()
        listed = _cli(tmp_path, env, "webhooks", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"running demo (pid {second.proc.pid})" in listed.stderr
    finally:
        second.interrupt()


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (honcho puts each in a process group of its own)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def instance_busy(project: Path) -> bool:
    database = project / "data" / "alegra-sync-simulator.db"
    return instance.holder(database, instance.Role.RUN) is not None
