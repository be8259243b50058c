"""create_app(): the web process's wiring — routes, lifespan state, error handlers.

The web process stores and reads; it never calls Alegra. Each feature module contributes
`routes` (`receiver.openapi.ApiRoute`s: each carries its OpenAPI operation), optionally
`lifespan(app)` (an async context manager for its own state), and `OPENAPI_MODELS` /
`OPENAPI_SCHEMAS` for the spec's schemas. Shared state lives on `app.state`: `settings`, `db`.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType

from starlette.applications import Starlette

from receiver import (
    admin,
    errors,
    inspect,
    openapi,
    ops,
    prometheus,
    receipts,
    webhook_endpoints,
    webhooks,
)
from sync.credentials import check_stored_tokens
from sync.logs import configure_logging, register_secrets
from sync.settings import CONFIG_ERROR_EXIT, Settings, SettingsError, load_settings
from sync.store.db import Database, DatabaseUnavailable, check_openable

# Webhooks first: Alegra's deliveries are the hottest path and must answer within 5 s; their
# route is matched before any other.
COMPONENTS: tuple[ModuleType, ...] = (
    webhooks, receipts, inspect, admin, webhook_endpoints, ops, prometheus, openapi
)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the ASGI app. Reads settings from the environment unless given (tests give them)."""
    settings = settings or _settings_or_exit()
    configure_logging(settings.log_format, settings.log_level)
    register_secrets(str(k) for k in settings.secret_keys)
    if settings.alegra_token is not None:
        register_secrets([str(settings.alegra_token)])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.db = await Database.open(settings.database_target)
        async with AsyncExitStack() as stack:
            for component in COMPONENTS:
                hook = getattr(component, "lifespan", None)
                if hook is not None:
                    await stack.enter_async_context(hook(app))
            # What start-up built (imported code, settings, the app) lives as long as the
            # process: the collector's full passes skip it from here on, or each would walk it
            # all, every request stalled for tens of ms (docs/webhooks.md, "Garbage collection").
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()
                await stack.aclose()
                await app.state.db.close()

    routes = [route for component in COMPONENTS for route in component.routes]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=errors.HANDLERS)


def _settings_or_exit() -> Settings:
    """The settings from the environment, and a database that opens; a bad one ends the process
    with one line naming it and CONFIG_ERROR_EXIT (75 for a PostgreSQL server that does not
    answer: systemd restarts on it), before uvicorn starts the app (a failure in
    the app's start-up would be uvicorn's traceback and exit status 3). Stored company tokens
    must decrypt under CREDENTIALS_KEY."""
    try:
        settings = load_settings()
        if settings.database_url is None:  # PostgreSQL's reachability is found at start-up
            check_openable(settings.database_path)
        check_stored_tokens(settings)
    except SettingsError as exc:
        print(f"alegra-sync web: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    except DatabaseUnavailable as exc:  # a server that may come back exits 75: restarted
        print(f"alegra-sync web: {exc.heading}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_status) from None
    return settings
