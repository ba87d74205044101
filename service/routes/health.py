"""Liveness, readiness (database reachable, schema current) and Prometheus metrics."""

from __future__ import annotations

import optuna
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from protocol import HealthOut, ReadyOut
from service.deps import DbDep, ReadAuth, storage_for
from service.migrate import head_revision, revision_on
from service.responses import ErrorOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="The process is up (no database check)")
def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="The database is reachable and its schema is current",
    responses={503: {"model": ReadyOut, "description": "Not ready: database down or schema stale"}},
)
def readyz(request: Request, db: DbDep) -> ReadyOut | JSONResponse:
    try:
        with db.reading() as session:
            session.execute(text("SELECT 1"))
            hone_current = revision_on(session.connection()) == head_revision()
    except SQLAlchemyError:
        return _not_ready(database=False, schema_current=False, detail="the database is unreachable")
    try:
        storage = storage_for(request.app)
        optuna_current = storage.get_current_version() == storage.get_head_version()
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError):  # Optuna's tables missing
        optuna_current = False
    if not (hone_current and optuna_current):
        return _not_ready(database=True, schema_current=False, detail="run `hone db upgrade`")
    return ReadyOut(status="ready", database=True, schema_current=True)


def _not_ready(*, database: bool, schema_current: bool, detail: str) -> JSONResponse:
    body = ReadyOut(status="not ready", database=database, schema_current=schema_current, detail=detail)
    return JSONResponse(
        body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"}
    )


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (text exposition format)",
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics"},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
    },
)
def metrics(request: Request, _principal: ReadAuth) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
