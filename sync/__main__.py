"""`python -m sync`: the worker (the Procfile's `worker`)."""

from __future__ import annotations

import asyncio
import sys

from sync.logs import configure_logging, register_secrets
from sync.settings import SettingsError, load_settings
from sync.worker import run_worker


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"alegra-sync worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    register_secrets(str(k) for k in settings.secret_keys)
    if settings.alegra_token is not None:
        register_secrets([str(settings.alegra_token)])
    asyncio.run(run_worker(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
