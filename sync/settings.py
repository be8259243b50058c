"""Configuration, read once from the environment (and `.env`) into one frozen object.

A missing or malformed setting raises `SettingsError` naming the variable and the fix; the
entry points print it and exit, so a misconfigured service never half-starts.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.config import Config
from starlette.datastructures import Secret

from sync.notifications.records import RETRY_SCHEDULE_S

PRODUCTION_BASE_URL = "https://api.alegra.com/api/v1"
DEFAULT_DATABASE_URL = "sqlite:///./data/alegra-sync.db"


# The exit status of a process stopped by a configuration error (a SettingsError, a DATABASE_URL
# that does not open): the CLI, the worker and the web process. The systemd units do not restart
# on it (RestartPreventExitStatus in deploy/), since a restart would meet the same setting.
CONFIG_ERROR_EXIT = 2


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says how to fix it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """Everything the web process, the worker and the CLI need to know at start-up."""

    alegra_email: str | None
    alegra_token: Secret | None
    alegra_base_url: str
    database_path: Path  # SQLite's file; os.devnull when database_url is PostgreSQL's
    secret_keys: tuple[Secret, ...]
    public_url: str
    port: int
    expense_parent_account_id: str | None
    rate_limit: int = 150
    rate_window_s: float = 60.0
    receipt_concurrency: int = 4
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_webhook_body_bytes: int = 256 * 1024
    max_body_bytes_in_flight: int = 64 * 1024 * 1024
    accounts_poll_s: float = 900.0
    reconcile_s: float = 6 * 3600.0
    bills_refresh_s: float = 6 * 3600.0
    subscriptions_check_s: float = 600.0
    bill_backfill_days: int = 90
    strict_duplicate_check: bool = False
    inbox_retention_days: int = 30  # 0: kept for ever
    attachment_retention_days: int = 30  # 0: kept for ever
    log_format: str = "auto"
    log_level: str = "info"
    simulator_port: int = 8001
    # Fernet keys, newest first, encrypting the companies' Alegra tokens (sync/credentials.py);
    # none: no company with a token may be stored.
    credentials_keys: tuple[Secret, ...] = ()
    # Partner notifications (sync/notifications/): http:// and private addresses allowed (demos,
    # tests); attempts at once; when the retries come, in seconds after the first attempt.
    partner_webhooks_allow_private: bool = False
    partner_webhooks_concurrency: int = 16
    partner_webhooks_retry_s: tuple[float, ...] = RETRY_SCHEDULE_S
    # A worker holds a company for WORKER_LEASE_S after each renewal; it renews every
    # WORKER_LEASE_RENEW_S and stops calling Alegra for the company once
    # WORKER_LEASE_S - WORKER_LEASE_RENEW_S have passed without one (sync/leasing.py).
    worker_lease_s: float = 30.0
    worker_lease_renew_s: float = 10.0
    # DATABASE_URL when it names PostgreSQL (`postgresql://…`); None: SQLite at database_path.
    database_url: str | None = None

    @property
    def database_target(self) -> Path | str:
        """What `Database.open` takes: the PostgreSQL URL, else the SQLite file."""
        return self.database_url or self.database_path

    @property
    def simulated(self) -> bool:
        """True when no Alegra credentials are configured: `make run` then starts the simulator."""
        return self.alegra_email is None or self.alegra_token is None

    def __repr__(self) -> str:  # secrets never reach a repr, a log line or a traceback
        return (
            f"Settings(alegra_base_url={self.alegra_base_url!r}, "
            f"database={shown_url(str(self.database_target))!r}, public_url={self.public_url!r})"
        )


def shown_url(url: str) -> str:
    """`url` fit for an error line: its user information (`postgresql://user:secret@host/db`, as
    hosting providers hand out DATABASE_URL, or a token before an `@`) is replaced by `***`, and
    so is its query (libpq also takes `?password=…`)."""
    url, question, _ = url.partition("?")
    query = "?***" if question else ""
    scheme, sep, rest = url.rpartition("://")
    _, at, host = rest.rpartition("@")
    if not at:
        return url + query
    return f"{scheme}{sep}***@{host}{query}"


POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")
_EXPECTED_URL = "sqlite:///path/to/file.db or postgresql://user:password@host:port/dbname"


def database_path_from_url(url: str) -> Path:
    """`sqlite:///./data/x.db` → `./data/x.db`; `sqlite:////abs/x.db` → `/abs/x.db`.

    Raises SettingsError for anything but a sqlite URL (a PostgreSQL URL has no file)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SettingsError("DATABASE_URL", f"expected {_EXPECTED_URL}, got {shown_url(url)!r}")
    return Path(url[len(prefix) :])


def _database(config: Config) -> tuple[Path, str | None]:
    """(SQLite's file, PostgreSQL's URL) from DATABASE_URL: a file that can be neither opened nor
    created, or a PostgreSQL URL that does not parse, is refused at once. Whether PostgreSQL
    answers is found when the database is opened (DatabaseUnavailable)."""
    url = str(config("DATABASE_URL", default=DEFAULT_DATABASE_URL))
    if url.startswith(POSTGRESQL_SCHEMES):
        return Path(os.devnull), _postgresql_url(url)
    path = database_path_from_url(url)
    problem = _unusable(path)
    if problem:
        raise SettingsError("DATABASE_URL", f"cannot use {path}: {problem}")
    return path, None


def _postgresql_url(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 -- only for PostgreSQL

    try:
        parts = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: not a connection string
        raise SettingsError(
            "DATABASE_URL", f"expected {_EXPECTED_URL}, got {shown_url(url)!r}") from exc
    port = str(parts.get("port") or "5432")
    if not all(one.isdigit() for one in port.split(",")):
        raise SettingsError("DATABASE_URL", f"the port must be a number, got {shown_url(url)!r}")
    if not parts.get("dbname"):
        raise SettingsError(
            "DATABASE_URL", f"name the database: {_EXPECTED_URL}, got {shown_url(url)!r}")
    return url


def _unusable(path: Path) -> str | None:
    """Why SQLite could not keep its file (and the -wal/-shm files beside it) at `path`."""
    if path.exists():
        if not path.is_file():
            return "it is not a file"
        if not os.access(path, os.R_OK | os.W_OK):
            return "it is not readable and writable by this user"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the folder it would be created in
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the directory {folder} is not writable by this user"
    return None


def _secret_keys(raw: str | None) -> tuple[Secret, ...]:
    if not raw or not raw.strip():
        raise SettingsError(
            "SECRET_KEY",
            "not set. Generate one with"
            " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            " (several keys may be given comma-separated, newest first, to rotate)",
        )
    keys = tuple(Secret(k.strip()) for k in raw.split(",") if k.strip())
    if any(len(str(k)) < 16 for k in keys):
        raise SettingsError("SECRET_KEY", "each key must be at least 16 characters long")
    return keys


_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=?")
GENERATE_CREDENTIALS_KEY = (
    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
)


def _credentials_keys(raw: str | None) -> tuple[Secret, ...]:
    """CREDENTIALS_KEY: Fernet keys (32 bytes, url-safe base64), comma-separated, newest first.
    Unset is allowed here: it is needed once a company's token is stored (sync/credentials.py)."""
    if raw is None or not raw.strip():
        return tuple(_default("credentials_keys"))
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    for number, key in enumerate(keys, 1):
        if not _is_fernet_key(key):
            raise SettingsError(
                "CREDENTIALS_KEY",
                f"key {number} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded "
                f"bytes). Generate one with {GENERATE_CREDENTIALS_KEY}",
            )
    return tuple(Secret(key) for key in keys)


def _is_fernet_key(key: str) -> bool:
    if not _FERNET_KEY.fullmatch(key):
        return False
    try:
        return len(base64.urlsafe_b64decode(key.rstrip("=") + "=")) == 32
    except (binascii.Error, ValueError):
        return False


def _number(config: Config, name: str, cast: type[int] | type[float], default: float) -> Any:
    try:
        value = cast(config(name, cast=cast, default=default))
    except ValueError as exc:
        raise SettingsError(name, f"expected a number: {exc}") from exc
    if value <= 0:
        raise SettingsError(name, "must be greater than zero")
    return value


def _days(config: Config, name: str, default: int) -> int:
    """A number of days; 0 is allowed (for a retention setting: keep for ever)."""
    try:
        value = int(config(name, cast=int, default=default))
    except ValueError as exc:
        raise SettingsError(name, f"expected a whole number of days: {exc}") from exc
    if value < 0:
        raise SettingsError(name, "must be 0 (keep for ever) or more")
    return value


def _flag(config: Config, name: str, default: bool) -> bool:
    try:
        return bool(config(name, cast=bool, default=default))
    except ValueError as exc:
        raise SettingsError(name, "expected true/false/1/0") from exc


def load_settings(
    env_file: str | Path | None = ".env", environ: dict[str, str] | None = None
) -> Settings:
    """Read and validate every setting. Raises SettingsError naming the first bad one."""
    env_path = Path(env_file) if env_file and Path(env_file).is_file() else None
    config = Config(env_path, environ=environ if environ is not None else os.environ)
    email = config("ALEGRA_EMAIL", default=None) or None
    token = config("ALEGRA_TOKEN", cast=Secret, default=None)
    if (email is None) != (token is None or not str(token)):
        raise SettingsError(
            "ALEGRA_TOKEN" if email else "ALEGRA_EMAIL",
            "set both ALEGRA_EMAIL and ALEGRA_TOKEN, or neither (to use the simulator)",
        )
    port = int(_number(config, "PORT", int, 8000))
    base_url = str(config("ALEGRA_BASE_URL", default=PRODUCTION_BASE_URL)).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(
            "ALEGRA_BASE_URL", f"expected an http(s) URL, got {shown_url(base_url)!r}"
        )
    public_url = str(config("PUBLIC_URL", default=f"http://127.0.0.1:{port}")).rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError("PUBLIC_URL", f"expected an http(s) URL, got {shown_url(public_url)!r}")
    numbers = {field: _number(config, name, cast, _default(field))
               for field, (name, cast) in _NUMBERS.items()}
    _check_lease(numbers["worker_lease_s"], numbers["worker_lease_renew_s"])
    database_path, database_url = _database(config)
    return Settings(
        alegra_email=email,
        alegra_token=token if email else None,
        alegra_base_url=base_url,
        database_path=database_path,
        database_url=database_url,
        secret_keys=_secret_keys(config("SECRET_KEY", default=None)),
        public_url=public_url,
        port=port,
        expense_parent_account_id=config("EXPENSE_PARENT_ACCOUNT_ID", default=None) or None,
        **numbers,
        strict_duplicate_check=_flag(config, "STRICT_DUPLICATE_CHECK",
                                     _default("strict_duplicate_check")),
        inbox_retention_days=_days(config, "INBOX_RETENTION_DAYS",
                                   _default("inbox_retention_days")),
        attachment_retention_days=_days(config, "ATTACHMENT_RETENTION_DAYS",
                                        _default("attachment_retention_days")),
        log_format=_choice(config, "LOG_FORMAT", "log_format", ("auto", "json", "console")),
        log_level=_choice(config, "LOG_LEVEL", "log_level", ("debug", "info", "warning", "error")),
        credentials_keys=_credentials_keys(config("CREDENTIALS_KEY", default=None)),
        partner_webhooks_allow_private=_flag(config, "PARTNER_WEBHOOKS_ALLOW_PRIVATE",
                                             _default("partner_webhooks_allow_private")),
        partner_webhooks_retry_s=_schedule(config("PARTNER_WEBHOOKS_RETRY_S", default=None)),
    )


def _schedule(raw: str | None) -> tuple[float, ...]:
    """PARTNER_WEBHOOKS_RETRY_S: seconds after the first attempt, comma-separated, increasing."""
    if raw is None or not raw.strip():
        return tuple(_default("partner_webhooks_retry_s"))
    try:
        offsets = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError("PARTNER_WEBHOOKS_RETRY_S", "expected numbers of seconds, "
                            "comma-separated (e.g. 5,300,1800)") from None
    if any(b <= a for a, b in zip((0.0, *offsets), offsets, strict=False)):
        raise SettingsError("PARTNER_WEBHOOKS_RETRY_S", "each offset must be greater than zero "
                            "and than the one before")
    return offsets


# The numeric settings: field → (variable, type). Their defaults are the fields' own.
_NUMBERS: dict[str, tuple[str, type[int] | type[float]]] = {
    "rate_limit": ("ALEGRA_RATE_LIMIT", int),
    "rate_window_s": ("ALEGRA_RATE_WINDOW_S", float),
    "receipt_concurrency": ("RECEIPT_CONCURRENCY", int),
    "max_attachment_bytes": ("MAX_ATTACHMENT_BYTES", int),
    "max_webhook_body_bytes": ("MAX_WEBHOOK_BODY_BYTES", int),
    "accounts_poll_s": ("ACCOUNTS_POLL_S", float),
    "reconcile_s": ("RECONCILE_S", float),
    "bills_refresh_s": ("BILLS_REFRESH_S", float),
    "subscriptions_check_s": ("SUBSCRIPTIONS_CHECK_S", float),
    "bill_backfill_days": ("BILL_BACKFILL_DAYS", int),
    "max_body_bytes_in_flight": ("MAX_BODY_BYTES_IN_FLIGHT", int),
    "simulator_port": ("SIMULATOR_PORT", int),
    "partner_webhooks_concurrency": ("PARTNER_WEBHOOKS_CONCURRENCY", int),
    "worker_lease_s": ("WORKER_LEASE_S", float),
    "worker_lease_renew_s": ("WORKER_LEASE_RENEW_S", float),
}


def _check_lease(lease_s: float, renew_s: float) -> None:
    """A worker must be able to miss one renewal and still send: renew every third of the lease
    at most (sync/leasing.py)."""
    if renew_s * 3 > lease_s:
        raise SettingsError(
            "WORKER_LEASE_RENEW_S",
            f"must be at most a third of WORKER_LEASE_S ({lease_s:g} s), got {renew_s:g}",
        )


def _default(field: str) -> Any:
    """A setting's default: the one written on its `Settings` field."""
    return Settings.__dataclass_fields__[field].default


def _choice(config: Config, name: str, field: str, allowed: tuple[str, ...]) -> str:
    value = str(config(name, default=_default(field))).lower()
    if value not in allowed:
        raise SettingsError(name, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value
