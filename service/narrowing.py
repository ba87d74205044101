"""Boxes: the part of the search space a round samples, and how the next one is chosen.

A box maps every parameter to ``{"low": x, "high": y}`` (numeric, both ends included,
original units) or ``{"choices": [...]}`` (categorical). Round 1 samples the full box;
after each round :func:`narrow` computes the next one from the best completed trials so
far, coarse to fine:

1. per numeric parameter, on its own scale (log10 x for log, log10(1 - x) for
   reverse_log), take the span of the top trials' values and widen each side by
   ``margin`` times the current box's width; the result stays inside the current box
   (it never drops a top trial's value; only rules 2 and 3 reach past it) and always
   inside the original bounds;
2. boundary rule (the Deep Learning Tuning Playbook's): if the incumbent (``top[0]``)
   lies within that margin of an edge of the current box, the optimum may lie beyond
   it, so that side is pushed one margin *past* the current box instead of clipped;
3. floor: a box keeps at least ``min_width`` of the current box's width per round. A
   handful of top trials from a small round locate the basin only roughly, so a box
   that would shrink more is widened to that width around the incumbent (the best
   guess of where the optimum is), shifted inside the original bounds;
4. ends are rounded outward onto the step grid (ints always have one);
5. categorical parameters keep the choices the top trials used;
6. a parameter none of the top trials has (a conditional one) keeps its current range;
7. a conditional parameter whose parent's choices no longer include a value it needs
   (``beta`` once ``optimizer`` is narrowed to adam) leaves the box: no trial of the
   round can have it. The sampler never asks for it, and a later round that reads the
   box gives it its full range back only if its parent could allow it again.

Every box contains the incumbent, and never leaves the original distribution, so every
trial stays valid against the study's one search space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, final

from service.scales import (
    NumericParam,
    scale_range,
    snap_down,
    snap_up,
    to_scale,
    value_range,
)
from service.space import CategoricalParam, Choice

if TYPE_CHECKING:
    from service.spec import StudySpec


@final
class NumericRange(TypedDict):
    low: float
    high: float


@final
class ChoiceSet(TypedDict):
    choices: list[Choice]


Box = dict[str, NumericRange | ChoiceSet]


def full_box(spec: StudySpec) -> Box:
    """The whole search space: round 1's box."""
    box: Box = {}
    for name, param in spec.space.items():
        if isinstance(param, CategoricalParam):
            box[name] = {"choices": list(param.choices)}
        else:
            box[name] = {"low": param.low, "high": param.high}
    return box


def narrow(
    *,
    spec: StudySpec,
    box: Box,
    top: Sequence[Mapping[str, Any]],
    margin: float,
    min_width: float = 0.0,
) -> Box:
    """The next round's box from the params of the top trials (best first). Pure.

    ``min_width`` is the floor of rule 3 (0: none). With no top trials the box is
    returned unchanged.
    """
    if not top:
        return _copy(box)
    incumbent = top[0]
    current = {**full_box(spec), **box}
    narrowed: Box = {}
    for name, param in spec.space.items():
        entry = current[name]
        values = [trial[name] for trial in top if name in trial]
        if not values:
            narrowed[name] = _copy_entry(entry)
        elif isinstance(param, CategoricalParam):
            used = [choice for choice in param.choices if any(choice == v for v in values)]
            narrowed[name] = {"choices": used}
        else:
            assert "low" in entry
            narrowed[name] = _narrow_numeric(
                param, entry, values, incumbent.get(name), margin=margin, min_width=min_width
            )
    return _without_inactive(spec, narrowed)


def _without_inactive(spec: StudySpec, box: Box) -> Box:
    """``box`` without the conditional parameters its choices rule out (rule 7), repeated
    until none is left, since a dropped parent rules out its own children."""
    kept = dict(box)
    dropped = True
    while dropped:
        dropped = False
        for name, param in spec.space.items():
            if (
                name in kept
                and param.when
                and not all(_may_take(kept.get(parent), values) for parent, values in param.when.items())
            ):
                del kept[name]
                dropped = True
    return kept


def _may_take(entry: NumericRange | ChoiceSet | None, values: Sequence[Any]) -> bool:
    if entry is None or "choices" not in entry:
        return entry is not None
    return any(choice == value for choice in entry["choices"] for value in values)


def _narrow_numeric(
    param: NumericParam,
    entry: NumericRange,
    values: list[Any],
    incumbent: Any,
    *,
    margin: float,
    min_width: float,
) -> NumericRange:
    box_lo, box_hi = scale_range(param, entry["low"], entry["high"])
    full_lo, full_hi = scale_range(param, param.low, param.high)
    width = box_hi - box_lo if box_hi > box_lo else full_hi - full_lo
    pad = margin * width
    positions = [to_scale(param, float(v)) for v in values]
    top_lo, top_hi = min(positions), max(positions)
    lo = max(top_lo - pad, min(box_lo, top_lo))
    hi = min(top_hi + pad, max(box_hi, top_hi))
    centre = (top_lo + top_hi) / 2
    if incumbent is not None:
        centre = to_scale(param, float(incumbent))
        if centre - box_lo <= pad:
            lo = min(lo, min(centre, box_lo) - pad)
        if box_hi - centre <= pad:
            hi = max(hi, max(centre, box_hi) + pad)
    lo, hi = _keep_width(max(lo, full_lo), min(hi, full_hi), centre, min_width * width, full_lo, full_hi)
    low, high = value_range(param, lo, hi)
    low, high = snap_down(param, low), snap_up(param, high)
    if incumbent is not None:
        # Float round trips through log10 must not shave the incumbent off an end.
        low, high = min(low, incumbent), max(high, incumbent)
    return {"low": low, "high": high}


def _keep_width(
    lo: float, hi: float, centre: float, least: float, full_lo: float, full_hi: float
) -> tuple[float, float]:
    """``[lo, hi]`` widened, where narrower than ``least``, to also cover ``least`` around
    ``centre``, that window shifted inside ``[full_lo, full_hi]``."""
    if hi - lo >= least:
        return lo, hi
    start = min(max(centre - least / 2, full_lo), max(full_hi - least, full_lo))
    return min(lo, start), max(hi, start + least)


def validate_box(spec: StudySpec, box: Mapping[str, Any]) -> Box:
    """A user-given box, checked against the spec; raises ValueError naming the parameter.

    Parameters the box leaves out keep their original range. Numeric ends must lie
    inside the original bounds with ``low < high``; they are rounded outward onto the
    step grid. Choices must be a non-empty subset of the original ones.
    """
    checked = full_box(spec)
    for name, entry in box.items():
        if name not in spec.space:
            raise ValueError(f"box: unknown parameter {name!r}")
        param = spec.space[name]
        if not isinstance(entry, Mapping):
            raise ValueError(f"box.{name}: expected an object")
        if isinstance(param, CategoricalParam):
            checked[name] = _valid_choices(name, param, entry)
        else:
            checked[name] = _valid_range(name, param, entry)
    return _without_inactive(spec, checked)


def _valid_choices(name: str, param: CategoricalParam, entry: Mapping[str, Any]) -> ChoiceSet:
    if set(entry) != {"choices"}:
        raise ValueError(f'box.{name}: a categorical parameter takes {{"choices": [...]}}')
    choices = entry["choices"]
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"box.{name}.choices: must be a non-empty list")
    picked: list[Choice] = []
    for choice in choices:
        matches = [c for c in param.choices if c == choice and type(c) is type(choice)]
        if not matches:
            raise ValueError(f"box.{name}.choices: {choice!r} is not one of {param.choices}")
        if any(choice == p for p in picked):
            raise ValueError(f"box.{name}.choices: duplicate choice {choice!r}")
        picked.append(matches[0])
    return {"choices": [c for c in param.choices if any(c == p for p in picked)]}


def _valid_range(name: str, param: NumericParam, entry: Mapping[str, Any]) -> NumericRange:
    if set(entry) != {"low", "high"}:
        raise ValueError(f'box.{name}: a numeric parameter takes {{"low": x, "high": y}}')
    low, high = entry["low"], entry["high"]
    for end, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"box.{name}.{end}: must be a finite number")
    if not low < high:
        raise ValueError(f"box.{name}.low: must be less than high ({low} >= {high})")
    if low < param.low or high > param.high:
        raise ValueError(
            f"box.{name}: [{low}, {high}] leaves the original bounds [{param.low}, {param.high}]"
        )
    return {"low": snap_down(param, low), "high": snap_up(param, high)}


def box_contains(box: Box, params: Mapping[str, Any]) -> bool:
    """Whether every parameter of ``params`` that the box names lies inside it."""
    for name, value in params.items():
        entry = box.get(name)
        if entry is None:
            continue
        if "choices" in entry:
            if not any(value == c for c in entry["choices"]):
                return False
        elif not entry["low"] <= value <= entry["high"]:
            return False
    return True


def _copy_entry(entry: NumericRange | ChoiceSet) -> NumericRange | ChoiceSet:
    if "choices" in entry:
        return {"choices": list(entry["choices"])}
    return {"low": entry["low"], "high": entry["high"]}


def _copy(box: Box) -> Box:
    return {name: _copy_entry(entry) for name, entry in box.items()}
