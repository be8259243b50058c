"""Who holds a receipt, and whether that holder is still alive.

A lease owner is "host:pid:boot" (`host_id`: the host's name and its PID namespace). A worker
restarted after a crash (kill -9, OOM) on the same host can tell that the previous holder is
gone — its pid no longer runs, or it is our own pid with another boot token — and take the
receipt back at once. A holder on another host, or a pid
that is alive (perhaps reused), is left alone until its lease expires: waiting is always safe.
"""

from __future__ import annotations

import os
import secrets
import socket

from sync.instance import pid_alive

LEASE_S = 60.0  # how long a claim holds without renewal
RENEW_EVERY_S = 15.0  # a running receipt renews its lease this often


def host_id() -> str:
    """This host as owners name it: its name and, where Linux shows it, the PID namespace
    ("name/4026531836"). Containers may share the host's name (Docker's host network,
    Kubernetes' hostNetwork) while each numbers its pids from 1: a pid says whether a holder is
    gone only within one namespace."""
    name = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return name
    return f"{name}/{namespace.removeprefix('pid:[').removesuffix(']')}"


def new_owner() -> str:
    """This process's owner string; a fresh boot token per worker start."""
    return f"{host_id()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_is_dead(holder: str, me: str) -> bool:
    """True only when `holder` certainly no longer runs (same host, pid gone or reincarnated)."""
    try:
        host, pid_text, boot = holder.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    my_host, my_pid, my_boot = me.rsplit(":", 2)
    if host != my_host:
        return False
    if pid == int(my_pid):
        return boot != my_boot
    return not pid_alive(pid)
