"""CREDENTIALS_KEY at start-up: once a company's token is stored, a missing key (or one that
decrypts no stored token) stops the web process, the worker and the CLI with one line naming it
and CONFIG_ERROR_EXIT; with no token stored, no key is needed; a malformed key always stops."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from cryptography.fernet import Fernet

from sync.credentials import check_stored_tokens
from sync.logs import configure_logging, get_logger
from sync.settings import CONFIG_ERROR_EXIT, SettingsError, load_settings
from sync.store.companies import add_company
from sync.store.db import Database
from tests.companies.conftest import KEY_A, KEY_B, SECRET_KEY, TOKEN, cli
from tests.support.procs import ROOT, free_port

PROCESSES = {
    "cli": ["-m", "sync.cli", "partners", "list"],
    "worker": ["-m", "sync"],
    "web": ["-m", "uvicorn", "receiver.app:create_app", "--factory", "--port", "0"],
}


def _store_company(database: Path, token: str = TOKEN) -> None:
    """One company with a token, encrypted under KEY_A (by Fernet itself: not registered as a
    secret in this process)."""
    async def go() -> None:
        db = await Database.open(database)
        try:
            await add_company(db, "Acme", "a@b.do", Fernet(KEY_A).encrypt(token.encode()))
        finally:
            await db.close()

    asyncio.run(go())


def _process_env(database: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALEGRA_", "DATABASE_", "CREDENTIALS_"))}
    env.update(SECRET_KEY=SECRET_KEY, DATABASE_URL=f"sqlite:///{database}",
               ALEGRA_EMAIL="e@example.com", ALEGRA_TOKEN="t",
               ALEGRA_BASE_URL="http://127.0.0.1:9/api/v1", PORT=str(free_port()), **extra)
    return env


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_stored_company_without_credentials_key_stops_every_process(
    tmp_path: Path, process: str
) -> None:
    """No CREDENTIALS_KEY and a company token stored: one stderr line naming CREDENTIALS_KEY,
    exit CONFIG_ERROR_EXIT, never the token."""
    _store_company(tmp_path / "c.db")

    result = subprocess.run([sys.executable, *PROCESSES[process]], cwd=ROOT, text=True,
                            env=_process_env(tmp_path / "c.db"), capture_output=True,
                            timeout=60, check=False)

    assert result.returncode == CONFIG_ERROR_EXIT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CREDENTIALS_KEY" in lines[0]
    assert TOKEN not in result.stderr + result.stdout


def test_a_key_that_decrypts_no_stored_token_stops_the_cli(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A well-formed key that did not encrypt the stored token: exit 2 naming CREDENTIALS_KEY
    and the company."""
    _store_company(env / "c.db")
    monkeypatch.setenv("CREDENTIALS_KEY", KEY_B)
    assert cli("partners", "list") == CONFIG_ERROR_EXIT
    err = capsys.readouterr().err
    assert "CREDENTIALS_KEY" in err
    assert "'acme'" in err


@pytest.mark.parametrize("value", ["not-a-key", f"{KEY_A},short", KEY_A[:-2]],
                         ids=["not-a-key", "a-short-second-key", "a-truncated-key"])
def test_a_malformed_key_stops_the_cli_even_with_no_company(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """A CREDENTIALS_KEY that is not Fernet keys: exit 2 naming it, without echoing it."""
    monkeypatch.setenv("CREDENTIALS_KEY", value)
    assert cli("partners", "list") == CONFIG_ERROR_EXIT
    err = capsys.readouterr().err
    assert "CREDENTIALS_KEY" in err
    assert value not in err


def test_without_a_stored_token_no_key_is_needed(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No company added: every command works without CREDENTIALS_KEY, as before."""
    monkeypatch.delenv("CREDENTIALS_KEY")
    assert cli("partners", "add", "acme") == 0
    assert cli("partners", "list") == 0
    assert cli("companies", "list") == 0


def test_several_keys_newest_first_are_read(env: Path) -> None:
    """`CREDENTIALS_KEY=new, old` gives both keys, in that order."""
    settings = load_settings(env_file=None, environ={
        "SECRET_KEY": SECRET_KEY, "DATABASE_URL": f"sqlite:///{env}/c.db",
        "CREDENTIALS_KEY": f" {KEY_B} ,{KEY_A}"})
    assert [str(key) for key in settings.credentials_keys] == [KEY_B, KEY_A]
    with pytest.raises(SettingsError, match="key 2 of 2"):
        load_settings(env_file=None, environ={
            "SECRET_KEY": SECRET_KEY, "CREDENTIALS_KEY": f"{KEY_B},{KEY_A[:10]}"})


def test_the_start_up_check_masks_the_tokens_in_log_lines(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each stored token is decrypted once at start-up and masked in any later log line."""
    token = f"unseen-{secrets.token_hex(8)}"  # no other test registered this one
    _store_company(env / "c.db", token)
    settings = load_settings(env_file=None)
    assert check_stored_tokens(settings) == 1
    configure_logging("json", "info")
    try:
        get_logger().info("oops", detail=f"Alegra said: bad token {token}")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
    assert "oops" in err
    assert token not in err
