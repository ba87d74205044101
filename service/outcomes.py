"""How a lease's trial ends: complete, pruned, or failed — and whether a failure runs again.

Each ending is one transaction: Optuna's rows (through :mod:`service.optuna_tables`) and
hone's commit together, a retry's queued trial included, so a crash at any point leaves
either the whole ending or none of it (and then the reaper ends the lease once).

Retries: a configuration failed with ``retry`` (a reaped lease, a worker giving its trial
back, CUDA out of memory) becomes a new Optuna trial with the same ``config_number`` and
``attempt + 1``; the round budget counts first attempts only. Failures count against
``max_retries``.

Not every ``fail`` is a failure: a trial given back by a worker that is shutting down
(cause ``shutdown``) ends ``interrupted``, one abandoned because its study was stopped
(``cancelled``) ends ``cancelled``. Neither counts against retries or the study's failure
policy. In Optuna both are FAIL, Optuna's only state for a trial that ended without a
result, marked with the trial user attribute ``hone_state`` (see ARCHITECTURE.md).
A real failure stores a one-line ``reason``, its ``traceback`` apart, and shows the
reason in optuna-dashboard as the trial user attribute ``hone_failure``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from optuna.trial import TrialState
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hone.settings import Settings
from protocol import FailureCause
from service import failures, leases, optuna_tables, rounds, worker_registry
from service.backend import Backend
from service.tables import Study, Trial

logger = logging.getLogger("hone.leases")

Outcome = Literal["complete", "fail", "prune"]
# Why a trial failed: a worker's word (the wire's failure causes), or the reaper's.
Cause = FailureCause | Literal["lease_expired"]
_NOT_COUNTED: tuple[Cause, ...] = ("shutdown", "cancelled")
# A fail with one of these causes is not a failure: the trial ends in its own state.
_STATE_OF_CAUSE: dict[Cause, str] = {"shutdown": "interrupted", "cancelled": "cancelled"}
STATE_ATTR = "hone_state"
# What workers before the wire's ``cause`` field sent as the reason of a give-back.
SHUTDOWN_REASON = "worker shutting down"
_STATE_OF: dict[Outcome, str] = {"complete": "complete", "fail": "failed", "prune": "pruned"}
_OPTUNA_STATE: dict[Outcome, TrialState] = {
    "complete": TrialState.COMPLETE,
    "fail": TrialState.FAIL,
    "prune": TrialState.PRUNED,
}


@dataclass(frozen=True)
class Finished:
    """The state a lease's trial ended in (``duplicate``: the same result was sent again)."""

    study_id: int
    number: int
    state: str
    duplicate: bool


def finish(
    backend: Backend,
    *,
    lease_id: str,
    outcome: Outcome,
    value: float | None = None,
    metrics: dict[str, float] | None = None,
    reason: str | None = None,
    cause: Cause | None = None,
    traceback: str | None = None,
    retry: bool = False,
    steps: Mapping[int, float] | None = None,
    now: datetime,
) -> Finished:
    """End a lease's trial as complete, failed (optionally re-queued) or pruned.

    ``steps`` are step values the worker had not sent yet; they are recorded first. A
    failure without a ``cause`` (a worker older than the field) is an ``error``, or a
    ``shutdown`` when its reason is the old give-back text.
    Idempotent: the same result sent again for a finished lease answers as before. Any
    other call on a finished, expired or superseded lease raises :class:`Conflict`.
    """
    db = backend.db
    with db.process_lock, db.transaction() as session:
        # A failure may re-queue its configuration or fail the study, and a result of a
        # round whose budget is all granted may end it: the study's turn, taken before any
        # write. A complete or prune while configurations are still to start cannot end
        # its round and changes no budget: its row is enough, so results do not queue
        # behind grants (issue #24). See service.study_locks.
        row, locked = leases.lease_row_for_result(session, lease_id, study_lock=outcome == "fail")
        if outcome == "fail":
            cause = cause or ("shutdown" if reason == SHUTDOWN_REASON else "error")
            reason, traceback = failures.split_reason(reason or "failed", traceback)
        if row.state != "running" and _same_result(row, outcome, value=value, reason=reason, cause=cause):
            return Finished(row.study_id, row.number, row.state, duplicate=True)
        leases.check_live(row, now)
        if steps:
            optuna_tables.set_intermediate_values(session, trial_id=row.trial_id, values=dict(steps))
            last = max([*steps, row.last_step or 0])
            update_row(session, row, {"last_step": last})
        if outcome == "fail":
            assert cause is not None and reason is not None
            _fail(
                session,
                backend.settings,
                row,
                reason=reason,
                cause=cause,
                traceback=traceback,
                retry=retry,
                now=now,
            )
            return Finished(row.study_id, row.number, _fail_state(cause), duplicate=False)
        _end(session, row, outcome=outcome, value=value, metrics=metrics, now=now, locked=locked)
    return Finished(row.study_id, row.number, _STATE_OF[outcome], duplicate=False)


def expire_lease(session: Session, settings: Settings, row: Trial, *, now: datetime) -> bool:
    """Fail a running trial whose lease ran out and re-queue it (the reaper's call); True
    when re-queued. A trial whose result Optuna holds already (written by another tool)
    keeps that result: running it again would put it in the study twice."""
    recorded = optuna_tables.trial_state(session, row.trial_id)
    if recorded in (TrialState.COMPLETE, TrialState.PRUNED):
        outcome: Outcome = "complete" if recorded == TrialState.COMPLETE else "prune"
        value = optuna_tables.trial_value(session, row.trial_id) if outcome == "complete" else None
        _end(session, row, outcome=outcome, value=value, metrics=None, now=now, locked=True)
        logger.warning(
            "lease expired after its result reached Optuna: kept trial %s as %s", row.number, outcome
        )
        return False
    silent = (now - (row.heartbeat_at or row.started_at)).total_seconds()
    reason = f"lease expired: no heartbeat for {silent:.0f} s (worker {row.worker_id})"
    return _fail(session, settings, row, reason=reason, cause="lease_expired", retry=True, now=now)


def _end(
    session: Session,
    row: Trial,
    *,
    outcome: Outcome,
    value: float | None,
    metrics: dict[str, float] | None,
    now: datetime,
    locked: bool,
) -> None:
    """Complete or prune: Optuna's rows and hone's (``locked``: under the study's lock)."""
    values = [value] if outcome == "complete" and value is not None else None
    if outcome == "prune":
        last = optuna_tables.last_intermediate(session, row.trial_id)
        values = [last] if last is not None and math.isfinite(last) else None
    if outcome == "complete" and metrics:
        finite = {k: float(v) for k, v in list(metrics.items())[:64] if math.isfinite(v)}
        # One attribute, which the dashboard shows; before the state, as Optuna would.
        optuna_tables.set_user_attr(session, trial_id=row.trial_id, key="metrics", value=finite)
    if not optuna_tables.finish_trial(
        session, trial_id=row.trial_id, state=_OPTUNA_STATE[outcome], values=values
    ):
        logger.info("optuna trial %s was already finished", row.trial_id)
    changes: dict[str, Any] = {"state": _STATE_OF[outcome], "finished_at": now, "updated_at": now}
    if values:
        changes["value"] = values[0]
    if outcome == "prune" and not row.reason:
        changes["reason"] = "pruned by the worker"
    if outcome == "complete":
        changes["reason"] = None  # a prune answer the worker overtook with its result
    update_row(session, row, changes)
    worker_registry.release(session, row)
    rounds.after_result(session, study_id=row.study_id, round=row.round, now=now, locked=locked)


def update_row(session: Session, row: Trial, changes: dict[str, Any]) -> None:
    """Write ``changes`` to hone's row of a trial, and to ``row`` as loaded: a Core statement
    built once (every result runs it), with the session's copy kept as the database has it
    for whatever this transaction reads next (a round's narrowing reads its best trials)."""
    session.connection().execute(_UPDATE_ROW, {"row": row.id, **changes})
    for key, value in changes.items():
        set_committed_value(row, key, value)


_UPDATE_ROW = update(Trial).where(Trial.id == bindparam("row"))


def _fail(
    session: Session,
    settings: Settings,
    row: Trial,
    *,
    reason: str,
    cause: Cause,
    retry: bool,
    now: datetime,
    traceback: str | None = None,
) -> bool:
    """End ``row``'s trial as failed (or interrupted, or cancelled) and re-queue its
    configuration when allowed; True if re-queued."""
    state = _fail_state(cause)
    # Before the state, as Optuna's own set_user_attr then tell(FAIL) would write them.
    if state == "failed":
        optuna_tables.set_user_attr(session, trial_id=row.trial_id, key=failures.FAILURE_ATTR, value=reason)
    else:
        optuna_tables.set_user_attr(session, trial_id=row.trial_id, key=STATE_ATTR, value=state)
    optuna_tables.finish_trial(session, trial_id=row.trial_id, state=TrialState.FAIL, values=None)
    requeue = retry and (cause in _NOT_COUNTED or _counted_failures(session, row) <= settings.max_retries)
    if requeue:
        attrs = {
            optuna_tables.CONFIG_NUMBER_ATTR: row.config_number,
            "hone_attempt": row.attempt + 1,
            "hone_round": row.round,
        }
        optuna_tables.enqueue_trial(session, study_id=row.study_id, params=dict(row.params), user_attrs=attrs)
    update_row(
        session,
        row,
        {
            "state": state,
            "reason": reason[:4000],
            "cause": cause,
            "traceback": traceback[-100_000:] if traceback else None,
            "finished_at": now,
            "updated_at": now,
        },
    )
    worker_registry.release(session, row)
    study = session.get(Study, row.study_id)
    assert study is not None
    if state == "failed" and cause not in failures.NOT_THE_STUDYS_FAULT:
        failures.check_policy(session, study=study, now=now)
    if not requeue:  # a re-queued configuration keeps its round open
        rounds.after_result(session, study_id=row.study_id, round=row.round, now=now, locked=True)
    return requeue


def _fail_state(cause: Cause) -> str:
    return _STATE_OF_CAUSE.get(cause, "failed")


def _counted_failures(session: Session, row: Trial) -> int:
    """Failed attempts of the row's configuration that count against ``max_retries``,
    ``row`` included (counted as failing now, whatever its state)."""
    query = select(func.count()).where(
        Trial.study_id == row.study_id,
        Trial.config_number == row.config_number,
        Trial.id != row.id,
        Trial.state == "failed",
        func.coalesce(Trial.cause, "error").not_in(_NOT_COUNTED),
    )
    return int(session.scalar(query) or 0) + 1


def _same_result(
    row: Trial, outcome: Outcome, *, value: float | None, reason: str | None, cause: Cause | None
) -> bool:
    expected = _fail_state(cause or "error") if outcome == "fail" else _STATE_OF[outcome]
    if row.state != expected:
        return False
    if outcome == "complete":
        return value is not None and row.value is not None and math.isclose(row.value, value, rel_tol=1e-12)
    if outcome == "fail":
        return (row.reason or "") == (reason or "failed")
    return True
