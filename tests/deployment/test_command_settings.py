"""Which deployment a command acts on without credentials: the demo's database, the running
demo's simulator, or one line saying there is nothing to talk to (never the real Alegra)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync import instance
from sync.deployment import (
    DEMO_STATE,
    SIMULATOR_DATABASE,
    Demo,
    command_settings,
    forget_demo,
    record_demo,
    running_demo,
)
from sync.settings import PRODUCTION_BASE_URL, SettingsError

SIM_URL = "http://127.0.0.1:8999/api/v1"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory without credentials, DATABASE_URL or ALEGRA_BASE_URL."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ALEGRA_", "DATABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    return tmp_path


def _demo(database: Path = SIMULATOR_DATABASE) -> Demo:
    return Demo(os.getpid(), database, SIM_URL, "http://127.0.0.1:8998", 8998)


def test_without_a_running_demo_a_command_needing_alegra_says_so_in_one_line(here: Path) -> None:
    """No credentials and no demo: SettingsError naming ALEGRA_EMAIL and `make run`."""
    with pytest.raises(SettingsError) as refused:
        command_settings(needs_alegra=True)

    message = str(refused.value)
    assert refused.value.name == "ALEGRA_EMAIL"
    assert "no demo is running" in message
    assert "make run" in message
    assert "\n" not in message


def test_a_command_acts_on_the_running_demo_its_database_and_simulator(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the demo holds its run lock, commands get its database and its simulator's URL,
    and say so on stderr."""
    lock = instance.acquire(SIMULATOR_DATABASE, instance.Role.RUN)
    try:
        record_demo(_demo())
        settings = command_settings(needs_alegra=True)
    finally:
        lock.release()

    assert settings.database_path == SIMULATOR_DATABASE
    assert settings.alegra_base_url == SIM_URL
    assert (settings.port, settings.public_url) == (8998, "http://127.0.0.1:8998")
    assert f"running demo (pid {os.getpid()})" in capsys.readouterr().err


def test_a_record_left_by_a_killed_demo_is_not_trusted(here: Path) -> None:
    """The record counts only while the run lock is held: without it, there is no demo."""
    record_demo(_demo())

    assert running_demo() is None
    with pytest.raises(SettingsError):
        command_settings(needs_alegra=True)


def test_without_credentials_the_database_is_the_demos_even_when_it_is_stopped(
    here: Path,
) -> None:
    """`partners` (no Alegra needed) act on the file the next `make run` serves."""
    settings = command_settings(needs_alegra=False)

    assert settings.database_path == SIMULATOR_DATABASE
    assert settings.alegra_base_url == PRODUCTION_BASE_URL  # never used: nothing is called


def test_a_demo_on_another_database_is_not_this_deployment(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DATABASE_URL naming another file, the running demo is not used; the line says why."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{here}/mine.db")
    lock = instance.acquire(SIMULATOR_DATABASE, instance.Role.RUN)
    try:
        record_demo(_demo())
        with pytest.raises(SettingsError) as refused:
            command_settings(needs_alegra=True)
    finally:
        lock.release()

    assert "uses" in str(refused.value)
    assert "mine.db" in str(refused.value)


def test_forgetting_a_demo_removes_only_its_own_record(here: Path) -> None:
    """A stopping demo removes its record, not a newer demo's."""
    record_demo(_demo())
    forget_demo(Demo(os.getpid() + 1, SIMULATOR_DATABASE, SIM_URL, "", 0))
    assert DEMO_STATE.exists()

    forget_demo(_demo())
    assert not DEMO_STATE.exists()


def test_a_public_url_of_the_commands_own_wins_over_the_demos(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PUBLIC_URL=https://… alegra-sync webhooks register` against the demo subscribes that
    URL, not the demo's loopback one (the demo's counts only when the command has none)."""
    monkeypatch.setenv("PUBLIC_URL", "https://sync.example.com")
    lock = instance.acquire(SIMULATOR_DATABASE, instance.Role.RUN)
    try:
        record_demo(_demo())
        settings = command_settings(needs_alegra=True)
    finally:
        lock.release()

    assert settings.public_url == "https://sync.example.com"
    assert settings.alegra_base_url == SIM_URL


def test_a_command_without_a_database_of_its_own_follows_the_demo_to_its_database(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run DATABASE_URL=…` (on the make line only): `partners add` run without it writes
    into the database the demo serves, not into the default demo file the demo does not read."""
    theirs = here / "data" / "mine.db"
    lock = instance.acquire(theirs, instance.Role.RUN)
    try:
        record_demo(_demo(theirs))
        settings = command_settings(needs_alegra=False)
    finally:
        lock.release()

    assert settings.database_path.resolve() == theirs.resolve()
    assert settings.alegra_base_url == SIM_URL
    assert "not running" not in capsys.readouterr().err
