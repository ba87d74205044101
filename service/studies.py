"""Studies: create, summarise, pause/resume/stop, delete, and enqueue a configuration.

A hone study is an ordinary Optuna study (same id, same database) plus a row in
``hone_studies`` and its rounds. Optuna holds the search; hone's rows hold the spec,
the lifecycle and what request paths count and sort on.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import EnqueuedTrial, StudyDetail, StudySummary, TrialCounts
from service import failures, optuna_tables, rounds, study_locks
from service.caches import study_spec
from service.db import Database
from service.errors import Conflict, InvalidInput, NotFound
from service.results import best_trial, counts_by_study, trial_counts, trial_out
from service.spec import StudySpec
from service.tables import Round, Study, Trial, TrialCount

Action = Literal["pause", "resume", "stop"]
SPEC_ATTR = "hone_spec"
# From each status, where each action leads; a missing entry is a conflict (409).
# A failed study may be resumed (after fixing what failed it) or stopped for good.
_TRANSITIONS: dict[Action, dict[str, str]] = {
    "pause": {"running": "paused", "paused": "paused"},
    "resume": {"paused": "running", "running": "running", "failed": "running"},
    "stop": {"running": "stopped", "paused": "stopped", "stopped": "stopped", "failed": "stopped"},
}


def get_study(session: Session, *, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"no study with id {study_id}")
    return study


def create_study(db: Database, *, spec: StudySpec, now: datetime) -> Study:
    """Create the Optuna study, hone's study row and round 1 (the full box), in one
    transaction: a name already in use (hone's or another Optuna study's) is a 409."""
    spec_json = spec.model_dump(mode="json")
    try:
        with db.transaction() as session:
            if session.scalar(select(Study.id).where(Study.name == spec.name)) is not None:
                raise Conflict(f"the study name {spec.name!r} is in use")
            if optuna_tables.study_name_in_use(session, spec.name):
                raise Conflict(f"the study name {spec.name!r} is in use (by an Optuna study)")
            study_id = optuna_tables.create_study(
                session, name=spec.name, direction=spec.objective.direction, metric=spec.objective.metric
            )
            optuna_tables.set_study_user_attr(session, study_id=study_id, key=SPEC_ATTR, value=spec_json)
            study = Study(
                id=study_id,
                name=spec.name,
                spec=spec_json,
                direction=spec.objective.direction,
                metric=spec.objective.metric,
                status="running",
                current_round=1,
                max_concurrent=spec.max_concurrent,
                created_at=now,
                updated_at=now,
            )
            session.add(study)
            session.flush()  # the round's foreign key needs the study row first
            rounds.create_first_round(session, study=study, spec=spec, now=now)
    except IntegrityError:  # another request created the name in between
        raise Conflict(f"the study name {spec.name!r} is in use") from None
    return study


def summarise(session: Session, *, study: Study, counts: TrialCounts | None = None) -> StudySummary:
    """Counts by state and the best trial, in two indexed queries."""
    spec_rounds = study.spec.get("rounds", [])
    best = best_trial(session, study_id=study.id, direction=study.direction)
    return StudySummary(
        id=study.id,
        name=study.name,
        status=study.status,
        direction=study.direction,
        metric=study.metric,
        current_round=study.current_round,
        rounds=max(len(spec_rounds), study.current_round),
        budget=sum(int(r.get("trials", 0)) for r in spec_rounds),
        max_concurrent=study.max_concurrent,
        counts=counts if counts is not None else trial_counts(session, study_id=study.id),
        best=trial_out(best) if best is not None else None,
        failure=study.failure,
        created_at=study.created_at,
        updated_at=study.updated_at,
    )


def detail(session: Session, *, study: Study) -> StudyDetail:
    return StudyDetail(
        **summarise(session, study=study).model_dump(),
        spec=study.spec,
        failures=failures.failure_groups(session, study_id=study.id),
    )


def list_studies(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[StudySummary]:
    query = select(Study).order_by(Study.id)
    if status is not None:
        query = query.where(Study.status == status)
    studies = list(session.scalars(query.limit(limit).offset(offset)))
    counts = counts_by_study(session, study_ids=[s.id for s in studies])
    return [summarise(session, study=s, counts=counts[s.id]) for s in studies]


def change_status(db: Database, *, study_id: int, action: Action, now: datetime) -> Study:
    """Pause, resume or stop a study (repeating an action is harmless; 409 if impossible)."""
    with db.transaction() as session:
        study = get_study(session, study_id=study_id)
        target = _TRANSITIONS[action].get(study.status)
        if target is None:
            raise Conflict(f"cannot {action} a study that is {study.status}")
        if target != study.status:
            if study.status == "failed" and target == "running":
                failures.clear_failure(session, study=study)
            study.status = target
            study.updated_at = now
    return study


def delete_study(db: Database, *, study_id: int) -> None:
    """Delete the Optuna study and hone's rows, in one transaction."""
    with db.process_lock, db.transaction() as session:
        study_locks.lock_study(session, study_id)
        get_study(session, study_id=study_id)
        session.execute(delete(Trial).where(Trial.study_id == study_id))
        session.execute(delete(TrialCount).where(TrialCount.study_id == study_id))
        session.execute(delete(Round).where(Round.study_id == study_id))
        session.execute(delete(Study).where(Study.id == study_id))
        optuna_tables.delete_study(session, study_id)


def enqueue(db: Database, *, study_id: int, params: dict[str, Any]) -> EnqueuedTrial:
    """Queue a configuration to try next, checked against the study's ORIGINAL distributions.

    It becomes a WAITING Optuna trial (what ``study.enqueue_trial`` makes), which the next
    grant takes first; parameters left out are sampled. It takes a slot of the current
    round's budget; under the study's lock, so a grant cannot start the round's last
    configuration in between.
    """
    with db.reading() as session:
        study = get_study(session, study_id=study_id)
        if study.status in ("stopped", "completed"):
            raise Conflict(f"the study is {study.status}; nothing more will run")
        spec = study_spec(study)
    distributions = spec.distributions()
    for name, value in params.items():
        if name not in distributions:
            raise InvalidInput(
                ("body", "params", name),
                f"{name!r} is not a parameter of this study (known: {', '.join(distributions)})",
            )
        problem = _outside(distributions[name], value)
        if problem:
            raise InvalidInput(("body", "params", name), problem)
    with db.process_lock, db.transaction() as session:
        study_locks.lock_study(session, study_id)
        study = get_study(session, study_id=study_id)
        if study.status in ("stopped", "completed"):
            raise Conflict(f"the study is {study.status}; nothing more will run")
        current = study.current_round
        room = rounds.room_in_round(session, study_id=study.id, round=current)
        if room - optuna_tables.enqueued_configurations(session, study.id) <= 0:
            budget = session.get(Round, (study.id, current))
            raise Conflict(
                f"round {current} has no room left ({budget.budget if budget else 0} configurations); "
                "open the next round (POST /studies/{id}/rounds) to try more"
            )
        _, number = optuna_tables.enqueue_trial(
            session, study_id=study.id, params=params, user_attrs={"hone_round": current}
        )
    return EnqueuedTrial(number=number, round=current, params=params)


def _outside(distribution: BaseDistribution, value: Any) -> str | None:
    """Why ``value`` is not a value of ``distribution`` (None when it is)."""
    if isinstance(distribution, CategoricalDistribution):
        if not any(value == c and type(value) is type(c) for c in distribution.choices):
            return f"{value!r} is not one of {list(distribution.choices)}"
        return None
    if not isinstance(distribution, IntDistribution | FloatDistribution):
        return f"{type(distribution).__name__} is not supported"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if isinstance(distribution, IntDistribution):
        if not float(value).is_integer():
            return f"{value!r} is not an integer"
        if (int(value) - distribution.low) % distribution.step:
            return f"{value!r} is not on the step {distribution.step} grid from {distribution.low}"
    if not distribution.low <= value <= distribution.high:
        return f"{value!r} is outside [{distribution.low}, {distribution.high}]"
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        steps = (value - distribution.low) / distribution.step
        if abs(steps - round(steps)) > 1e-8 * max(1.0, abs(steps)):
            return f"{value!r} is not on the step {distribution.step} grid from {distribution.low}"
    return None
