"""`alegra-sync webhooks register|list|remove [--company ID | --all]`, in this process, against
two simulated Alegra accounts and the real web app answering their handshakes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from receiver.app import create_app
from sync.cli import main
from sync.commands import webhooks as webhooks_command
from sync.settings import load_settings
from sync.store.db import utcnow
from sync.subscriptions import EVENTS
from sync.webhook_tokens import make_token, webhook_url
from tests.support.servers import RunningSimulator, ServerThread
from tests.webhooks.conftest import NEW_KEY, read_db

CREDENTIALS_KEY = Fernet.generate_key().decode()
ACME_TOKEN = "acme-token-0123456789"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator: RunningSimulator) -> str:
    """The CLI's environment (the simulator's default account, no .env) and the web app on
    the same database; returns PUBLIC_URL."""
    environ = {
        "ALEGRA_BASE_URL": simulator.base_url, "ALEGRA_EMAIL": simulator.email,
        "ALEGRA_TOKEN": simulator.token, "SECRET_KEY": NEW_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sync.db'}",
        "CREDENTIALS_KEY": CREDENTIALS_KEY, "LOG_FORMAT": "json",
    }
    monkeypatch.chdir(tmp_path)
    for name in ("PUBLIC_URL", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return environ["DATABASE_URL"]


@pytest.fixture
def public_url(env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ServerThread(create_app(load_settings(env_file=None))).start()
    monkeypatch.setenv("PUBLIC_URL", server.url)
    yield server.url
    server.stop()


@pytest.fixture
def acme(simulator: RunningSimulator, public_url: str) -> RunningSimulator:
    """The company `acme`: its own simulated account, added with `companies add`."""
    account = simulator.add_account("acme@example.com", ACME_TOKEN)
    assert main(["companies", "add", "Acme", "--email", account.email, "--token", ACME_TOKEN,
                 "--base-url", account.base_url]) == 0
    return account


def urls(account: RunningSimulator) -> set[str]:
    return {s["url"] for s in account.state.subscriptions.values()}


def test_without_a_company_option_only_default_is_registered(
    simulator: RunningSimulator, acme: RunningSimulator, public_url: str
) -> None:
    """Plain `webhooks register` is today's command: the default account only."""
    assert main(["webhooks", "register"]) == 0
    assert urls(simulator) == {webhook_url(public_url, [NEW_KEY])}
    assert acme.state.subscriptions == {}


def test_all_registers_every_live_company_in_its_own_account(
    simulator: RunningSimulator, acme: RunningSimulator, public_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--all` subscribes default and acme each at its own URL and skips a removed company;
    each company's handshakes were answered (Alegra's check before subscribing)."""
    gone = simulator.add_account("gone@example.com", "gone-token-0123456789")
    assert main(["companies", "add", "Gone", "--email", gone.email, "--token",
                 "gone-token-0123456789", "--base-url", gone.base_url]) == 0
    assert main(["companies", "remove", "gone"]) == 0
    capsys.readouterr()
    assert main(["webhooks", "register", "--all"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("== default") < printed.index("== acme")
    assert "== gone" not in printed
    assert urls(simulator) == {webhook_url(public_url, [NEW_KEY])}
    assert urls(acme) == {webhook_url(public_url, [NEW_KEY], company="acme")}
    assert gone.state.subscriptions == {}
    assert make_token([NEW_KEY], company="acme") not in printed
    rows = read_db(tmp_path / "sync.db", "SELECT company_id, COUNT(*) AS n FROM subscriptions"
                   " WHERE present = 1 GROUP BY company_id ORDER BY company_id")
    assert [(r["company_id"], r["n"]) for r in rows] == [("acme", len(EVENTS)),
                                                         ("default", len(EVENTS))]


def test_company_lists_and_removes_that_company_only(
    simulator: RunningSimulator, acme: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list --company acme` shows acme's subscriptions as here; `remove --company acme`
    deletes them and leaves default's."""
    assert main(["webhooks", "register", "--all"]) == 0
    capsys.readouterr()
    assert main(["webhooks", "list", "--company", "acme"]) == 0
    assert capsys.readouterr().out.count("here, newest key") == len(EVENTS)
    assert main(["webhooks", "remove", "--company", "acme"]) == 0
    assert acme.state.subscriptions == {}
    assert len(simulator.state.subscriptions) == len(EVENTS)


def test_an_unknown_company_is_refused_and_the_options_exclude_each_other(
    simulator: RunningSimulator, public_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--company nosuch` fails naming it, calling no Alegra; `--company` with `--all` is a
    usage error."""
    assert main(["webhooks", "register", "--company", "nosuch"]) == 1
    assert "no company 'nosuch'" in capsys.readouterr().err
    assert simulator.state.subscriptions == {}
    with pytest.raises(SystemExit) as usage:
        main(["webhooks", "list", "--company", "acme", "--all"])
    assert usage.value.code == 2


def hold_subscriptions_job(database: Path, holder: str | None) -> None:
    """The `subscriptions` job of `default` as a worker on another machine holds it while it
    runs (`holder`), or as it leaves it when its run ends (None)."""
    lease = "2999-01-01T00:00:00+00:00" if holder else None
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO jobs(company_id, name, next_run_at, owner, lease_until)"
            " VALUES ('default', 'subscriptions', ?, ?, ?) ON CONFLICT(company_id, name)"
            " DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until",
            (lease, holder, lease))
    conn.close()


def test_register_waits_for_the_workers_subscriptions_check_then_gives_up(
    simulator: RunningSimulator, public_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """While the worker runs the subscriptions job the command does not race it (both would
    create what is missing): it waits, and past BUSY_WAIT_S exits 1 having called nothing."""
    monkeypatch.setattr(webhooks_command, "BUSY_WAIT_S", 0.3)
    hold_subscriptions_job(tmp_path / "sync.db", "other-host.invalid/1:4242")
    simulator.state.clear_log()

    assert main(["webhooks", "register"]) == 1

    err = capsys.readouterr().err
    assert "waiting for other-host.invalid/1:4242" in err
    assert "did not end within" in err
    assert simulator.state.calls() == 0
    assert simulator.state.subscriptions == {}
    [row] = read_db(tmp_path / "sync.db", "SELECT owner FROM jobs WHERE name = 'subscriptions'")
    assert row["owner"] == "other-host.invalid/1:4242"  # still the worker's


def test_register_goes_on_once_the_workers_check_ends_and_gives_the_job_back(
    simulator: RunningSimulator, public_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The worker's run ends while the command waits: the command registers, then leaves the
    job free and scheduled for the worker."""
    database = tmp_path / "sync.db"
    hold_subscriptions_job(database, "other-host.invalid/1:4242")
    ends = threading.Timer(0.8, hold_subscriptions_job, (database, None))
    ends.start()
    try:
        assert main(["webhooks", "register"]) == 0
    finally:
        ends.join()

    assert "waiting for other-host.invalid/1:4242" in capsys.readouterr().err
    assert urls(simulator) == {webhook_url(public_url, [NEW_KEY])}
    [row] = read_db(database, "SELECT owner, lease_until FROM jobs WHERE name = 'subscriptions'")
    assert (row["owner"], row["lease_until"]) == (None, None)


def test_register_on_a_new_database_leaves_the_job_due_for_the_worker(
    simulator: RunningSimulator, public_url: str, tmp_path: Path
) -> None:
    """Run before the worker ever started: the job row the command made is due, not off."""
    assert main(["webhooks", "register"]) == 0
    [row] = read_db(tmp_path / "sync.db", "SELECT owner, next_run_at FROM jobs WHERE"
                    " company_id = 'default' AND name = 'subscriptions'")
    assert row["owner"] is None
    assert row["next_run_at"] <= utcnow()  # due: the worker's scheduler runs it at once


def test_remove_waits_for_the_workers_check_too(
    simulator: RunningSimulator, public_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`remove` holds the job as `register` does: nothing deleted while the worker's run of it
    has the job; once it is free, every subscription of ours goes."""
    assert main(["webhooks", "register"]) == 0
    monkeypatch.setattr(webhooks_command, "BUSY_WAIT_S", 0.3)
    hold_subscriptions_job(tmp_path / "sync.db", "other-host.invalid/1:4242")

    assert main(["webhooks", "remove"]) == 1
    assert "did not end within" in capsys.readouterr().err
    assert len(simulator.state.subscriptions) == len(EVENTS)

    hold_subscriptions_job(tmp_path / "sync.db", None)
    assert main(["webhooks", "remove"]) == 0
    assert simulator.state.subscriptions == {}
