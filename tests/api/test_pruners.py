"""Every pruner through the lease API: real reports, deterministic values, exactly which
trials are pruned at which epoch, and the reason recorded for each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from service.tables import Trial
from tests.api.conftest import Api, spec

WORKER = {"worker": "w", "devices": ["cpu"]}


def run(api: Api, values: list[float]) -> int | None:
    """Lease a trial and report ``values`` at epochs 1, 2, ...; the epoch it was pruned at
    (the trial is then ended as pruned), or None when it completed."""
    grant = api.post("/leases", "worker", json=WORKER)
    assert grant.status_code == 201, grant.text
    lease_id = grant.json()["lease"]["id"]
    for step, value in enumerate(values, start=1):
        answer = api.post(f"/leases/{lease_id}/report", "worker", json={"step": step, "value": value})
        assert answer.status_code == 200, answer.text
        if answer.json()["prune"]:
            assert api.post(f"/leases/{lease_id}/prune", "worker").status_code == 200
            return step
    assert api.post(f"/leases/{lease_id}/complete", "worker", json={"value": values[-1]}).status_code == 200
    return None


def reasons(api: Api) -> dict[int, str | None]:
    with api.db.reading() as session:
        query = select(Trial.number, Trial.reason).order_by(Trial.number)
        return dict(session.execute(query).all())


def study(api: Api, pruner: dict[str, Any], max_epochs: int = 8) -> None:
    objective = {**spec()["objective"], "max_epochs": max_epochs}
    api.create_study(pruner=pruner, objective=objective, rounds=[{"trials": 20}])


def test_the_median_pruner_records_the_median_it_compared_with(api: Api) -> None:
    study(api, {"type": "median", "n_startup_trials": 2})
    assert run(api, [1.0, 1.0, 0.5]) is None
    assert run(api, [2.0, 2.0, 1.0]) is None
    assert run(api, [1.4, 1.4, 1.0, 0.1]) == 3  # under the median 1.5 at epochs 1-2; 0.75 at 3
    assert reasons(api)[2] == (
        "pruned by the median pruner: val_loss 1 (best so far) above the median 0.75 "
        "of 2 completed trials at epoch 3"
    )


def test_the_percentile_pruner_keeps_the_top_three_quarters(api: Api) -> None:
    study(api, {"type": "percentile", "n_startup_trials": 4})
    assert [run(api, [v] * 3) for v in (1.0, 2.0, 3.0, 4.0)] == [None] * 4
    # The 75th percentile of 1, 2, 3, 4 is 3.25: 3.0 runs on (the median pruner would cut it).
    assert run(api, [3.0, 3.0, 3.0]) is None
    assert run(api, [3.5, 2.0]) == 1
    # Now 1, 2, 3, 3, 4: the cut-off is 3.0, and a trial's best so far is what is compared.
    assert run(api, [2.9, 3.3, 3.2]) is None
    assert [number for number, reason in reasons(api).items() if reason] == [5]
    assert reasons(api)[5] == (
        "pruned by the percentile pruner: val_loss 3.5 (best so far) above the cut-off of the "
        "top 75 % 3 of 5 completed trials at epoch 1"
    )


def test_successive_halving_keeps_the_top_half_at_each_rung(api: Api) -> None:
    # Rungs at epochs 1, 2, 4, 8; at each, a trial goes on only in the top 1/2 of the values
    # recorded there (the trials pruned there too), or as the best while fewer than 2 compete.
    study(api, {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2})
    pruned = [
        run(api, [1.0] * 8),  # alone at every rung
        run(api, [2.0] * 8),  # rung 1: 1.0, 2.0 -> only 1.0 goes on
        run(api, [0.5, 3.0, 0.1, 0.1]),  # best at rung 1; rung 2: 1.0, 3.0 -> cut
        run(api, [1.5] * 8),  # rung 1: 0.5 1.0 1.5 2.0 -> top two are 0.5 and 1.0
        run(api, [0.9] * 8),  # rung 1: top two of five; rung 2: best of 3; rung 3: best of 2
    ]
    assert pruned == [None, 1, 2, 1, None]
    why = reasons(api)
    assert why[1] == (
        "pruned by the successive_halving pruner: rung 1 (epoch 1): val_loss 2 not in the top 1/2 "
        "of 2 trials there (the best 1: cut-off 1)"
    )
    assert why[2] == (
        "pruned by the successive_halving pruner: rung 2 (epoch 2): val_loss 3 not in the top 1/2 "
        "of 2 trials there (the best 1: cut-off 1)"
    )
    assert why[3] == (
        "pruned by the successive_halving pruner: rung 1 (epoch 1): val_loss 1.5 not in the top 1/2 "
        "of 4 trials there (the best 2: cut-off 1)"
    )


def test_the_patient_pruner_waits_its_patience_before_its_wrapped_pruner_judges(api: Api) -> None:
    study(api, {"type": "patient", "patience": 2, "wrapped": {"type": "median", "n_startup_trials": 1}})
    assert run(api, [1.0] * 8) is None
    # Far worse than the median from epoch 1, but improving: the median pruner alone would
    # cut both at epoch 1; the patient one lets them run while they improve.
    assert run(api, [5.0, 4.0, 3.0, 2.5, 2.0, 1.9, 1.8, 1.7]) is None
    assert run(api, [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.0, 2.0]) == 6  # no better than 3.0 for 3 epochs
    assert reasons(api)[2] == (
        "pruned by the patient pruner: val_loss has not improved on 3 for 3 epochs (patience 2; "
        "best 3.5 since epoch 4), and median: val_loss 3 (best so far) above the median 1.45 "
        "of 2 completed trials at epoch 6"
    )


def test_the_patient_pruner_alone_stops_a_stalled_trial(api: Api) -> None:
    study(api, {"type": "patient", "patience": 1})
    assert run(api, [1.0, 0.5, 0.6, 0.7, 0.1]) == 4  # 0.6 and 0.7 are no better than 0.5
    assert reasons(api)[0] == (
        "pruned by the patient pruner: val_loss has not improved on 0.5 for 2 epochs "
        "(patience 1; best 0.6 since epoch 3)"
    )


def test_the_patient_pruners_min_delta_tolerates_a_small_setback(api: Api) -> None:
    study(api, {"type": "patient", "patience": 1, "min_delta": 0.2})
    # Pruned once the last two epochs' best is worse than 0.5 by more than 0.2: 0.8, not 0.7.
    assert run(api, [1.0, 0.5, 0.6, 0.7, 0.8, 0.8, 0.1]) == 6
    assert reasons(api)[0] == (
        "pruned by the patient pruner: val_loss has not improved on 0.5 for 2 epochs "
        "(patience 1; best 0.8 since epoch 5, worse by more than min_delta 0.2)"
    )


def test_hyperband_judges_each_trial_within_its_bracket(api: Api) -> None:
    # max_epochs 8, min_resource 1, factor 2: four brackets, bracket b's first rung at 2**b
    # epochs. Optuna puts a trial in a bracket by a hash of the study name and its number;
    # for this study trials 2, 3, 4, 6 and 7 share bracket 1 (rungs at epochs 2, 4, 8), and
    # 0, 1 and 5 are alone in theirs, so nothing cuts them.
    study(api, {"type": "hyperband", "min_resource": 1, "reduction_factor": 2})
    values = [1.0, 2.0, 0.5, 3.0, 1.5, 0.8, 2.5, 0.7]
    assert [run(api, [value] * 8) for value in values] == [None, None, None, 2, 2, None, 2, 4]
    why = reasons(api)
    assert why[6] == (
        "pruned by the hyperband pruner: rung 1 (epoch 2, bracket 1): val_loss 2.5 not in the top 1/2 "
        "of 4 trials there (the best 2: cut-off 1.5)"
    )
    assert why[7] == (  # the second best of five at epoch 2, then behind trial 2's 0.5 at epoch 4
        "pruned by the hyperband pruner: rung 2 (epoch 4, bracket 1): val_loss 0.7 not in the top 1/2 "
        "of 2 trials there (the best 1: cut-off 0.5)"
    )
