"""`python -m sync`: the worker (the Procfile's `worker`)."""

from __future__ import annotations

import asyncio
import sys

from sync.credentials import check_stored_tokens
from sync.instance import InstanceBusy
from sync.logs import configure_logging, register_secrets
from sync.settings import (
    CONFIG_ERROR_EXIT,
    PRODUCTION_BASE_URL,
    Settings,
    SettingsError,
    load_settings,
)
from sync.store.db import DatabaseUnavailable
from sync.worker import run_worker


def worker_settings() -> Settings:
    """The settings, refusing the simulator's credentials for the real Alegra."""
    settings = load_settings()
    if settings.simulated and settings.alegra_base_url == PRODUCTION_BASE_URL:
        raise SettingsError(
            "ALEGRA_EMAIL", "not set (nor ALEGRA_TOKEN): set both for Alegra, or start the "
            "demo with `alegra-sync run`, which points the worker at the simulator",
        )
    return settings


def main() -> int:
    try:
        settings = worker_settings()
        check_stored_tokens(settings)  # every company token it will use decrypts
    except SettingsError as exc:
        print(f"alegra-sync worker: configuration error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    except DatabaseUnavailable as exc:  # PostgreSQL not answering: 75, restarted by systemd
        print(f"alegra-sync worker: {exc.heading}: {exc}", file=sys.stderr)
        return exc.exit_status
    configure_logging(settings.log_format, settings.log_level)
    register_secrets(str(k) for k in settings.secret_keys)
    if settings.alegra_token is not None:
        register_secrets([str(settings.alegra_token)])
    try:
        asyncio.run(run_worker(settings))
    except DatabaseUnavailable as exc:
        print(f"alegra-sync worker: {exc.heading}: {exc}", file=sys.stderr)
        return exc.exit_status
    except InstanceBusy as exc:
        print(f"alegra-sync worker: not starting: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
