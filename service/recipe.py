"""The basic recipe as the next round's box: which way each knob moves for a verdict. Pure.

High bias (the network underfits its training set): a bigger network (``n_layers`` and
``hidden_units`` up), less regularization (``l2`` down, ``keep_prob`` up), train longer.
High variance (it overfits): more regularization (``l2`` up, ``keep_prob`` down). Both:
the lecture's order, bias first: the bigger network, with regularization left where
narrowing puts it (lowering it would feed the variance, raising it the bias). Fine:
nothing moves.

A move starts at the incumbent (the best diagnosed trial's value), so the box always
contains it, and reaches one step past the current round's box on the parameter's own
scale (the step is the current box's width, at least ``margin`` of the full range); the
spec's bounds stop it, and the move says so. Every other parameter keeps the narrowed
box, so the round stays inside the study's one search space (DESIGN: narrowing by the
sampler, never by changing distributions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from protocol import BoxMove, Proposal, Verdict
from protocol.diagnosis import MoveDirection
from service.narrowing import Box, ChoiceSet, NumericRange
from service.scales import NumericParam, scale_range, snap_down, snap_up, to_scale, value_range
from service.space import CategoricalParam, Choice
from service.spec import StudySpec

MOVES: dict[Verdict, dict[str, MoveDirection]] = {
    "high_bias": {"n_layers": "up", "hidden_units": "up", "l2": "down", "keep_prob": "up"},
    "high_variance": {"l2": "up", "keep_prob": "down"},
    "both": {"n_layers": "up", "hidden_units": "up"},
    "fine": {},
}


def propose(
    spec: StudySpec,
    *,
    verdict: Verdict,
    narrowed: Box,
    current: Box,
    incumbent: Mapping[str, Any],
    epochs: int | None = None,
) -> Proposal:
    """The narrowed box with the recipe's moves for ``verdict`` applied, and for high bias
    the epochs per trial doubled ("train longer"), within ``objective.epochs_limit``.

    ``current`` is the current round's box (where the step is measured), ``incumbent``
    the best diagnosed trial's params, ``epochs`` what each trial of the current round
    trains (default: ``objective.max_epochs``).
    """
    box: Box = {name: _copy(entry) for name, entry in narrowed.items()}
    moves: list[BoxMove] = []
    notes: list[str] = []
    for name, direction in MOVES[verdict].items():
        param = spec.space.get(name)
        wanted = "raise" if direction == "up" else "lower"
        if param is None:
            fixed = spec.objective.fixed.get(name)
            held = f"fixed at {fixed!r}" if fixed is not None else "at the trainer's default"
            notes.append(f"{name}: not searched ({held}); the recipe would {wanted} it: search it in space")
            continue
        if name not in box or name not in incumbent:
            notes.append(f"{name}: not active in this round (a conditional parameter); left as it is")
            continue
        before = current.get(name, narrowed[name])
        value = incumbent[name]
        entry: NumericRange | ChoiceSet
        if isinstance(param, CategoricalParam):
            moved = _move_choices(param, value, direction)
            if moved is None:
                notes.append(f"{name}: its choices are not numbers; the recipe would {wanted} it")
                continue
            entry, stopped = moved
        else:
            assert "low" in before
            entry, stopped = _move_numeric(param, before, value, direction, spec.narrowing.margin)
        box[name] = entry
        moves.append(
            BoxMove(
                param=name,
                direction=direction,
                incumbent=value,
                before=dict(before),
                after=dict(entry),
                stopped=stopped,
            )
        )
    max_epochs = None
    if verdict in ("high_bias", "both"):
        max_epochs, note = _train_longer(spec, spec.objective.max_epochs if epochs is None else epochs)
        notes.append(note)
    return Proposal(box=dict(box), moves=moves, max_epochs=max_epochs, notes=notes)


def _train_longer(spec: StudySpec, epochs: int) -> tuple[int | None, str]:
    """Twice the epochs, within the objective's limit, and a note that says what happened."""
    limit = spec.objective.epochs_limit
    bound = (
        f"objective.max_epochs_limit = {limit}"
        if spec.objective.max_epochs_limit is not None
        else f"the default limit 4 × objective.max_epochs = {limit}"
    )
    if epochs >= limit:
        return None, (
            f"max_epochs: train longer is stopped by {bound}: each trial already trains {epochs} "
            "epochs; raise objective.max_epochs_limit to go further"
        )
    raised = min(2 * epochs, limit)
    stopped = f", stopped there by {bound}" if raised < 2 * epochs else ""
    return raised, f"max_epochs: train longer, {epochs} → {raised} epochs per trial{stopped}"


def as_box(proposal: Proposal) -> Box:
    """The proposal's box as a round stores it (its entries were built as ``Box`` entries)."""
    box: Box = {}
    for name, entry in proposal.box.items():
        box[name] = _copy(entry)
    return box


def _move_numeric(
    param: NumericParam, before: NumericRange, incumbent: float, direction: MoveDirection, margin: float
) -> tuple[NumericRange, str | None]:
    lo, hi = scale_range(param, before["low"], before["high"])
    full_lo, full_hi = scale_range(param, param.low, param.high)
    step = max(hi - lo, margin * (full_hi - full_lo))
    at = to_scale(param, incumbent)
    # reverse_log runs backwards: a larger value sits lower on its scale.
    upward = (direction == "up") != (param.scale == "reverse_log")
    bound = param.high if direction == "up" else param.low
    stopped = None
    if upward:
        start, end = at, max(hi, at) + step
        if end >= full_hi:
            end, stopped = full_hi, f"stopped at the spec's {_side(direction)} bound {bound}"
        if end <= start:  # the incumbent sits on the bound: keep the current box's other side
            start = min(lo, at)
    else:
        start, end = min(lo, at) - step, at
        if start <= full_lo:
            start, stopped = full_lo, f"stopped at the spec's {_side(direction)} bound {bound}"
        if end <= start:
            end = max(hi, at)
    low, high = value_range(param, start, end)
    # The move starts at the incumbent: a float round trip through log10 must not shift it.
    low, high = (incumbent if math.isclose(v, incumbent, rel_tol=1e-9) else v for v in (low, high))
    low, high = snap_down(param, low), snap_up(param, high)
    return {"low": min(low, incumbent), "high": max(high, incumbent)}, stopped


def _move_choices(
    param: CategoricalParam, incumbent: Any, direction: MoveDirection
) -> tuple[ChoiceSet, str | None] | None:
    numbers = [c for c in param.choices if isinstance(c, int | float) and not isinstance(c, bool)]
    if len(numbers) != len(param.choices) or not isinstance(incumbent, int | float):
        return None
    if direction == "up":
        kept: list[Choice] = [c for c in numbers if c >= incumbent]
        last = max(numbers)
    else:
        kept = [c for c in numbers if c <= incumbent]
        last = min(numbers)
    stopped = f"{incumbent} is already the spec's {_extreme(direction)} choice" if incumbent == last else None
    return {"choices": kept}, stopped


def _side(direction: MoveDirection) -> str:
    return "upper" if direction == "up" else "lower"


def _extreme(direction: MoveDirection) -> str:
    return "largest" if direction == "up" else "smallest"


def _copy(entry: NumericRange | ChoiceSet) -> NumericRange | ChoiceSet:
    if "choices" in entry:
        return {"choices": list(entry["choices"])}
    return {"low": entry["low"], "high": entry["high"]}
