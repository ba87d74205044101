from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import migrate, optuna_tables
from service.db import Database
from service.narrowing import box_contains, full_box
from service.rounds import (
    advance,
    create_first_round,
    open_next_round,
    preview_next_round,
    round_counts,
    round_is_finished,
    top_trials,
)
from service.spec import StudySpec
from service.tables import Round, Study, Trial, utcnow

NOW = utcnow()
_trial_ids = count(1)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate.upgrade(db_url)  # the migrations, whose triggers keep the round counters
    database = Database(db_url)
    yield database
    database.dispose()


def _spec(example: dict[str, Any], **changes: Any) -> StudySpec:
    return StudySpec.model_validate({**example, **changes})


def _study(session: Session, spec: StudySpec) -> Study:
    # Optuna's study row first: a round's box is published to it in the same transaction.
    study_id = optuna_tables.create_study(
        session, name=spec.name, direction=spec.objective.direction, metric=spec.objective.metric
    )
    study = Study(
        id=study_id,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        direction=spec.objective.direction,
        metric=spec.objective.metric,
        status="running",
        current_round=1,
        # A study is known by id, name and creation time (service.caches): each test's is new.
        created_at=utcnow(),
        updated_at=NOW,
    )
    session.add(study)
    session.flush()
    create_first_round(session, study=study, spec=spec, now=NOW)
    session.flush()
    return study


def _trial(
    session: Session,
    study: Study,
    *,
    number: int,
    state: str = "complete",
    value: float | None = None,
    round: int = 1,
    config_number: int | None = None,
    attempt: int = 0,
    **params: Any,
) -> Trial:
    base = {
        "lr": 0.01,
        "hidden_units": 75,
        "n_layers": 3,
        "batch_size": 128,
        "optimizer": "adam",
        "keep_prob": 0.8,
    }
    trial = Trial(
        study_id=study.id,
        trial_id=next(_trial_ids),
        number=number,
        round=round,
        config_number=number if config_number is None else config_number,
        attempt=attempt,
        state=state,
        params={**base, **params},
        value=value if value is not None or state != "complete" else float(number),
        started_at=NOW,
        updated_at=NOW,
    )
    session.add(trial)
    session.flush()
    return trial


def test_top_trials_rank_completed_trials_by_the_direction(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example))
        for number, value in enumerate([0.5, 0.9, 0.7, 0.1]):
            _trial(session, study, number=number, value=value)
        _trial(session, study, number=4, state="pruned", value=0.99)
        _trial(session, study, number=5, state="running")
        assert [t.number for t in top_trials(session, study=study, limit=3)] == [1, 2, 0]
        study.direction = "minimize"
        assert [t.number for t in top_trials(session, study=study, limit=2)] == [3, 0]
        assert top_trials(session, study=study, limit=0) == []


def test_round_counts_count_configurations_not_attempts(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example))
        _trial(session, study, number=0)
        _trial(session, study, number=1, state="failed")
        _trial(session, study, number=2, state="failed")
        _trial(session, study, number=3, state="running", config_number=1, attempt=1)
        _trial(session, study, number=4, state="pruned", value=0.1)
        _trial(session, study, number=5, state="running", round=2)
        counts = round_counts(session, study_id=study.id, round=1)
    assert counts == {
        "started": 4,
        "running": 1,
        "complete": 1,
        "pruned": 1,
        "failed": 1,
        "interrupted": 0,
        "cancelled": 0,
    }


def test_a_round_is_finished_when_its_budget_ran_and_nothing_is_left(
    db: Database, example: dict[str, Any]
) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example, rounds=[{"trials": 3}, {"trials": 2}]))

        def finished(pending: int = 0) -> bool:
            return round_is_finished(session, study=study, round=1, pending_retries=pending)

        _trial(session, study, number=0)
        _trial(session, study, number=1, state="failed")
        assert not finished()  # budget not reached
        running = _trial(session, study, number=2, state="running")
        assert not finished()  # a trial still runs
        running.state = "pruned"
        session.flush()
        assert not finished(pending=1)  # a failed configuration waits for its retry
        assert finished()
        assert not round_is_finished(session, study=study, round=7, pending_retries=0)


def test_preview_narrows_around_the_best_completed_trials(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example))
        for number in range(10):
            _trial(session, study, number=number, value=float(number), lr=10 ** (-4 + 0.4 * number))
        _trial(session, study, number=10, state="pruned", value=100.0, lr=1e-4)
        box = preview_next_round(session, study=study)
    # top = max(3, ceil(0.2 * 10)) = 3: lr of trials 9, 8, 7 spans 10**-1.2 .. 10**-0.4, 1.6 decades
    # with the margin; the box keeps half of the 4 decades (min_width 0.5) inside the bounds
    assert box["lr"]["low"] == pytest.approx(1e-2)  # type: ignore[typeddict-item]
    assert box["lr"]["high"] == 1.0  # type: ignore[typeddict-item]
    assert box_contains(box, {"lr": 10**-0.4})
    assert not box_contains(box, {"lr": 1e-3})


def test_preview_with_no_completed_trial_keeps_the_box(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example))
        _trial(session, study, number=0, state="failed")
        assert preview_next_round(session, study=study) == full_box(_spec(example))


def test_opening_the_next_round_closes_the_current_one_with_its_best(
    db: Database, example: dict[str, Any]
) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example))
        for number in range(4):
            _trial(session, study, number=number, value=number / 10)
        opened = open_next_round(session, study=study, now=NOW + timedelta(seconds=5))
        first = session.get(Round, (study.id, 1))
        assert first is not None
        assert (first.status, first.best_value, first.best_trial_number) == ("closed", 0.3, 3)
        assert first.closed_at == NOW + timedelta(seconds=5)
        assert (opened.number, opened.budget, opened.status) == (2, 15, "open")
        assert study.current_round == 2
        assert box_contains(opened.box, {"lr": 0.01, "keep_prob": 0.8})  # type: ignore[arg-type]


def test_a_round_can_be_opened_by_hand_with_an_explicit_box(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example))
        opened = open_next_round(
            session, study=study, box={"lr": {"low": 0.001, "high": 0.01}}, trials=7, now=NOW
        )
        assert opened.budget == 7
        assert opened.box["lr"] == {"low": 0.001, "high": 0.01}
        assert opened.box["keep_prob"] == {"low": 0.5, "high": 1.0}
        with pytest.raises(ValueError, match="box.lr"):
            open_next_round(session, study=study, box={"lr": {"low": 0.01, "high": 2.0}}, now=NOW)
        assert study.current_round == 2


def test_a_round_past_the_spec_needs_a_budget(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example, rounds=[{"trials": 2}]))
        with pytest.raises(ValueError, match="trials"):
            open_next_round(session, study=study, now=NOW)
        study.status = "completed"
        opened = open_next_round(session, study=study, trials=5, now=NOW)
        assert (opened.number, opened.budget, study.status) == (2, 5, "running")


def test_advance_opens_the_next_round_then_completes_the_study(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example, rounds=[{"trials": 2}, {"trials": 1}]))
        _trial(session, study, number=0, value=0.5)
        assert not advance(session, study=study, pending_retries=0, now=NOW)
        _trial(session, study, number=1, value=0.6)
        assert not advance(session, study=study, pending_retries=1, now=NOW)
        assert advance(session, study=study, pending_retries=0, now=NOW)
        assert study.current_round == 2
        assert not advance(session, study=study, pending_retries=0, now=NOW)
        _trial(session, study, number=2, value=0.4, round=2)
        assert advance(session, study=study, pending_retries=0, now=NOW)
        assert study.status == "completed"
        last = session.get(Round, (study.id, 2))
        assert last is not None and (last.status, last.best_trial_number) == ("closed", 2)
        assert not advance(session, study=study, pending_retries=0, now=NOW)
        assert session.scalar(select(func.count()).select_from(Round)) == 2


def test_a_stopped_study_does_not_advance(db: Database, example: dict[str, Any]) -> None:
    with db.transaction() as session:
        study = _study(session, _spec(example, rounds=[{"trials": 1}, {"trials": 1}]))
        _trial(session, study, number=0, value=0.5)
        study.status = "stopped"
        assert not advance(session, study=study, pending_retries=0, now=NOW)
        assert study.current_round == 1
