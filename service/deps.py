"""FastAPI dependencies as ``Annotated`` aliases: the database, Optuna's storage, settings,
the three together (``BackendDep``) and the caller's role (``ReadAuth``, ``WorkerAuth``, ``AdminAuth``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated

import optuna
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from hone.settings import Settings
from service.auth import (
    Principal,
    PrincipalCache,
    Role,
    bootstrap_principal,
    hash_token,
    looks_like_token,
    stored_principal,
    touch_token,
)
from service.backend import Backend
from service.db import Database
from service.storage import create_optuna_storage
from service.tables import utcnow

# The dependencies below are ``async`` although they do no I/O of their own: FastAPI runs a
# plain ``def`` dependency in the thread pool, one hop per dependency per request, which cost
# more than a heartbeat's own SQL (benchmarks/fleet_scale.py). What does block goes to the
# pool explicitly (``run_in_threadpool``).


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def storage_for(app: FastAPI) -> optuna.storages.RDBStorage:
    """The app's Optuna storage, made on first use if the database was not ready at start-up
    (raises the database's error, which the app answers with 503, until it is)."""
    storage: optuna.storages.RDBStorage | None = app.state.storage
    if storage is None:
        storage = create_optuna_storage(app.state.settings.database_url)
        app.state.storage = storage
    return storage


async def get_storage(request: Request) -> optuna.storages.RDBStorage:
    if request.app.state.storage is None:  # made once, and making it reads the database
        return await run_in_threadpool(storage_for, request.app)
    return storage_for(request.app)


def backend_for(app: FastAPI) -> Backend:
    """The app's database, Optuna storage and settings, as one object."""
    return Backend(db=app.state.db, storage=storage_for(app), settings=app.state.settings)


async def get_backend(request: Request) -> Backend:
    if request.app.state.storage is None:
        return await run_in_threadpool(backend_for, request.app)
    return backend_for(request.app)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
StorageDep = Annotated[optuna.storages.RDBStorage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]

_bearer = HTTPBearer(auto_error=False, description="A hone token: `Authorization: Bearer hone_…`")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def principal_cache(app: FastAPI) -> PrincipalCache:
    """The app's cache of checked tokens (made on first use, so tests' apps get one too)."""
    cache: PrincipalCache | None = getattr(app.state, "principals", None)
    if cache is None:
        cache = PrincipalCache(app.state.settings.token_cache_seconds)
        app.state.principals = cache
    return cache


def _stored_principal(db: Database, digest: str) -> Principal | None:
    with db.reading() as session:
        return stored_principal(session, digest=digest)


def _touch(db: Database, token_id: int, now: datetime) -> None:
    with db.transaction() as session:
        touch_token(session, token_id=token_id, now=now)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling, from the bearer token; 401 when missing, unknown or revoked. (The
    database and settings straight from the app: every request pays for each dependency.)"""
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required", _UNAUTHORIZED)
    token = credentials.credentials
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    worker = settings.worker_token.get_secret_value() if settings.worker_token else None
    principal = bootstrap_principal(token, admin_token=admin, worker_token=worker)
    if principal is not None:
        return principal
    if not looks_like_token(token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", _UNAUTHORIZED)
    digest = hash_token(token)
    cache = principal_cache(request.app)
    principal = cache.get(digest)
    if principal is None:
        principal = await run_in_threadpool(_stored_principal, db, digest)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", _UNAUTHORIZED)
        cache.put(digest, principal)
    now = utcnow()
    if principal.token_id is not None and principal.needs_touch(now):
        await run_in_threadpool(_touch, db, principal.token_id, now)
        principal = principal.touched(now)
        cache.put(digest, principal)
    return principal


def require(role: Role) -> Callable[[Principal], Coroutine[None, None, Principal]]:
    """A dependency that lets through callers whose role is ``role`` or above (403 otherwise)."""

    async def check_role(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs a token with the {role} role")
        return principal

    check_role.hone_role = role  # type: ignore[attr-defined]  # read by the auth × route tests
    return check_role


ReadAuth = Annotated[Principal, Depends(require("read"))]
WorkerAuth = Annotated[Principal, Depends(require("worker"))]
AdminAuth = Annotated[Principal, Depends(require("admin"))]
