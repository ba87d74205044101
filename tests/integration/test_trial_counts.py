"""The trial counters (``hone_trial_counts``) that database triggers keep, on a real SQLite
file and a real PostgreSQL: whatever happens to ``hone_trials`` (inserts, state changes,
deletes, rolled-back transactions, concurrent writers, a migration over existing trials),
the counters equal a GROUP BY over the trials themselves."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, case, create_engine, delete, func, insert, select, text, update
from sqlalchemy.pool import NullPool

from service import migrate
from service.db import Database
from service.results import counts_by_round, counts_by_study
from service.tables import Study, Trial, TrialCount

NOW = datetime(2026, 11, 25, tzinfo=UTC)
STATES = ("running", "complete", "pruned", "failed")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    migrate.upgrade(db_url)
    engine = create_engine(db_url, poolclass=NullPool)
    with engine.begin() as conn:
        for study_id in (1, 2):
            conn.execute(insert(Study).values(**_study(study_id)))
    yield engine
    engine.dispose()


def _study(study_id: int) -> dict[str, object]:
    return {
        "id": study_id,
        "name": f"s{study_id}",
        "spec": {},
        "direction": "minimize",
        "metric": "loss",
        "status": "running",
        "current_round": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _trial(study_id: int, number: int, *, round: int = 1, attempt: int = 0, state: str = "running") -> dict:
    return {
        "study_id": study_id,
        "trial_id": study_id * 100_000 + number,
        "number": number,
        "round": round,
        "config_number": number,
        "attempt": attempt,
        "state": state,
        "params": {},
        "started_at": NOW,
        "updated_at": NOW,
    }


def _counted(engine: Engine) -> dict[tuple[int, int, str], tuple[int, int]]:
    """The counters summed over stripes (each writing connection's share on PostgreSQL)."""
    cell = (TrialCount.study_id, TrialCount.round, TrialCount.state)
    query = select(*cell, func.sum(TrialCount.trials), func.sum(TrialCount.configurations)).group_by(*cell)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {(s, r, st): (int(n), int(c)) for s, r, st, n, c in rows if n != 0}


def _truth(engine: Engine) -> dict[tuple[int, int, str], tuple[int, int]]:
    first = func.sum(case((Trial.attempt == 0, 1), else_=0))
    query = select(Trial.study_id, Trial.round, Trial.state, func.count(), first).group_by(
        Trial.study_id, Trial.round, Trial.state
    )
    with engine.connect() as conn:
        return {(s, r, st): (n, int(c)) for s, r, st, n, c in conn.execute(query)}


def test_counters_follow_every_kind_of_change(engine: Engine) -> None:
    rng = random.Random(7)
    numbers = {1: 0, 2: 0}
    for step in range(12):
        with engine.begin() as conn:
            for _ in range(rng.randint(1, 8)):  # new trials: first attempts and retries
                study_id = rng.choice((1, 2))
                conn.execute(
                    insert(Trial).values(
                        **_trial(
                            study_id,
                            numbers[study_id],
                            round=rng.randint(1, 3),
                            attempt=rng.choice((0, 0, 1)),
                        )
                    )
                )
                numbers[study_id] += 1
            ids = list(conn.scalars(select(Trial.id)))
            for trial_id in rng.sample(ids, k=min(len(ids), 4)):
                conn.execute(update(Trial).where(Trial.id == trial_id).values(state=rng.choice(STATES)))
            for trial_id in rng.sample(ids, k=min(len(ids), 2)):  # columns the counts ignore
                conn.execute(update(Trial).where(Trial.id == trial_id).values(value=rng.random()))
            conn.execute(update(Trial).where(Trial.id == rng.choice(ids)).values(round=4, attempt=2))
            if step % 3 == 2:
                conn.execute(delete(Trial).where(Trial.id.in_(rng.sample(ids, k=3))))
        assert _counted(engine) == _truth(engine), f"after step {step}"
    assert len(_truth(engine)) > 8  # the walk reached many (study, round, state) cells


def test_a_rolled_back_change_leaves_the_counters_alone(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Trial).values(**_trial(1, 0)))
    before = _counted(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(insert(Trial).values(**_trial(1, 1)))
        conn.execute(update(Trial).where(Trial.number == 0).values(state="complete"))
        raise RuntimeError("the process dies mid-transaction")
    assert _counted(engine) == before == {(1, 1, "running"): (1, 1)}


def test_the_service_reads_its_counts_from_the_counters(engine: Engine, db_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Trial), [_trial(1, n, round=1 + n % 2, state=STATES[n % 4]) for n in range(10)])
        conn.execute(insert(Trial).values(**_trial(1, 10, round=2, attempt=1, state="complete")))
        # A counter that disagrees with the trials shows which one the service read.
        conn.execute(update(TrialCount).where(TrialCount.state == "failed").values(trials=99))
    db = Database(db_url)
    try:
        with db.reading() as session:
            study = counts_by_study(session, study_ids=[1, 2])
            rounds = counts_by_round(session, study_id=1)
    finally:
        db.dispose()
    assert (study[1].running, study[1].complete, study[1].pruned, study[1].failed) == (3, 4, 2, 99)
    assert study[2].total == 0
    assert (rounds[1].running, rounds[1].pruned, rounds[1].total, rounds[1].configurations) == (3, 2, 5, 5)
    # Trial 10 is a retry: a complete trial, not a new configuration.
    assert (rounds[2].complete, rounds[2].failed, rounds[2].configurations) == (4, 99, 5)


def test_deleting_a_study_deletes_its_counters(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Trial), [_trial(study_id, 0) for study_id in (1, 2)])
        conn.execute(delete(Trial).where(Trial.study_id == 1))
        conn.execute(delete(TrialCount).where(TrialCount.study_id == 1))
        conn.execute(delete(Study).where(Study.id == 1))
    assert _counted(engine) == {(2, 1, "running"): (1, 1)}


def test_the_migration_counts_the_trials_already_there(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Study).values(**_study(1)))
            conn.execute(
                insert(Trial), [_trial(1, n, round=1 + n % 3, state=STATES[n % 4]) for n in range(50)]
            )
        migrate.upgrade(db_url)
        assert _counted(engine) == _truth(engine)
        with engine.begin() as conn:  # and the triggers are live after it
            conn.execute(update(Trial).where(Trial.state == "running").values(state="failed"))
        assert _counted(engine) == _truth(engine)
        migrate.downgrade(db_url, "0001")
        migrate.upgrade(db_url)
        assert _counted(engine) == _truth(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_writers_neither_deadlock_nor_lose_a_count(postgres_url: str) -> None:
    """Workers finishing trials of one round at once, while grants add new ones: every
    transaction touches the round's "running" counter row, in the same order."""
    migrate.upgrade(postgres_url)
    engine = create_engine(postgres_url, pool_size=8)
    with engine.begin() as conn:
        conn.execute(insert(Study).values(**_study(1)))
        conn.execute(insert(Trial), [_trial(1, n) for n in range(200)])
    errors: list[BaseException] = []

    def finish(numbers: range) -> None:
        try:
            for number in numbers:
                with engine.begin() as conn:
                    conn.execute(
                        update(Trial)
                        .where(Trial.number == number)
                        .values(state=STATES[1 + number % 3], value=float(number))
                    )
                    conn.execute(insert(Trial).values(**_trial(1, 1000 + number)))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(range(k, 200, 8),)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        assert _counted(engine) == _truth(engine)
        assert _counted(engine)[(1, 1, "running")] == (200, 200)
    finally:
        engine.dispose()


def test_deleting_a_study_row_cascades_without_a_count_left_behind(engine: Engine) -> None:
    """A study deleted by its row alone (another tool, a cascade): its trials' removal
    finds no study to count for, and nothing of it is left."""
    with engine.begin() as conn:
        conn.execute(insert(Trial), [_trial(study_id, n) for study_id in (1, 2) for n in range(3)])
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("PRAGMA foreign_keys=ON"))  # hone's engine turns them on too
        conn.execute(delete(Study).where(Study.id == 1))
    assert _counted(engine) == _truth(engine) == {(2, 1, "running"): (3, 3)}


@pytest.mark.postgres
def test_results_on_different_connections_do_not_queue_on_one_counter(postgres_url: str) -> None:
    """Issue #24: every grant and result of a round changes its "running" count. Counted on
    one row, they queued on its lock until each committed; each connection now counts in
    its own stripe, so two results of one round, on two connections, do not wait."""
    migrate.upgrade(postgres_url)
    engine = create_engine(postgres_url, pool_size=20)
    with engine.begin() as conn:
        conn.execute(insert(Study).values(**_study(1)))
        conn.execute(insert(Trial), [_trial(1, n) for n in range(2)])
    held = []
    try:
        # Two connections whose backends count in different stripes (pid modulo 16).
        stripes: dict[int, Any] = {}
        while len(stripes) < 2:
            conn = engine.connect()
            held.append(conn)
            stripes.setdefault(int(conn.execute(text("SELECT pg_backend_pid() % 16")).scalar_one()), conn)
        first, second = stripes.values()
        first.execute(update(Trial).where(Trial.number == 0).values(state="complete"))  # not committed
        second.execute(text("SET lock_timeout = '3s'"))
        second.execute(update(Trial).where(Trial.number == 1).values(state="pruned"))  # would time out
        second.commit()
        first.commit()
        assert _counted(engine) == _truth(engine) == {(1, 1, "complete"): (1, 1), (1, 1, "pruned"): (1, 1)}
    finally:
        for conn in held:
            conn.close()
        engine.dispose()
