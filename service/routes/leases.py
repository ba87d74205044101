"""``/leases``: the protocol workers speak — lease a trial, report, heartbeat, finish.

1. ``POST /leases`` → 201 with a lease, the study, the trial's params and the objective,
   or 204 (with ``Retry-After``) when no running study has work and room.
2. While training: ``POST /leases/{id}/report`` per step (the answer says whether to
   prune; steps that came too fast to be worth a round trip each ride along in ``steps``) and ``POST /leases/{id}/heartbeat`` every ``heartbeat_interval`` seconds (the
   answer says whether the study was stopped).
3. At the end, exactly one of ``complete``, ``fail`` (``retry: true`` re-queues the
   configuration) or ``prune``; ``complete`` and ``fail`` carry the steps not sent yet. Sending the same result again is harmless; any call on an
   expired or superseded lease is refused with 409 and changes nothing.

Every body is a model of the wire contract, :mod:`protocol.leases`; this module only
routes them to :mod:`service.leases`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import cast

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from protocol import (
    CompleteIn,
    FailIn,
    FinishedOut,
    HeartbeatOut,
    HeldStep,
    LeasedStudy,
    LeasedTrial,
    LeaseGrant,
    LeaseOut,
    LeaseRequest,
    ReportIn,
    ReportOut,
    TrialState,
)
from service import grants, leases, outcomes, pruning
from service.backend import Backend
from service.deps import BackendDep, WorkerAuth
from service.errors import InvalidInput
from service.responses import error_responses
from service.tables import utcnow

router = APIRouter(prefix="/leases", tags=["leases"])
NO_WORK_RETRY_AFTER_S = 1


def _finite(value: float, loc: tuple[str, ...]) -> float:
    # Checked here, not by a pydantic validator: a 422 echoing NaN back as its input
    # could not be written as JSON.
    if not math.isfinite(value):
        raise InvalidInput(loc, "must be a finite number (a NaN or infinite loss is a failure: use /fail)")
    return value


def _step_values(steps: list[HeldStep], field: str) -> dict[int, float]:
    return {s.step: _finite(s.value, ("body", field, str(i), "value")) for i, s in enumerate(steps)}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=LeaseGrant,
    summary="Lease the next trial (201), or learn that there is no work now (204)",
    responses={
        204: {"description": "No work now; ask again after Retry-After seconds"},
        **error_responses(422),
    },
)
def create_lease(body: LeaseRequest, backend: BackendDep, _principal: WorkerAuth) -> LeaseGrant | Response:
    grant = grants.grant_lease(
        backend,
        worker=body.worker,
        devices=body.devices,
        studies=body.studies,
        host=body.host,
        now=utcnow(),
    )
    if grant is None:
        return Response(
            status_code=status.HTTP_204_NO_CONTENT, headers={"Retry-After": str(NO_WORK_RETRY_AFTER_S)}
        )
    return LeaseGrant(
        lease=LeaseOut(
            id=grant.lease_id, expires_at=grant.expires_at, heartbeat_interval=grant.heartbeat_interval
        ),
        study=LeasedStudy(id=grant.study_id, name=grant.study_name),
        trial=LeasedTrial(number=grant.number, params=grant.params, round=grant.round),
        objective=grant.objective,
    )


@router.post(
    "/{lease_id}/report",
    response_model=ReportOut,
    summary="Report a step's value; the study's pruner answers whether to stop",
    responses=error_responses(404, 409, 422),
)
def report(lease_id: str, body: ReportIn, backend: BackendDep, _principal: WorkerAuth) -> ReportOut:
    prune = pruning.report(
        backend,
        lease_id=lease_id,
        step=body.step,
        value=_finite(body.value, ("body", "value")),
        earlier=_step_values(body.steps, "steps"),
        now=utcnow(),
    )
    return ReportOut(prune=prune)


@router.post(
    "/{lease_id}/heartbeat",
    response_model=HeartbeatOut,
    summary="Extend the lease; the answer says whether the study was stopped",
    responses=error_responses(404, 409, 422),
)
async def heartbeat(lease_id: str, backend: BackendDep, _principal: WorkerAuth) -> HeartbeatOut:
    # Served with the heartbeats that arrive meanwhile (service.combining.Batches); a lease
    # the batch left out is extended, or refused with the reason, on its own.
    reply = await backend.db.heartbeat_queue.submit(lease_id, partial(_heartbeats, backend))
    if reply is None:
        reply = await run_in_threadpool(leases.heartbeat, backend, lease_id=lease_id, now=utcnow())
    return HeartbeatOut(expires_at=reply.expires_at, cancel=reply.cancel)


async def _heartbeats(backend: Backend, lease_ids: Sequence[str]) -> list[leases.HeartbeatReply | None]:
    extended = await run_in_threadpool(leases.heartbeats, backend, lease_ids=lease_ids, now=utcnow())
    return [extended.get(lease) for lease in lease_ids]


def _out(finished: outcomes.Finished) -> FinishedOut:
    return FinishedOut(
        study_id=finished.study_id,
        number=finished.number,
        state=cast(TrialState, finished.state),
        duplicate=finished.duplicate,
    )


@router.post(
    "/{lease_id}/complete",
    response_model=FinishedOut,
    summary="Finish the trial with its objective value",
    responses=error_responses(404, 409, 422),
)
def complete(lease_id: str, body: CompleteIn, backend: BackendDep, _principal: WorkerAuth) -> FinishedOut:
    finished = outcomes.finish(
        backend,
        lease_id=lease_id,
        outcome="complete",
        value=_finite(body.value, ("body", "value")),
        metrics=body.metrics,
        steps=_step_values(body.steps, "steps"),
        now=utcnow(),
    )
    return _out(finished)


@router.post(
    "/{lease_id}/fail",
    response_model=FinishedOut,
    summary="Fail the trial with a reason (shutdown: interrupted, cancelled: cancelled); retry re-queues",
    responses=error_responses(404, 409, 422),
)
def fail(lease_id: str, body: FailIn, backend: BackendDep, _principal: WorkerAuth) -> FinishedOut:
    finished = outcomes.finish(
        backend,
        lease_id=lease_id,
        outcome="fail",
        reason=body.reason,
        retry=body.retry,
        cause=body.cause,
        traceback=body.traceback,
        steps=_step_values(body.steps, "steps"),
        now=utcnow(),
    )
    return _out(finished)


@router.post(
    "/{lease_id}/prune",
    response_model=FinishedOut,
    summary="Finish the trial as pruned (after a report answered prune)",
    responses=error_responses(404, 409, 422),
)
def prune(lease_id: str, backend: BackendDep, _principal: WorkerAuth) -> FinishedOut:
    finished = outcomes.finish(backend, lease_id=lease_id, outcome="prune", now=utcnow())
    return _out(finished)
