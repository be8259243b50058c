"""The URL token: made from the newest key, verified against every configured key."""

from __future__ import annotations

import hashlib

from itsdangerous import URLSafeSerializer

from sync.webhook_tokens import (
    SALT,
    TokenTable,
    all_tokens,
    fingerprint,
    make_token,
    mask_url,
    same_url,
    token_of_url,
    verify_token,
    webhook_url,
)
from tests.webhooks.conftest import NEW_KEY, OLD_KEY

NEWER = "newer-secret-key-0123456789abcdef"


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


# --- one URL per company ----------------------------------------------------------------------

# What the one-company service made for NEW_KEY (the payload "v1"): subscriptions registered
# before companies existed point at it, so it must never change.
TODAYS_TOKEN = "InYxIg.uyzo0nddPNOkjH5n5OXZ0sFWNUC6FyegTd3cwGi0KpM"


def todays_token(key: str) -> str:
    """The token as the one-company code path made it: the fixed payload, same salt, SHA-256."""
    serializer = URLSafeSerializer(key, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})
    return str(serializer.dumps("v1"))


def test_default_company_keeps_todays_token() -> None:
    """The default company's token, by any call form, is exactly the one-company service's."""
    assert todays_token(NEW_KEY) == TODAYS_TOKEN
    assert make_token([NEW_KEY]) == TODAYS_TOKEN
    assert make_token([NEW_KEY], 0, company="default") == TODAYS_TOKEN
    assert make_token([NEW_KEY, OLD_KEY], 1) == todays_token(OLD_KEY)
    assert all_tokens([NEW_KEY, OLD_KEY]) == [TODAYS_TOKEN, todays_token(OLD_KEY)]
    assert webhook_url("https://x.example", [NEW_KEY], company="default").endswith(TODAYS_TOKEN)
    assert TokenTable([NEW_KEY]).resolve(TODAYS_TOKEN) == ("default", 0)


def test_a_company_token_verifies_only_for_its_company() -> None:
    """Acme's token verifies for acme (with the key that made it) and for no other company."""
    acme = make_token([NEW_KEY], company="acme")
    assert acme not in {make_token([NEW_KEY]), make_token([NEW_KEY], company="beta")}
    assert verify_token(acme, [NEW_KEY], company="acme") == 0
    assert verify_token(acme, [NEWER, NEW_KEY], company="acme") == 1
    assert verify_token(acme, [NEW_KEY], company="beta") is None
    assert verify_token(acme, [NEW_KEY]) is None
    assert verify_token(TODAYS_TOKEN, [NEW_KEY], company="acme") is None
    assert make_token([NEW_KEY], company="acme") == acme  # deterministic
    assert token_of_url(webhook_url("https://x.example", [NEW_KEY], company="acme")) == acme


def test_the_table_resolves_each_token_to_its_own_company_and_key() -> None:
    """The receiver's table names the company a token was made for, and the key that made it."""
    table = TokenTable([NEWER, NEW_KEY])
    assert table.resolve(make_token([NEWER], company="acme")) == ("acme", 0)
    assert table.resolve(make_token([NEW_KEY], company="acme")) == ("acme", 1)
    assert table.resolve(make_token([NEW_KEY], company="beta")) == ("beta", 1)
    assert table.resolve(make_token([NEW_KEY])) == ("default", 1)
    for _ in range(2):  # the remembered answer is the same as the first
        assert table.resolve(make_token([NEW_KEY], company="beta")) == ("beta", 1)


def test_a_token_of_one_company_never_resolves_to_another() -> None:
    """Re-signing, splicing one company's payload onto another's signature, or a dropped key:
    none of them reaches a different company."""
    table = TokenTable([NEW_KEY])
    acme = make_token([NEW_KEY], company="acme")
    beta = make_token([NEW_KEY], company="beta")
    spliced = beta.split(".")[0] + "." + acme.split(".")[1]
    assert table.resolve(spliced) is None
    assert table.resolve(make_token([OLD_KEY], company="beta")) is None
    assert table.resolve(acme) == ("acme", 0)


def test_forged_and_garbled_company_tokens_resolve_to_nothing() -> None:
    """Guesses, truncations, another key's or salt's signature, a payload we never sign, and
    junk all resolve to None, without raising."""
    table = TokenTable([NEW_KEY])
    good = make_token([NEW_KEY], company="acme")
    other_salt = URLSafeSerializer(NEW_KEY, salt="other", signer_kwargs={
        "digest_method": hashlib.sha256}).dumps("v1:acme")
    ours_unsigned = [  # signed with our key and salt, but not a payload a token ever carries
        URLSafeSerializer(NEW_KEY, salt=SALT, signer_kwargs={
            "digest_method": hashlib.sha256}).dumps(p) for p in ("v1:default", "v1:", "v2:a", 7)]
    for forged in ("", ".", "..", good[:-1], good + "A", good.upper(), good.replace(".", ""),
                   "InYxOmFjbWUi.AAAA", "\udcff" + good, "é" * 40, "a" * 5000, other_salt,
                   *ours_unsigned, make_token(["another-key-0123456789abcdef"], company="acme")):
        assert table.resolve(forged) is None, forged[:20]


def test_the_default_company_cannot_be_named_by_a_company_payload() -> None:
    """Only today's token reaches the default company: making "default" by name gives it too."""
    assert make_token([NEW_KEY], company="default") == TODAYS_TOKEN
    assert verify_token(make_token([NEW_KEY], company="acme"), [NEW_KEY],
                        company="default") is None
