from __future__ import annotations

import math
from typing import Any

import pytest

from service.narrowing import Box, box_contains, full_box, narrow, validate_box
from service.spec import StudySpec


@pytest.fixture
def spec(example: dict[str, Any]) -> StudySpec:
    return StudySpec.model_validate(example)


def _trial(**params: Any) -> dict[str, Any]:
    base = {
        "lr": 0.01,
        "hidden_units": 75,
        "n_layers": 3,
        "batch_size": 128,
        "optimizer": "adam",
        "keep_prob": 0.8,
    }
    return {**base, **params}


def _width(box: Box, name: str, scale: str = "linear") -> float:
    entry = box[name]
    assert "low" in entry
    low, high = entry["low"], entry["high"]
    if scale == "log":
        return math.log10(high) - math.log10(low)
    if scale == "reverse_log":
        return math.log10(1 - low) - math.log10(1 - high)
    return high - low


def test_the_full_box_is_the_original_space(spec: StudySpec) -> None:
    box = full_box(spec)
    assert box["lr"] == {"low": 1e-4, "high": 1.0}
    assert box["batch_size"] == {"choices": [64, 128, 256, 512]}
    assert box["beta"] == {"low": 0.9, "high": 0.999}


def test_the_box_shrinks_around_the_top_trials(spec: StudySpec) -> None:
    top = [_trial(keep_prob=0.7), _trial(keep_prob=0.8), _trial(keep_prob=0.75)]
    box = narrow(spec=spec, box=full_box(spec), top=top, margin=0.1)
    # the top span [0.7, 0.8] widened by 0.1 x the current width 0.5 on each side
    assert box["keep_prob"] == pytest.approx({"low": 0.65, "high": 0.85})
    assert box["hidden_units"] == {"low": 70, "high": 80}
    assert box["batch_size"] == {"choices": [128]}
    assert all(box_contains(box, t) for t in top)


def test_a_log_parameter_narrows_in_log_space(spec: StudySpec) -> None:
    top = [_trial(lr=1e-3), _trial(lr=1e-2)]
    box = narrow(spec=spec, box=full_box(spec), top=top, margin=0.1)
    entry = box["lr"]
    assert "low" in entry
    # one decade of top trials, widened by 0.1 x 4 decades on each side, in log10 units
    assert math.log10(entry["low"]) == pytest.approx(-3.4)
    assert math.log10(entry["high"]) == pytest.approx(-1.6)
    assert _width(box, "lr", "log") == pytest.approx(1.8)


def test_a_reverse_log_parameter_narrows_in_one_minus_beta_space(spec: StudySpec) -> None:
    top = [_trial(optimizer="momentum", beta=0.99), _trial(optimizer="momentum", beta=0.95)]
    box = narrow(spec=spec, box=full_box(spec), top=top, margin=0.1)
    entry = box["beta"]
    assert "low" in entry
    # 1 - beta spans [0.01, 0.05]; the full box spans 2 decades of 1 - beta, so the margin is 0.2 decades
    assert math.log10(1 - entry["high"]) == pytest.approx(math.log10(0.01) - 0.2)
    assert math.log10(1 - entry["low"]) == pytest.approx(math.log10(0.05) + 0.2)


def test_the_box_never_loses_the_incumbent(spec: StudySpec) -> None:
    incumbent = _trial(lr=0.5, hidden_units=51, keep_prob=0.99, batch_size=512)
    box = full_box(spec)
    for _ in range(6):
        box = narrow(spec=spec, box=box, top=[incumbent, _trial(), _trial(lr=0.02)], margin=0.0)
        assert box_contains(box, incumbent)


def test_an_incumbent_outside_the_current_box_is_still_contained(spec: StudySpec) -> None:
    box = validate_box(spec, {"lr": {"low": 0.01, "high": 0.1}})
    incumbent = _trial(lr=0.5)
    narrowed = narrow(spec=spec, box=box, top=[incumbent, _trial(lr=0.05)], margin=0.1)
    assert box_contains(narrowed, incumbent)


def test_an_incumbent_at_the_edge_widens_that_side_past_the_box(spec: StudySpec) -> None:
    box = validate_box(spec, {"keep_prob": {"low": 0.6, "high": 0.8}})
    top = [_trial(keep_prob=0.8), _trial(keep_prob=0.7), _trial(keep_prob=0.72)]
    narrowed = narrow(spec=spec, box=box, top=top, margin=0.1)
    entry = narrowed["keep_prob"]
    assert "low" in entry
    assert entry["high"] == pytest.approx(0.82)  # past the current box's 0.8
    assert entry["low"] == pytest.approx(0.68)  # the far side is narrowed (and clipped to the box)


def test_an_incumbent_inside_the_box_keeps_the_next_box_inside_the_current_one(spec: StudySpec) -> None:
    box = validate_box(spec, {"keep_prob": {"low": 0.6, "high": 0.8}})
    top = [_trial(keep_prob=0.7), _trial(keep_prob=0.79)]
    entry = narrow(spec=spec, box=box, top=top, margin=0.1)["keep_prob"]
    assert "low" in entry
    assert entry["high"] == pytest.approx(
        0.8
    )  # 0.79 + 0.02 is clipped to the box: the incumbent is not at the edge


def test_widening_stops_at_the_original_bounds(spec: StudySpec) -> None:
    top = [_trial(keep_prob=1.0), _trial(keep_prob=0.95)]
    entry = narrow(spec=spec, box=full_box(spec), top=top, margin=0.5)["keep_prob"]
    assert "low" in entry
    assert entry["high"] == 1.0


def test_int_boxes_are_rounded_outward_onto_the_step(example: dict[str, Any]) -> None:
    example["space"]["hidden_units"] = {"type": "int", "low": 16, "high": 256, "step": 16}
    spec = StudySpec.model_validate(example)
    top = [_trial(hidden_units=96), _trial(hidden_units=112)]
    entry = narrow(spec=spec, box=full_box(spec), top=top, margin=0.05)["hidden_units"]
    # [96 - 12, 112 + 12] rounded outward onto multiples of 16 from 16
    assert entry == {"low": 80, "high": 128}


def test_a_float_step_is_respected(example: dict[str, Any]) -> None:
    example["space"]["keep_prob"]["step"] = 0.05
    spec = StudySpec.model_validate(example)
    entry = narrow(
        spec=spec, box=full_box(spec), top=[_trial(keep_prob=0.7), _trial(keep_prob=0.75)], margin=0.02
    )["keep_prob"]
    assert "low" in entry
    assert entry["low"] == pytest.approx(0.65) and entry["high"] == pytest.approx(0.8)


def test_a_conditional_parameter_whose_parent_no_longer_allows_it_leaves_the_box(spec: StudySpec) -> None:
    # beta exists only with momentum; once the top trials narrow optimizer to adam, no
    # trial of the round can have it, so the box does not pretend it has a range.
    box = narrow(spec=spec, box=full_box(spec), top=[_trial(), _trial(lr=0.02)], margin=0.1)
    assert box["optimizer"] == {"choices": ["adam"]}
    assert "beta" not in box
    assert "beta" not in validate_box(spec, {"optimizer": {"choices": ["adam"]}})


def test_a_conditional_parameter_no_top_trial_has_keeps_its_range_while_it_applies(spec: StudySpec) -> None:
    top = [_trial(), _trial(optimizer="momentum", lr=0.02)]  # a momentum trial without beta (a retry)
    box = narrow(spec=spec, box=full_box(spec), top=top, margin=0.1)
    assert box["optimizer"] == {"choices": ["momentum", "adam"]}
    assert box["beta"] == {"low": 0.9, "high": 0.999}


def test_no_top_trials_leave_the_box_as_it_was(spec: StudySpec) -> None:
    box = validate_box(spec, {"lr": {"low": 0.001, "high": 0.1}})
    assert narrow(spec=spec, box=box, top=[], margin=0.1) == box


def test_a_single_top_trial_still_gives_a_box_with_room(spec: StudySpec) -> None:
    entry = narrow(spec=spec, box=full_box(spec), top=[_trial(keep_prob=0.75)], margin=0.1)["keep_prob"]
    assert "low" in entry
    assert entry["low"] < 0.75 < entry["high"]


def test_a_box_keeps_min_width_of_the_current_box_around_the_incumbent(spec: StudySpec) -> None:
    top = [_trial(keep_prob=0.7), _trial(keep_prob=0.72)]
    entry = narrow(spec=spec, box=full_box(spec), top=top, margin=0.1, min_width=0.5)["keep_prob"]
    # the top span with its margin, [0.65, 0.77], is under half the width 0.5: widened to
    # 0.25 centred on the incumbent 0.7
    assert entry == pytest.approx({"low": 0.575, "high": 0.825})


def test_the_floor_of_a_log_parameter_is_centred_in_log_space(spec: StudySpec) -> None:
    top = [_trial(lr=1e-2), _trial(lr=1.2e-2)]
    entry = narrow(spec=spec, box=full_box(spec), top=top, margin=0.0, min_width=0.5)["lr"]
    assert "low" in entry
    # two of the four decades, one on each side of the incumbent
    assert math.log10(entry["low"]) == pytest.approx(-3.0)
    assert math.log10(entry["high"]) == pytest.approx(-1.0)


def test_the_floor_is_shifted_inside_the_original_bounds(spec: StudySpec) -> None:
    top = [_trial(keep_prob=1.0), _trial(keep_prob=0.99)]
    entry = narrow(spec=spec, box=full_box(spec), top=top, margin=0.0, min_width=0.5)["keep_prob"]
    assert entry == pytest.approx({"low": 0.75, "high": 1.0})


def test_a_box_wider_than_the_floor_is_left_as_the_margin_rule_made_it(spec: StudySpec) -> None:
    top = [_trial(keep_prob=0.6), _trial(keep_prob=0.9)]
    with_floor = narrow(spec=spec, box=full_box(spec), top=top, margin=0.1, min_width=0.5)["keep_prob"]
    assert with_floor == narrow(spec=spec, box=full_box(spec), top=top, margin=0.1)["keep_prob"]
    assert with_floor == pytest.approx({"low": 0.55, "high": 0.95})


def test_an_incumbent_at_the_edge_still_widens_past_the_box_with_a_floor(spec: StudySpec) -> None:
    box = validate_box(spec, {"keep_prob": {"low": 0.6, "high": 0.8}})
    top = [_trial(keep_prob=0.8), _trial(keep_prob=0.79)]
    without = narrow(spec=spec, box=box, top=top, margin=0.1)["keep_prob"]
    assert without == pytest.approx({"low": 0.77, "high": 0.82})
    entry = narrow(spec=spec, box=box, top=top, margin=0.1, min_width=0.5)["keep_prob"]
    # half the box's width 0.2, centred on the incumbent at its edge: past the box too
    assert entry == pytest.approx({"low": 0.75, "high": 0.85})


def test_boxes_shrink_by_at_most_the_floor_per_round_and_keep_the_incumbent(spec: StudySpec) -> None:
    incumbent = _trial(lr=0.003, hidden_units=77, keep_prob=0.81)
    top = [incumbent, _trial(lr=0.0031, hidden_units=77, keep_prob=0.8)]
    box = full_box(spec)
    for _ in range(5):
        narrowed = narrow(spec=spec, box=box, top=top, margin=0.0, min_width=0.5)
        for name, scale in (("lr", "log"), ("keep_prob", "linear")):
            assert _width(narrowed, name, scale) >= 0.5 * _width(box, name, scale) - 1e-9
        # ints are rounded outward, so they keep at least as much
        assert _width(narrowed, "hidden_units") >= 0.5 * _width(box, "hidden_units")
        assert box_contains(narrowed, incumbent)
        box = narrowed
    assert _width(box, "lr", "log") == pytest.approx(4 * 0.5**5)


@pytest.mark.parametrize(
    ("box", "fragment"),
    [
        ({"learning_rate": {"low": 0.1, "high": 0.2}}, "learning_rate"),
        ({"lr": {"low": 0.2, "high": 0.1}}, "box.lr.low"),
        ({"lr": {"low": 1e-5, "high": 0.1}}, "box.lr"),
        ({"lr": {"low": 0.1}}, "box.lr"),
        ({"lr": {"low": float("nan"), "high": 0.1}}, "box.lr.low"),
        ({"batch_size": {"choices": [64, 100]}}, "box.batch_size.choices"),
        ({"batch_size": {"choices": []}}, "box.batch_size.choices"),
        ({"batch_size": {"choices": [64, 64]}}, "box.batch_size.choices"),
        ({"batch_size": {"low": 64, "high": 128}}, "box.batch_size"),
    ],
)
def test_a_user_box_outside_the_space_is_refused_naming_the_parameter(
    spec: StudySpec, box: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        validate_box(spec, box)


def test_a_user_box_fills_in_the_parameters_it_leaves_out(spec: StudySpec) -> None:
    box = validate_box(spec, {"lr": {"low": 0.001, "high": 0.1}, "batch_size": {"choices": [256, 64]}})
    assert box["lr"] == {"low": 0.001, "high": 0.1}
    assert box["batch_size"] == {"choices": [64, 256]}
    assert box["keep_prob"] == {"low": 0.5, "high": 1.0}


def test_box_contains_checks_ranges_and_choices(spec: StudySpec) -> None:
    box = validate_box(spec, {"lr": {"low": 0.001, "high": 0.1}, "batch_size": {"choices": [64]}})
    assert box_contains(box, {"lr": 0.01, "batch_size": 64})
    assert not box_contains(box, {"lr": 0.5, "batch_size": 64})
    assert not box_contains(box, {"lr": 0.01, "batch_size": 128})
