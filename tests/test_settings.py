"""Settings from the environment: one default per setting, every variable read and checked."""

from __future__ import annotations

import dataclasses

import pytest

from sync.settings import Settings, SettingsError, load_settings

BASE = {"SECRET_KEY": "a-secret-key-of-sixteen+"}
NUMBERS = {  # variable → (field, a value other than the default)
    "ALEGRA_RATE_LIMIT": ("rate_limit", 90),
    "ALEGRA_RATE_WINDOW_S": ("rate_window_s", 30.5),
    "RECEIPT_CONCURRENCY": ("receipt_concurrency", 2),
    "MAX_ATTACHMENT_BYTES": ("max_attachment_bytes", 1024),
    "MAX_WEBHOOK_BODY_BYTES": ("max_webhook_body_bytes", 2048),
    "ACCOUNTS_POLL_S": ("accounts_poll_s", 60.0),
    "RECONCILE_S": ("reconcile_s", 120.0),
    "BILLS_REFRESH_S": ("bills_refresh_s", 180.0),
    "SUBSCRIPTIONS_CHECK_S": ("subscriptions_check_s", 240.0),
    "BILL_BACKFILL_DAYS": ("bill_backfill_days", 30),
}


def test_an_unset_variable_gives_its_fields_default() -> None:
    """With only SECRET_KEY set, every setting that has a default takes its field's default."""
    settings = load_settings(env_file=None, environ=BASE)
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)
                if f.default is not dataclasses.MISSING}
    assert {name: getattr(settings, name) for name in defaults} == defaults


def test_every_numeric_variable_is_read_with_its_type() -> None:
    """Each numeric variable sets its field, as an int or a float like the default."""
    environ = {**BASE, **{name: str(value) for name, (_, value) in NUMBERS.items()}}
    settings = load_settings(env_file=None, environ=environ)
    for name, (field, value) in NUMBERS.items():
        loaded = getattr(settings, field)
        assert (loaded, type(loaded)) == (value, type(value)), name


@pytest.mark.parametrize("name", sorted(NUMBERS))
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_number_that_is_not_positive_is_refused_by_name(name: str, value: str) -> None:
    """Zero, a negative or a word: SettingsError naming the variable."""
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None, environ={**BASE, name: value})
    assert caught.value.name == name


def test_choices_and_flags_are_read() -> None:
    """LOG_FORMAT, LOG_LEVEL (any case) and STRICT_DUPLICATE_CHECK; an unknown choice names
    its variable."""
    settings = load_settings(env_file=None, environ={
        **BASE, "LOG_FORMAT": "JSON", "LOG_LEVEL": "debug", "STRICT_DUPLICATE_CHECK": "true"})
    assert (settings.log_format, settings.log_level, settings.strict_duplicate_check) == (
        "json", "debug", True)
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        load_settings(env_file=None, environ={**BASE, "LOG_LEVEL": "loud"})


@pytest.mark.parametrize(("name", "url"), [
    ("DATABASE_URL", "mysql://sync:s3cr3t-pw@db.example.com:3306/alegra"),
    ("ALEGRA_BASE_URL", "ftp://s3cr3t-pw@alegra.example.com/api/v1"),
    ("PUBLIC_URL", "sync:s3cr3t-pw@sync.example.com"),
])
def test_a_refused_url_is_named_without_its_password(name: str, url: str) -> None:
    """The one-line configuration error (stderr, so the journal) names the setting and what it
    got, never a password in it: hosting providers hand out DATABASE_URL with one."""
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file=None, environ={**BASE, name: url})
    assert name in str(refused.value)
    assert "s3cr3t-pw" not in str(refused.value)
    assert "***" in str(refused.value)


def test_a_postgresql_url_is_taken_as_it_is_and_shown_without_its_password() -> None:
    """DATABASE_URL=postgresql://… runs the store on PostgreSQL: the URL is what the database is
    opened with (there is no SQLite file), and the settings' repr hides its password."""
    url = "postgresql://sync:s3cr3t-pw@db.example.com:5432/alegra"
    settings = load_settings(env_file=None, environ={**BASE, "DATABASE_URL": url})
    assert settings.database_url == url
    assert settings.database_target == url
    assert "s3cr3t-pw" not in repr(settings)
    sqlite = load_settings(env_file=None, environ=BASE)
    assert sqlite.database_url is None
    assert sqlite.database_target == sqlite.database_path


def test_a_password_in_a_postgresql_url_s_query_is_not_shown() -> None:
    """libpq also takes the password as a query parameter (`?password=…`): hidden as well."""
    url = "postgresql://sync@db.example.com:5432/alegra?sslmode=require&password=s3cr3t-pw"
    settings = load_settings(env_file=None, environ={**BASE, "DATABASE_URL": url})
    assert settings.database_url == url
    assert "s3cr3t-pw" not in repr(settings)
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file=None, environ={**BASE, "DATABASE_URL": url.replace("5432", "x")})
    assert "s3cr3t-pw" not in str(refused.value)


@pytest.mark.parametrize("url", ["postgresql://sync:s3cr3t-pw@db.example.com:5432",
                                 "postgresql://sync:s3cr3t-pw@db.example.com:port/alegra"])
def test_a_postgresql_url_without_a_database_or_malformed_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL") as refused:
        load_settings(env_file=None, environ={**BASE, "DATABASE_URL": url})
    assert "s3cr3t-pw" not in str(refused.value)
