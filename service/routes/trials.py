"""``/studies/{id}/trials``: keyset pages, one trial in detail, and enqueueing a configuration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from protocol import EnqueuedTrial, EnqueueRequest, TrialDetail, TrialPage, TrialState
from service import optuna_tables, results, studies
from service.deps import AdminAuth, DbDep, ReadAuth
from service.errors import NotFound
from service.responses import error_responses
from service.tables import Trial

router = APIRouter(prefix="/studies/{study_id}/trials", tags=["trials"])


@router.get(
    "",
    response_model=TrialPage,
    summary="A page of trials, filtered by state and round, by number or best value first",
    responses=error_responses(404, 422),
)
def list_trials(
    study_id: int,
    db: DbDep,
    _principal: ReadAuth,
    state: TrialState | None = None,
    round: Annotated[int | None, Query(ge=1)] = None,
    order_by: results.OrderBy = "number",
    limit: Annotated[int, Query(ge=1, le=results.MAX_PAGE)] = results.DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> TrialPage:
    where = results.TrialFilter(study_id=study_id, state=state, round_number=round)
    with db.reading() as session:
        study = studies.get_study(session, study_id=study_id)
        rows, next_cursor = results.page_trials(
            session, where=where, direction=study.direction, order_by=order_by, cursor=cursor, limit=limit
        )
        return TrialPage(items=[results.trial_out(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{number}",
    response_model=TrialDetail,
    summary="One trial: params, value, state, round, intermediate values, metrics, duration, worker",
    responses=error_responses(404, 422),
)
def get_trial(study_id: int, number: int, db: DbDep, _principal: ReadAuth) -> TrialDetail:
    with db.reading() as session:
        studies.get_study(session, study_id=study_id)
        trial = session.scalars(
            select(Trial).where(Trial.study_id == study_id, Trial.number == number)
        ).one_or_none()
        if trial is None:
            raise NotFound(
                f"study {study_id} has no trial {number} (an enqueued configuration appears once it is leased)"
            )
        intermediate = optuna_tables.intermediate_values(session, trial.trial_id)
        metrics = optuna_tables.trial_metrics(session, trial.trial_id)
    return TrialDetail(
        **results.trial_out(trial).model_dump(),
        trial_id=trial.trial_id,
        lease_expires_at=trial.lease_expires_at,
        heartbeat_at=trial.heartbeat_at,
        intermediate_values=intermediate,
        traceback=trial.traceback,
        metrics=metrics,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnqueuedTrial,
    summary="Enqueue a configuration to try next (checked against the study's distributions)",
    responses=error_responses(404, 409, 422),
)
def enqueue_trial(study_id: int, body: EnqueueRequest, db: DbDep, _principal: AdminAuth) -> EnqueuedTrial:
    return studies.enqueue(db, study_id=study_id, params=body.params)
