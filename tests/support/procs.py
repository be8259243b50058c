"""Real processes for end-to-end tests: the web app under uvicorn and the worker, on loopback.

Each process's output goes to a file under the test's tmp_path so a failing test can show it
(and the secrets test can grep it). Everything started is stopped by `stop()`, SIGKILL if needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef"
TEST_CREDENTIALS_KEY = "dGVzdC1jcmVkZW50aWFscy1rZXktMDEyMzQ1Njc4OWE="  # Fernet: 32 bytes, base64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def product_env(
    db_path: Path, *, alegra_base_url: str, email: str, token: str, port: int, **overrides: str
) -> dict[str, str]:
    """The environment a product process gets: isolated DB, the given Alegra, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALEGRA_", "DATABASE_"))}
    env.update(
        ALEGRA_BASE_URL=alegra_base_url,
        ALEGRA_EMAIL=email,
        ALEGRA_TOKEN=token,
        DATABASE_URL=f"sqlite:///{db_path}",
        SECRET_KEY=TEST_SECRET_KEY,
        CREDENTIALS_KEY=TEST_CREDENTIALS_KEY,
        PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        LOG_FORMAT="json",
        LOG_LEVEL="debug",
    )
    env.update(overrides)
    return env


class ManagedProcess:
    """One child process with its output captured to `log_path`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited early:\n{self.logs()}")
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready at {url}:\n{self.logs()}")

    def kill9(self) -> None:
        """SIGKILL: no cleanup, no flush — what a crash looks like."""
        if self.proc is not None and self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_web(env: dict[str, str], log_dir: Path) -> ManagedProcess:
    """uvicorn with the real app factory, the way the Procfile runs it; waits for /healthz."""
    port = env["PORT"]
    args = [sys.executable, "-m", "uvicorn", "receiver.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", port, "--no-access-log"]
    proc = ManagedProcess("web", args, env, log_dir).start()
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc


def start_worker(env: dict[str, str], log_dir: Path, name: str = "worker") -> ManagedProcess:
    """`python -m sync`, the Procfile's worker."""
    return ManagedProcess(name, [sys.executable, "-m", "sync"], env, log_dir).start()


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`alegra-sync …` as an operator would run it, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "sync.cli", *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def eventually(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Poll until `check` returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
