"""`alegra-sync partners add | list | revoke`: a key shown once, stored hashed, revocable."""

from __future__ import annotations

import argparse
import re
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from sync.commands import partners
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
