from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import ValidationError

from service.spec import StudySpec, spec_json_schema

Mutation = Callable[[dict[str, Any]], Any]


def _errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        StudySpec.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_the_issue_example_is_a_valid_spec(example: dict[str, Any]) -> None:
    spec = StudySpec.model_validate(example)
    assert spec.total_trials == 60
    assert spec.sampler.seed == 7
    assert spec.objective.fixed == {"batch_norm": True}


def test_distributions_keep_the_original_bounds_on_optunas_terms(example: dict[str, Any]) -> None:
    spec = StudySpec.model_validate(example)
    dists = spec.distributions()
    assert dists["lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert dists["beta"] == FloatDistribution(0.9, 0.999)  # reverse_log is hone's, recorded linear
    assert dists["hidden_units"] == IntDistribution(50, 100)
    assert dists["batch_size"] == CategoricalDistribution([64, 128, 256, 512])


def test_param_order_puts_parents_before_children(example: dict[str, Any]) -> None:
    example["space"] = {
        "beta": example["space"]["beta"],
        "optimizer": example["space"]["optimizer"],
        "lr": example["space"]["lr"],
    }
    order = StudySpec.model_validate(example).param_order()
    assert order.index("optimizer") < order.index("beta")
    assert set(order) == {"beta", "optimizer", "lr"}


def test_log_true_is_an_alias_of_the_log_scale(example: dict[str, Any]) -> None:
    example["space"]["lr"] = {"type": "float", "low": 1e-4, "high": 1.0, "log": True}
    example["space"]["hidden_units"] = {"type": "int", "low": 8, "high": 512, "log": True}
    spec = StudySpec.model_validate(example)
    assert spec.space["lr"].scale == "log"
    assert spec.space["hidden_units"].scale == "log"


def test_trials_is_shorthand_for_one_round(example: dict[str, Any]) -> None:
    del example["rounds"]
    example["trials"] = 12
    spec = StudySpec.model_validate(example)
    assert [r.trials for r in spec.rounds] == [12]


def test_a_dumped_spec_validates_again_to_the_same_spec(example: dict[str, Any]) -> None:
    spec = StudySpec.model_validate(example)
    assert StudySpec.model_validate(spec.model_dump(mode="json")) == spec


def test_an_omitted_seed_is_drawn_and_recorded(example: dict[str, Any]) -> None:
    del example["sampler"]
    spec = StudySpec.model_validate(example)
    assert StudySpec.model_validate(spec.model_dump()).sampler.seed == spec.sampler.seed


@pytest.mark.parametrize(
    ("dataset", "fixed", "metric", "direction"),
    [
        ("digits", {}, "val_accuracy", "maximize"),
        ("diabetes", {}, "val_loss", "minimize"),
        ("synthetic", {"synthetic_classes": 0}, "val_loss", "minimize"),
        ("data.csv", {"task": "classification", "target": "y"}, "val_accuracy", "maximize"),
    ],
)
def test_the_metric_defaults_by_task(
    example: dict[str, Any], dataset: str, fixed: dict[str, Any], metric: str, direction: str
) -> None:
    example["objective"] = {"dataset": dataset, "fixed": fixed}
    objective = StudySpec.model_validate(example).objective
    assert (objective.metric, objective.direction) == (metric, direction)


def test_the_direction_of_a_known_metric_is_inferred(example: dict[str, Any]) -> None:
    example["objective"] = {"metric": "train_loss"}
    assert StudySpec.model_validate(example).objective.direction == "minimize"


def test_a_python_objective_takes_an_entrypoint_and_any_parameter(example: dict[str, Any]) -> None:
    example["objective"] = {
        "trainer": "python",
        "entrypoint": "mypkg.train:objective",
        "metric": "score",
        "timeout_s": 60,
        "fixed": {"whatever": [1, 2]},
    }
    example["space"]["my_knob"] = {"type": "int", "low": 1, "high": 3}
    spec = StudySpec.model_validate(example)
    assert spec.objective.entrypoint == "mypkg.train:objective"
    assert spec.objective.direction == "maximize"


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _many(*mutations: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


INT = {"type": "int", "low": 1, "high": 3}

MISTAKES: list[tuple[str, Mutation, tuple[Any, ...], str]] = [
    ("low not below high", _set(("space", "lr", "low"), 2.0), ("space", "lr", "low"), "less than high"),
    (
        "equal int bounds",
        _set(("space", "n_layers", "high"), 2),
        ("space", "n_layers", "low"),
        "less than high",
    ),
    ("log scale at zero", _set(("space", "lr", "low"), 0.0), ("space", "lr", "low"), "low > 0"),
    ("a string bound", _set(("space", "lr", "low"), "x"), ("space", "lr", "low"), "number"),
    ("NaN", _set(("space", "lr", "high"), float("nan")), ("space", "lr", "high"), "finite"),
    ("infinity", _set(("space", "keep_prob", "low"), float("-inf")), ("space", "keep_prob", "low"), "finite"),
    ("reverse_log up to 1", _set(("space", "beta", "high"), 1.0), ("space", "beta", "high"), "< 1"),
    ("a typo in a field", _set(("space", "lr", "hgih"), 1), ("space", "lr", "hgih"), "Extra"),
    ("an unknown type", _set(("space", "lr", "type"), "double"), ("space", "lr"), "tag"),
    ("an unknown scale", _set(("space", "lr", "scale"), "exp"), ("space", "lr", "scale"), "linear"),
    ("log contradicts scale", _set(("space", "lr", "log"), False), ("space", "lr", "log"), "contradicts"),
    ("step with log", _set(("space", "lr", "step"), 0.1), ("space", "lr", "step"), "log"),
    (
        "step not dividing",
        _set(("space", "keep_prob", "step"), 0.3),
        ("space", "keep_prob", "step"),
        "divide",
    ),
    (
        "int step not dividing",
        _set(("space", "hidden_units", "step"), 7),
        ("space", "hidden_units", "step"),
        "divide",
    ),
    (
        "empty choices",
        _set(("space", "batch_size", "choices"), []),
        ("space", "batch_size", "choices"),
        "at least 1",
    ),
    (
        "duplicate choices",
        _set(("space", "batch_size", "choices"), [64, 64]),
        ("space", "batch_size", "choices"),
        "duplicate",
    ),
    (
        "a NaN choice",
        _set(("space", "batch_size", "choices"), [64, float("nan")]),
        ("space", "batch_size", "choices", 1),
        "NaN",
    ),
    (
        "a list as a choice",
        _set(("space", "batch_size", "choices"), [64, [1]]),
        ("space", "batch_size", "choices", 1),
        "a choice must be",
    ),
    (
        "too many choices",
        _set(("space", "batch_size", "choices"), list(range(1001))),
        ("space", "batch_size", "choices"),
        "at most 1000",
    ),
    (
        "when names an unknown parameter",
        _set(("space", "beta", "when"), {"opt": ["momentum"]}),
        ("space", "beta", "when", "opt"),
        "unknown parameter",
    ),
    (
        "when names an unknown choice",
        _set(("space", "beta", "when"), {"optimizer": ["sgd"]}),
        ("space", "beta", "when", "optimizer"),
        "not a choice",
    ),
    (
        "when on a numeric parent",
        _set(("space", "beta", "when"), {"lr": [0.1]}),
        ("space", "beta", "when", "lr"),
        "categorical",
    ),
    (
        "when on itself",
        _set(("space", "optimizer", "when"), {"optimizer": ["adam"]}),
        ("space", "optimizer", "when", "optimizer"),
        "itself",
    ),
    (
        "a cycle of conditions",
        _many(
            _set(("space", "batch_size", "when"), {"optimizer": ["adam"]}),
            _set(("space", "optimizer", "when"), {"batch_size": [64]}),
        ),
        ("space",),
        "cycle",
    ),
    ("an unknown knob", _set(("space", "learning_rate"), INT), ("space", "learning_rate"), "not a knob"),
    (
        "dataset as a knob",
        _set(("space", "dataset"), {"type": "categorical", "choices": ["iris"]}),
        ("space", "dataset"),
        "objective.dataset",
    ),
    (
        "an unknown fixed knob",
        _set(("objective", "fixed", "dropout"), 0.5),
        ("objective", "fixed", "dropout"),
        "not a knob",
    ),
    (
        "an invalid fixed value",
        _set(("objective", "fixed", "optimizer"), "adamw"),
        ("objective", "fixed", "optimizer"),
        "mlp trainer",
    ),
    ("NaN in fixed", _set(("objective", "fixed", "l2"), float("nan")), ("objective", "fixed", "l2"), "NaN"),
    (
        "fixed and searched",
        _set(("objective", "fixed", "lr"), 0.1),
        ("objective", "fixed", "lr"),
        "both fixed and searched",
    ),
    (
        "a choice the trainer refuses",
        _set(("space", "optimizer", "choices"), ["momentum", "adam", "adamw"]),
        ("space", "optimizer", "choices"),
        "adamw",
    ),
    (
        "a bound the trainer refuses",
        _set(("space", "keep_prob", "low"), 0.0),
        ("space", "keep_prob", "low"),
        "keep_prob",
    ),
    (
        "a zero budget",
        _set(("rounds",), [{"trials": 0}]),
        ("rounds", 0, "trials"),
        "greater than or equal to 1",
    ),
    (
        "a negative shorthand budget",
        _many(_delete(("rounds",)), _set(("trials",), -1)),
        ("trials",),
        "greater than or equal to 1",
    ),
    ("both trials and rounds", _set(("trials",), 5), ("trials",), "either"),
    ("no budget at all", _delete(("rounds",)), ("rounds",), "budget"),
    (
        "too many trials in a round",
        _set(("rounds",), [{"trials": 100_001}]),
        ("rounds", 0, "trials"),
        "100000",
    ),
    ("too many trials in total", _set(("rounds",), [{"trials": 100_000}] * 11), ("rounds",), "1000000"),
    ("too many parameters", _set(("space",), {f"p{i}": INT for i in range(65)}), ("space",), "64"),
    ("no parameters", _set(("space",), {}), ("space",), "at least 1"),
    ("an empty name", _set(("name",), ""), ("name",), "at least 1"),
    ("a long name", _set(("name",), "x" * 201), ("name",), "at most 200"),
    ("a name with a newline", _set(("name",), "a\nb"), ("name",), "printable"),
    ("an unknown direction", _set(("objective", "direction"), "up"), ("objective", "direction"), "minimize"),
    (
        "an unknown metric without direction",
        _set(("objective",), {"metric": "quality"}),
        ("objective", "direction"),
        "required",
    ),
    (
        "python without entrypoint",
        _set(("objective",), {"trainer": "python", "metric": "loss"}),
        ("objective", "entrypoint"),
        "entrypoint",
    ),
    (
        "a malformed entrypoint",
        _set(("objective",), {"trainer": "python", "entrypoint": "a.b", "metric": "loss"}),
        ("objective", "entrypoint"),
        "package.module:function",
    ),
    ("a zero timeout", _set(("objective", "timeout_s"), 0), ("objective", "timeout_s"), "greater than 0"),
    ("an unknown sampler", _set(("sampler", "type"), "cmaes"), ("sampler", "type"), "random"),
    ("a grid without float steps", _set(("sampler", "type"), "grid"), ("space", "lr", "step"), "grid"),
    ("an option of another pruner", _set(("pruner", "percentile"), 10.0), ("pruner", "percentile"), "median"),
    (
        "a hyperband first rung after the last epoch",
        _set(("pruner",), {"type": "hyperband", "min_resource": 31}),
        ("pruner", "min_resource"),
        "never prune",
    ),
    (
        "a successive-halving first rung after the last epoch",
        _set(("pruner",), {"type": "successive_halving", "min_resource": 4, "min_early_stopping_rate": 2}),
        ("pruner", "min_resource"),
        "= 36) comes after objective.max_epochs (30)",
    ),
    (
        "an auto first rung pushed past the last epoch by min_early_stopping_rate",
        _set(("pruner",), {"type": "successive_halving", "min_early_stopping_rate": 3}),
        ("pruner", "min_resource"),
        "min_resource auto = 3 × reduction_factor^min_early_stopping_rate = 81",
    ),
    (
        "a negative warm-up",
        _set(("pruner", "n_warmup_steps"), -1),
        ("pruner", "n_warmup_steps"),
        "greater than or equal to 0",
    ),
    (
        "a zero max_concurrent",
        _set(("max_concurrent",), 0),
        ("max_concurrent",),
        "greater than or equal to 1",
    ),
    (
        "a top_fraction above 1",
        _set(("narrowing", "top_fraction"), 1.5),
        ("narrowing", "top_fraction"),
        "less than or equal to 1",
    ),
    (
        "a min_width above 1",
        _set(("narrowing", "min_width"), 1.5),
        ("narrowing", "min_width"),
        "less than or equal to 1",
    ),
    ("a typo at the top", _set(("sampeler",), {}), ("sampeler",), "Extra"),
]


@pytest.mark.parametrize(
    ("mutation", "loc", "fragment"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_every_mistake_is_an_error_that_names_its_field(
    example: dict[str, Any], mutation: Mutation, loc: tuple[Any, ...], fragment: str
) -> None:
    mutation(example)
    errors = _errors(example)
    assert any(found[: len(loc)] == loc and fragment in message for found, message in errors), errors


def test_a_cycle_is_reported_on_a_parameter_of_the_cycle(example: dict[str, Any]) -> None:
    example["space"]["batch_size"]["when"] = {"optimizer": ["adam"]}
    example["space"]["optimizer"]["when"] = {"batch_size": [64]}
    [(loc, message)] = _errors(example)
    assert loc[0] == "space" and loc[1] in {"batch_size", "optimizer"} and loc[2] == "when"
    assert "batch_size" in message and "optimizer" in message


def test_the_json_schema_describes_the_public_fields() -> None:
    schema = spec_json_schema()
    assert {"name", "objective", "space", "sampler", "pruner", "rounds", "narrowing"} <= set(
        schema["properties"]
    )


def test_a_stored_spec_refused_by_a_later_check_still_loads(example: dict[str, Any]) -> None:
    """Studies created before a check existed keep working: their spec is read back with
    from_stored, which skips checks that would refuse it after the fact."""
    example["pruner"] = {"type": "successive_halving", "min_resource": 40}
    with pytest.raises(ValidationError):
        StudySpec.model_validate(example)
    spec = StudySpec.from_stored(example)
    assert spec.pruner.min_resource == 40


def test_a_spec_stored_with_an_earlier_percentile_default_still_loads(example: dict[str, Any]) -> None:
    """Stored specs hold every option at the default of their day: a median study created
    when the percentile default was 25 loads, while a new request that sets it is refused."""
    example["pruner"] = {**StudySpec.model_validate(example).pruner.model_dump(), "percentile": 25.0}
    with pytest.raises(ValidationError, match="percentile is not an option of the median pruner"):
        StudySpec.model_validate(example)
    spec = StudySpec.from_stored(example)
    # The median pruner has no percentile: a stored option of another pruner is dropped.
    assert spec.pruner.type == "median" and "percentile" not in spec.pruner.model_dump()
