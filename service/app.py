"""The FastAPI application: routers, lifespan, CORS, metrics and error mapping.

Teammates plug in here with one line each: a router in ``ROUTERS``, a background task
(the lease reaper) in ``BACKGROUND``.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import anyio.to_thread
import optuna
import psycopg
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hone.settings import Settings, get_settings
from service.access_log import quiet_routine_lease_calls
from service.api_docs import serve_docs
from service.body_limit import BodyLimit, document_body_limit
from service.db import POOL_SIZE, Database
from service.errors import HoneError, InvalidInput
from service.metrics import Metrics, MetricsMiddleware
from service.reaper import run_reaper
from service.routes import analysis, events, health, leases, rounds, studies, trials, workers
from service.storage import create_optuna_storage
from service.web_page import serve_web_page

API_PREFIX = "/api/v1"
RETRY_AFTER_S = 5

# Routers mounted under /api/v1 (health has its own absolute paths). Leases first: routes
# are matched in order, and a fleet's heartbeats are most of the requests.
ROUTERS: list[APIRouter] = [leases.router, studies.router, trials.router, rounds.router, analysis.router]
ROUTERS += [events.router, workers.router]

# Background services that live as long as the app: each is called with the app and
# returns an async context manager that runs the service until it exits.
BACKGROUND: list[Callable[[FastAPI], AbstractAsyncContextManager[object]]] = [run_reaper]

logger = logging.getLogger("hone.api")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Request threads (plain `def` routes run in anyio's pool) no more than the database pool
    # keeps connections: a 21st thread would open a connection per request and close it after.
    anyio.to_thread.current_default_thread_limiter().total_tokens = POOL_SIZE
    async with AsyncExitStack() as stack:
        for start in BACKGROUND:
            await stack.enter_async_context(start(app))
        # What start-up made (~250,000 objects: the imports, the app, Optuna) lives as long
        # as the process; kept out of the collector's full passes, which otherwise stop every
        # request for ~100 ms every few seconds under a fleet's heartbeats.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # collectable again (a test process starts and stops many apps)
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
    if isinstance(exc.__cause__, DataError | OverflowError):
        return _unstorable(request, exc.__cause__)
    raise exc


def _hone_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HoneError)
    body = {"detail": exc.errors()} if isinstance(exc, InvalidInput) else {"detail": exc.detail}
    return JSONResponse(body, status_code=exc.status)


def _json_safe(value: Any, depth: int = 0, limit: int = 200) -> Any:
    """A 422's echo of the input, made JSON-safe and short: NaN or a lone surrogate in a
    request must not turn its own error into a 500, nor a 10 MB body into a 10 MB answer."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        short = value if len(value) <= limit else value[:limit] + "…"
        return short.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        if depth > 3:
            return "…"
        items = list(value.items())[:20]
        return {str(_json_safe(k, depth + 1)): _json_safe(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return "…" if depth > 3 else [_json_safe(v, depth + 1) for v in value[:20]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _json_safe(str(value), depth)


def _plain(key: str, value: Any) -> Any:
    # pydantic prefixes a validator's ValueError with "Value error, "; the rest is ours.
    return value.removeprefix("Value error, ") if key == "msg" and isinstance(value, str) else value


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        # A message may list every known name (all of a trainer's knobs): keep it whole.
        {
            key: _json_safe(_plain(key, value), limit=4000 if key == "msg" else 200)
            for key, value in error.items()
            if key in ("type", "loc", "msg", "input")
        }
        for error in exc.errors()[:50]
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_error(request: Request, exc: Exception) -> Response:
    # FastAPI answers 400 for a body it cannot even decode (bytes that are not UTF-8, JSON
    # nested past the parser's depth); hone's documented answer to a bad body is a 422.
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == "There was an error parsing the body":
        error = {
            "loc": ["body"],
            "msg": "the body is not UTF-8 JSON that can be parsed",
            "type": "json_invalid",
        }
        return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, exc)


def _unstorable(request: Request, exc: Exception) -> JSONResponse:
    # An integer past the column's range or a NUL character in text: the request is at fault.
    if isinstance(exc, OverflowError) and "SQLite INTEGER" not in str(exc):
        raise exc
    logger.info("unstorable value on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    detail = "a value is out of range for the database (an integer past 32/64 bits, or a NUL character)"
    return JSONResponse(
        {"detail": [{"loc": ["request"], "msg": detail, "type": "value_error"}]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


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
        max_body_size=None,  # service.body_limit's, which answers hone's JSON error
        docs_url=None,  # served by service.api_docs from installed files, not a CDN
        redoc_url=None,
    )
    serve_docs(app, title="hone")
    serve_web_page(app)
    app.state.settings = settings
    app.state.db = Database(settings.database_url)
    app.state.storage = _storage_if_ready(settings.database_url)
    app.state.metrics = Metrics(app.state.db)

    app.include_router(health.router)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    app.add_exception_handler(HoneError, _hone_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)
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
    app.add_middleware(BodyLimit)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    document_body_limit(app)
    quiet_routine_lease_calls()
    return app
