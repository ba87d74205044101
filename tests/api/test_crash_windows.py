"""The windows a crash can fall into, replayed step by step (the chaos tests find them with
real signals; these pin each one down deterministically)."""

from __future__ import annotations

import optuna
import pytest

from service import optuna_tables, worker_registry
from tests.api.conftest import Api
from tests.api.test_leases import expire, granted, on, reap, rows


def waiting(api: Api) -> int:
    study = optuna.load_study(study_name="digits", storage=api.app.state.storage)
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def test_a_reap_that_dies_before_its_commit_leaves_nothing_and_the_next_reap_queues_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure and its retry commit together (service.outcomes): a reaper that dies
    after queueing the retry leaves neither, so the next pass fails the lease and queues
    the configuration exactly once, however many passes follow."""
    api.create_study(rounds=[{"trials": 2}])
    lease_id = granted(api)["lease"]["id"]
    expire(api, lease_id)

    def dies_after_the_retry_was_queued(*args: object, **kwargs: object) -> None:
        raise _Died

    # The last step of a failure, after the retry's trial and hone's row were written.
    monkeypatch.setattr(worker_registry, "release", dies_after_the_retry_was_queued)
    with pytest.raises(_Died):
        reap(api)
    monkeypatch.undo()
    [row] = rows(api)
    assert row.state == "running" and waiting(api) == 0

    assert reap(api) == 1
    assert waiting(api) == 1
    assert reap(api) == 0
    assert waiting(api) == 1, "the configuration was queued twice"
    retry = granted(api)
    assert retry["trial"]["params"] == rows(api)[0].params
    assert reap(api) == 0
    assert waiting(api) == 0


def test_a_result_that_reached_optuna_before_the_api_died_is_kept_not_rerun(api: Api) -> None:
    api.create_study(rounds=[{"trials": 1}])
    grant = granted(api)
    # The API died inside /complete: Optuna committed the value, hone's row did not.
    api.app.state.storage.set_trial_state_values(
        rows(api)[0].trial_id, optuna.trial.TrialState.COMPLETE, [0.125]
    )
    expire(api, grant["lease"]["id"])
    assert reap(api) == 1
    assert waiting(api) == 0, "the finished configuration was queued to run again"
    [row] = rows(api)
    assert (row.state, row.value) == ("complete", 0.125)
    assert api.get(f"/studies/{grant['study']['id']}").json()["status"] == "completed"


class _Died(Exception):
    """The API process dying at this point of a request."""


def test_an_api_that_dies_while_queueing_a_retry_loses_no_configuration(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's fail with retry: if the API dies before the retry is queued, nothing of
    the failure is committed (hone's row is still running, Optuna's trial too), so the
    reaper fails it and queues the retry, once."""
    api.create_study(rounds=[{"trials": 1}])
    grant = granted(api)
    lease_id = grant["lease"]["id"]

    def dies(*args: object, **kwargs: object) -> None:
        raise _Died

    monkeypatch.setattr(optuna_tables, "enqueue_trial", dies)
    with pytest.raises(_Died):
        on(api, lease_id, "fail", {"reason": "CUDA out of memory", "retry": True})
    monkeypatch.undo()
    [row] = rows(api)
    assert row.state == "running", "the row was failed before its retry was queued"
    optuna_trial = api.app.state.storage.get_trial(row.trial_id)
    assert optuna_trial.state == optuna.trial.TrialState.RUNNING, "Optuna's trial failed without its retry"

    expire(api, lease_id)
    assert reap(api) == 1
    assert waiting(api) == 1
    retry = granted(api)
    assert retry["trial"]["params"] == grant["trial"]["params"]
    assert on(api, retry["lease"]["id"], "complete", {"value": 0.5}).status_code == 200
    assert [r.state for r in rows(api)] == ["failed", "complete"]
    assert api.get(f"/studies/{grant['study']['id']}").json()["status"] == "completed"
    assert waiting(api) == 0
