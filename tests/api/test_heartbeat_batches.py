"""Heartbeats served in batches (service.combining.Batches, service.leases.heartbeats), on
SQLite and PostgreSQL: what arrives while a batch is written goes into the next one, each
heartbeat still gets its own answer, and one lease's wait holds up no one else's.

A batch is held up on purpose by a second connection: on PostgreSQL it locks the studies
table, which every heartbeat reads; on SQLite it holds the write lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from service.tables import Trial, Worker, utcnow
from tests.api.conftest import Api
from tests.api.test_leases import WORKER, expire, granted, on


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def _held(api: Api, statements: list[str]) -> Iterator[None]:
    """A second connection holds what ``statements`` lock until the block ends (PostgreSQL)."""
    engine = create_engine(api.url)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
            yield
            conn.rollback()
    finally:
        engine.dispose()


@contextmanager
def _writes_held(api: Api) -> Iterator[None]:
    """The batch being written waits until the block ends."""
    if api.db.is_sqlite:
        conn = sqlite3.connect(str(make_url(api.url).database), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    else:
        with _held(api, ["LOCK TABLE hone_studies IN ACCESS EXCLUSIVE MODE"]):
            yield


class _Fleet:
    """Heartbeats sent from threads, as a fleet's workers send them."""

    def __init__(self, api: Api, pool: ThreadPoolExecutor) -> None:
        self.api, self.pool = api, pool
        self.queue = api.db.heartbeat_queue

    def heartbeat(self, lease_id: str) -> Future[Any]:
        return self.pool.submit(on, self.api, lease_id, "heartbeat")

    def first_batch(self, lease_id: str) -> Future[Any]:
        """A heartbeat whose batch is being written (call inside :func:`_writes_held`)."""
        sent = self.heartbeat(lease_id)
        _wait_for(lambda: self.queue._serving is not None and not self.queue._waiting)
        return sent

    def queued(self, lease_ids: list[str]) -> list[Future[Any]]:
        """Heartbeats that wait for the next batch."""
        sent = []
        for lease_id in lease_ids:
            sent.append(self.heartbeat(lease_id))
            _wait_for(lambda count=len(sent): len(self.queue._waiting) == count)  # type: ignore[misc]
        return sent


@pytest.fixture
def fleet(api: Api) -> Iterator[_Fleet]:
    with ThreadPoolExecutor(8) as pool:
        yield _Fleet(api, pool)


def _expiry(api: Api, lease_id: str) -> Any:
    with api.db.reading() as session:
        return session.scalar(select(Trial.lease_expires_at).where(Trial.lease_id == lease_id))


def test_heartbeats_that_arrive_while_a_batch_is_written_are_written_together(
    api: Api, fleet: _Fleet
) -> None:
    api.create_study()
    leases = [granted(api, worker=f"w-{i}")["lease"]["id"] for i in range(5)]
    before = utcnow()
    with _writes_held(api):
        first = fleet.first_batch(leases[0])
        rest = fleet.queued(leases[1:])
    replies = [sent.result(timeout=30) for sent in [first, *rest]]
    assert [reply.status_code for reply in replies] == [200] * 5
    assert (fleet.queue.batches, fleet.queue.answered) == (2, 5)
    grace = timedelta(seconds=api.app.state.settings.grace_period)
    for lease_id, reply in zip(leases, replies, strict=True):
        stored = _expiry(api, lease_id)
        assert stored >= before + grace  # each lease extended, and told its own expiry
        assert reply.json()["expires_at"] == stored.isoformat().replace("+00:00", "Z")
    with api.db.reading() as session:
        seen = session.scalars(select(Worker.last_seen).where(Worker.id.like("w-%"))).all()
    assert len(seen) == 5 and min(seen) >= before


def test_a_batch_answers_each_heartbeat_for_its_own_lease_live_over_or_unknown(
    api: Api, fleet: _Fleet
) -> None:
    api.create_study()
    live, expired, finished = (granted(api, worker=f"w-{i}")["lease"]["id"] for i in range(3))
    expire(api, expired)
    assert on(api, finished, "complete", {"value": 0.5}).status_code == 200
    expired_at = _expiry(api, expired)
    with _writes_held(api):
        first = fleet.first_batch(live)
        batch = fleet.queued([expired, "no-such-lease", live, finished])
    replies = [sent.result(timeout=30) for sent in [first, *batch]]
    assert [reply.status_code for reply in replies] == [200, 409, 404, 200, 409]
    assert "expired" in replies[1].json()["detail"]
    assert "no-such-lease" in replies[2].json()["detail"]
    assert "is over" in replies[4].json()["detail"]
    assert _expiry(api, expired) == expired_at  # a refused heartbeat changes nothing


def test_a_batch_tells_the_leases_of_a_stopped_study_to_cancel(api: Api, fleet: _Fleet) -> None:
    stopped = api.create_study(name="stopped")["id"]
    kept = granted(api, studies=[stopped])["lease"]["id"]
    running = api.create_study(name="running")["id"]
    other = granted(api, studies=[running], worker="w-2")["lease"]["id"]
    assert api.post(f"/studies/{stopped}/stop").status_code == 200
    with _writes_held(api):
        first = fleet.first_batch(other)
        batch = fleet.queued([kept, other])
    replies = [sent.result(timeout=30).json() for sent in [first, *batch]]
    assert [reply["cancel"] for reply in replies] == [False, True, False]


@pytest.mark.postgres
def test_a_lease_whose_row_another_transaction_holds_does_not_hold_up_its_batch(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(postgres_url)
    api.create_study()
    held, free, first_lease = (granted(api, worker=f"w-{i}")["lease"]["id"] for i in range(3))
    with ThreadPoolExecutor(8) as pool:
        fleet = _Fleet(api, pool)
        # A result or a report on `held` in progress: its row is locked until it commits.
        with _held(api, [f"SELECT 1 FROM hone_trials WHERE lease_id = '{held}' FOR UPDATE"]):
            with _writes_held(api):
                first = fleet.first_batch(first_lease)
                waiting, answered = fleet.queued([held, free])
            assert answered.result(timeout=10).status_code == 200
            assert first.result(timeout=10).status_code == 200
            time.sleep(0.3)
            assert not waiting.done()  # it waits for its row alone
        reply = waiting.result(timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["expires_at"] == _expiry(api, held).isoformat().replace("+00:00", "Z")


@pytest.mark.postgres
def test_a_heartbeat_does_not_wait_for_a_worker_record_another_transaction_holds(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(postgres_url)
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    long_ago = utcnow() - timedelta(minutes=5)
    with api.db.transaction() as session:
        session.execute(update(Worker).values(last_seen=long_ago))
    worker = WORKER["worker"]
    with (
        ThreadPoolExecutor(1) as pool,
        _held(api, [f"SELECT 1 FROM hone_workers WHERE id = '{worker}' FOR UPDATE"]),
    ):
        assert pool.submit(on, api, lease_id, "heartbeat").result(timeout=10).status_code == 200
    with api.db.reading() as session:
        assert session.scalar(select(Worker.last_seen)) == long_ago  # caught up at its next call
    before = utcnow()
    assert on(api, lease_id, "heartbeat").status_code == 200
    with api.db.reading() as session:
        assert session.scalar(select(Worker.last_seen)) >= before


@pytest.mark.postgres
def test_heartbeats_update_their_rows_in_place_on_postgresql(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    # No index covers a column a heartbeat writes (migration 0010), so PostgreSQL updates
    # the row in place (HOT) instead of adding a version of it to every index.
    api = make_api(postgres_url)
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    for _ in range(20):
        assert on(api, lease_id, "heartbeat").status_code == 200
    api.db.engine.dispose()  # the API's connections end, and their backends flush their statistics
    engine = create_engine(postgres_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as conn:
                hot = conn.scalar(
                    text("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'hone_trials'")
                )
            if hot >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    assert hot >= 20
