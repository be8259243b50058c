"""Lease holders' liveness and per-key creation locks."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from sync.flow.lease import holder_is_dead, host_id, new_owner
from sync.flow.locks import KeyedLocks


def test_holder_on_this_host_whose_process_is_gone_is_dead() -> None:
    """A holder pid that no longer runs on this host is known dead."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    gone = f"{host_id()}:{child.stdout.strip()}:abcd"

    assert holder_is_dead(gone, new_owner())


def test_our_own_pid_with_another_boot_is_a_previous_incarnation() -> None:
    """Same host and pid but another boot token: the worker before a restart, dead."""
    me = new_owner()
    host, pid, _ = me.rsplit(":", 2)

    assert holder_is_dead(f"{host}:{pid}:0000", me)
    assert not holder_is_dead(me, me)


def test_live_or_remote_holders_are_left_alone() -> None:
    """A running process, another host or an unreadable owner is never declared dead."""
    me = new_owner()
    assert not holder_is_dead(f"{host_id()}:{os.getppid()}:ffff", me)
    assert not holder_is_dead("elsewhere:1:ffff", me)
    assert not holder_is_dead("garbage", me)


def test_a_holder_in_another_pid_namespace_under_our_host_name_is_left_alone() -> None:
    """Containers sharing the host's name (Docker's host network, Kubernetes' hostNetwork)
    number their pids apart: another one's worker, at our very pid or at one we cannot see,
    may be alive. Only a holder of our own PID namespace is judged by its pid."""
    me = new_owner()
    _, pid, _ = me.rsplit(":", 2)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    other = f"{socket.gethostname()}/4026599999"  # our host name, another PID namespace

    assert not holder_is_dead(f"{other}:{pid}:0000", me)
    assert not holder_is_dead(f"{other}:{child.stdout.strip()}:abcd", me)
    assert not holder_is_dead(f"{socket.gethostname()}:{pid}:0000", me)  # namespace unknown


@pytest.mark.anyio
async def test_same_key_is_serialised_and_other_keys_are_not() -> None:
    """Holders of one key run one at a time; another key runs meanwhile; nothing is left over."""
    locks = KeyedLocks()
    inside: list[str] = []
    peak = 0

    async def hold(key: str) -> None:
        nonlocal peak
        async with locks.hold(key):
            inside.append(key)
            peak = max(peak, inside.count("a"))
            await asyncio.sleep(0.01)
            inside.remove(key)

    await asyncio.gather(*(hold("a") for _ in range(5)), hold("b"))

    assert peak == 1
    assert len(locks) == 0
