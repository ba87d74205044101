"""FastAPI dependencies as ``Annotated`` aliases: the database, Optuna's storage, settings,
the three together (``BackendDep``) and the caller's role (``ReadAuth``, ``WorkerAuth``, ``AdminAuth``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import optuna
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hone.settings import Settings
from service.auth import Principal, Role, authenticate, touch_token
from service.backend import Backend
from service.db import Database
from service.storage import create_optuna_storage
from service.tables import utcnow


def get_db(request: Request) -> Database:
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


def get_storage(request: Request) -> optuna.storages.RDBStorage:
    return storage_for(request.app)


def backend_for(app: FastAPI) -> Backend:
    """The app's database, Optuna storage and settings, as one object."""
    return Backend(db=app.state.db, storage=storage_for(app), settings=app.state.settings)


def get_backend(request: Request) -> Backend:
    return backend_for(request.app)


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
StorageDep = Annotated[optuna.storages.RDBStorage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]

_bearer = HTTPBearer(auto_error=False, description="A hone token: `Authorization: Bearer hone_…`")
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def get_principal(
    db: DbDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling, from the bearer token; 401 when missing, unknown or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required", _UNAUTHORIZED)
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    worker = settings.worker_token.get_secret_value() if settings.worker_token else None
    with db.reading() as session:
        principal = authenticate(
            session, token=credentials.credentials, admin_token=admin, worker_token=worker
        )
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", _UNAUTHORIZED)
    now = utcnow()
    if principal.token_id is not None and principal.needs_touch(now):
        with db.transaction() as session:
            touch_token(session, token_id=principal.token_id, now=now)
    return principal


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through callers whose role is ``role`` or above (403 otherwise)."""

    def check_role(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs a token with the {role} role")
        return principal

    check_role.hone_role = role  # type: ignore[attr-defined]  # read by the auth × route tests
    return check_role


ReadAuth = Annotated[Principal, Depends(require("read"))]
WorkerAuth = Annotated[Principal, Depends(require("worker"))]
AdminAuth = Annotated[Principal, Depends(require("admin"))]
