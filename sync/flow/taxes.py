"""The lines' ITBIS rates → Alegra tax ids, from the tax cache (loaded from `/taxes` when empty).

Not a recorded step: it writes nothing to Alegra. A rate the account has no tax for is looked
for once more in a fresh copy of `/taxes` (the tax may be new), then fails the receipt: it will
not succeed by retrying until someone adds that tax in Alegra.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sync.alegra import resources
from sync.alegra.records import tax_from_alegra
from sync.flow.context import PRIORITY, FlowEnv, FlowFailed
from sync.store import taxes

SOURCE = "receipt"
TAXES_LOCK = "load:taxes"


async def resolve_taxes(env: FlowEnv, rates: Iterable[Decimal]) -> dict[Decimal, str]:
    """{rate: Alegra tax id} for every distinct rate. Raises FlowFailed, AlegraError."""
    wanted = sorted(set(rates))
    if not wanted:
        return {}
    found = await _lookup(env, wanted)
    if len(found) < len(wanted) and await taxes.count_taxes(env.db) == 0:
        await load_taxes(env, only_if_empty=True)
        found = await _lookup(env, wanted)
    if len(found) < len(wanted):
        await load_taxes(env, only_if_empty=False)
        found = await _lookup(env, wanted)
    missing = [rate for rate in wanted if rate not in found]
    if missing:
        shown = ", ".join(f"{rate}%" for rate in missing)
        raise FlowFailed(
            "unknown_tax_rate",
            f"Alegra has no active ITBIS tax at {shown}; add it in Alegra, then retry",
            rates=[str(rate) for rate in missing],
        )
    return found


async def _lookup(env: FlowEnv, rates: list[Decimal]) -> dict[Decimal, str]:
    found: dict[Decimal, str] = {}
    for rate in rates:
        tax_id = await taxes.find_tax_id_by_rate(env.db, rate)
        if tax_id is not None:
            found[rate] = tax_id
    return found


async def load_taxes(env: FlowEnv, *, only_if_empty: bool) -> int:
    """Copy Alegra's `/taxes` into the cache (under a lock, so racing receipts load it once)."""
    async with env.locks.hold(TAXES_LOCK):
        if only_if_empty and await taxes.count_taxes(env.db) > 0:
            return 0
        rows = await resources.list_taxes(env.alegra, priority=PRIORITY)
        records = [tax_from_alegra(row) for row in rows if row.get("id") is not None]
        return await taxes.upsert_taxes(env.db, records, source=SOURCE)
