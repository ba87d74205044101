"""Failures: a trial's readable cause, a study's failure policy, and a failed study.

A trial's ``reason`` is one line (``KeyError: 'accuracy'``); its traceback is stored
apart. After each counted failure the study's :class:`~service.spec.FailurePolicy` is
asked whether the study is hopeless; a failed study stops granting, cancels the trials
still running (their next heartbeat says so) and shows why in the API, the CLI, the
event stream and optuna-dashboard (the study user attribute ``hone_failure``).

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from protocol import FailureGroup
from service import optuna_tables
from service.caches import study_spec
from service.tables import Study, Trial, TrialCount

FAILURE_ATTR = "hone_failure"
# Causes that say nothing about the study: a machine that died (the reaper's expiry), or a
# configuration whose loss blew up (a wide learning-rate range diverges at its top: the
# search learns from it; a study with no completed trial still fails when its round ends).
NOT_THE_STUDYS_FAULT = ("lease_expired", "diverged")
MAX_REASON = 500
MAX_GROUPS = 20


def split_reason(reason: str, traceback: str | None) -> tuple[str, str | None]:
    """A stored failure: its one-line reason and its traceback. A multi-line reason (a
    worker older than the ``traceback`` field sent the traceback's tail) gives its last
    non-empty line, and the whole text as the traceback."""
    lines = [line for line in reason.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return (lines[0].strip() if lines else "failed")[:MAX_REASON], traceback
    return lines[-1].strip()[:MAX_REASON], traceback or reason


def failure_groups(session: Session, *, study_id: int) -> list[FailureGroup]:
    """A study's failed trials grouped by reason, most frequent first."""
    # The counter rows say in a few rows whether there is anything to group: on a big study
    # without failures SQLite's planner may scan every trial for the GROUP BY.
    failed = session.scalar(
        select(func.sum(TrialCount.trials)).where(
            TrialCount.study_id == study_id, TrialCount.state == "failed"
        )
    )
    if not failed:
        return []
    count = func.count().label("count")
    rows = session.execute(
        select(Trial.reason, count)
        .where(Trial.study_id == study_id, Trial.state == "failed")
        .group_by(Trial.reason)
        .order_by(count.desc(), Trial.reason)
        .limit(MAX_GROUPS)
    ).all()
    return [FailureGroup(reason=reason or "failed", count=int(n)) for reason, n in rows]


def check_policy(session: Session, *, study: Study, now: datetime) -> bool:
    """Fail ``study`` if its failure policy says it is hopeless; True when it did."""
    if study.status != "running":
        return False
    policy = study_spec(study).failure_policy
    by_state = dict(
        session.execute(
            select(TrialCount.state, func.sum(TrialCount.trials))
            .where(TrialCount.study_id == study.id)
            .group_by(TrialCount.state)
        ).all()
    )
    succeeded = int(by_state.get("complete") or 0) + int(by_state.get("pruned") or 0)
    counted = _counted(study.id)
    if policy.first_trials and succeeded == 0:
        first = list(
            session.scalars(
                counted.with_only_columns(Trial.reason).order_by(Trial.number).limit(policy.first_trials)
            )
        )
        if len(first) == policy.first_trials and len(set(first)) == 1:
            fail_study(
                session,
                study=study,
                failure=f"the first {len(first)} trials failed with the same cause: {first[0]}",
                now=now,
            )
            return True
    if policy.max_failure_rate is not None:
        failed = int(session.scalar(counted.with_only_columns(func.count())) or 0)
        finished = succeeded + failed
        if finished >= policy.min_finished and failed > policy.max_failure_rate * finished:
            top = failure_groups(session, study_id=study.id)
            fail_study(
                session,
                study=study,
                failure=f"{failed} of {finished} finished trials failed (more than "
                f"{policy.max_failure_rate:.0%}); most often: {top[0].reason if top else 'failed'}",
                now=now,
            )
            return True
    return False


def fail_study(session: Session, *, study: Study, failure: str, now: datetime) -> None:
    """Mark ``study`` failed: it grants nothing more, and its running trials are cancelled."""
    study.status = "failed"
    study.failure = failure[:2000]
    study.updated_at = now
    optuna_tables.set_study_user_attr(session, study_id=study.id, key=FAILURE_ATTR, value=study.failure)


def clear_failure(session: Session, *, study: Study) -> None:
    """A failed study resumed: it no longer shows a failure."""
    study.failure = None
    optuna_tables.set_study_user_attr(session, study_id=study.id, key=FAILURE_ATTR, value=None)


def _counted(study_id: int) -> Select[Any]:
    """Failed trials of a study that count against its failure policy."""
    return select(Trial.id).where(
        Trial.study_id == study_id,
        Trial.state == "failed",
        func.coalesce(Trial.cause, "error").not_in(NOT_THE_STUDYS_FAULT),
    )
