"""A study of 100,000 trials answers a page, its summary and its best in milliseconds."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from service.tables import Worker, utcnow
from tests.api.conftest import Api, add_trials

TRIALS = 100_000
BUDGET_S = 0.05
# On a machine too busy for the budget, the same request on a 100-trial study measured in the
# same run is the peer: without an index a 100k-trial answer takes hundreds of times longer.
PEER_RATIO = 4.0


def _timed(api: Api, path: str, **params: Any) -> tuple[float, Any]:
    api.get(path, params=params)  # warm: the first request pays for connection set-up
    # Best of five: the budget is for the query, not for a machine busy with other tests.
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        response = api.get(path, params=params)
        best = min(best, time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return best, response.json()


def _fast(api: Api, path: str, peer_path: str, **params: Any) -> Any:
    """The answer at ``path``, asserted to take under ``BUDGET_S`` or under ``PEER_RATIO`` times
    the same request on the small study (``peer_path``), best of five each."""
    elapsed, answer = _timed(api, path, **params)
    if elapsed >= BUDGET_S:
        peer, _ = _timed(api, peer_path, **{k: v for k, v in params.items() if k != "cursor"})
        assert elapsed < PEER_RATIO * peer, (
            f"{path} {params} took {elapsed * 1000:.1f} ms, {elapsed / peer:.1f}× the 100-trial study's"
        )
    return answer


def test_a_100k_trial_study_pages_counts_and_ranks_in_milliseconds(api: Api) -> None:
    small = api.create_study(name="small")["id"]
    add_trials(api.db, study_id=small, values=[random.Random(1).random() for _ in range(100)])
    with api.db.transaction() as session:  # the worker add_trials names, as a lease records it
        session.add(Worker(id="w1", host="h", devices=["cpu"], first_seen=utcnow(), last_seen=utcnow()))
    workers_peer, _ = _timed(api, "/workers")  # the fleet page's poll, before the long history
    study_id = api.create_study()["id"]
    rng = random.Random(0)
    values = [None if n % 50 == 0 else rng.random() for n in range(TRIALS)]
    add_trials(
        api.db,
        study_id=study_id,
        values=values,
        params=lambda n: {"lr": 0.01, "n_layers": 1 + n % 4},
        finished_at=utcnow() - timedelta(days=2),  # history: none of it in the last hour
    )
    if not api.db.is_sqlite:
        # What autovacuum does after a bulk insert: statistics, and the visibility map
        # that lets counts be answered from the index alone.
        with api.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE hone_trials")

    trials, peer_trials = f"/studies/{study_id}/trials", f"/studies/{small}/trials"
    page = _fast(api, trials, peer_trials, order_by="value", limit=100)
    assert page["items"][0]["value"] == min(v for v in values if v is not None)

    later = _fast(api, trials, peer_trials, limit=100, cursor=_cursor_at(api, study_id))
    assert later["items"][0]["number"] == 50_000

    summary = _fast(api, f"/studies/{study_id}", f"/studies/{small}")
    assert summary["counts"]["total"] == TRIALS
    assert summary["counts"]["failed"] == TRIALS // 50

    best = _fast(api, f"/studies/{study_id}/best", f"/studies/{small}/best")
    assert best["number"] == page["items"][0]["number"]

    # /workers counts each worker's trials of the last hour without reading the whole history.
    elapsed, workers = _timed(api, "/workers")
    # With its index as fast as before the history (1.0x here); without, 4-6x (25-40 ms).
    assert elapsed < max(0.010, 2.5 * workers_peer), (
        f"/workers took {elapsed * 1000:.1f} ms, {elapsed / workers_peer:.1f}× its time before the history"
    )
    assert [(w["id"], w["trials_last_hour"]) for w in workers] == [("w1", 100)]


def _cursor_at(api: Api, study_id: int) -> str:
    from service.results import Cursor

    return Cursor(order_by="number", number=49_999).encode()
