"""`alegra-sync doctor`'s rows: a company's latest findings and its learned settings.

Scoped by `db.company`, like the cache. A run replaces the company's findings in one
transaction, together with any setting it learned (`store_run`); `forget` drops the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sync.doctor import Finding
from sync.learned import WriteShape, write_shape
from sync.store.db import Database, utcnow


@dataclass(frozen=True)
class LearnedSetting:
    setting: str
    value: str
    evidence: str
    learned_at: str

    def as_json(self) -> dict[str, str]:
        return {"setting": self.setting, "value": self.value, "evidence": self.evidence,
                "learned_at": self.learned_at}


async def store_run(
    db: Database, findings: Sequence[Finding], *, ran_by: str, learn: bool = True
) -> list[LearnedSetting]:
    """Replace the company's findings with these; with `learn`, store what they learned.
    Returns the settings learned by this run."""
    now = utcnow()
    learned = [LearnedSetting(name, value, f.evidence, now)
               for f in findings if learn for name, value in f.learned.items()]
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM doctor_findings WHERE company_id = ?", (db.company,))
        await conn.executemany(
            "INSERT INTO doctor_findings(company_id, check_name, guess, verdict, evidence,"
            " checked_at, ran_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(db.company, str(f.check), f.guess, str(f.verdict), f.evidence, now, ran_by)
             for f in findings],
        )
        await conn.executemany(
            "INSERT INTO doctor_learned(company_id, setting, setting_value, evidence, learned_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (company_id, setting) DO UPDATE SET"
            " setting_value = excluded.setting_value, evidence = excluded.evidence,"
            " learned_at = excluded.learned_at",
            [(db.company, s.setting, s.value, s.evidence, s.learned_at) for s in learned],
        )
    return learned


async def learned_settings(db: Database) -> list[LearnedSetting]:
    rows = await db.fetchall(
        "SELECT setting, setting_value, evidence, learned_at FROM doctor_learned"
        " WHERE company_id = ? ORDER BY setting", (db.company,))
    return [LearnedSetting(r["setting"], r["setting_value"], r["evidence"], r["learned_at"])
            for r in rows]


async def company_write_shape(db: Database) -> WriteShape:
    """How the service writes this company's contacts and bills (read at each write, so a
    `doctor` run or `--forget` in another process counts from the next one)."""
    return write_shape({s.setting: s.value for s in await learned_settings(db)})


async def forget(db: Database) -> int:
    """Drop everything learned for the company; the number of settings dropped."""
    return await db.execute("DELETE FROM doctor_learned WHERE company_id = ?", (db.company,))


async def doctor_view(db: Database) -> dict[str, Any]:
    """The company's doctor as status shows it: its latest findings and what it learned."""
    rows = await db.fetchall(
        "SELECT check_name, guess, verdict, evidence, checked_at, ran_by FROM doctor_findings"
        " WHERE company_id = ? ORDER BY check_name", (db.company,))
    findings = [dict(r) for r in rows]
    return {
        "checked_at": max((f["checked_at"] for f in findings), default=None),
        "contradicted": sum(f["verdict"] == "contradicted" for f in findings),
        "findings": findings,
        "learned": [s.as_json() for s in await learned_settings(db)],
    }
