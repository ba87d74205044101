"""The FastAPI application: routers, lifespan, CORS, metrics and error mapping.

Teammates plug in here with one line each: a router in ``ROUTERS``, a background task
(the lease reaper) in ``BACKGROUND``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import optuna
import psycopg
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from hone.settings import Settings, get_settings
from service.db import Database
from service.errors import HoneError, InvalidInput
from service.metrics import Metrics, MetricsMiddleware
from service.reaper import run_reaper
from service.routes import analysis, events, health, leases, rounds, studies, trials, workers
from service.storage import create_optuna_storage

API_PREFIX = "/api/v1"
RETRY_AFTER_S = 5

# Routers mounted under /api/v1 (health has its own absolute paths).
ROUTERS: list[APIRouter] = [studies.router, trials.router, rounds.router, analysis.router, events.router]
ROUTERS += [leases.router, workers.router]

# Background services that live as long as the app: each is called with the app and
# returns an async context manager that runs the service until it exits.
BACKGROUND: list[Callable[[FastAPI], AbstractAsyncContextManager[object]]] = [run_reaper]

logger = logging.getLogger("hone.api")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for start in BACKGROUND:
            await stack.enter_async_context(start(app))
        try:
            yield
        finally:
            if app.state.storage is not None:
                app.state.storage.engine.dispose()
            app.state.db.dispose()


def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The exception text can carry the URL and its password; log the type only.
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; retry shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError)
    ):
        return _database_unavailable(request, exc)
    raise exc


def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    # Optuna wraps every SQLAlchemy error of a commit in StorageInternalError.
    if isinstance(exc.__cause__, (OperationalError, psycopg.OperationalError)):
        return _database_unavailable(request, exc)
    if isinstance(exc.__cause__, DBAPIError) and exc.__cause__.connection_invalidated:
        return _database_unavailable(request, exc)
    raise exc


def _hone_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HoneError)
    body = {"detail": exc.errors()} if isinstance(exc, InvalidInput) else {"detail": exc.detail}
    return JSONResponse(body, status_code=exc.status)


def _storage_if_ready(url: str) -> optuna.storages.RDBStorage | None:
    # Start even when the database is down or not upgraded yet: /readyz says so, and
    # service.deps.storage_for makes the storage on first use once it is there.
    try:
        return create_optuna_storage(url)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        logger.warning(
            "Optuna's storage is not ready yet (%s); requests needing it get 503", type(exc).__name__
        )
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over ``settings.database_url`` (whose schema ``hone db upgrade`` created)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="hone",
        version="1",
        summary="Hyperparameter search as a service: studies, rounds, trials and leases over REST.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url)
    app.state.storage = _storage_if_ready(settings.database_url)
    app.state.metrics = Metrics(app.state.db)

    app.include_router(health.router)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    app.add_exception_handler(HoneError, _hone_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    app.add_exception_handler(optuna.exceptions.StorageInternalError, _storage_error)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
