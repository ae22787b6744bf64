"""The FastAPI application; the platform behind it is built by calor.wiring."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from calor import __version__
from calor.access_log import AccessLog
from calor.api import errors
from calor.api.middleware import BodyLimit, NormalizePath
from calor.api.routes import (
    account,
    accounting,
    buckets,
    executor,
    jobs,
    network,
    pools,
    secrets,
    tasks,
)
from calor.services.platform import Platform
from calor.web.app import mount_dashboard


def create_app(
    platform: Platform,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    access_log: bool = False,
) -> ASGIApp:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if on_start is not None:
            on_start()
        try:
            yield
        finally:
            if on_stop is not None:
                on_stop()

    app = FastAPI(title="calor", version=__version__, lifespan=lifespan)
    app.state.platform = platform
    errors.install(app)
    app.include_router(account.router)
    app.include_router(accounting.router)
    app.include_router(tasks.router)
    app.include_router(jobs.router)
    app.include_router(pools.router)
    app.include_router(buckets.router)
    app.include_router(secrets.router)
    app.include_router(executor.router)
    app.include_router(network.router)
    mount_dashboard(app)
    served = NormalizePath(BodyLimit(app, platform.settings.limits.max_body_bytes))
    return AccessLog(served, "api") if access_log else served
