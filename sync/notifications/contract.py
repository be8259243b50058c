"""What a partner sends to register an endpoint (`POST /v1/webhook-endpoints`), declared once as
pydantic models: the rules and the schema /openapi.json publishes. Pure: the URL's shape only;
where its name resolves is checked by the caller (`sync.notifications.addresses.check_url`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sync.notifications.records import SUBSCRIBABLE
from sync.receipt_contract import invalid

MAX_URL = 2000
MAX_EVENTS = 20


def _event(value: str) -> str:
    if value not in SUBSCRIBABLE:
        raise invalid(f"unknown event type {value!r}; one of {', '.join(SUBSCRIBABLE)}")
    return value


def _url(value: str) -> str:
    if not value.lower().startswith(("https://", "http://")):
        raise invalid("must be an https:// URL")
    return value


EventName = Annotated[str, Field(json_schema_extra={"enum": list(SUBSCRIBABLE)}),
                      AfterValidator(_event)]


class EndpointIn(BaseModel):
    """An endpoint to register. `events` left out (or empty): every event type."""

    model_config = ConfigDict(extra="ignore")
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL, examples=[
        "https://partner.example.com/alegra-sync/webhooks"], description=(
        "An https:// URL whose name resolves to public addresses only (private, loopback, "
        "link-local and cloud metadata addresses are refused; also at each delivery).")),
        AfterValidator(_url)]
    events: list[EventName] = Field(default_factory=list, max_length=MAX_EVENTS, description=(
        "The event types to send; empty or left out: all of them. `ping` is always sent by "
        "`POST .../test`."))


class ReplayIn(BaseModel):
    """Replay every failed delivery of the endpoint whose event is from `since` on."""

    since: Annotated[str, Field(examples=["2026-12-07T00:00:00+00:00"], description=(
        "An ISO 8601 time with its offset: deliveries of events from then on."))]
