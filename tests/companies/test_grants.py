"""Which companies a partner key reaches: `partners add --company`, `grant`, `revoke-grant`;
`default` for a partner added without `--company` and for every partner that existed before."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sync.store import companies
from sync.store.db import Database
from sync.store.partners import restore_partners, saved_partners
from tests.companies.conftest import TOKEN, cli


def _grants(env: Path) -> dict[str, list[str]]:
    with sqlite3.connect(env / "c.db") as conn:
        rows = conn.execute(
            "SELECT p.name, g.company_id FROM partner_grants g JOIN partners p"
            " ON p.id = g.partner_id ORDER BY p.name, g.company_id").fetchall()
    found: dict[str, list[str]] = {}
    for name, company in rows:
        found.setdefault(name, []).append(company)
    return found


def _company(name: str) -> None:
    assert cli("companies", "add", name, "--email", "a@b.do", "--token", TOKEN) == 0


def test_a_partner_added_without_company_is_granted_default(env: Path) -> None:
    """`partners add NAME` grants `default`, and only it."""
    assert cli("partners", "add", "acme") == 0
    assert _grants(env) == {"acme": ["default"]}


def test_add_with_companies_grants_exactly_those(env: Path) -> None:
    """`--company` (repeatable) grants the companies named, and not `default`."""
    _company("North")
    _company("South")
    assert cli("partners", "add", "acme", "--company", "north", "--company", "south") == 0
    assert _grants(env) == {"acme": ["north", "south"]}


def test_add_with_an_unknown_or_removed_company_stores_no_partner(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown or removed company: exit 1 naming it, and no partner (nor key) is made."""
    _company("Gone")
    with sqlite3.connect(env / "c.db") as conn:
        conn.execute("UPDATE companies SET state = 'removed' WHERE id = 'gone'")
    assert cli("partners", "add", "acme", "--company", "nobody") == 1
    assert cli("partners", "add", "acme", "--company", "gone") == 1
    err = capsys.readouterr().err
    assert "no company 'nobody'" in err
    assert "'gone' is removed" in err
    with sqlite3.connect(env / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM partners").fetchone()[0] == 0


def test_grant_and_revoke_grant_change_what_a_partner_reaches(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`grant` adds a company (twice is harmless), `revoke-grant` takes it away; a company it
    was not granted, or an unknown partner, is exit 1."""
    _company("North")
    assert cli("partners", "add", "acme") == 0
    assert cli("partners", "grant", "acme", "--company", "north") == 0
    assert cli("partners", "grant", "acme", "--company", "north") == 0
    assert _grants(env) == {"acme": ["default", "north"]}
    assert "already reached north" in capsys.readouterr().out

    assert cli("partners", "revoke-grant", "acme", "--company", "default") == 0
    assert _grants(env) == {"acme": ["north"]}
    assert cli("partners", "revoke-grant", "acme", "--company", "default") == 1
    assert cli("partners", "grant", "nobody", "--company", "north") == 1
    assert cli("partners", "grant", "acme", "--company", "nowhere") == 1
    assert _grants(env) == {"acme": ["north"]}


def test_partners_list_shows_companies_only_once_there_are_several(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `default` alone the listing is as it always was; once a second company exists it
    has a COMPANIES column (an admin reaches all)."""
    assert cli("partners", "add", "acme") == 0
    assert cli("partners", "add", "ops", "--admin") == 0
    capsys.readouterr()
    assert cli("partners", "list") == 0
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "NAME", "ID", "KEY", "ROLE", "STATE", "CREATED"]

    _company("North")
    assert cli("partners", "grant", "acme", "--company", "north") == 0
    capsys.readouterr()
    assert cli("partners", "list") == 0
    header, acme, ops = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "ID", "KEY", "ROLE", "COMPANIES", "STATE", "CREATED"]
    assert acme.split()[4] == "default,north"
    assert "all (admin)" in ops


def test_store_grants_answer_per_partner(env: Path) -> None:
    """`is_granted` and `granted_companies` answer for one partner; a removed company cannot
    be granted."""
    _company("North")
    assert cli("partners", "add", "acme") == 0

    async def check(db: Database) -> None:
        partner = str(await db.scalar("SELECT id FROM partners"))
        assert await companies.granted_companies(db, partner) == ["default"]
        assert await companies.is_granted(db, partner, "default")
        assert not await companies.is_granted(db, partner, "north")
        assert await companies.grant(db, partner, "north")
        assert await companies.granted_companies(db, partner) == ["default", "north"]
        await companies.remove_company(db, "north")
        with pytest.raises(companies.CompanyNotFound):
            await companies.grant(db, "other", "north")

    _on(env / "c.db", check)


def test_partners_carried_to_a_fresh_store_reach_default(env: Path, tmp_path: Path) -> None:
    """The demo's fresh database gets the old partners back, each granted `default`."""
    assert cli("partners", "add", "acme") == 0
    kept = saved_partners(env / "c.db")

    async def restore(db: Database) -> None:
        assert await restore_partners(db, kept) == 1
        partner = str(await db.scalar("SELECT id FROM partners"))
        assert await companies.granted_companies(db, partner) == ["default"]

    _on(tmp_path / "fresh.db", restore)


def _on(path: Path, work: Callable[[Database], Awaitable[None]]) -> None:
    async def go() -> None:
        db = await Database.open(path)
        try:
            await work(db)
        finally:
            await db.close()

    asyncio.run(go())
