"""structlog set-up: events, not sentences; JSON off a terminal, readable on one.

Every log line passes `redact`, which masks values under secret-looking keys and any registered
secret string wherever it appears, so a token cannot leak through an exception message either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = {"authorization", "token", "password", "secret", "api_key", "key", "partner_key"}
_registered_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret strings (API token, secret keys, webhook tokens) to mask in every line."""
    _registered_secrets.update(v for v in values if v and len(v) >= 6)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _registered_secrets:
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: "***" if str(k).lower() in _SECRET_KEYS else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys and registered secret strings."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
        else:
            event_dict[key] = _mask(event_dict[key])
    return event_dict


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Configure structlog once per process. `auto` means console on a TTY, JSON otherwise."""
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    """A logger on the process's stderr as it is when the logger is made (a test, or a command,
    may have replaced sys.stderr since logging was configured)."""
    return structlog.PrintLogger(sys.stderr)


def get_logger(**context: Any) -> Any:
    """A bound structlog logger; bind the unit of work (receipt_id, event_id, job) once."""
    return structlog.get_logger().bind(**context)
