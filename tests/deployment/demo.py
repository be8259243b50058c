"""The demo as `make run` starts it, for the end-to-end tests of this folder: `alegra-sync run`
on a pseudo-terminal (as in a shell), in a project directory of its own without credentials."""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.procs import ROOT, eventually

# Settings an operator's shell may hold that would make the demo not a demo, or not private.
FOREIGN_SETTINGS = ("ALEGRA_", "DATABASE_", "SECRET_", "PUBLIC_", "DEMO_", "LOG_FORMAT",
                    "SIMULATOR_", "PORT", "NO_COLOR")


def project(path: Path) -> Path:
    """A project directory for `run`: its Procfile; data/ and .env appear there."""
    shutil.copy(ROOT / "Procfile", path / "Procfile")
    return path


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any alegra-sync setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_SETTINGS)}
    env.update(settings)
    return env


class TerminalRun:
    """`alegra-sync run` with a pseudo-terminal for its output, drained by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        master, replica = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.cli", "run", *args], cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=replica, stderr=replica, start_new_session=True,
        )
        os.close(replica)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, args=(master,), daemon=True)
        self._reader.start()

    def _drain(self, fd: int) -> None:
        try:
            while chunk := os.read(fd, 65536):
                self._chunks.append(chunk)
        except OSError:  # EIO once every writer has gone
            pass
        finally:
            os.close(fd)

    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def started(self) -> None:
        eventually(lambda: "worker.started" in self.output() or self.proc.poll() is not None,
                   30, "the demo's worker")
        assert self.proc.poll() is None, self.output()

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the whole group, as a terminal sends it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)
