"""The round lifecycle of a study on hone's tables: coarse to fine.

Round 1 samples the whole space. When every configuration of round r has finished
(complete, pruned, failed or cancelled, none running and no retry pending: an interrupted
trial is re-queued, so its configuration is pending), round r+1 opens with a box narrowed
around the best completed trials so far (``service.narrowing``), or the study completes
after its last round. A round never opens from zero completed trials: a round that ends
while the study has none fails the study (:mod:`service.failures`), after its last round
as well as before. A person can also preview the next box and
open a round by hand, with an explicit box, even past the spec's last round.

Functions take the caller's ``Session`` and never commit: the caller owns the
transaction. Everything is counted and ranked in SQL (COUNT, ORDER BY ... LIMIT), so a
study of 100,000 trials costs no more than one of 10. A round's box and budget are shown
in optuna-dashboard too (study user attributes), written in the same transaction.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from service import failures, optuna_tables, study_locks
from service.caches import study_spec
from service.narrowing import Box, full_box, narrow, validate_box
from service.results import configurations_started
from service.spec import StudySpec
from service.tables import Round, Study, Trial

FINISHED_STATES = ("complete", "pruned", "failed", "interrupted", "cancelled")


class RoundCounts(TypedDict):
    """Configurations of one round. ``started`` counts first attempts (the budget's unit);
    the state counts take each configuration's latest attempt."""

    started: int
    running: int
    complete: int
    pruned: int
    failed: int
    interrupted: int
    cancelled: int


def create_first_round(session: Session, *, study: Study, spec: StudySpec, now: datetime) -> Round:
    """Round 1 over the whole space, for a study just inserted."""
    first = Round(
        study_id=study.id,
        number=1,
        budget=spec.rounds[0].trials,
        box=dict(full_box(spec)),
        status="open",
        opened_at=now,
    )
    session.add(first)
    study.current_round = 1
    _publish(session, first)
    return first


def epochs(spec: StudySpec, round: Round) -> int:
    """The epochs each trial of ``round`` trains."""
    return round.max_epochs if round.max_epochs is not None else spec.objective.max_epochs


def round_epochs(session: Session, *, study_id: int, round: int, spec: StudySpec) -> int:
    """The epochs each trial of round number ``round`` trains."""
    value = session.scalar(select(Round.max_epochs).where(Round.study_id == study_id, Round.number == round))
    return value if value is not None else spec.objective.max_epochs


def room(study_id: Any, round: Any) -> ColumnElement[int]:
    """Configurations the round's budget still lets start (its budget less the first
    attempts so far), as an SQL expression; negative never, zero when the budget is out."""
    return Round.budget - configurations_started(study_id, round).scalar_subquery()


def room_in_round(session: Session, *, study_id: int, round: int) -> int:
    """:func:`room` of one round (0 when there is no such round)."""
    return int(session.connection().scalar(_ROOM_IN_ROUND, {"study": study_id, "round": round}) or 0)


# Built once: every result asks it.
_ROOM_IN_ROUND = select(room(bindparam("study"), bindparam("round"))).where(
    Round.study_id == bindparam("study"), Round.number == bindparam("round")
)


def current_round(session: Session, *, study: Study) -> Round:
    found = session.get(Round, (study.id, study.current_round))
    if found is None:
        raise LookupError(f"study {study.id} has no round {study.current_round}")
    return found


def top_trials(session: Session, *, study: Study, limit: int, round: int | None = None) -> list[Trial]:
    """The best completed trials of the study (or of one round), best first."""
    if limit <= 0:
        return []
    order = Trial.value.desc() if study.direction == "maximize" else Trial.value.asc()
    query = select(Trial).where(
        Trial.study_id == study.id, Trial.state == "complete", Trial.value.is_not(None)
    )
    if round is not None:
        query = query.where(Trial.round == round)
    return list(session.scalars(query.order_by(order, Trial.number).limit(limit)))


def round_counts(session: Session, *, study_id: int, round: int) -> RoundCounts:
    """How many configurations of the round started, and where each one's latest attempt is."""
    started = session.scalar(configurations_started(study_id, round))
    later = aliased(Trial)
    newer_attempt = (
        select(later.id)
        .where(
            and_(
                later.study_id == Trial.study_id,
                later.config_number == Trial.config_number,
                later.attempt > Trial.attempt,
            )
        )
        .exists()
    )
    rows = session.execute(
        select(Trial.state, func.count())
        .where(Trial.study_id == study_id, Trial.round == round, ~newer_attempt)
        .group_by(Trial.state)
    ).all()
    by_state = {str(state): int(count) for state, count in rows}
    return {
        "started": int(started or 0),
        "running": int(by_state.get("running", 0)),
        "complete": int(by_state.get("complete", 0)),
        "pruned": int(by_state.get("pruned", 0)),
        "failed": int(by_state.get("failed", 0)),
        "interrupted": int(by_state.get("interrupted", 0)),
        "cancelled": int(by_state.get("cancelled", 0)),
    }


def round_is_finished(session: Session, *, study: Study, round: int, pending_retries: int) -> bool:
    """Whether the round's budget has started and every configuration has finished.

    ``pending_retries`` is the number of configurations waiting to be retried (the
    caller counts Optuna's WAITING trials): until they run, the round is not over.
    """
    if pending_retries > 0 or session.get(Round, (study.id, round)) is None:
        return False
    # Every grant and result asks this: settle the common "budget not started yet" from the
    # round's counter rows before grouping its configurations by their latest attempt.
    if room_in_round(session, study_id=study.id, round=round) > 0:
        return False
    return round_counts(session, study_id=study.id, round=round)["running"] == 0


def preview_next_round(session: Session, *, study: Study) -> Box:
    """The box the next round would sample, narrowed around the best completed trials."""
    spec = study_spec(study)
    box: Box = current_round(session, study=study).box
    completed = session.scalar(
        select(func.count())
        .select_from(Trial)
        .where(Trial.study_id == study.id, Trial.state == "complete", Trial.value.is_not(None))
    )
    n_complete = int(completed or 0)
    rule = spec.narrowing
    n_top = min(n_complete, max(rule.min_top, math.ceil(rule.top_fraction * n_complete)))
    top = top_trials(session, study=study, limit=n_top)
    return narrow(
        spec=spec, box=box, top=[t.params for t in top], margin=rule.margin, min_width=rule.min_width
    )


def close_round(session: Session, *, study: Study, now: datetime) -> Round:
    """Closes the study's current round, recording its best trial."""
    current = current_round(session, study=study)
    if current.status != "closed":
        best = top_trials(session, study=study, limit=1, round=current.number)
        current.status = "closed"
        current.closed_at = now
        current.best_value = best[0].value if best else None
        current.best_trial_number = best[0].number if best else None
    return current


def open_next_round(
    session: Session,
    *,
    study: Study,
    box: dict[str, Any] | None = None,
    proposed: Box | None = None,
    trials: int | None = None,
    max_epochs: int | None = None,
    now: datetime,
) -> Round:
    """Closes the current round and opens the next one.

    The budget is ``trials`` or the spec's next round; past the spec's last round (a
    round opened by hand) ``trials`` is required. ``box`` (a user's, validated against
    the spec) or ``proposed`` (hone's own, built inside the spec's bounds: the basic
    recipe's) replaces the narrowed box. ``max_epochs`` (at most the objective's
    ``epochs_limit``) sets the epochs each trial of the round trains; else the round keeps
    the current round's. A completed or failed study runs again. Raises ValueError.
    """
    spec = study_spec(study)
    number = study.current_round + 1
    if trials is None:
        if number > len(spec.rounds):
            raise ValueError(
                f"trials: the spec has {len(spec.rounds)} rounds; give a budget for round {number}"
            )
        trials = spec.rounds[number - 1].trials
    if not 1 <= trials <= 100_000:
        raise ValueError("trials: must be between 1 and 100000")
    limit = spec.objective.epochs_limit
    if max_epochs is not None and not 1 <= max_epochs <= limit:
        raise ValueError(
            f"max_epochs: must be between 1 and {limit} (objective.max_epochs_limit, "
            f"else 4 × objective.max_epochs); got {max_epochs}"
        )
    if proposed is not None:
        next_box = proposed
    elif box is not None:
        next_box = validate_box(spec, box)
    else:
        next_box = preview_next_round(session, study=study)
    closing = close_round(session, study=study, now=now)
    opened = Round(
        study_id=study.id,
        number=number,
        budget=trials,
        box=dict(next_box),
        status="open",
        opened_at=now,
        # A raised epoch count stays: the search learned its networks need it.
        max_epochs=max_epochs if max_epochs is not None else closing.max_epochs,
    )
    session.add(opened)
    study.current_round = number
    study.updated_at = now
    if study.status in ("completed", "failed"):
        study.status = "running"
        failures.clear_failure(session, study=study)
    session.flush()
    _publish(session, opened)
    return opened


def advance(session: Session, *, study: Study, now: datetime, pending_retries: int | None = None) -> bool:
    """Moves a study on when its current round has finished: opens the next round or,
    after the last, completes the study. Returns whether anything changed.
    ``pending_retries``: configurations waiting to run again (Optuna's WAITING trials,
    counted here when not given).

    The study row is re-read ``FOR UPDATE`` (PostgreSQL) so concurrent callers agree.
    """
    session.flush()  # refresh would otherwise drop the caller's pending changes to the study
    session.refresh(study, with_for_update=True)
    if study.status in ("stopped", "completed", "failed"):
        return False
    if pending_retries is None:
        pending_retries = int(session.scalar(select(optuna_tables.waiting_query(study.id))) or 0)
    if not round_is_finished(
        session, study=study, round=study.current_round, pending_retries=pending_retries
    ):
        return False
    if not _completed(session, study=study):
        counts = round_counts(session, study_id=study.id, round=study.current_round)
        top = failures.failure_groups(session, study_id=study.id)
        close_round(session, study=study, now=now)
        failures.fail_study(
            session,
            study=study,
            failure=f"round {study.current_round} ended without a completed trial in the study "
            f"({counts['failed']} failed, {counts['pruned']} pruned)"
            + (f"; most often: {top[0].reason}" if top else ""),
            now=now,
        )
        return True
    if study.current_round < len(study_spec(study).rounds):
        open_next_round(session, study=study, now=now)
        return True
    close_round(session, study=study, now=now)
    study.status = "completed"
    study.updated_at = now
    return True


def _completed(session: Session, *, study: Study) -> bool:
    """Whether the study has a completed trial with a value (what narrowing needs)."""
    query = select(Trial.id).where(
        Trial.study_id == study.id, Trial.state == "complete", Trial.value.is_not(None)
    )
    return session.scalar(query.limit(1)) is not None


def after_result(session: Session, *, study_id: int, round: int, now: datetime, locked: bool) -> None:
    """Advance the study if a result of ``round`` may have finished it. While configurations
    of the round have still to start, the round cannot be over: one indexed count settles
    the common case.

    ``locked``: the caller holds the study's lock. A result that took no lock (its round had
    room when it began) only *tries* for it here: it holds rows now (its trial-count rows)
    that a holder of the study's lock may wait for. Passed over, the round is moved on by
    the result that ends it last under the lock, or by the next grant, which advances a
    study whose budget is out (:mod:`service.grants`).
    """
    if room_in_round(session, study_id=study_id, round=round) > 0:
        return
    if not locked and not study_locks.try_lock_study(session, study_id):
        return
    study = session.get(Study, study_id)
    assert study is not None
    advance(session, study=study, now=now)


def _publish(session: Session, round: Round) -> None:
    """Shows a round's box and budget in optuna-dashboard (study user attributes)."""
    optuna_tables.set_study_user_attr(
        session, study_id=round.study_id, key="hone_current_round", value=round.number
    )
    optuna_tables.set_study_user_attr(
        session,
        study_id=round.study_id,
        key=f"hone_round_{round.number}",
        value={"budget": round.budget, "box": round.box},
    )
