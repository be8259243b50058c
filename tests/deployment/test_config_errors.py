"""A configuration error is one line on stderr naming the setting, and exit status
CONFIG_ERROR_EXIT (the one the systemd units do not restart on): for the CLI, the worker and the
web process, never a traceback (nor a process left hanging)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync.settings import CONFIG_ERROR_EXIT
from tests.support.procs import ROOT, free_port


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALEGRA_", "DATABASE_"))}
    env.update(SECRET_KEY="x" * 32, DATABASE_URL=database_url, ALEGRA_EMAIL="e@example.com",
               ALEGRA_TOKEN="t", ALEGRA_BASE_URL="http://127.0.0.1:9/api/v1")
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


PROCESSES = {
    "cli": ["-m", "sync.cli", "partners", "list"],
    "worker": ["-m", "sync"],
    "web": ["-m", "uvicorn", "receiver.app:create_app", "--factory", "--port", "0"],
}


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_an_unwritable_database_path_is_one_line_naming_database_url(
    tmp_path: Path, process: str
) -> None:
    """DATABASE_URL under a regular file (it can never be created): one stderr line naming
    DATABASE_URL and the path, exit CONFIG_ERROR_EXIT."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    database_url = f"sqlite:///{blocker}/sync.db"

    result = _run(PROCESSES[process], _env(database_url, PORT=str(free_port())))

    assert result.returncode == CONFIG_ERROR_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]
    assert str(blocker) in lines[0]


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_file_that_is_not_a_database_is_one_line_and_the_process_exits(
    tmp_path: Path, process: str
) -> None:
    """DATABASE_URL naming a text file: one line naming DATABASE_URL; the process ends (it used
    to hang on the connection's thread after the traceback; the web process printed uvicorn's
    start-up traceback and exited 3)."""
    text = tmp_path / "notes.db"
    text.write_text("these are my notes, not a database\n" * 100)

    result = _run(PROCESSES[process], _env(f"sqlite:///{text}", PORT=str(free_port())))

    assert result.returncode == CONFIG_ERROR_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]
    assert "not a database" in lines[0]


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_malformed_setting_is_one_line_and_the_configuration_exit_status(
    tmp_path: Path, process: str
) -> None:
    """A SECRET_KEY too short: one line naming it, exit CONFIG_ERROR_EXIT."""
    env = _env(f"sqlite:///{tmp_path}/sync.db", PORT=str(free_port()), SECRET_KEY="short")

    result = _run(PROCESSES[process], env)

    assert result.returncode == CONFIG_ERROR_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY" in lines[0]
