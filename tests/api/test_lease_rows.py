"""hone writes Optuna's rows itself (service.optuna_tables): what Optuna then
reads must be what ``study.ask()`` + ``suggest_*`` and ``trial.report()`` would have stored."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from service.caches import study_spec
from service.sampling import create_sampler, suggest_params
from service.spec import StudySpec
from service.tables import Study
from tests.api.conftest import Api

SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
    "beta": {"type": "float", "low": 0.5, "high": 0.999, "scale": "reverse_log"},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.05},
    "units": {"type": "int", "low": 16, "high": 1024, "scale": "log"},
    "layers": {"type": "int", "low": 1, "high": 4},
    "optimizer": {"type": "categorical", "choices": ["sgd", "momentum", "adam"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["momentum"]}},
    "batch_norm": {"type": "categorical", "choices": [True, False]},
}
OBJECTIVE = {
    "trainer": "python",
    "entrypoint": "benchmarks.objectives:noop",
    "metric": "value",
    "direction": "minimize",
}


def lease(api: Api, study_id: int) -> dict[str, Any]:
    response = api.post("/leases", "worker", json={"worker": "w", "studies": [study_id]})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_a_granted_trial_is_stored_as_ask_and_suggest_would_store_it(api: Api, sampler: str) -> None:
    study = api.create_study(
        objective=OBJECTIVE, space=SPACE, sampler={"type": sampler, "seed": 7}, rounds=[{"trials": 12}]
    )
    storage = api.app.state.storage
    with api.db.reading() as session:
        row = session.get(Study, study["id"])
        assert row is not None
        spec = study_spec(row)
    for index in range(12):
        grant = lease(api, study["id"])
        number = grant["trial"]["number"]
        stored = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study["id"], number))

        # The same draw through Optuna's own ask/suggest, on a scratch study at the same number.
        scratch = optuna.create_study(sampler=create_sampler(spec, box={}, index=index))
        for _ in range(number):
            scratch.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
        asked = scratch.ask()
        expected = suggest_params(asked, spec)

        assert stored.state == optuna.trial.TrialState.RUNNING
        assert stored.params == grant["trial"]["params"] == expected
        assert stored.distributions == asked.distributions
        assert stored.user_attrs == {"hone_round": 1}


def test_reported_values_reach_optuna_and_a_repeated_step_replaces_its_value(api: Api) -> None:
    study = api.create_study(objective=OBJECTIVE, space=SPACE)
    grant = lease(api, study["id"])
    lease_id = grant["lease"]["id"]
    for step, value in ((1, 0.5), (2, 0.25), (2, 0.125)):
        response = api.post(f"/leases/{lease_id}/report", "worker", json={"step": step, "value": value})
        assert response.status_code == 200, response.text
    storage = api.app.state.storage
    stored = storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study["id"], grant["trial"]["number"])
    )
    assert stored.intermediate_values == {1: 0.5, 2: 0.125}
    assert api.post(f"/leases/{lease_id}/complete", "worker", json={"value": 0.125}).status_code == 200
    response = api.post(f"/leases/{lease_id}/report", "worker", json={"step": 3, "value": 0.1})
    assert response.status_code == 409
    assert storage.get_trial(stored._trial_id).intermediate_values == {1: 0.5, 2: 0.125}


def test_the_pruner_sees_a_trial_that_finished_after_a_later_one(api: Api) -> None:
    study = api.create_study(
        objective=OBJECTIVE,
        space=SPACE,
        pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    )

    def report(lease_id: str, value: float) -> bool:
        response = api.post(f"/leases/{lease_id}/report", "worker", json={"step": 1, "value": value})
        assert response.status_code == 200, response.text
        prune: bool = response.json()["prune"]
        return prune

    a, b, c = (lease(api, study["id"])["lease"]["id"] for _ in range(3))
    assert report(a, 10.0) is False and report(b, 1.0) is False
    assert api.post(f"/leases/{b}/complete", "worker", json={"value": 1.0}).status_code == 200
    assert report(c, 100.0) is True  # the median of {b: 1.0}; a is still running
    assert api.post(f"/leases/{a}/complete", "worker", json={"value": 10.0}).status_code == 200
    d = lease(api, study["id"])["lease"]["id"]
    assert report(d, 3.0) is False  # the median of {a: 10.0, b: 1.0} is 5.5; without a it would prune


def test_finished_trials_are_stored_as_tell_would_store_them(api: Api) -> None:
    study = api.create_study(objective=OBJECTIVE, space=SPACE, pruner={"type": "none"})
    storage = api.app.state.storage
    done, pruned = (lease(api, study["id"]) for _ in range(2))
    steps = [{"step": 1, "value": 0.5}, {"step": 2, "value": 0.25}]
    body = {"value": 0.25, "metrics": {"val_loss": 0.25, "epochs": 2.0}, "steps": steps}
    assert api.post(f"/leases/{done['lease']['id']}/complete", "worker", json=body).status_code == 200
    api.post(f"/leases/{pruned['lease']['id']}/report", "worker", json={"step": 1, "value": 0.75})
    assert api.post(f"/leases/{pruned['lease']['id']}/prune", "worker").status_code == 200

    # The same two trials through Optuna's own report/tell.
    scratch = optuna.create_study()
    told = scratch.ask()
    told.report(0.5, 1)
    told.report(0.25, 2)
    told.set_user_attr("metrics", {"val_loss": 0.25, "epochs": 2.0})
    scratch.tell(told, 0.25)
    stopped = scratch.ask()
    stopped.report(0.75, 1)
    scratch.tell(stopped, state=optuna.trial.TrialState.PRUNED)

    trials = optuna.load_study(study_name=study["name"], storage=storage).get_trials()
    for ours, theirs in zip(trials, scratch.get_trials(), strict=True):
        assert ours.state == theirs.state
        assert ours.values == theirs.values
        assert ours.intermediate_values == theirs.intermediate_values
        assert {k: v for k, v in ours.user_attrs.items() if k != "hone_round"} == theirs.user_attrs
        assert ours.datetime_complete is not None and ours.datetime_start is not None
        assert ours.datetime_complete >= ours.datetime_start  # both Optuna's local time


def _comparable(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "state": trial.state,
        "values": trial.values,
        "params": trial.params,
        "distributions": trial.distributions,
        "user_attrs": trial.user_attrs,
        "system_attrs": trial.system_attrs,
        "intermediate_values": trial.intermediate_values,
        "started": trial.datetime_start is not None,
        "completed": trial.datetime_complete is not None,
    }


def test_a_failure_and_its_retry_are_stored_as_tell_and_enqueue_would_store_them(api: Api) -> None:
    study = api.create_study(objective=OBJECTIVE, space=SPACE, rounds=[{"trials": 3}])
    grant = lease(api, study["id"])
    body = {"reason": "CUDA out of memory", "retry": True, "cause": "out_of_memory"}
    assert api.post(f"/leases/{grant['lease']['id']}/fail", "worker", json=body).status_code == 200

    scratch = optuna.create_study()
    failed = scratch.ask()
    scratch.tell(failed, state=optuna.trial.TrialState.FAIL)
    attrs = {"hone_config_number": grant["trial"]["number"], "hone_attempt": 1, "hone_round": 1}
    scratch.enqueue_trial(grant["trial"]["params"], user_attrs=attrs)

    ours = optuna.load_study(study_name=study["name"], storage=api.app.state.storage).get_trials()
    theirs = scratch.get_trials()
    assert [t.number for t in ours] == [t.number for t in theirs] == [0, 1]
    expected_failed = _comparable(theirs[0]) | {
        "params": ours[0].params,
        "distributions": ours[0].distributions,
    }
    assert _comparable(ours[0]) | {"user_attrs": {}} == expected_failed | {"user_attrs": {}}
    assert _comparable(ours[1]) == _comparable(theirs[1])

    # The retry is popped as study.ask() pops it: the same parameters, now RUNNING.
    retry = lease(api, study["id"])
    assert (retry["trial"]["number"], retry["trial"]["params"]) == (1, grant["trial"]["params"])
    popped = scratch.ask()
    expected = suggest_params(
        popped, StudySpec.model_validate({"name": "s", "objective": OBJECTIVE, "space": SPACE, "trials": 1})
    )
    assert retry["trial"]["params"] == expected
    stored = optuna.load_study(study_name=study["name"], storage=api.app.state.storage).trials[1]
    assert stored.state == optuna.trial.TrialState.RUNNING and stored.datetime_start is not None
    asked = scratch.trials[1]
    assert stored.distributions == asked.distributions
    assert stored.user_attrs == asked.user_attrs and stored.system_attrs == asked.system_attrs


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        (
            {"reason": "worker shutting down", "cause": "shutdown", "retry": True},
            ("hone_state", "interrupted"),
        ),
        ({"reason": "cancelled: study stopped", "cause": "cancelled"}, ("hone_state", "cancelled")),
        ({"reason": "Traceback ...\nKeyError: 'accuracy'"}, ("hone_failure", "KeyError: 'accuracy'")),
    ],
    ids=["interrupted", "cancelled", "failed"],
)
def test_an_ending_without_a_result_is_stored_as_set_user_attr_and_tell_fail_would_store_it(
    api: Api, body: dict[str, Any], attr: tuple[str, str]
) -> None:
    study = api.create_study(objective=OBJECTIVE, space=SPACE, rounds=[{"trials": 3}])
    grant = lease(api, study["id"])
    assert api.post(f"/leases/{grant['lease']['id']}/fail", "worker", json=body).status_code == 200
    ours = optuna.load_study(study_name=study["name"], storage=api.app.state.storage).trials[0]

    scratch = optuna.create_study()
    told = scratch.ask()
    for key, value in {**ours.user_attrs, attr[0]: attr[1]}.items():
        told.set_user_attr(key, value)
    scratch.tell(told, state=optuna.trial.TrialState.FAIL)
    theirs = scratch.trials[0]
    assert ours.user_attrs[attr[0]] == attr[1]
    expected = _comparable(theirs) | {"params": ours.params, "distributions": ours.distributions}
    assert _comparable(ours) == expected


def test_an_enqueued_configuration_is_stored_as_enqueue_trial_would_store_it(api: Api) -> None:
    study = api.create_study(objective=OBJECTIVE, space=SPACE, rounds=[{"trials": 3}])
    params = {"lr": 0.01, "optimizer": "adam"}
    response = api.post(f"/studies/{study['id']}/trials", "admin", json={"params": params})
    assert response.status_code == 201, response.text

    scratch = optuna.create_study()
    scratch.enqueue_trial(params, user_attrs={"hone_round": 1})
    [ours] = optuna.load_study(study_name=study["name"], storage=api.app.state.storage).get_trials()
    [theirs] = scratch.get_trials()
    assert _comparable(ours) == _comparable(theirs)


def test_a_study_is_stored_as_create_study_would_store_it(api: Api) -> None:
    study = api.create_study(objective=OBJECTIVE, space=SPACE)
    loaded = optuna.load_study(study_name=study["name"], storage=api.app.state.storage)
    assert loaded._study_id == study["id"]
    assert loaded.directions == [optuna.study.StudyDirection.MINIMIZE]
    assert loaded.metric_names == ["value"]
    assert loaded.user_attrs["hone_spec"]["name"] == study["name"]
    assert loaded.user_attrs["hone_current_round"] == 1
    assert loaded.user_attrs["hone_round_1"]["budget"] == study["spec"]["rounds"][0]["trials"]
    assert [s.study_name for s in optuna.get_all_study_summaries(api.app.state.storage)] == [study["name"]]


def test_a_tpe_grant_draws_reverse_log_on_its_scale_and_stores_the_original_distribution(api: Api) -> None:
    study = api.create_study(
        objective=OBJECTIVE,
        space=SPACE,
        # TPE's start-up draws, through the grant path (its model's draws: test_samplers.py).
        sampler={"type": "tpe", "seed": 5, "n_startup_trials": 30},
        rounds=[{"trials": 30}],
    )
    storage = api.app.state.storage
    betas = []
    for _ in range(30):
        grant = lease(api, study["id"])
        number = grant["trial"]["number"]
        stored = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study["id"], number))
        assert stored.distributions["beta"] == optuna.distributions.FloatDistribution(0.5, 0.999)
        assert stored.params["beta"] == grant["trial"]["params"]["beta"]
        betas.append(grant["trial"]["params"]["beta"])
        lease_id = grant["lease"]["id"]
        assert api.post(f"/leases/{lease_id}/complete", "worker", json={"value": 1.0}).status_code == 200
    # β >= 0.99 is 37 % of [0.5, 0.999] on the 1 - β log scale, 2 % of it linearly.
    assert sum(beta >= 0.99 for beta in betas) >= 6
