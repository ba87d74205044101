"""Pruner variants: each builds its Optuna pruner, knows when it cannot prune, and reads
back from specs stored by earlier versions of hone."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.pruners import BasePruner, PatientPruner

from service.pruners import VARIANTS, options
from service.spec import StudySpec

# What a study's stored spec held for its pruner before pruners were variants: every
# option of every pruner, at its default.
OLD_STYLE: dict[str, Any] = {
    "n_startup_trials": 5,
    "n_warmup_steps": 0,
    "interval_steps": 1,
    "n_min_trials": 1,
    "percentile": 25.0,
    "min_resource": "auto",
    "reduction_factor": 3,
    "min_early_stopping_rate": 0,
    "patience": 3,
    "min_delta": 0.0,
    "wrapped": None,
}


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_every_pruner_builds_its_optuna_pruner(kind: str) -> None:
    assert isinstance(VARIANTS[kind]().build(30), BasePruner)


def test_a_patient_pruner_builds_the_pruner_it_wraps(example: dict[str, Any]) -> None:
    example["pruner"] = {"type": "patient", "wrapped": {"type": "hyperband"}}
    pruner = StudySpec.model_validate(example).pruner.build(30)
    assert isinstance(pruner, PatientPruner)
    assert type(pruner._wrapped_pruner).__name__ == "HyperbandPruner"


@pytest.mark.parametrize("kind", ["median", "percentile"])
def test_median_and_percentile_may_prune_after_warm_up_and_startup_trials(kind: str) -> None:
    pruner = VARIANTS[kind].model_validate({"n_warmup_steps": 2, "n_startup_trials": 3})
    assert pruner.reads_own_values_only
    assert not pruner.may_prune(completed=3, step=1)  # still warming up
    assert not pruner.may_prune(completed=2, step=2)  # too few completed trials
    assert pruner.may_prune(completed=3, step=2)


@pytest.mark.parametrize("kind", ["median", "percentile"])
def test_median_and_percentile_need_one_completed_trial_even_with_no_startup_trials(kind: str) -> None:
    pruner = VARIANTS[kind].model_validate({"n_startup_trials": 0})
    assert not pruner.may_prune(completed=0, step=5)
    assert pruner.may_prune(completed=1, step=0)


def test_no_pruning_never_may_prune() -> None:
    assert not VARIANTS["none"]().may_prune(completed=1000, step=1000)
    assert not VARIANTS["none"].ever_prunes
    assert all(variant.ever_prunes for kind, variant in VARIANTS.items() if kind != "none")


@pytest.mark.parametrize("kind", ["successive_halving", "hyperband", "patient"])
def test_other_pruners_may_always_prune_and_read_other_trials(kind: str) -> None:
    pruner = VARIANTS[kind]()
    assert pruner.may_prune(completed=0, step=0)
    assert not pruner.reads_own_values_only


def test_every_option_belongs_to_a_pruner_and_the_messages_name_them(example: dict[str, Any]) -> None:
    assert set().union(*(options(kind) for kind in VARIANTS)) == set(OLD_STYLE)
    example["pruner"] = {"type": "none", "reduction_factor": 4}
    with pytest.raises(ValueError, match=r"\(used by successive_halving, hyperband\)"):
        StudySpec.model_validate(example)


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_a_pruner_stored_with_every_option_reads_back_with_its_own(
    example: dict[str, Any], kind: str
) -> None:
    example["pruner"] = {"type": kind, **OLD_STYLE}
    if kind == "patient":
        example["pruner"]["wrapped"] = {"type": "median", **OLD_STYLE, "n_warmup_steps": 4}
    pruner = StudySpec.from_stored(example).pruner
    assert pruner.type == kind
    dumped = pruner.model_dump(mode="json")
    assert set(dumped) == {"type", *options(kind)}
    if kind == "percentile":
        assert dumped["percentile"] == 25.0  # the default of its day, kept
    if kind == "patient":
        assert dumped["wrapped"] == {
            "type": "median",
            "n_startup_trials": 5,
            "n_warmup_steps": 4,
            "interval_steps": 1,
            "n_min_trials": 1,
        }


@pytest.mark.parametrize(
    "pruner",
    [
        {"type": "median", "n_warmup_steps": 2},
        {"type": "percentile", "percentile": 50},
        {"type": "successive_halving", "min_resource": 2},
        {"type": "hyperband", "reduction_factor": 2},
        {"type": "patient", "patience": 1, "wrapped": {"type": "percentile"}},
        {"type": "none"},
    ],
)
def test_a_dumped_spec_reads_back_as_stored_to_the_same_spec(example: dict[str, Any], pruner: Any) -> None:
    spec = StudySpec.model_validate({**example, "pruner": pruner})
    stored = spec.model_dump(mode="json")
    assert StudySpec.from_stored(stored) == spec
    assert StudySpec.from_stored(stored).model_dump(mode="json") == stored
