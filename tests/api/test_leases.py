"""The lease protocol over HTTP, on SQLite and PostgreSQL.

Time is controlled: a lease is expired by moving ``lease_expires_at`` into the past in
SQL, and the reaper is called as a plain function.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import optuna
import pytest
from sqlalchemy import select, update

from service.deps import backend_for
from service.grants import grant_lease
from service.outcomes import SHUTDOWN_REASON
from service.reaper import reap_expired
from service.tables import Trial, Worker, utcnow
from tests.api.conftest import Api

WORKER = {"worker": "host-1-0", "devices": ["cpu"], "host": "host"}


def lease(api: Api, **body: Any) -> Any:
    return api.post("/leases", role="worker", json={**WORKER, **body})


def granted(api: Api, **body: Any) -> dict[str, Any]:
    response = lease(api, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def on(api: Api, lease_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(f"/leases/{lease_id}/{action}", role="worker", json=body)


def expire(api: Api, lease_id: str) -> None:
    past = utcnow() - timedelta(seconds=1)
    with api.db.transaction() as session:
        session.execute(update(Trial).where(Trial.lease_id == lease_id).values(lease_expires_at=past))


def reap(api: Api) -> int:
    return reap_expired(backend_for(api.app), now=utcnow())


def rows(api: Api) -> list[Trial]:
    with api.db.reading() as session:
        return list(session.scalars(select(Trial).order_by(Trial.number)))


def test_a_grant_carries_the_lease_the_trial_and_the_objective(api: Api) -> None:
    study = api.create_study()
    grant = granted(api)
    assert grant["study"] == {"id": study["id"], "name": "digits"}
    assert grant["trial"]["number"] == 0 and grant["trial"]["round"] == 1
    assert set(grant["trial"]["params"]) == {"lr", "n_layers", "optimizer"}
    assert grant["objective"]["trainer"] == "mlp" and grant["objective"]["metric"] == "val_loss"
    assert grant["lease"]["heartbeat_interval"] > 0


def test_the_round_budget_is_exact_and_no_work_answers_204_with_retry_after(api: Api) -> None:
    api.create_study(rounds=[{"trials": 3}, {"trials": 2}])
    leases = [granted(api) for _ in range(3)]
    response = lease(api)
    assert response.status_code == 204
    assert float(response.headers["Retry-After"]) > 0
    for grant in leases:
        assert on(api, grant["lease"]["id"], "complete", {"value": 0.5}).status_code == 200
    second = [granted(api) for _ in range(2)]
    assert {g["trial"]["round"] for g in second} == {2}
    assert lease(api).status_code == 204


def test_a_heartbeat_extends_the_lease_and_marks_its_worker_seen(api: Api) -> None:
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    long_ago = utcnow() - timedelta(minutes=5)
    with api.db.transaction() as session:  # as if the lease were about to run out
        session.execute(
            update(Trial)
            .where(Trial.lease_id == lease_id)
            .values(lease_expires_at=utcnow() + timedelta(seconds=2), heartbeat_at=long_ago)
        )
        session.execute(update(Worker).values(last_seen=long_ago))
    before = utcnow()
    reply = on(api, lease_id, "heartbeat")
    assert reply.status_code == 200, reply.text
    assert reply.json()["cancel"] is False
    row = rows(api)[0]
    grace = timedelta(seconds=api.app.state.settings.grace_period)
    assert row.lease_expires_at is not None and row.lease_expires_at >= before + grace
    assert reply.json()["expires_at"] == row.lease_expires_at.isoformat().replace("+00:00", "Z")
    assert row.heartbeat_at is not None and row.heartbeat_at >= before
    with api.db.reading() as session:
        assert session.scalar(select(Worker.last_seen).where(Worker.id == WORKER["worker"])) >= before
    unknown = on(api, "no-such-lease", "heartbeat")
    assert unknown.status_code == 404 and "no-such-lease" in unknown.json()["detail"]
    on(api, lease_id, "complete", {"value": 1.0})
    over = on(api, lease_id, "heartbeat")
    assert over.status_code == 409 and "is over" in over.json()["detail"]
    assert rows(api)[0].lease_expires_at == row.lease_expires_at  # a refused heartbeat changes nothing


def test_max_concurrent_is_never_exceeded(api: Api) -> None:
    api.create_study(max_concurrent=2)
    first, _ = granted(api), granted(api)
    assert lease(api).status_code == 204
    on(api, first["lease"]["id"], "complete", {"value": 1.0})
    assert lease(api).status_code == 201


def test_a_result_on_an_expired_lease_is_refused_with_409_and_changes_nothing(api: Api) -> None:
    api.create_study()
    grant = granted(api)
    lease_id = grant["lease"]["id"]
    expire(api, lease_id)
    assert on(api, lease_id, "complete", {"value": 0.1}).status_code == 409
    assert on(api, lease_id, "heartbeat").status_code == 409
    assert on(api, lease_id, "report", {"step": 1, "value": 0.1}).status_code == 409
    assert rows(api)[0].state == "running" and rows(api)[0].value is None


def test_an_unknown_lease_is_404(api: Api) -> None:
    api.create_study()
    assert on(api, "0" * 32, "complete", {"value": 0.1}).status_code == 404


def test_the_same_result_twice_is_accepted_once_and_a_different_one_is_refused(api: Api) -> None:
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    first = on(api, lease_id, "complete", {"value": 0.25, "metrics": {"val_accuracy": 0.9}})
    again = on(api, lease_id, "complete", {"value": 0.25})
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert on(api, lease_id, "complete", {"value": 0.3}).status_code == 409
    assert on(api, lease_id, "fail", {"reason": "late"}).status_code == 409
    assert rows(api)[0].value == 0.25


def test_a_nan_value_is_refused_with_422(api: Api) -> None:
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    response = api.client.post(
        f"/api/v1/leases/{lease_id}/complete",
        headers={**api.headers("worker"), "Content-Type": "application/json"},
        content=b'{"value": NaN}',
    )
    assert response.status_code == 422


def test_leases_need_the_worker_role(api: Api) -> None:
    api.create_study()
    assert api.post("/leases", role="read", json=WORKER).status_code == 403
    assert api.client.post("/api/v1/leases", json=WORKER).status_code == 401


def test_the_reaper_fails_an_expired_lease_and_requeues_its_configuration(api: Api) -> None:
    api.create_study(rounds=[{"trials": 2}])
    lost = granted(api)
    expire(api, lost["lease"]["id"])
    assert reap(api) == 1
    failed = rows(api)[0]
    assert failed.state == "failed" and failed.reason is not None
    assert failed.reason.startswith("lease expired: no heartbeat") and "host-1-0" in failed.reason
    retry = granted(api)  # retries go first
    assert retry["trial"]["params"] == lost["trial"]["params"]
    assert retry["trial"]["number"] != lost["trial"]["number"]
    new = granted(api)
    assert lease(api).status_code == 204  # the budget counts the configuration once
    for grant in (retry, new):
        on(api, grant["lease"]["id"], "complete", {"value": 0.2})
    by_number = {row.number: row for row in rows(api)}
    retried = by_number[retry["trial"]["number"]]
    assert (retried.config_number, retried.attempt) == (lost["trial"]["number"], 1)
    assert api.get("/studies/1").json()["status"] == "completed"


def test_retries_stop_after_max_retries(db_url: str, make_api: Callable[..., Api]) -> None:
    api = make_api(db_url, max_retries=1)
    api.create_study(rounds=[{"trials": 1}])
    for _ in range(2):
        expire(api, granted(api)["lease"]["id"])
        reap(api)
    assert lease(api).status_code == 204
    assert [(row.attempt, row.state) for row in rows(api)] == [(0, "failed"), (1, "failed")]
    assert api.get("/studies/1").json()["status"] == "failed"  # no trial completed (issue #20)


def test_a_trial_given_back_at_shutdown_is_requeued_without_using_a_retry(
    db_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(db_url, max_retries=0)
    api.create_study(rounds=[{"trials": 1}])
    for _ in range(2):
        grant = granted(api)
        assert (
            on(api, grant["lease"]["id"], "fail", {"reason": SHUTDOWN_REASON, "retry": True}).status_code
            == 200
        )
    grant = granted(api)
    on(api, grant["lease"]["id"], "fail", {"reason": "boom", "retry": True})
    assert lease(api).status_code == 204
    assert [row.attempt for row in rows(api)] == [0, 1, 2]


def test_a_trial_failed_with_cause_shutdown_is_requeued_without_using_a_retry(
    db_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(db_url, max_retries=0)
    api.create_study(rounds=[{"trials": 1}])
    for _ in range(2):
        grant = granted(api)
        body = {"reason": "slot stopping", "cause": "shutdown", "retry": True}
        assert on(api, grant["lease"]["id"], "fail", body).status_code == 200
    grant = granted(api)
    on(api, grant["lease"]["id"], "fail", {"reason": "boom", "cause": "error", "retry": True})
    assert lease(api).status_code == 204
    assert [row.attempt for row in rows(api)] == [0, 1, 2]


def test_fail_refuses_an_unknown_cause_with_422_naming_it(api: Api) -> None:
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    response = on(api, lease_id, "fail", {"reason": "boom", "cause": "bad luck"})
    assert response.status_code == 422
    assert ["body", "cause"] in [error["loc"] for error in response.json()["detail"]]
    assert rows(api)[0].state == "running"


def test_paused_studies_get_nothing_and_stopped_ones_cancel_running_trials(api: Api) -> None:
    api.create_study()
    running = granted(api)
    api.post("/studies/1/pause")
    assert lease(api).status_code == 204
    assert on(api, running["lease"]["id"], "heartbeat").json()["cancel"] is False
    api.post("/studies/1/resume")
    assert lease(api).status_code == 201
    api.post("/studies/1/stop")
    assert lease(api).status_code == 204
    assert on(api, running["lease"]["id"], "heartbeat").json()["cancel"] is True


def test_active_studies_share_workers_fairly(api: Api) -> None:
    api.create_study(name="a")
    api.create_study(name="b")
    served = [granted(api)["study"]["name"] for _ in range(6)]
    assert Counter(served) == {"a": 3, "b": 3}
    assert all(x != y for x, y in zip(served, served[1:], strict=False))


def test_a_worker_can_lease_from_chosen_studies_only(api: Api) -> None:
    api.create_study(name="a")
    b = api.create_study(name="b")
    assert {granted(api, studies=[b["id"]])["study"]["name"] for _ in range(3)} == {"b"}


def test_the_median_pruner_prunes_a_bad_trial_and_records_why(api: Api) -> None:
    api.create_study(pruner={"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0})
    for value in (0.1, 0.2):
        lease_id = granted(api)["lease"]["id"]
        for step in range(1, 4):
            assert on(api, lease_id, "report", {"step": step, "value": value}).json()["prune"] is False
        on(api, lease_id, "complete", {"value": value})
    bad = granted(api)["lease"]["id"]
    assert on(api, bad, "report", {"step": 1, "value": 5.0}).json()["prune"] is True
    assert on(api, bad, "prune").json()["state"] == "pruned"
    assert on(api, bad, "prune").json()["duplicate"] is True
    pruned = rows(api)[2]
    assert pruned.state == "pruned" and pruned.reason == (
        "pruned by the median pruner: val_loss 5 (best so far) above the median 0.15 of 2 completed trials at epoch 1"
    )
    assert api.app.state.storage.get_trial(pruned.trial_id).state == optuna.trial.TrialState.PRUNED


def test_workers_lists_every_worker_seen_with_its_current_trial(api: Api) -> None:
    api.create_study()
    grant = granted(api)
    lease(api, worker="other-2-0", devices=["cuda:0"])
    workers = {w["id"]: w for w in api.get("/workers", role="read").json()}
    assert workers["host-1-0"]["current_trial"] == {"study_id": 1, "number": grant["trial"]["number"]}
    assert workers["host-1-0"]["host"] == "host" and workers["host-1-0"]["alive"] is True
    assert workers["other-2-0"]["devices"] == ["cuda:0"]
    on(api, grant["lease"]["id"], "complete", {"value": 1.0})
    workers = {w["id"]: w for w in api.get("/workers", role="read").json()}
    assert workers["host-1-0"]["current_trial"] is None


def test_workers_show_the_lease_each_holds_and_the_trials_each_finished_in_the_last_hour(api: Api) -> None:
    api.create_study()
    for value in (1.0, 2.0):
        on(api, granted(api)["lease"]["id"], "complete", {"value": value})
    on(api, granted(api)["lease"]["id"], "fail", {"reason": "broke", "cause": "error"})
    held = granted(api)
    lease(api, worker="other-2-0")  # granted a trial too, finished nothing
    with api.db.transaction() as session:  # a trial finished two hours ago does not count
        session.execute(
            update(Trial).where(Trial.number == 0).values(finished_at=utcnow() - timedelta(hours=2))
        )
    workers = {w["id"]: w for w in api.get("/workers", role="read").json()}
    assert workers["host-1-0"]["trials_last_hour"] == 2
    assert workers["other-2-0"]["trials_last_hour"] == 0
    expires = rows(api)[held["trial"]["number"]].lease_expires_at
    assert workers["host-1-0"]["lease_expires_at"] == expires.isoformat().replace("+00:00", "Z")
    on(api, held["lease"]["id"], "complete", {"value": 3.0})
    after = {w["id"]: w for w in api.get("/workers", role="read").json()}["host-1-0"]
    assert after["lease_expires_at"] is None and after["trials_last_hour"] == 3


def test_orphan_optuna_trials_are_failed_by_the_reaper(api: Api) -> None:
    api.create_study()
    storage = api.app.state.storage
    study = optuna.load_study(study_name="digits", storage=storage)
    orphan = study.ask()  # as if the API died between Optuna's trial and hone's row
    state = api.app.state
    later = utcnow() + timedelta(seconds=state.settings.grace_period + 5)
    assert reap_expired(backend_for(api.app), now=later) == 1
    assert storage.get_trial(orphan._trial_id).state == optuna.trial.TrialState.FAIL


def test_concurrent_grants_never_exceed_the_budget(api: Api) -> None:
    api.create_study(rounds=[{"trials": 12}], max_concurrent=None)
    got: list[int] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for _ in range(5):
                grant = grant_lease(
                    backend_for(api.app),
                    worker=f"w-{index}",
                    devices=["cpu"],
                    studies=None,
                    now=utcnow(),
                )
                if grant is not None:
                    got.append(grant.number)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(got) == list(range(12))


def intermediate(api: Api, number: int) -> dict[int, float]:
    trial_id = rows(api)[number].trial_id
    return dict(api.app.state.storage.get_trial(trial_id).intermediate_values)


def test_steps_sent_together_are_all_recorded_and_the_pruner_decides_on_the_last(api: Api) -> None:
    api.create_study(pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    first = granted(api)["lease"]["id"]
    held = [{"step": step, "value": 0.1} for step in range(1, 4)]
    answer = on(api, first, "report", {"step": 4, "value": 0.1, "steps": held})
    assert answer.status_code == 200 and answer.json()["prune"] is False
    # The rest of the steps, never reported one by one, ride with the result.
    tail = [{"step": 5, "value": 0.1}, {"step": 6, "value": 0.1}]
    assert on(api, first, "complete", {"value": 0.1, "steps": tail}).status_code == 200
    assert intermediate(api, 0) == dict.fromkeys(range(1, 7), 0.1)
    assert rows(api)[0].last_step == 6

    bad = granted(api)["lease"]["id"]
    # The pruner decides once, at the latest step, over every value sent.
    answer = on(api, bad, "report", {"step": 2, "value": 9.0, "steps": [{"step": 1, "value": 8.0}]})
    assert answer.json()["prune"] is True
    assert intermediate(api, 1) == {1: 8.0, 2: 9.0}
    assert rows(api)[1].reason == (  # the best so far is step 1's 8.0: every value was seen
        "pruned by the median pruner: val_loss 8 (best so far) above the median 0.1 of 1 completed trials at epoch 2"
    )


def test_the_last_epoch_is_never_pruned_and_a_result_after_a_prune_answer_completes(api: Api) -> None:
    objective = {"trainer": "mlp", "dataset": "digits", "metric": "val_loss", "direction": "minimize"}
    api.create_study(
        objective={**objective, "max_epochs": 3},
        pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    )
    first = granted(api)["lease"]["id"]
    on(api, first, "complete", {"value": 0.1, "steps": [{"step": s, "value": 0.1} for s in (1, 2, 3)]})

    late = granted(api)["lease"]["id"]
    # Steps held back until training ended: judging them could only throw the result away.
    held = [{"step": 1, "value": 9.0}, {"step": 2, "value": 9.0}]
    assert on(api, late, "report", {"step": 3, "value": 9.0, "steps": held}).json()["prune"] is False

    overtaken = granted(api)["lease"]["id"]
    assert on(api, overtaken, "report", {"step": 2, "value": 9.0}).json()["prune"] is True
    # The worker had trained on (the answer came late): its result still counts.
    finished = on(api, overtaken, "complete", {"value": 9.0, "steps": [{"step": 3, "value": 9.0}]})
    assert finished.json()["state"] == "complete"
    row = rows(api)[2]
    assert row.state == "complete" and row.value == 9.0 and row.reason is None


def test_a_failed_trial_keeps_the_steps_it_sent_with_its_reason(api: Api) -> None:
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    steps = [{"step": 1, "value": 0.5}, {"step": 2, "value": 0.7}]
    assert on(api, lease_id, "fail", {"reason": "boom", "steps": steps}).status_code == 200
    assert intermediate(api, 0) == {1: 0.5, 2: 0.7}
    # A repeated result (the answer was lost) does not write them twice or fail.
    assert on(api, lease_id, "fail", {"reason": "boom", "steps": steps}).json()["duplicate"] is True


def test_a_bad_step_in_a_batch_is_refused_with_422_naming_it_and_nothing_is_recorded(api: Api) -> None:
    api.create_study()
    lease_id = granted(api)["lease"]["id"]
    body = {"step": 3, "value": 0.1, "steps": [{"step": 1, "value": 0.1}, {"step": -2, "value": 0.1}]}
    response = on(api, lease_id, "report", body)
    assert response.status_code == 422
    assert ["body", "steps", 1, "step"] in [error["loc"] for error in response.json()["detail"]]
    response = api.client.post(
        f"/api/v1/leases/{lease_id}/complete",
        headers={**api.headers("worker"), "Content-Type": "application/json"},
        content=b'{"value": 0.1, "steps": [{"step": 1, "value": Infinity}]}',
    )
    assert response.status_code == 422 and "steps" in response.text
    assert intermediate(api, 0) == {}


@pytest.mark.timeout(60)
def test_a_history_sampler_grant_that_opens_a_round_does_not_wait_on_itself(api: Api) -> None:
    """A TPE grant that finds its round over opens the next one (publishing its box on
    Optuna's study row) before it asks Optuna, which locks that row on its own connection."""
    api.create_study(rounds=[{"trials": 1}, {"trials": 1}], sampler={"type": "tpe"})
    first = granted(api)
    # The result is in, but the round was not advanced (as when a result's advance was lost).
    with api.db.transaction() as session:
        session.execute(
            update(Trial).where(Trial.lease_id == first["lease"]["id"]).values(state="complete", value=0.5)
        )
    second = granted(api)
    assert second["trial"]["round"] == 2
    assert api.get("/studies/1").json()["current_round"] == 2


def test_a_lease_runs_for_the_grace_period_from_when_it_is_handed_out_not_asked_for(api: Api) -> None:
    # A request that waited its turn (the study's lock held, a slow box) for longer than
    # the grace period must still get a lease it can keep, not one already expired.
    api.create_study()
    asked = utcnow() - timedelta(minutes=10)
    grant = grant_lease(backend_for(api.app), worker="w", devices=["cpu"], studies=None, now=asked)
    assert grant is not None
    grace = timedelta(seconds=api.app.state.settings.grace_period)
    assert grant.expires_at >= utcnow() + grace - timedelta(seconds=5)
    assert rows(api)[0].lease_expires_at == grant.expires_at
    assert on(api, grant.lease_id, "heartbeat").status_code == 200
