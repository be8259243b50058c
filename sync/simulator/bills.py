"""Bills (supplier invoices): validation with Alegra's codes, computed totals, attachments.

Money is Decimal throughout; the total is rounded to cents (ROUND_HALF_UP) once, at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sync.simulator import categories, contrary, errors
from sync.simulator.errors import SimError, bad_request
from sync.simulator.fields import amount, iso_date, object_field

if TYPE_CHECKING:
    from sync.simulator.state import SimState

READ_ONLY = ("id", "status", "total", "totalPaid", "balance", "calculationScale", "payments")
# Kept as written, in whatever shape: a bill typed in Alegra's web app may carry its number in
# `numberTemplate` as an object or a list of objects, or in a root `billNumber` / `number`.
_ECHOED = ("numberTemplate", "number", "billNumber", "currency", "observations",
           "termsConditions")
# A contact that is only a client is refused as a bill's provider [unverified: Alegra may accept
# it]; the facts sheet says to add "provider" to its type first, and this makes that step visible.
REQUIRE_PROVIDER_TYPE = True
# A line's `discount` is subtracted as an amount [unverified: Alegra may read it as a percentage].
DISCOUNT_IS_PERCENT = False
CENT = Decimal("0.01")


def create(state: SimState, body: dict[str, Any], *, typed_by_person: bool = False
           ) -> dict[str, Any]:
    """POST /bills. Raises SimError(400) with Alegra's code for each refusal."""
    _refuse_read_only(body)
    body = body if typed_by_person else _as_kept(state, body)
    with state.lock:
        record = {"id": state.ids["bills"].next(), **_build(state, body),
                  "status": "open", "payments": [], "retentions": [], "warehouse": None,
                  "decimalPrecision": "2", "calculationScale": "2", "attachments": []}
        record["balance"] = record["total"]
        state.bills[record["id"]] = record
        state.emit("new-bill", record)
        return record


def update(state: SimState, bill_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PUT /bills/{id}: a partial update, validated as a whole. Raises SimError(404 / 400)."""
    _refuse_read_only(body)
    body = _as_kept(state, body)
    with state.lock:
        current = get(state, bill_id)
        record = {**current, **_build(state, {**write_shape(current), **body})}
        record["balance"] = record["total"]
        state.bills[bill_id] = record
        state.emit("edit-bill", record)
        return record


def void(state: SimState, bill_id: str) -> dict[str, Any]:
    with state.lock:
        record = {**get(state, bill_id), "status": "void"}
        state.bills[bill_id] = record
        state.emit("edit-bill", record)
        return record


def delete(state: SimState, bill_id: str) -> None:
    with state.lock:
        get(state, bill_id)
        del state.bills[bill_id]
        state.emit("delete-bill", {"id": bill_id})


def get(state: SimState, bill_id: str) -> dict[str, Any]:
    with state.lock:
        record = state.bills.get(bill_id)
    if record is None:
        raise SimError(404, "La factura de proveedor no existe", errors.BILL_NOT_FOUND)
    return record


def search(state: SimState, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Bills filtered by `client_id` (the provider), `date`, `date_afterOrNow` (on or after;
    the product's [unverified] guess for Alegra's bills, see alegra/resources.py; ignored in
    contrary mode) and `status`."""
    with state.lock:
        rows = list(state.bills.values())
    return [row for row in rows
            if params.get("client_id", row["provider"]["id"]) == row["provider"]["id"]
            and params.get("date", row["date"]) == row["date"]
            and (state.config.contrary
                 or params.get("date_afterOrNow", row["date"]) <= row["date"])
            and params.get("status", row["status"]) == row["status"]]


def attach(state: SimState, bill_id: str, *, name: str, content_type: str, data: bytes,
           files_url: str) -> dict[str, Any]:
    """Store an attachment on the bill and answer `{name, url}` (the file under `files_url`)."""
    with state.lock:
        record = get(state, bill_id)
        key = state.ids["files"].next()
        state.files[key] = (content_type, data)
        attachment = {"name": name, "url": f"{files_url}/{key}"}
        record["attachments"] = [*record["attachments"], {**attachment, "size": len(data)}]
        return attachment


def write_shape(bill: dict[str, Any]) -> dict[str, Any]:
    """A stored bill back in the shape a client writes (for partial updates)."""
    lines = [{"id": line["id"], "price": line["price"], "quantity": line["quantity"],
              "discount": line["discount"], "observations": line["observations"],
              "tax": [{"id": tax["id"]} for tax in line["tax"]]}
             for line in bill["purchases"]["categories"]]
    shape = {"date": bill["date"], "dueDate": bill["dueDate"],
             "provider": {"id": bill["provider"]["id"]}, "purchases": {"categories": lines}}
    return {**shape, **{k: copy.deepcopy(bill[k]) for k in _ECHOED if k in bill}}


def _as_kept(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    """An API write's body as the account keeps it (contrary mode: its own `numberTemplate`)."""
    if not state.config.contrary or "numberTemplate" not in body:
        return body
    return {**body, "numberTemplate": contrary.number_template(body["numberTemplate"])}


def _refuse_read_only(body: dict[str, Any]) -> None:
    sent = [name for name in READ_ONLY if name in body]
    if sent:
        raise bad_request(f"Campos de solo lectura no permitidos: {', '.join(sent)}")


def _build(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"date": iso_date(body, "date"), "dueDate": iso_date(body, "dueDate")}
    record["provider"] = _provider(state, body)
    lines = _lines(state, object_field(body, "purchases") or {})
    total = sum((line.pop("_total") for line in lines), Decimal(0))
    record["purchases"] = {"categories": lines, "items": []}
    record["total"] = float(total.quantize(CENT, rounding=ROUND_HALF_UP))
    record["totalPaid"] = 0
    record.update({k: copy.deepcopy(body[k]) for k in _ECHOED if body.get(k) is not None})
    return record


def _provider(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    provider = object_field(body, "provider") or {}
    contact = state.contacts.get(str(provider.get("id")))
    if contact is None:
        raise bad_request("El proveedor no existe", errors.PROVIDER_NOT_FOUND)
    if contact["status"] != "active":
        raise bad_request("El proveedor está desactivado", errors.PROVIDER_DISABLED)
    if REQUIRE_PROVIDER_TYPE and "provider" not in contact["type"]:
        raise bad_request("El contacto no es proveedor", errors.PROVIDER_NOT_FOUND)
    return {"id": contact["id"], "name": contact["name"],
            "identification": contact["identification"]}


def _lines(state: SimState, purchases: dict[str, Any]) -> list[dict[str, Any]]:
    category_lines = purchases.get("categories") or []
    item_lines = purchases.get("items") or []
    if not isinstance(category_lines, list) or not isinstance(item_lines, list):
        raise bad_request("purchases.categories y purchases.items deben ser listas")
    if not category_lines and not item_lines:
        raise bad_request("La factura debe tener al menos un ítem o categoría", errors.NO_LINES)
    if item_lines:  # the simulator keeps no inventory, so no item id can exist
        raise bad_request("El ítem no existe")
    return [_line(state, line, n) for n, line in enumerate(category_lines)]


def _line(state: SimState, line: Any, n: int) -> dict[str, Any]:
    where = f"purchases.categories[{n}]"
    if not isinstance(line, dict):
        raise bad_request(f"{where} debe ser un objeto")
    account = _account(state, line.get("id"), where)
    price = amount(line.get("price"), f"{where}.price")
    quantity = amount(line.get("quantity"), f"{where}.quantity")
    discount = amount(line.get("discount"), f"{where}.discount", default=Decimal(0))
    gross = price * quantity
    base = gross - (gross * discount / 100 if DISCOUNT_IS_PERCENT else discount)
    if quantity == 0 or base < 0:
        raise bad_request(f"{where}: cantidad no positiva o descuento mayor que el valor")
    taxes = [_tax(state, tax, base, f"{where}.tax") for tax in _tax_refs(line, where)]
    total = base + sum((tax.pop("_amount") for tax in taxes), Decimal(0))
    return {"id": account["id"], "name": account["name"], "price": float(price),
            "quantity": float(quantity), "discount": float(discount),
            "observations": line.get("observations"), "tax": taxes,
            "subtotal": float(base.quantize(CENT, rounding=ROUND_HALF_UP)),
            "total": float(total.quantize(CENT, rounding=ROUND_HALF_UP)), "_total": total}


def _account(state: SimState, account_id: Any, where: str) -> dict[str, Any]:
    account = state.categories.get(str(account_id)) if account_id is not None else None
    if account is None:
        raise bad_request(f"{where}: la categoría no existe")
    # Documents post to leaf accounts [unverified: how Alegra refuses a summary account].
    if not categories.is_leaf(state, account["id"]) or account["status"] != "active":
        raise bad_request(f"{where}: la categoría no admite movimientos")
    return account


def _tax_refs(line: dict[str, Any], where: str) -> list[Any]:
    refs = line.get("tax") or []
    if not isinstance(refs, list):
        raise bad_request(f"{where}.tax debe ser una lista")
    return refs


def _tax(state: SimState, ref: Any, base: Decimal, where: str) -> dict[str, Any]:
    tax = state.taxes.get(str(ref.get("id"))) if isinstance(ref, dict) else None
    if tax is None:
        raise bad_request(f"{where}: el impuesto no existe")
    tax_amount = base * Decimal(str(tax["percentage"])) / 100
    return {"id": tax["id"], "name": tax["name"], "percentage": tax["percentage"],
            "amount": float(tax_amount.quantize(CENT, rounding=ROUND_HALF_UP)),
            "_amount": tax_amount}
