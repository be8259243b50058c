"""`alegra-sync companies add | list | check | remove | rotate-key`: a company per Alegra account,
its token encrypted under CREDENTIALS_KEY and never shown; `default` is the environment's."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from sync.simulator import webhooks as sim_webhooks
from sync.webhook_tokens import make_token
from tests.companies.conftest import (
    KEY_A,
    KEY_B,
    SECRET_KEY,
    TOKEN,
    cli,
    last_line,
    rows_of,
    seed_rows,
    stored_bytes,
)
from tests.support.servers import RunningSimulator


def _add(name: str = "Ferretería Ochoa, S.R.L.", *extra: str, token: str = TOKEN) -> int:
    return cli("companies", "add", name, "--email", "ops@ochoa.do", "--token", token, *extra)


def _states(env: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(env / "c.db") as conn:
        rows = conn.execute("SELECT id, state, state_reason FROM companies").fetchall()
    return {company: (state, reason) for company, state, reason in rows}


def _add_simulated(simulator: RunningSimulator, name: str = "Sim Co", token: str = "") -> str:
    assert cli("companies", "add", name, "--email", simulator.email, "--token",
               token or simulator.token, "--base-url", simulator.base_url) == 0
    return name.lower().replace(" ", "-")


def test_add_prints_the_slug_id_last_and_list_shows_it_without_the_token(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`add` prints the slug of the name on its last line; `list` has a header row, `default`
    first (the simulator's, without credentials), then the company, and never the token."""
    assert _add() == 0
    added = capsys.readouterr().out
    assert last_line(added) == "ferreteria-ochoa-s-r-l"
    assert TOKEN not in added

    assert cli("companies", "list") == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "NAME", "E-MAIL", "DOCTOR", "STATE"]
    assert rows[0].split() == ["default", "default", "(simulator)", "-", "active"]
    assert rows[1].split()[0] == "ferreteria-ochoa-s-r-l"
    assert "ops@ochoa.do" in rows[1]
    assert rows[1].endswith("active")
    assert TOKEN not in "\n".join(rows)


def test_list_shows_the_environment_email_for_default(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ALEGRA_EMAIL set, `default` shows it (never ALEGRA_TOKEN)."""
    monkeypatch.setenv("ALEGRA_EMAIL", "books@acme.do")
    monkeypatch.setenv("ALEGRA_TOKEN", "env-token-0123456789")
    assert cli("companies", "list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:3] == ["default", "default", "books@acme.do"]
    assert "env-token-0123456789" not in out


def test_the_token_is_in_neither_the_database_file_nor_any_output_or_log(
    env: Path, capsys: pytest.CaptureFixture[str], simulator: RunningSimulator
) -> None:
    """After add, list, a refused check and rotate-key, the token's bytes are nowhere in the
    database file (nor its -wal) and in nothing printed or logged."""
    assert cli("companies", "add", "Sim Co", "--email", simulator.email, "--token", TOKEN,
               "--base-url", simulator.base_url) == 0
    assert cli("companies", "list") == 0
    assert cli("companies", "check", "sim-co") == 1  # the simulator refuses this token
    assert cli("companies", "rotate-key") == 0
    captured = capsys.readouterr()

    assert TOKEN.encode() not in stored_bytes(env / "c.db")
    assert TOKEN not in captured.out + captured.err
    assert "401" in captured.err


def test_token_stdin_reads_the_token_from_standard_input(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    simulator: RunningSimulator,
) -> None:
    """`--token-stdin` stores the token piped in: `check` then authenticates with it."""
    monkeypatch.setattr("sys.stdin", io.StringIO(simulator.token + "\n"))
    assert cli("companies", "add", "Piped", "--email", simulator.email, "--token-stdin",
               "--base-url", simulator.base_url) == 0
    assert last_line(capsys.readouterr().out) == "piped"
    assert cli("companies", "check", "piped") == 0


@pytest.mark.parametrize(("argv", "named"), [
    (["Default", "--email", "a@b.do", "--token", TOKEN], "reserved"),
    (["☕ ☕", "--email", "a@b.do", "--token", TOKEN], "NAME"),
    (["Acme", "--email", "not-an-address", "--token", TOKEN], "--email"),
    (["Acme", "--email", "a@b.do", "--token", "two words"], "--token"),
    (["Acme", "--email", "a@b.do", "--token", TOKEN, "--base-url", "ftp://x"], "--base-url"),
    (["Acme", "--email", "a@b.do", "--token", TOKEN, "--base-url", "https://u:p@x.do"],
     "--base-url"),
])
def test_add_refuses_bad_input_naming_it_and_stores_nothing(
    env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    """A reserved or empty id, a bad e-mail, token or base URL: exit 2, one line naming the
    argument (never echoing the token), and no company stored."""
    assert cli("companies", "add", *argv) == 2
    err = capsys.readouterr().err
    assert named in err
    assert TOKEN not in err
    assert list(_states(env)) == ["default"]


def test_a_second_company_with_the_same_id_is_refused_naming_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names that make the same slug clash: exit 1 naming the id; the first stays as it was."""
    assert _add("Acme Corp") == 0
    assert _add("ACME  corp!") == 1
    assert "'acme-corp' exists already" in capsys.readouterr().err
    assert sorted(_states(env)) == ["acme-corp", "default"]


def test_add_without_credentials_key_stops_naming_it(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No CREDENTIALS_KEY: `add` exits 2 naming it, and stores nothing."""
    monkeypatch.delenv("CREDENTIALS_KEY")
    assert _add() == 2
    assert "CREDENTIALS_KEY" in capsys.readouterr().err
    assert list(_states(env)) == ["default"]


def test_check_exits_0_when_alegra_accepts_and_1_with_its_status_when_not(
    env: Path, capsys: pytest.CaptureFixture[str], simulator: RunningSimulator
) -> None:
    """Good credentials: exit 0. A wrong token: exit 1 with Alegra's 401, and the company is
    `needs_attention` (with why) until a check finds its credentials working again."""
    good = _add_simulated(simulator)
    bad = _add_simulated(simulator, "Wrong Co", token="wrong-token-123")
    assert cli("companies", "check", good) == 0
    assert cli("companies", "check", bad) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err
    state, reason = _states(env)[bad]
    assert state == "needs_attention"
    assert reason is not None
    assert "401" in reason

    with sqlite3.connect(env / "c.db") as conn:
        conn.execute("UPDATE companies SET state = 'needs_attention' WHERE id = ?", (good,))
    assert cli("companies", "check", good) == 0
    assert "active again" in capsys.readouterr().out
    assert _states(env)[good] == ("active", None)


def test_check_of_default_uses_the_environment_account(
    env: Path, monkeypatch: pytest.MonkeyPatch, simulator: RunningSimulator
) -> None:
    """`check default` calls Alegra as ALEGRA_EMAIL / ALEGRA_TOKEN at ALEGRA_BASE_URL."""
    monkeypatch.setenv("ALEGRA_EMAIL", simulator.email)
    monkeypatch.setenv("ALEGRA_TOKEN", simulator.token)
    monkeypatch.setenv("ALEGRA_BASE_URL", simulator.base_url)
    assert cli("companies", "check", "default") == 0
    monkeypatch.setenv("ALEGRA_TOKEN", "not-the-token")
    assert cli("companies", "check", "default") == 1


def test_check_of_an_unknown_company_is_exit_1(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No such id: exit 1 saying so."""
    assert cli("companies", "check", "nobody") == 1
    assert "no company 'nobody'" in capsys.readouterr().err


def _subscribe(simulator: RunningSimulator, url: str) -> None:
    sim_webhooks.create(simulator.state, {"event": "new-client", "url": url})


def test_remove_marks_it_removed_keeps_its_rows_and_deletes_its_subscriptions(
    env: Path, capsys: pytest.CaptureFixture[str], simulator: RunningSimulator
) -> None:
    """`remove ID`: state removed, its rows (receipts) kept; its webhook subscriptions at Alegra
    are deleted, and a subscription that is not this service's is left alone."""
    company = _add_simulated(simulator)
    ours = make_token([SECRET_KEY], company=company)  # the company's own URL token
    _subscribe(simulator, f"http://127.0.0.1:8000/webhooks/alegra/{ours}")
    _subscribe(simulator, "https://elsewhere.example/hook")
    seed_rows(env / "c.db", company, _partner(env))

    assert cli("companies", "remove", company) == 0
    assert "deleted   new-client" in capsys.readouterr().out
    assert _states(env)[company] == ("removed", None)
    assert rows_of(env / "c.db", company)["receipts"] == 1
    assert [s["url"] for s in simulator.state.subscriptions.values()] == [
        "https://elsewhere.example/hook"]


def test_remove_refuses_default_and_unknown_ids(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`default` cannot be removed, nor a company that does not exist: exit 1 each."""
    assert cli("companies", "remove", "default") == 1
    assert cli("companies", "remove", "nobody", "--purge") == 1
    err = capsys.readouterr().err
    assert "cannot be removed" in err
    assert "no company 'nobody'" in err
    assert _states(env)["default"] == ("active", None)


def test_purge_deletes_every_row_of_the_company_and_none_of_the_others(
    env: Path, capsys: pytest.CaptureFixture[str], simulator: RunningSimulator
) -> None:
    """`remove ID --purge`: the company and its rows in every per-company table are gone (and
    no reference is left dangling); `default`'s rows are all still there."""
    company = _add_simulated(simulator)
    partner = _partner(env)
    seed_rows(env / "c.db", company, partner)
    seed_rows(env / "c.db", "default", partner)

    assert cli("companies", "remove", company, "--purge") == 0
    assert f"Purged {company}" in capsys.readouterr().out
    assert set(rows_of(env / "c.db", company).values()) == {0}
    assert set(rows_of(env / "c.db", "default").values()) == {1}
    assert company not in _states(env)
    with sqlite3.connect(env / "c.db") as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_purge_waits_when_alegra_does_not_answer(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the subscriptions cannot be removed (no Alegra at the base URL), the company is
    removed but not purged, and the command says to run it again (exit 1)."""
    assert _add("Gone Co", "--base-url", "http://127.0.0.1:9/api/v1") == 0
    seed_rows(env / "c.db", "gone-co", _partner(env))
    assert cli("companies", "remove", "gone-co", "--purge") == 1
    assert "run this again" in capsys.readouterr().err
    assert _states(env)["gone-co"] == ("removed", None)
    assert rows_of(env / "c.db", "gone-co")["receipts"] == 1


def test_rotate_key_reencrypts_so_the_old_key_can_go(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    simulator: RunningSimulator,
) -> None:
    """With a new key in front of the old, `rotate-key` re-encrypts every token; then the new
    key alone starts and decrypts it (the check authenticates). Before, the new key alone
    stops every command naming CREDENTIALS_KEY."""
    company = _add_simulated(simulator)
    before = _sealed(env, company)
    monkeypatch.setenv("CREDENTIALS_KEY", KEY_B)
    assert cli("companies", "list") == 2
    assert "CREDENTIALS_KEY" in capsys.readouterr().err

    monkeypatch.setenv("CREDENTIALS_KEY", f"{KEY_B}, {KEY_A}")
    assert cli("companies", "rotate-key") == 0
    assert "Re-encrypted 1 stored token" in capsys.readouterr().out
    assert _sealed(env, company) != before

    monkeypatch.setenv("CREDENTIALS_KEY", KEY_B)
    assert cli("companies", "check", company) == 0


def _sealed(env: Path, company: str) -> str:
    with sqlite3.connect(env / "c.db") as conn:
        return str(conn.execute("SELECT token_enc FROM companies WHERE id = ?",
                                (company,)).fetchone()[0])


def _partner(env: Path) -> str:
    """A partner's id (made through the CLI)."""
    assert cli("partners", "add", "acme") == 0
    with sqlite3.connect(env / "c.db") as conn:
        return str(conn.execute("SELECT id FROM partners").fetchone()[0])
