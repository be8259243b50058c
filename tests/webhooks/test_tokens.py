"""The URL token: made from the newest key, verified against every configured key."""

from __future__ import annotations

from sync.webhook_tokens import (
    TokenTable,
    fingerprint,
    make_token,
    mask_url,
    same_url,
    token_of_url,
    verify_token,
    webhook_url,
)
from tests.webhooks.conftest import NEW_KEY, OLD_KEY


def test_token_made_with_the_newest_key_verifies_as_key_zero() -> None:
    """A token made with key 0 verifies and reports key 0."""
    assert verify_token(make_token([NEW_KEY]), [NEW_KEY]) == 0


def test_old_key_token_still_verifies_after_rotation() -> None:
    """After a new key is put first, a URL made with the old key still verifies, as key 1."""
    old_token = make_token([OLD_KEY])
    assert verify_token(old_token, [NEW_KEY, OLD_KEY]) == 1
    assert verify_token(make_token([NEW_KEY, OLD_KEY]), [NEW_KEY, OLD_KEY]) == 0


def test_rotation_changes_the_token() -> None:
    """A new key makes a different URL, so `register` can tell old subscriptions from new."""
    assert make_token([NEW_KEY, OLD_KEY]) != make_token([OLD_KEY])


def test_token_of_a_dropped_key_no_longer_verifies() -> None:
    """Once the old key is removed from SECRET_KEY, its URL is refused."""
    assert verify_token(make_token([OLD_KEY]), [NEW_KEY]) is None


def test_forged_and_tampered_tokens_do_not_verify() -> None:
    """Guesses, truncations, another salt's signature and junk all fail."""
    good = make_token([NEW_KEY])
    for forged in ("", "x", good[:-1], good + "A", good.upper(), "InYxIg.AAAA", "a" * 500,
                   make_token(["another-key-0123456789abcdef"])):
        assert verify_token(forged, [NEW_KEY]) is None


def test_tokens_are_deterministic() -> None:
    """The same key always gives the same URL (how `register` recognises its own)."""
    assert make_token([NEW_KEY]) == make_token([NEW_KEY])


def test_webhook_url_carries_the_token_under_the_webhook_path() -> None:
    """The URL is PUBLIC_URL/webhooks/alegra/<token>, and the token can be read back from it."""
    url = webhook_url("https://sync.example.com/", [NEW_KEY])
    assert url.startswith("https://sync.example.com/webhooks/alegra/")
    assert token_of_url(url) == make_token([NEW_KEY])
    assert token_of_url("https://other.example.com/hooks/x") is None


def test_masked_url_hides_the_token() -> None:
    """Printed URLs never show the token; a fingerprint still tells two apart."""
    token = make_token([NEW_KEY])
    masked = mask_url(f"https://sync.example.com/webhooks/alegra/{token}")
    assert token not in masked
    assert fingerprint(token) in masked
    assert masked.startswith("https://sync.example.com/webhooks/alegra/")


def test_masked_url_hides_long_segments_and_queries_of_other_urls() -> None:
    """Another service's URL may carry its own secret: long segments and the query are masked."""
    secret = "s3cr3t-0123456789abcdef"
    masked = mask_url(f"https://hooks.example.com/in/{secret}?key={secret}")
    assert secret not in masked
    assert masked.startswith("https://hooks.example.com/in/")


def test_same_url_ignores_scheme_and_trailing_slash() -> None:
    """A listing that dropped the scheme still matches the URL we subscribed."""
    assert same_url("https://a.example/webhooks/alegra/t", "a.example/webhooks/alegra/t/")
    assert not same_url("https://a.example/webhooks/alegra/t", "https://b.example/webhooks/alegra/t")


def test_token_table_agrees_with_verify_token() -> None:
    """The start-up table accepts each key's token with its index and refuses everything else."""
    table = TokenTable([NEW_KEY, OLD_KEY])
    assert table.key_index(make_token([NEW_KEY])) == 0
    assert table.key_index(make_token([OLD_KEY])) == 1
    good = make_token([NEW_KEY])
    for forged in ("", good[:-1], good + "A", make_token(["another-key-0123456789abcdef"])):
        assert table.key_index(forged) is None
