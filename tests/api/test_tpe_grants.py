"""A TPE grant costs the same in a study of 200 trials and in one of 2,000: the same SQL
statements, and the same work (Python function calls, not wall time, which a busy
machine blurs), because TPE sees a bounded history and the search space comes from the
spec (``service.optuna_tables.SamplerStorage``, ``service.samplers``)."""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

import pytest
from sqlalchemy import event

from benchmarks.big_study import SPEC, fill
from service import samplers
from service.deps import backend_for
from service.grants import grant_lease
from service.tables import utcnow
from tests.api.conftest import Api


def _grant_work(api: Api, study_id: int) -> tuple[int, int]:
    """SQL statements and Python function calls of one grant of ``study_id``."""
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    engines = [api.db.engine, api.app.state.storage.engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    profile = cProfile.Profile()
    try:
        profile.enable()
        grant = grant_lease(
            backend_for(api.app), worker="w", devices=["cpu"], studies=[study_id], now=utcnow()
        )
        profile.disable()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert grant is not None and grant.study_id == study_id
    return statements, pstats.Stats(profile).total_calls  # type: ignore[attr-defined]


def test_a_tpe_grant_costs_the_same_in_a_study_ten_times_larger(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(samplers, "TPE_HISTORY", 100, raising=False)
    work = {}
    for trials in (200, 2000):
        spec = {**SPEC, "name": f"tpe-{trials}", "sampler": {"type": "tpe", "seed": 0}}
        study_id = api.create_study(**spec)["id"]
        fill(api.url, study_id=study_id, trials=trials)
        _grant_work(api, study_id)  # the process's first read of the study
        work[trials] = min(_grant_work(api, study_id) for _ in range(3))
    (small_sql, small_calls), (large_sql, large_calls) = work[200], work[2000]
    assert large_sql == small_sql
    assert large_calls < 1.3 * small_calls, work  # TPE over every trial: about 10 times
