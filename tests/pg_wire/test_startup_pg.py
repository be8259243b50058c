"""Start-up on PostgreSQL as on SQLite: a stored company token without CREDENTIALS_KEY stops
every process (the check reads PostgreSQL, it is not skipped); a server that does not answer
stops them with UNAVAILABLE_EXIT, which the systemd units restart on, not CONFIG_ERROR_EXIT.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from sync.credentials import check_stored_tokens
from sync.settings import CONFIG_ERROR_EXIT, SettingsError, load_settings
from sync.store.companies import add_company
from sync.store.db import UNAVAILABLE_EXIT, Database, DatabaseUnavailable
from tests.companies.conftest import KEY_A, SECRET_KEY, TOKEN
from tests.support.databases import url_of
from tests.support.procs import ROOT, free_port

PROCESSES = {
    "cli": ["-m", "sync.cli", "partners", "list"],
    "status": ["-m", "sync.cli", "status"],
    "worker": ["-m", "sync"],
    "web": ["-m", "uvicorn", "receiver.app:create_app", "--factory", "--port", "0"],
}
# Nothing listens on port 1 of loopback: a refused connection, at once.
NO_SERVER = "postgresql://postgres@127.0.0.1:1/alegra_nowhere"


def _store_company(target: Path | str) -> None:
    async def go() -> None:
        db = await Database.open(target)
        try:
            await add_company(db, "Acme", "a@b.do", Fernet(KEY_A).encrypt(TOKEN.encode()))
        finally:
            await db.close()

    asyncio.run(go())


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALEGRA_", "DATABASE_", "CREDENTIALS_"))}
    env.update(SECRET_KEY=SECRET_KEY, DATABASE_URL=url, ALEGRA_EMAIL="e@example.com",
               ALEGRA_TOKEN="t", ALEGRA_BASE_URL="http://127.0.0.1:9/api/v1",
               PORT=str(free_port()), **extra)
    return env


def _run(process: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *PROCESSES[process]], cwd=cwd, text=True, env=env,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_the_check_reads_the_tokens_stored_in_postgresql(database_target: Path | str) -> None:
    """`check_stored_tokens` finds the token PostgreSQL holds, and a key that decrypts it."""
    _store_company(database_target)
    environ = {"SECRET_KEY": SECRET_KEY, "DATABASE_URL": url_of(database_target)}

    with pytest.raises(SettingsError, match="CREDENTIALS_KEY"):
        check_stored_tokens(load_settings(env_file=None, environ=environ))
    keyed = load_settings(env_file=None, environ={**environ, "CREDENTIALS_KEY": KEY_A})
    assert check_stored_tokens(keyed) == 1


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_stored_token_without_credentials_key_stops_every_process_on_postgresql(
    database_target: Path | str, process: str
) -> None:
    """No CREDENTIALS_KEY, a company token stored in PostgreSQL: one stderr line naming
    CREDENTIALS_KEY and CONFIG_ERROR_EXIT, never the token, as on SQLite."""
    _store_company(database_target)

    result = _run(process, _env(url_of(database_target)), ROOT)

    assert result.returncode == CONFIG_ERROR_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CREDENTIALS_KEY" in lines[0]
    assert TOKEN not in result.stderr + result.stdout


def test_the_check_does_not_pass_for_want_of_a_server() -> None:
    """A server that does not answer is DatabaseUnavailable (transient), not "no token"."""
    settings = load_settings(env_file=None, environ={"SECRET_KEY": SECRET_KEY,
                                                     "DATABASE_URL": NO_SERVER})
    with pytest.raises(DatabaseUnavailable) as raised:
        check_stored_tokens(settings)
    assert raised.value.transient
    assert raised.value.exit_status == UNAVAILABLE_EXIT


@pytest.mark.parametrize("process", ["cli", "status", "worker", "web"])
def test_an_unreachable_server_exits_with_the_status_systemd_restarts(
    process: str, tmp_path: Path
) -> None:
    """Every process says in one line that PostgreSQL does not answer (no password, no
    traceback) and exits UNAVAILABLE_EXIT."""
    env = _env(NO_SERVER.replace("postgres@", "postgres:hunter2@"), CREDENTIALS_KEY=KEY_A)

    result = _run(process, env, ROOT)

    assert result.returncode == UNAVAILABLE_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "database unavailable" in lines[0]
    assert "127.0.0.1:1/alegra_nowhere" in lines[0]
    assert "hunter2" not in result.stderr
