"""Who holds a receipt, and whether that holder is still alive.

A lease owner is "host:pid:boot". A worker restarted after a crash (kill -9, OOM) on the same
host can tell that the previous holder is gone — its pid no longer runs, or it is our own pid
with another boot token — and take the receipt back at once. A holder on another host, or a pid
that is alive (perhaps reused), is left alone until its lease expires: waiting is always safe.
"""

from __future__ import annotations

import os
import secrets
import socket

from sync.instance import pid_alive

LEASE_S = 60.0  # how long a claim holds without renewal
RENEW_EVERY_S = 15.0  # a running receipt renews its lease this often


def new_owner() -> str:
    """This process's owner string; a fresh boot token per worker start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


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
