"""Signing (verified as a partner would, with `standardwebhooks`), the address rules and the
retry schedule."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from sync.notifications import signer
from sync.notifications.addresses import (
    UnsafeUrl,
    check_shape,
    check_url,
    refused_address,
)
from sync.notifications.outbox import BillFacts, bill_change
from sync.notifications.records import (
    JITTER,
    RETRY_SCHEDULE_S,
    EventType,
    event_body,
    retry_delay,
)

BODY = event_body(EventType.RECEIPT_COMPLETED, "2026-12-07T10:00:00+00:00",
                  {"receipt_id": "rcp_1", "supplier": "Ferretería Ochoa"}).encode()


def test_a_signed_delivery_verifies_with_standardwebhooks() -> None:
    """A signed delivery verifies with standardwebhooks."""
    secret = signer.new_secret()
    headers = signer.headers("msg_1", BODY, [secret])
    assert Webhook(secret).verify(BODY, headers)["data"]["supplier"] == "Ferretería Ochoa"
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")


def test_another_secret_or_a_changed_body_does_not_verify() -> None:
    """Another secret or a changed body does not verify."""
    headers = signer.headers("msg_1", BODY, [signer.new_secret()])
    with pytest.raises(WebhookVerificationError):
        Webhook(signer.new_secret()).verify(BODY, headers)
    secret = signer.new_secret()
    headers = signer.headers("msg_1", BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"rcp_1", b"rcp_2"), headers)


def test_during_a_rotation_both_secrets_verify_one_header() -> None:
    """During a rotation both secrets verify one header."""
    new, old = signer.new_secret(), signer.new_secret()
    headers = signer.headers("msg_1", BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(BODY, headers)


def test_a_stale_timestamp_is_refused_by_the_receiver() -> None:
    """Each attempt is signed at its own time: a retry an hour later must carry a fresh one."""
    secret = signer.new_secret()
    headers = signer.headers("msg_1", BODY, [secret], datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


def test_secrets_are_distinct_and_in_the_whsec_format() -> None:
    """Secrets are distinct and in the whsec format."""
    made = {signer.new_secret() for _ in range(20)}
    assert len(made) == 20
    assert all(s.startswith("whsec_") and len(s) > 40 for s in made)


def test_the_body_is_type_timestamp_data() -> None:
    """The body is type timestamp data."""
    assert list(json.loads(BODY)) == ["type", "timestamp", "data"]


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "169.254.1.1",
    "::1", "fe80::1", "fd00:ec2::254", "0.0.0.0",  # noqa: S104
    "224.0.0.1", "100.100.100.200",
    "::ffff:127.0.0.1", "100.64.0.1",
])
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    """Private loopback link local and metadata addresses are refused."""
    assert refused_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    """Public addresses are allowed."""
    assert refused_address(address) is None


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "ftp://example.com/", "https://user:pw@example.com/",
    "https:///nohost", "https://example.com/#frag", "https://exa mple.com/", "example.com",
])
def test_urls_that_are_not_plain_https_are_refused(url: str) -> None:
    """Urls that are not plain https are refused."""
    with pytest.raises(UnsafeUrl):
        check_shape(url, allow_private=False)


def test_https_with_a_port_and_query_is_fine() -> None:
    """Https with a port and query is fine."""
    assert check_shape("https://hooks.example.com:8443/a?b=c", allow_private=False) == (
        "hooks.example.com", 8443)


def test_a_name_resolving_to_loopback_is_refused_unless_private_is_allowed() -> None:
    """A name resolving to loopback is refused unless private is allowed."""
    with pytest.raises(UnsafeUrl, match="loopback"):
        asyncio.run(check_url("https://localhost/hook", allow_private=False))
    with pytest.raises(UnsafeUrl, match="private"):
        asyncio.run(check_url("https://10.0.0.8/hook", allow_private=False))
    target = asyncio.run(check_url("http://localhost:9/hook", allow_private=True))
    assert target.host == "localhost"
    assert target.port == 9


def test_a_name_that_does_not_resolve_is_refused() -> None:
    """A name that does not resolve is refused."""
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        asyncio.run(check_url("https://no-such-host.invalid/hook", allow_private=False))


def test_the_retries_come_at_the_schedule_s_offsets_after_the_first_attempt() -> None:
    """The retries come at the schedule's offsets after the first attempt."""
    gaps = [retry_delay(n, jitter=False) for n in range(1, len(RETRY_SCHEDULE_S) + 1)]
    offsets = [sum(gaps[: n + 1]) for n in range(len(gaps))]  # type: ignore[arg-type]
    assert offsets == list(RETRY_SCHEDULE_S)
    assert RETRY_SCHEDULE_S == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert retry_delay(len(RETRY_SCHEDULE_S) + 1) is None  # the 10th failure gives up


def test_the_retry_delays_are_jittered_within_bounds() -> None:
    """The retry delays are jittered within bounds."""
    seen = {retry_delay(2) for _ in range(50)}
    assert len(seen) > 1
    low, high = JITTER
    assert all(d is not None and 295 * low <= d <= 295 * high for d in seen)


def test_what_a_partner_hears_when_its_bill_changes() -> None:
    """Deleted and voided are said once; any other change of status, total, number, date or
    provider is `bill.updated` (a restored void bill too); the same facts say nothing."""
    live = BillFacts(False, "open", "118.00", "B0100000001", "2024-05-01", "7")
    void = replace(live, status="void")
    gone = replace(live, deleted=True)
    assert bill_change(live, live) is None
    assert bill_change(live, void) is EventType.BILL_VOIDED
    assert bill_change(void, void) is None
    assert bill_change(live, gone) is EventType.BILL_DELETED
    assert bill_change(gone, gone) is None
    assert bill_change(live, replace(live, total="120.00")) is EventType.BILL_UPDATED
    assert bill_change(void, live) is EventType.BILL_UPDATED
    assert bill_change(None, live) is None  # first seen: nothing changed for the partner
