"""The simulator's data and the hooks that stand for a person working in Alegra's web app.

`SimState` is shared by the server thread (API handlers, deliveries) and a test's thread (person
hooks, assertions), so every change happens under `lock`. Records are stored in Alegra's read
shape; the rules that change them live in one module per resource.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sync.simulator import bills, categories, contacts, contrary, seed, webhooks
from sync.simulator.deliveries import DeliveryAttempt, Outbox
from sync.simulator.faults import Faults
from sync.simulator.ids import IdMaker

__all__ = ["DeliveryAttempt", "Faults", "LoggedRequest", "SimConfig", "SimState"]


@dataclass
class SimConfig:
    """How a simulated Alegra account behaves; fixed for the life of the account."""

    email: str = "sim@example.com"
    token: str = "sim-token"  # noqa: S105 — the simulator's own fake credential
    name: str = ""  # how tests and `/_sim/accounts/{name}` call the account; "" = its e-mail
    rate_limit: int = 150
    window_s: float = 60.0  # fixed window per credentials
    delivery_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)  # between retries of a delivery
    max_consecutive_failures: int = 10  # then the subscription is deleted
    handshake_timeout_s: float = 5.0
    delivery_timeout_s: float = 5.0
    categories_paged: bool = False  # whether GET /categories pages by 30 ([unverified] in Alegra)
    webhook_name_style: str = "mixed"  # "string" | "object" | "mixed": contact name in webhooks
    numeric_ids: int = 5  # each resource's first N new records get numeric ids, later ones UUIDs
    contrary: bool = False  # answer the other way on each of the product's guesses (contrary.py)
    contrary_seed: bool = True  # in contrary mode, start with contacts and bills typed by hand

    def __post_init__(self) -> None:
        if self.webhook_name_style not in webhooks.NAME_STYLES:
            raise ValueError(f"webhook_name_style must be one of {sorted(webhooks.NAME_STYLES)}")


@dataclass(frozen=True)
class LoggedRequest:
    """One `/api/v1` request; `path` is relative to `/api/v1` (e.g. "/contacts/7")."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float


class SimState:
    """Everything one simulated Alegra account holds, plus its request and delivery logs.

    `revoked` makes its credentials stop working (401) while its data stays; `control_path` is
    where the `/_sim/` routes act on it (`/_sim/accounts/{name}` unless it is the default).
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.faults = Faults()
        self.revoked = False
        self.control_path = "/_sim"
        self.lock = threading.RLock()
        self.requests: list[LoggedRequest] = []
        self.contacts: dict[str, dict[str, Any]] = {}
        self.deleted_contacts: dict[str, dict[str, Any]] = {}
        self.categories: dict[str, dict[str, Any]] = {}
        self.taxes: dict[str, dict[str, Any]] = {}
        self.bills: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.subscription_failures: dict[str, int] = {}
        self.files: dict[str, tuple[str, bytes]] = {}  # attachment key → (content type, bytes)
        self.deliveries: list[DeliveryAttempt] = []
        self.dropped_deliveries = 0
        self.outbox = Outbox()
        self.ids = {name: IdMaker(self.config.numeric_ids)
                    for name in ("contacts", "categories", "bills", "subscriptions", "files")}
        self._seeded_contacts = 0
        self._name_turn = 0
        self._load_seed()
        if self.config.contrary and self.config.contrary_seed:
            contrary.seed(self)

    def _load_seed(self) -> None:
        for node in seed.chart_of_accounts():
            self.categories[self.ids["categories"].reserve(node["id"])] = node
        self.taxes = {tax["id"]: tax for tax in seed.taxes()}

    @property
    def name(self) -> str:
        return self.config.name or self.config.email

    # --- request log -------------------------------------------------------------------------

    def log_request(self, method: str, path: str, query: dict[str, str], status: int) -> None:
        with self.lock:
            self.requests.append(LoggedRequest(method, path, query, status, time.time()))

    def matching_requests(self, method: str | None = None, path_prefix: str | None = None,
                          status: int | None = None) -> list[LoggedRequest]:
        """Logged API requests filtered by method, path prefix (with or without `/api/v1`)."""
        prefix = (path_prefix or "").removeprefix("/api/v1")
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper())
                    and r.path.startswith(prefix)
                    and (status is None or r.status == status)]

    def calls(self, method: str | None = None, path_prefix: str | None = None,
              status: int | None = None) -> int:
        """How many API requests match (429s and auth failures included)."""
        return len(self.matching_requests(method, path_prefix, status))

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- webhook events ----------------------------------------------------------------------

    def emit(self, event: str, record: dict[str, Any]) -> None:
        """Queue a delivery of `event` about `record` to every subscription to it."""
        with self.lock:
            targets = [sub_id for sub_id, sub in self.subscriptions.items()
                       if sub["event"] == event]
            for sub_id in targets:
                self._name_turn += 1
                body = webhooks.delivery_body(
                    event, record, self.config.webhook_name_style, self._name_turn)
                self.outbox.put(sub_id, event, body)

    def drop_subscription(self, sub_id: str) -> None:
        """Delete a subscription and its pending deliveries, as Alegra does after 10 failures."""
        with self.lock:
            self.subscriptions.pop(sub_id, None)
            self.subscription_failures.pop(sub_id, None)
            self.outbox.discard(sub_id)

    # --- a person in Alegra's web app --------------------------------------------------------

    def person_create_contact(self, **fields: Any) -> dict[str, Any]:
        """A contact typed by hand: `identification` may be a string with dashes or spaces."""
        return contacts.create(self, fields, typed_by_person=True)

    def person_edit_contact(self, contact_id: str, **fields: Any) -> dict[str, Any]:
        return contacts.update(self, contact_id, fields, typed_by_person=True)

    def person_delete_contact(self, contact_id: str) -> None:
        contacts.delete(self, contact_id)

    def person_create_bill(self, **fields: Any) -> dict[str, Any]:
        """A bill entered by hand, in the API's write shape and under the same rules."""
        return bills.create(self, fields, typed_by_person=True)

    def person_void_bill(self, bill_id: str) -> dict[str, Any]:
        return bills.void(self, bill_id)

    def person_delete_bill(self, bill_id: str) -> None:
        bills.delete(self, bill_id)

    def person_create_category(self, **fields: Any) -> dict[str, Any]:
        return categories.create(self, fields)

    def seed_contacts(self, n: int, *, deliver: bool = False) -> list[dict[str, Any]]:
        """Add `n` realistic contacts (valid RNCs/cédulas, some dashed, some client-only).

        With `deliver`, each one also queues a `new-client` delivery, as if typed one by one.
        """
        with self.lock:
            first = self._seeded_contacts
            self._seeded_contacts += n
            return [contacts.create(self, seed.seed_contact_fields(i), typed_by_person=True,
                                    emit=deliver) for i in range(first, first + n)]

    # --- inspection --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Counts of each resource and the subscriptions with their consecutive failures."""
        with self.lock:
            return {
                "contacts": len(self.contacts), "deleted_contacts": len(self.deleted_contacts),
                "categories": len(self.categories), "taxes": len(self.taxes),
                "bills": len(self.bills), "requests": len(self.requests),
                "subscriptions": [
                    {**sub, "consecutive_failures": self.subscription_failures.get(sub_id, 0)}
                    for sub_id, sub in self.subscriptions.items()],
                "deliveries": {
                    "pending": self.outbox.pending(),
                    "succeeded": sum(1 for d in self.deliveries if d.ok),
                    "failed": sum(1 for d in self.deliveries if not d.ok),
                    "dropped": self.dropped_deliveries},
            }
