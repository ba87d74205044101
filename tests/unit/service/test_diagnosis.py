"""The basic recipe's verdict and its box, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from service.diagnosis import SCORE_THRESHOLD, Reading, judge
from service.narrowing import full_box
from service.recipe import as_box, propose
from service.spec import StudySpec

SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "hidden_units": {"type": "categorical", "choices": [16, 64, 256]},
    "l2": {"type": "float", "low": 1e-4, "high": 10.0, "scale": "log"},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
}


def study_spec(objective: dict[str, Any] | None = None, **space: Any) -> StudySpec:
    return StudySpec.model_validate(
        {
            "name": "s",
            "objective": {
                "dataset": "digits",
                "metric": "val_accuracy",
                "fixed": {"l1": 0.0},
                **(objective or {}),
            },
            "space": space or SPACE,
            "rounds": [{"trials": 4}],
        }
    )


@pytest.mark.parametrize(
    ("train", "val", "verdict"),
    [
        # The course's four examples (error %, a target near 0): train 1 / dev 11, 15 / 16,
        # 15 / 30, 0.5 / 1.
        (0.01, 0.11, "high_variance"),
        (0.15, 0.16, "high_bias"),
        (0.15, 0.30, "both"),
        (0.005, 0.01, "fine"),
    ],
)
def test_the_course_s_examples_get_the_course_s_verdicts(train: float, val: float, verdict: str) -> None:
    t = SCORE_THRESHOLD
    found = judge(
        training_error=train, validation_error=val, target=0.0, bias=t, variance=t, bias_judged=True
    )
    assert found == verdict


def test_a_target_error_moves_the_bias_verdict() -> None:
    # 15 % training error is fine when humans make 14 % (the course's blurry-image case).
    args = {"training_error": 0.15, "validation_error": 0.16, "bias": 0.05, "variance": 0.05}
    assert judge(target=0.0, bias_judged=True, **args) == "high_bias"
    assert judge(target=0.14, bias_judged=True, **args) == "fine"
    assert judge(target=0.0, bias_judged=False, **args) == "fine"


def test_error_is_one_minus_a_score_and_a_loss_itself_with_the_train_counterpart_named() -> None:
    score = Reading(metric="val_accuracy", maximize=True)
    assert score.error(0.97) == pytest.approx(0.03)
    assert score.training_names() == ["train_val_accuracy", "train_accuracy"]
    loss = Reading(metric="loss", maximize=False)
    assert loss.error(0.4) == 0.4 and loss.training_names() == ["train_loss"]


def test_high_bias_moves_the_network_up_and_regularization_down_from_the_incumbent() -> None:
    spec = study_spec()
    box = full_box(spec)
    current = {**box, "n_layers": {"low": 1, "high": 2}, "l2": {"low": 0.01, "high": 0.1}}
    incumbent = {"lr": 0.01, "n_layers": 2, "hidden_units": 64, "l2": 0.05, "keep_prob": 0.7}
    proposal = propose(spec, verdict="high_bias", narrowed=box, current=current, incumbent=incumbent)
    moved = {m.param: m for m in proposal.moves}
    assert proposal.box["n_layers"] == {"low": 2, "high": 3}  # one box width (1) past 2
    assert proposal.box["hidden_units"] == {"choices": [64, 256]}
    l2 = proposal.box["l2"]
    assert l2["high"] == 0.05 and l2["low"] == pytest.approx(0.001)  # one decade below 0.01
    assert proposal.box["keep_prob"]["low"] == 0.7 and proposal.box["keep_prob"]["high"] == 1.0
    assert moved["keep_prob"].stopped == "stopped at the spec's upper bound 1.0"
    assert moved["n_layers"].stopped is None
    assert proposal.box["lr"] == box["lr"]  # the recipe leaves the rest to narrowing
    # Train longer: twice the objective's 30 epochs, under the default limit of 4 × 30.
    assert proposal.max_epochs == 60
    assert "max_epochs: train longer, 30 → 60 epochs per trial" in proposal.notes
    assert as_box(proposal) == proposal.box


def test_a_move_stopped_by_the_bound_keeps_a_range_and_says_so() -> None:
    spec = study_spec()
    box = full_box(spec)
    current = {**box, "n_layers": {"low": 3, "high": 4}}
    incumbent = {"lr": 0.01, "n_layers": 4, "hidden_units": 256, "l2": 0.05, "keep_prob": 0.7}
    proposal = propose(spec, verdict="high_bias", narrowed=box, current=current, incumbent=incumbent)
    moved = {m.param: m for m in proposal.moves}
    assert proposal.box["n_layers"] == {"low": 3, "high": 4}
    assert moved["n_layers"].stopped == "stopped at the spec's upper bound 4"
    assert moved["hidden_units"].stopped == "256 is already the spec's largest choice"


def test_train_longer_doubles_the_round_s_epochs_until_the_limit_stops_it_and_says_so() -> None:
    spec = study_spec({"max_epochs": 20, "max_epochs_limit": 50})
    box = full_box(spec)
    incumbent = {"lr": 0.01, "n_layers": 2, "hidden_units": 64, "l2": 0.05, "keep_prob": 0.7}

    def epochs_after(epochs: int) -> tuple[int | None, str]:
        proposal = propose(
            spec, verdict="high_bias", narrowed=box, current=box, incumbent=incumbent, epochs=epochs
        )
        (note,) = [n for n in proposal.notes if n.startswith("max_epochs")]
        return proposal.max_epochs, note

    assert epochs_after(20) == (40, "max_epochs: train longer, 20 → 40 epochs per trial")
    raised, note = epochs_after(40)
    assert raised == 50 and note.endswith("stopped there by objective.max_epochs_limit = 50")
    raised, note = epochs_after(50)
    assert raised is None and "stopped by objective.max_epochs_limit = 50" in note
    # High variance never trains longer.
    proposal = propose(
        spec, verdict="high_variance", narrowed=box, current=box, incumbent=incumbent, epochs=20
    )
    assert proposal.max_epochs is None


def test_a_limit_below_max_epochs_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="max_epochs_limit"):
        study_spec({"max_epochs": 20, "max_epochs_limit": 10})


def test_high_variance_moves_l2_up_and_keep_prob_down_and_names_what_is_not_searched() -> None:
    spec = study_spec(l2=SPACE["l2"], lr=SPACE["lr"])
    box = full_box(spec)
    incumbent = {"lr": 0.01, "l2": 0.05}
    proposal = propose(spec, verdict="high_variance", narrowed=box, current=box, incumbent=incumbent)
    assert [m.param for m in proposal.moves] == ["l2"]
    assert proposal.box["l2"]["low"] == 0.05 and proposal.box["l2"]["high"] == 10.0
    assert proposal.notes == [
        "keep_prob: not searched (at the trainer's default); the recipe would lower it: search it in space"
    ]


def test_fine_moves_nothing() -> None:
    spec = study_spec()
    box = full_box(spec)
    proposal = propose(spec, verdict="fine", narrowed=box, current=box, incumbent={"n_layers": 2})
    assert proposal.moves == [] and proposal.notes == [] and proposal.box == box


def test_both_fixes_the_bias_first_and_leaves_regularization_to_narrowing() -> None:
    spec = study_spec()
    box = full_box(spec)
    narrowed = {**box, "l2": {"low": 0.01, "high": 0.1}}
    incumbent = {"lr": 0.01, "n_layers": 2, "hidden_units": 64, "l2": 0.05, "keep_prob": 0.7}
    proposal = propose(spec, verdict="both", narrowed=narrowed, current=box, incumbent=incumbent)
    assert [m.param for m in proposal.moves] == ["n_layers", "hidden_units"]
    assert all(m.direction == "up" for m in proposal.moves)
    assert proposal.box["l2"] == {"low": 0.01, "high": 0.1}
    assert proposal.box["keep_prob"] == box["keep_prob"]
