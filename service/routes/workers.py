"""``/workers``: every worker slot the service has seen, and what it is doing."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from service import worker_registry
from service.deps import DbDep, ReadAuth, SettingsDep
from service.responses import error_responses
from service.tables import Worker, utcnow

router = APIRouter(prefix="/workers", tags=["workers"])


class CurrentTrial(BaseModel):
    study_id: int
    number: int


class WorkerOut(BaseModel):
    """A worker slot as last seen: ``alive`` while it called within the grace period."""

    id: str
    host: str | None
    devices: list[str]
    current_trial: CurrentTrial | None
    first_seen: datetime
    last_heartbeat: datetime = Field(description="The last lease request or heartbeat")
    alive: bool
    lease_expires_at: datetime | None = Field(
        default=None, description="When the lease on the current trial expires unless renewed"
    )
    trials_last_hour: int = Field(
        default=0, description="Trials this slot finished (complete, pruned or failed) in the last hour"
    )


@router.get(
    "",
    response_model=list[WorkerOut],
    summary="Every worker seen: host, devices, current trial and its lease, last heartbeat, trials in the last hour",
    responses=error_responses(422),
)
def list_workers(db: DbDep, settings: SettingsDep, _principal: ReadAuth) -> list[WorkerOut]:
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.grace_period)
    with db.reading() as session:
        rows = list(
            session.scalars(select(Worker).order_by(Worker.last_seen.desc(), Worker.id).limit(10_000))
        )
        finished = worker_registry.finished_since(session, since=now - timedelta(hours=1))
        holds = [
            (row.current_study_id, row.current_trial_number)
            for row in rows
            if row.current_study_id is not None and row.current_trial_number is not None
        ]
        expiries = worker_registry.lease_expiries(session, holds=holds)
    return [
        WorkerOut(
            id=row.id,
            host=row.host,
            devices=list(row.devices or []),
            current_trial=(
                CurrentTrial(study_id=row.current_study_id, number=row.current_trial_number)
                if row.current_study_id is not None and row.current_trial_number is not None
                else None
            ),
            first_seen=row.first_seen,
            last_heartbeat=row.last_seen,
            alive=row.last_seen >= cutoff,
            lease_expires_at=expiries.get((row.current_study_id, row.current_trial_number))
            if row.current_study_id is not None and row.current_trial_number is not None
            else None,
            trials_last_hour=finished.get(row.id, 0),
        )
        for row in rows
    ]
