"""Study locks on PostgreSQL: what keeps several API processes on one database exact.

Two apps on one database stand for two API processes (each its own engine, pool and
Optuna storage); on PostgreSQL ``Database.process_lock`` does nothing, so threads of one
app contend only through the database's advisory locks, as processes do.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from service import grants, outcomes, study_locks
from service.db import Database
from service.deps import backend_for
from service.grants import Grant
from service.tables import Worker, utcnow
from tests.api.conftest import Api

pytestmark = pytest.mark.postgres
THREADS = 16


def test_a_study_lock_is_held_by_one_transaction_until_it_ends(postgres_url: str) -> None:
    # A bare Database, no app: an app's own reaper would take the reaper's lock now and then.
    db = Database(postgres_url)
    try:
        with db.transaction() as first:
            study_locks.lock_study(first, 1)
            assert study_locks.try_lock_reaper(first)
            with db.transaction() as second:
                assert not study_locks.try_lock_study(second, 1)
                assert study_locks.try_lock_study(second, 2)
                assert not study_locks.try_lock_reaper(second)
        with db.transaction() as later:
            assert study_locks.try_lock_study(later, 1)
            assert study_locks.try_lock_reaper(later)
    finally:
        db.dispose()


def race(apis: list[Api], study_id: int, *, per_thread: int) -> list[Grant]:
    """``THREADS`` threads, alternating between the apps, each asking for up to
    ``per_thread`` leases on the study at once."""
    start = threading.Barrier(THREADS)

    def ask(index: int) -> list[Grant]:
        backend = backend_for(apis[index % len(apis)].app)
        start.wait()
        got = []
        for _ in range(per_thread):
            grant = grants.grant_lease(
                backend, worker=f"w{index}", devices=["cpu"], studies=[study_id], now=utcnow()
            )
            if grant is None:
                break
            got.append(grant)
        return got

    with ThreadPoolExecutor(THREADS) as pool:
        return [grant for got in pool.map(ask, range(THREADS)) for grant in got]


@pytest.mark.parametrize("sampler", [{"type": "random", "seed": 1}, {"type": "tpe", "seed": 1}])
def test_grants_racing_from_two_apps_start_exactly_the_rounds_budget(
    sampler: dict[str, Any], postgres_url: str, make_api: Callable[..., Api]
) -> None:
    apis = [make_api(postgres_url), make_api(postgres_url)]
    study = apis[0].create_study(name="race", sampler=sampler, rounds=[{"trials": 10}, {"trials": 5}])
    granted = race(apis, study["id"], per_thread=3)
    # Round 1's 10 configurations, each once; round 2 waits for their results.
    assert sorted(g.number for g in granted) == list(range(10))
    assert {g.round for g in granted} == {1}


def test_grants_racing_from_two_apps_respect_max_concurrent(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    apis = [make_api(postgres_url), make_api(postgres_url)]
    study = apis[0].create_study(name="narrow", max_concurrent=3, rounds=[{"trials": 50}])
    granted = race(apis, study["id"], per_thread=2)
    assert len(granted) == 3


def test_a_result_does_not_wait_for_its_studys_lock_while_the_round_has_room(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    # A complete changes no budget: it must not queue behind a grant (or anything else)
    # holding the study's lock, or one study's results are serial across API processes.
    api = make_api(postgres_url)
    backend = backend_for(api.app)
    study = api.create_study(name="free", rounds=[{"trials": 20}])
    grant = grants.grant_lease(backend, worker="w", devices=["cpu"], studies=[study["id"]], now=utcnow())
    assert grant is not None
    holder = Database(postgres_url)
    try:
        # The transaction ends before the pool waits for its thread.
        with ThreadPoolExecutor(1) as pool, holder.transaction() as held:
            study_locks.lock_study(held, study["id"])
            done = pool.submit(
                outcomes.finish, backend, lease_id=grant.lease_id, outcome="complete", value=0.5, now=utcnow()
            )
            try:
                finished = done.result(timeout=10)
            except TimeoutError:
                pytest.fail("the result waited for its study's lock")
        assert finished.state == "complete"
    finally:
        holder.dispose()


def test_a_result_that_may_end_the_round_waits_for_its_studys_lock(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(postgres_url)
    backend = backend_for(api.app)
    study = api.create_study(name="last", rounds=[{"trials": 1}, {"trials": 2}])
    grant = grants.grant_lease(backend, worker="w", devices=["cpu"], studies=[study["id"]], now=utcnow())
    assert grant is not None
    holder = Database(postgres_url)
    try:
        with ThreadPoolExecutor(1) as pool:
            with holder.transaction() as held:
                study_locks.lock_study(held, study["id"])
                done = pool.submit(
                    outcomes.finish,
                    backend,
                    lease_id=grant.lease_id,
                    outcome="complete",
                    value=0.5,
                    now=utcnow(),
                )
                with pytest.raises(TimeoutError):
                    done.result(timeout=1)  # the round's last result: it waits for the study
            assert done.result(timeout=10).state == "complete"
        assert api.get(f"/studies/{study['id']}").json()["current_round"] == 2
    finally:
        holder.dispose()


@pytest.mark.parametrize("sampler", [{"type": "random", "seed": 1}, {"type": "tpe", "seed": 1}])
def test_results_racing_from_two_apps_end_the_round_once(
    sampler: dict[str, Any], postgres_url: str, make_api: Callable[..., Api]
) -> None:
    apis = [make_api(postgres_url), make_api(postgres_url)]
    study = apis[0].create_study(name="ends", sampler=sampler, rounds=[{"trials": THREADS}, {"trials": 4}])
    granted = race(apis, study["id"], per_thread=1)
    assert len(granted) == THREADS
    start = threading.Barrier(THREADS)

    def finish(index: int) -> str:
        backend = backend_for(apis[index % len(apis)].app)
        start.wait()
        outcome = "prune" if index % 4 == 0 else "complete"
        value = None if outcome == "prune" else float(index)
        return outcomes.finish(
            backend, lease_id=granted[index].lease_id, outcome=outcome, value=value, now=utcnow()
        ).state

    with ThreadPoolExecutor(THREADS) as pool:
        states = list(pool.map(finish, range(THREADS)))
    assert states.count("complete") == THREADS - THREADS // 4
    # Whichever result came last under the lock saw every other one: round 2 is open, once.
    shown = apis[1].get(f"/studies/{study['id']}").json()
    assert shown["current_round"] == 2
    rounds = apis[1].get(f"/studies/{study['id']}/rounds").json()
    assert [r["number"] for r in rounds] == [1, 2]
    assert rounds[0]["closed_at"] is not None and rounds[1]["closed_at"] is None
    after = race(apis, study["id"], per_thread=1)
    assert sorted(g.number for g in after) == list(range(THREADS, THREADS + 4))
    assert {g.round for g in after} == {2}


def _queued_grants(api: Api, studies: list[int], *, asks: int) -> tuple[list[Grant | None], int]:
    """``asks`` lease requests in one app, all but the first queued while the first waits
    for the studies' locks (held by another connection); the answers, in order of asking,
    and how many transactions answered them."""
    backend = backend_for(api.app)
    queue = backend.db.grant_queue
    before = queue.batches

    def ask(index: int) -> Grant | None:
        return grants.grant_lease(backend, worker=f"w{index}", devices=["cpu"], studies=None, now=utcnow())

    holder = Database(api.url)
    try:
        with ThreadPoolExecutor(asks) as pool:
            with holder.transaction() as held:
                study_locks.lock_studies(held, studies)
                answers = [pool.submit(ask, 0)]
                _wait_for(lambda: queue._serving)
                for index in range(1, asks):
                    answers.append(pool.submit(ask, index))
                    _wait_for(lambda index=index: len(queue._queue) == index)  # type: ignore[misc]
            return [answer.result(timeout=30) for answer in answers], queue.batches - before
    finally:
        holder.dispose()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.mark.parametrize(
    ("trials", "max_concurrent", "granted"),
    [(20, None, 8), (5, None, 5), (20, 3, 3)],
    ids=["room", "budget", "max"],
)
def test_lease_requests_queued_in_one_process_are_granted_together(
    trials: int, max_concurrent: int | None, granted: int, postgres_url: str, make_api: Callable[..., Api]
) -> None:
    """Issue #24: requests that wait while another is served are answered in one
    transaction (one turn of the study's lock), within the round's budget and
    max_concurrent, each with its own trial and each worker's record holding it."""
    api = make_api(postgres_url)
    study = api.create_study(name="queued", rounds=[{"trials": trials}], max_concurrent=max_concurrent)
    answers, batches = _queued_grants(api, [study["id"]], asks=8)
    got = [answer for answer in answers if answer is not None]
    assert sorted(g.number for g in got) == list(range(granted))
    assert len({g.lease_id for g in got}) == granted
    if granted == 8:
        assert batches == 2  # the first alone (it waited for the lock), then the other seven
    with api.db.reading() as session:
        holds = {w.id: w.current_trial_number for w in session.scalars(select(Worker))}
    assert holds == {f"w{i}": (answer.number if answer else None) for i, answer in enumerate(answers)}
    assert api.get(f"/studies/{study['id']}").json()["counts"]["running"] == granted


def test_a_batch_of_grants_shares_the_workers_between_studies(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(postgres_url)
    studies = [api.create_study(name=name)["id"] for name in ("a", "b")]
    answers, _ = _queued_grants(api, studies, asks=8)
    served = Counter(answer.study_id for answer in answers if answer is not None)
    assert sum(served.values()) == 8
    assert max(served.values()) - min(served.values()) <= 2, served  # not all seven queued to one


def test_studies_without_room_do_not_shrink_a_turn(postgres_url: str, make_api: Callable[..., Api]) -> None:
    """A turn divides the queue among the studies that may have work: three running
    studies waiting for their round's results take no share from the one with room."""
    api = make_api(postgres_url)
    backend = backend_for(api.app)
    waiting = [api.create_study(name=name, rounds=[{"trials": 1}, {"trials": 1}])["id"] for name in "bcd"]
    for study_id in waiting:  # each round's one configuration runs: no room until its result
        assert grants.grant_lease(backend, worker="x", devices=["cpu"], studies=[study_id], now=utcnow())
    open_study = api.create_study(name="a", rounds=[{"trials": 20}])["id"]
    answers, batches = _queued_grants(api, [open_study, *waiting], asks=8)
    assert [answer.study_id if answer else None for answer in answers] == [open_study] * 8
    assert batches == 2


def test_requests_for_the_same_studies_learn_together_that_there_is_no_work(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(postgres_url)
    backend = backend_for(api.app)
    study = api.create_study(name="full", rounds=[{"trials": 1}, {"trials": 1}])["id"]
    assert grants.grant_lease(backend, worker="x", devices=["cpu"], studies=None, now=utcnow())
    answers, batches = _queued_grants(api, [study], asks=6)
    assert answers == [None] * 6
    assert batches == 2  # the first alone (it waited for the lock), then the other five at once
    with api.db.reading() as session:
        assert {w.id for w in session.scalars(select(Worker))} == {"x", *(f"w{i}" for i in range(6))}
