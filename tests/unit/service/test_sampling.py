from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.pruners import (
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PatientPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import GridSampler, TPESampler
from optuna.search_space import intersection_search_space
from scipy.stats import chisquare, qmc

from service.narrowing import Box, box_contains, full_box, narrow, validate_box
from service.sampling import BoxSampler, create_pruner, create_sampler, suggest_params
from service.spec import StudySpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def spec(example: dict[str, Any]) -> StudySpec:
    return StudySpec.model_validate(example)


def _draw(spec: StudySpec, box: Box, n: int, *, direction: str = "maximize") -> optuna.Study:
    """n trials asked with hone's sampler for each configuration, told a made-up value."""
    study = optuna.create_study(direction=direction)
    for index in range(n):
        study.sampler = create_sampler(spec, box=box, index=index)
        trial = study.ask()
        params = suggest_params(trial, spec)
        study.tell(trial, -abs(math.log10(params["lr"]) + 2) + params.get("keep_prob", 0.0))
    return study


def _values(study: optuna.Study, name: str) -> list[Any]:
    return [t.params[name] for t in study.trials if name in t.params]


def test_a_log_parameter_is_log_uniform(spec: StudySpec) -> None:
    lrs = np.array(_values(_draw(spec, full_box(spec), 2000), "lr"))
    per_decade = np.histogram(np.log10(lrs), bins=[-4, -3, -2, -1, 0])[0]
    assert per_decade.sum() == 2000
    assert chisquare(per_decade).pvalue > 0.001, per_decade  # each decade ~25%, not 90% in the last one


def test_a_reverse_log_parameter_concentrates_near_its_top(example: dict[str, Any]) -> None:
    del example["space"]["beta"]["when"]
    spec = StudySpec.model_validate(example)
    betas = np.array(_values(_draw(spec, full_box(spec), 1000), "beta"))
    assert betas.min() >= 0.9 and betas.max() <= 0.999
    # 1 - beta log-uniform over [0.001, 0.1]: half of the draws lie in [0.99, 0.999]; linear gives 9%
    assert 0.44 < np.mean(betas >= 0.99) < 0.56
    assert 0.44 < np.mean(betas <= 0.99) < 0.56


def test_draws_stay_inside_a_narrowed_box(example: dict[str, Any]) -> None:
    example["space"]["hidden_units"] = {"type": "int", "low": 16, "high": 256, "step": 16}
    example["space"]["n_layers"] = {"type": "int", "low": 1, "high": 64, "scale": "log"}
    example["space"]["keep_prob"]["step"] = 0.05
    spec = StudySpec.model_validate(example)
    box = validate_box(
        spec,
        {
            "lr": {"low": 1e-3, "high": 1e-2},
            "hidden_units": {"low": 64, "high": 128},
            "n_layers": {"low": 2, "high": 5},
            "keep_prob": {"low": 0.7, "high": 0.85},
            "batch_size": {"choices": [128, 256]},
            "beta": {"low": 0.95, "high": 0.99},
        },
    )
    study = _draw(spec, box, 400)
    for trial in study.trials:
        assert box_contains(box, trial.params), trial.params
    assert set(_values(study, "hidden_units")) == {64, 80, 96, 112, 128}
    assert set(_values(study, "n_layers")) == {2, 3, 4, 5}
    assert set(_values(study, "batch_size")) == {128, 256}
    assert {round(v, 2) for v in _values(study, "keep_prob")} == {0.7, 0.75, 0.8, 0.85}
    assert all(abs(v * 20 - round(v * 20)) < 1e-9 for v in _values(study, "keep_prob"))


def test_draws_depend_only_on_the_seed_and_the_trial_number(spec: StudySpec) -> None:
    box = full_box(spec)
    first = BoxSampler(spec, box=box, seed=7)
    again = BoxSampler(spec, box=box, seed=7)
    other_seed = BoxSampler(spec, box=box, seed=8)
    assert [first.coordinate(n, "lr") for n in range(20)] == [again.coordinate(n, "lr") for n in range(20)]
    assert first.coordinate(3, "lr") != first.coordinate(4, "lr")
    assert first.coordinate(3, "lr") != first.coordinate(3, "keep_prob")
    assert first.coordinate(3, "lr") != other_seed.coordinate(3, "lr")
    assert _values(_draw(spec, box, 10), "lr") == _values(_draw(spec, box, 10), "lr")


def test_sobol_covers_the_box_more_evenly_than_random(example: dict[str, Any]) -> None:
    names = ["lr", "hidden_units", "keep_prob"]
    example["space"] = {name: example["space"][name] for name in names}
    sobol = StudySpec.model_validate({**example, "sampler": {"type": "sobol", "seed": 3}})
    rand = StudySpec.model_validate({**example, "sampler": {"type": "random", "seed": 3}})
    box = full_box(sobol)

    def points(spec: StudySpec) -> np.ndarray[Any, Any]:
        return np.array(
            [
                [
                    BoxSampler(spec, box=box, kind=spec.sampler.type, seed=3, index=i).coordinate(i, n)
                    for n in names
                ]  # type: ignore[arg-type]
                for i in range(256)
            ]
        )

    assert qmc.discrepancy(points(sobol)) < qmc.discrepancy(points(rand)) / 2
    study = _draw(sobol, box, 64)
    assert len({t.params["lr"] for t in study.trials}) == 64


def test_suggest_params_respects_when(spec: StudySpec) -> None:
    study = _draw(spec, full_box(spec), 60)
    for trial in study.trials:
        assert ("beta" in trial.params) == (trial.params["optimizer"] == "momentum")
    assert Counter(t.params["optimizer"] for t in study.trials).keys() == {"momentum", "adam"}


def test_an_enqueued_retry_gets_its_fixed_values_back(spec: StudySpec) -> None:
    study = optuna.create_study()
    fixed = {
        "lr": 0.0123,
        "hidden_units": 77,
        "n_layers": 3,
        "batch_size": 256,
        "optimizer": "momentum",
        "beta": 0.97,
        "keep_prob": 0.66,
    }
    study.enqueue_trial(fixed, user_attrs={"hone_config_number": 0, "hone_attempt": 1})
    study.sampler = create_sampler(spec, box=validate_box(spec, {"lr": {"low": 0.1, "high": 1.0}}), index=0)
    trial = study.ask()
    assert suggest_params(trial, spec) == fixed
    assert trial.user_attrs["hone_attempt"] == 1


def test_trials_keep_the_original_distributions_in_a_narrowed_box(example: dict[str, Any]) -> None:
    del example["space"]["beta"]
    spec = StudySpec.model_validate(example)
    study = _draw(spec, full_box(spec), 20)
    best = sorted(study.trials, key=lambda t: -float(t.value or 0))[:4]
    box = narrow(spec=spec, box=full_box(spec), top=[t.params for t in best], margin=0.1)
    for index in range(20):
        study.sampler = create_sampler(spec, box=box, index=index)
        trial = study.ask()
        suggest_params(trial, spec)
        study.tell(trial, float(index))
    assert set(intersection_search_space(study.get_trials(deepcopy=False))) == set(spec.space)
    assert all(t.distributions == spec.distributions() for t in study.trials)
    assert set(optuna.importance.get_param_importances(study)) == set(spec.space)


def test_tpe_is_seeded_by_position_so_recreating_it_does_not_repeat_points(example: dict[str, Any]) -> None:
    spec = StudySpec.model_validate({**example, "sampler": {"type": "tpe", "seed": 1, "n_startup_trials": 3}})
    sampler = create_sampler(spec, box=full_box(spec), index=0)
    assert isinstance(sampler, TPESampler)
    study = _draw(spec, full_box(spec), 12)
    assert len({t.params["lr"] for t in study.trials}) == 12


def test_grid_walks_the_whole_grid_and_does_not_stop_the_study(example: dict[str, Any]) -> None:
    example["space"] = {
        "lr": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
        "batch_size": {"type": "categorical", "choices": [64, 128]},
    }
    spec = StudySpec.model_validate({**example, "sampler": {"type": "grid", "seed": 1}})
    assert isinstance(create_sampler(spec, box=full_box(spec), index=0), GridSampler)
    study = _draw(spec, full_box(spec), 7)  # one past the 6 grid points: tell must not raise
    seen = {(t.params["lr"], t.params["batch_size"]) for t in study.trials}
    assert seen == {(lr, bs) for lr in (0.1, 0.2, 0.3) for bs in (64, 128)}


@pytest.mark.parametrize(
    ("pruner", "expected"),
    [
        ({"type": "none"}, NopPruner),
        ({"type": "median", "n_warmup_steps": 3}, MedianPruner),
        ({"type": "percentile", "percentile": 10}, PercentilePruner),
        ({"type": "successive_halving", "reduction_factor": 2}, SuccessiveHalvingPruner),
        ({"type": "hyperband", "min_resource": 2}, HyperbandPruner),
        ({"type": "patient", "patience": 2, "wrapped": {"type": "median"}}, PatientPruner),
    ],
)
def test_create_pruner_builds_the_configured_pruner(
    example: dict[str, Any], pruner: dict[str, Any], expected: type
) -> None:
    spec = StudySpec.model_validate({**example, "pruner": pruner})
    assert isinstance(create_pruner(spec), expected)


def test_the_default_percentile_pruner_cuts_only_the_bottom_quarter(example: dict[str, Any]) -> None:
    """Against 8 finished trials that read 1..8 at epoch 1, the 75th percentile is 6.25:
    a trial at 6 (mid-pack) runs on, one at 6.5 (worse than three quarters) is pruned."""
    spec = StudySpec.model_validate({**example, "pruner": {"type": "percentile"}})
    study = optuna.create_study(pruner=create_pruner(spec))
    for value in range(1, 9):
        trial = study.ask()
        trial.report(float(value), 1)
        study.tell(trial, float(value))
    verdicts = {}
    for value in (6.0, 6.5):
        trial = study.ask()
        trial.report(value, 1)
        verdicts[value] = trial.should_prune()
    assert verdicts == {6.0: False, 6.5: True}


def test_hyperband_takes_max_epochs_as_its_maximum_resource(example: dict[str, Any]) -> None:
    spec = StudySpec.model_validate({**example, "pruner": {"type": "hyperband"}})
    pruner = create_pruner(spec)
    assert isinstance(pruner, HyperbandPruner)
    assert pruner._max_resource == 30


@pytest.mark.parametrize("kind", ["successive_halving", "hyperband"])
@pytest.mark.parametrize(
    ("max_epochs", "options", "expected"),
    [
        (30, {}, 3),  # auto: a ninth of training, three rungs
        (100, {}, 11),
        (5, {}, 1),
        (100, {"reduction_factor": 2}, 25),
        (30, {"min_resource": 7}, 7),  # an explicit value is kept
    ],
)
def test_auto_min_resource_is_a_fraction_of_max_epochs(
    example: dict[str, Any], kind: str, max_epochs: int, options: dict[str, Any], expected: int
) -> None:
    example["objective"]["max_epochs"] = max_epochs
    spec = StudySpec.model_validate({**example, "pruner": {"type": kind, **options}})
    pruner = create_pruner(spec)
    assert isinstance(pruner, (SuccessiveHalvingPruner, HyperbandPruner))
    assert pruner._min_resource == expected


def test_successive_halving_does_not_judge_a_trial_before_its_first_rung(example: dict[str, Any]) -> None:
    """With max_epochs 27 the first rung is epoch 3: a trial far behind the others at epochs
    1 and 2 runs on (its curve may still cross theirs) and is cut at epoch 3."""
    example["objective"]["max_epochs"] = 27
    spec = StudySpec.model_validate({**example, "pruner": {"type": "successive_halving"}})
    study = optuna.create_study(direction="minimize", pruner=create_pruner(spec))
    for _ in range(6):  # good trials that reached the first rung
        good = study.ask()
        for step in range(1, 4):
            good.report(0.1, step)
            assert not good.should_prune()
        study.tell(good, 0.1)
    slow = study.ask()
    verdicts = []
    for step in range(1, 4):
        slow.report(5.0, step)
        verdicts.append(slow.should_prune())
    assert verdicts == [False, False, True]
