"""`alegra-sync partners add | list | rotate | revoke`: a key shown once, stored hashed,
rotated with a grace period, revocable, and given again to a revoked partner by `rotate`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from sync.commands import partners
from sync.store.db import Database
from sync.store.partners import find_partner_by_key
from tests.receipts_api.conftest import make_settings


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="alegra-sync")
    partners.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment: settings from variables, working directory without a .env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/t.db")
    return tmp_path


def _status_with(tmp_path: Path, key: str) -> int:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        response = client.get(
            "/v1/receipts/rcp_000000000000000000000000", headers={"Authorization": f"Bearer {key}"}
        )
    return response.status_code


def test_added_key_authenticates_listing_hides_it_and_revoke_stops_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """add prints a working key once; list never shows it; after revoke it is 401."""
    assert run("partners", "add", "acme") == 0
    out = capsys.readouterr().out
    key = re.search(r"^(as_\S+)$", out, re.MULTILINE)
    assert key is not None
    assert "will not be shown again" in out
    assert _status_with(env, key.group(1)) == 404  # authenticated; the receipt does not exist

    assert run("partners", "list") == 0
    listing = capsys.readouterr().out
    assert "acme" in listing
    assert key.group(1) not in listing
    assert key.group(1)[:8] in listing

    with sqlite3.connect(env / "t.db") as conn:
        stored = conn.execute("SELECT key_hash FROM partners").fetchone()[0]
    assert key.group(1) not in stored

    assert run("partners", "revoke", "acme") == 0
    assert _status_with(env, key.group(1)) == 401
    assert "revoked" in (run("partners", "list"), capsys.readouterr().out)[1]


def test_duplicate_name_and_unknown_revoke_fail(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second partner with the same name, or revoking nobody, exits non-zero and says why."""
    assert run("partners", "add", "acme", "--admin") == 0
    assert run("partners", "add", "acme") == 1
    assert run("partners", "revoke", "nobody") == 1
    err = capsys.readouterr().err
    assert "exists already" in err
    assert "no active partner" in err


def _key(out: str) -> str:
    found = re.search(r"^(as_\S+)$", out, re.MULTILINE)
    assert found is not None, out
    return found.group(1)


def test_rotate_prints_a_new_key_and_the_old_one_works_for_the_grace_period(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `rotate --grace 2h` both keys authenticate; past the grace only the new one does;
    the new key is stored hashed and the listing shows the old key's prefix and its end."""
    assert run("partners", "add", "acme") == 0
    old = _key(capsys.readouterr().out)

    assert run("partners", "rotate", "acme", "--grace", "2h") == 0
    out = capsys.readouterr().out
    new = _key(out)
    assert new != old
    assert f"The old key {old[:8]}… keeps working until" in out
    assert (_status_with(env, old), _status_with(env, new)) == (404, 404)

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2, minutes=1)
    assert asyncio.run(_partner_name(env, old, later)) is None
    assert asyncio.run(_partner_name(env, new, later)) == "acme"

    assert run("partners", "list") == 0
    listing = capsys.readouterr().out
    assert f"old key {old[:8]}… valid until" in listing
    assert old not in listing
    assert new not in listing
    with sqlite3.connect(env / "t.db") as conn:
        stored = " ".join(str(v) for v in conn.execute("SELECT * FROM partners").fetchone())
    assert old not in stored
    assert new not in stored


def test_rotating_again_or_with_no_grace_ends_the_older_keys_at_once(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only one earlier key is kept: a second rotation ends the first key; `--grace 0` ends
    the replaced key at once."""
    assert run("partners", "add", "acme") == 0
    first = _key(capsys.readouterr().out)
    assert run("partners", "rotate", "acme") == 0
    second = _key(capsys.readouterr().out)
    assert run("partners", "rotate", "acme", "--grace", "0") == 0
    out = capsys.readouterr().out
    third = _key(out)

    assert "no longer authenticates" in out
    assert [_status_with(env, k) for k in (first, second, third)] == [401, 401, 404]


def test_a_revoked_partner_gets_a_new_key_by_rotate_and_add_says_so(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`add` of a revoked name refuses, pointing at `rotate`; `rotate` makes the partner active
    again with a new key, and the revoked key stays dead."""
    assert run("partners", "add", "acme") == 0
    revoked = _key(capsys.readouterr().out)
    assert run("partners", "revoke", "acme") == 0

    assert run("partners", "add", "acme") == 1
    assert "partners rotate 'acme'" in capsys.readouterr().err
    assert run("partners", "rotate", "acme") == 0
    out = capsys.readouterr().out
    fresh = _key(out)

    assert "active again" in out
    assert (_status_with(env, revoked), _status_with(env, fresh)) == (401, 404)
    assert run("partners", "rotate", "nobody") == 1


def test_partners_list_has_a_header_row(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first line names the columns; each partner is a line under it."""
    assert run("partners", "add", "acme", "--admin") == 0
    assert run("partners", "add", "beta") == 0
    capsys.readouterr()

    assert run("partners", "list") == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].split() == ["NAME", "ID", "KEY", "ROLE", "STATE", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["acme", "beta"]
    assert lines[1].split()[3] == "admin"


def test_a_grace_period_is_a_duration_with_a_unit() -> None:
    """`30m`, `24h`, `7d`, `0` are read; a bare number or a word is refused."""
    assert partners.grace_period("30m") == dt.timedelta(minutes=30)
    assert partners.grace_period("7d") == dt.timedelta(days=7)
    assert partners.grace_period("0") == dt.timedelta(0)
    for bad in ("24", "soon", "-1h"):
        with pytest.raises(argparse.ArgumentTypeError):
            partners.grace_period(bad)


async def _partner_name(env: Path, key: str, now: dt.datetime) -> str | None:
    db = await Database.open(env / "t.db")
    try:
        partner = await find_partner_by_key(db, key, now=now)
    finally:
        await db.close()
    return None if partner is None else partner.name
