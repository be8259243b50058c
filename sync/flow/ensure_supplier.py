"""Step `supplier`: the Alegra contact the bill is addressed to, found or created exactly once.

With a tax id: the cache (a cached supplier costs no call) → Alegra by identification (the cache
may be cold, or hold no row for a contact typed by hand with dashes) → create `["provider"]`.
A contact that is only a client gains the `provider` type. Without a tax id: the normalised name
among cached contacts (several → the first by status, type and id, recorded) → create.
Everything Alegra returns is written through to the cache with source `receipt`.
"""

from __future__ import annotations

from typing import Any

from sync.alegra import payloads, resources
from sync.alegra.errors import Rejected
from sync.alegra.records import ContactRecord, contact_from_alegra
from sync.flow.context import PRIORITY, FlowEnv, FlowFailed, StepResult, StepScope
from sync.learned import ID_TYPE_SETTING, WriteShape
from sync.names import name_key
from sync.receipt_model import Supplier
from sync.store import contacts
from sync.store.doctor import company_write_shape

SOURCE = "receipt"


async def ensure_supplier(env: FlowEnv, supplier: Supplier, scope: StepScope) -> StepResult:
    """Resolve the receipt's supplier to an Alegra contact id. Raises AlegraError."""
    if supplier.tax_id is None:
        key = name_key(supplier.name)
        async with env.locks.hold(f"supplier-name:{key}"):
            return await _by_name(env, supplier, key, scope)
    cached = await contacts.find_supplier_by_tax_id(env.db, supplier.tax_id.number)
    if cached is not None and cached.is_provider:  # the common case needs no lock
        return StepResult("found", cached.alegra_id, {"name": cached.name, "matched_by": "tax_id"})
    async with env.locks.hold(f"supplier:{supplier.tax_id.number}"):
        return await _by_tax_id(env, supplier, supplier.tax_id.number, scope)


async def _by_tax_id(
    env: FlowEnv, supplier: Supplier, tax_id: str, scope: StepScope
) -> StepResult:
    cached = await contacts.find_supplier_by_tax_id(env.db, tax_id)
    if cached is not None:
        return await _use(env, cached, scope, matched_by="tax_id")
    remote = await _ask_alegra(env, tax_id)
    if remote is not None:
        await contacts.upsert_contacts(env.db, [remote], source=SOURCE)
        return await _use(env, remote, scope, matched_by="alegra_search")
    return await _create(env, supplier, scope)


async def _by_name(env: FlowEnv, supplier: Supplier, key: str, scope: StepScope) -> StepResult:
    matches = sorted(await contacts.find_contacts_by_name_key(env.db, key), key=_preference)
    if matches:
        detail = {"candidates": [m.alegra_id for m in matches]} if len(matches) > 1 else {}
        return await _use(env, matches[0], scope, matched_by="name", **detail)
    # [unverified] Alegra's `name` filter semantics; a create after an unknown outcome is
    # looked up by name among Alegra's contacts before it is sent again.
    if scope.resumed:
        found = await _search_by_name(env, supplier.name, key)
        if found is not None:
            await contacts.upsert_contacts(env.db, [found], source=SOURCE)
            return await _use(env, found, scope, matched_by="alegra_search")
    return await _create(env, supplier, scope)


def _preference(record: ContactRecord) -> tuple[bool, bool, str]:
    """Deterministic choice among same-name contacts: active, supplier, then the lowest id."""
    return (record.status == "inactive", not record.is_provider, record.alegra_id)


async def _ask_alegra(env: FlowEnv, tax_id: str) -> ContactRecord | None:
    rows = await resources.find_contacts_by_identification(env.alegra, tax_id, priority=PRIORITY)
    records = [contact_from_alegra(row) for row in rows if row.get("id") is not None]
    same = sorted((r for r in records if r.tax_id == tax_id), key=_preference)
    return same[0] if same else None


async def _search_by_name(env: FlowEnv, name: str, key: str) -> ContactRecord | None:
    rows = await resources.find_contacts_by_name(env.alegra, name, priority=PRIORITY)
    records = [contact_from_alegra(row) for row in rows if row.get("id") is not None]
    same = sorted((r for r in records if key and r.name_key == key), key=_preference)
    return same[0] if same else None


async def _use(
    env: FlowEnv, record: ContactRecord, scope: StepScope, *, matched_by: str, **detail: Any
) -> StepResult:
    """A found contact; a client-only one is made a supplier too (PUT, `updated`)."""
    info = {"name": record.name, "matched_by": matched_by, **detail}
    if record.is_provider:
        return StepResult("found", record.alegra_id, info)
    await scope.attempting()
    body = payloads.make_provider_payload(record.types)
    updated = await resources.update_contact(
        env.alegra, record.alegra_id, body, priority=PRIORITY
    )
    await contacts.upsert_contacts(env.db, [contact_from_alegra(updated)], source=SOURCE)
    return StepResult("updated", record.alegra_id, {**info, "types": body["type"]})


async def _create(env: FlowEnv, supplier: Supplier, scope: StepScope) -> StepResult:
    shape = await company_write_shape(env.db)
    body = payloads.contact_payload(supplier.name, supplier.tax_id, supplier.email, supplier.phone,
                                    id_types=shape.id_types)
    await scope.attempting()
    try:
        created = await resources.create_contact(env.alegra, body, priority=PRIORITY)
    except Rejected as exc:
        refusal = _refused(exc, supplier, shape, env.db.company)
        if refusal is None:
            raise
        raise refusal from exc
    record = contact_from_alegra(created)
    await contacts.upsert_contacts(env.db, [record], source=SOURCE)
    return StepResult("created", record.alegra_id, {"name": record.name})


def _refused(
    exc: Rejected, supplier: Supplier, shape: WriteShape, company: str
) -> FlowFailed | None:
    """Alegra's 400 to a new supplier whose tax id went with the built-in type code: the
    likeliest cause is that code, and `doctor` settles it. None: Alegra's refusal as it is."""
    tax_id = supplier.tax_id
    if exc.status != 400 or tax_id is None:
        return None
    if ID_TYPE_SETTING.format(kind=tax_id.kind) in shape.learned:
        return None  # the company's own code, learned: something else is refused
    code = shape.id_types[tax_id.kind]
    return FlowFailed(
        "identification_type_refused",
        f"Alegra refused the new supplier (400: {exc.message}) whose {tax_id.kind} was sent with"
        f" the built-in identification type code {code!r}: `alegra-sync doctor --company"
        f" {company}` learns this company's codes from its own contacts; then retry",
        status=exc.status, alegra_code=exc.code, alegra_message=exc.message,
        identification_type=code, method=exc.method, path=exc.path)
