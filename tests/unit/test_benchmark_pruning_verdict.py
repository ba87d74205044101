"""The pruning benchmark's verdicts: one per task, and whether one pruner passes every task."""

from __future__ import annotations

from typing import Any

from benchmarks.pruning import PRUNERS, _one_pruner, _targets


def _task(best: float, **rows: tuple[float, float]) -> dict[str, Any]:
    """A task's results: ``pruner=(speedup, median best)``; ``none`` has ``best`` at 1×."""
    pruners = {"none": {"speedup": 1.0, "median_best": best}}
    pruners |= {name: {"speedup": s, "median_best": b} for name, (s, b) in rows.items()}
    assert set(pruners) == set(PRUNERS)
    return {"pruners": pruners}


# The shape of the trade-off the full run measures: fast pruners cut the late optimum.
CROSSING = _task(
    0.068,
    median=(6.8, 0.079),
    percentile=(3.1, 0.065),
    successive_halving=(3.8, 0.080),
    hyperband=(1.99, 0.067),
)
DIGITS = _task(
    0.131,
    median=(3.3, 0.120),
    percentile=(1.88, 0.122),
    successive_halving=(3.7, 0.122),
    hyperband=(1.99, 0.126),
)


def test_a_task_passes_when_some_pruner_is_twice_as_fast_at_no_worse_best() -> None:
    verdicts = {t["claim"]: t for t in _targets({"curves": CROSSING, "digits": DIGITS})}
    curves, digits = (
        verdicts["Pruning buys configurations: curves"],
        verdicts["Pruning buys configurations: digits"],
    )
    assert curves["pass"] and digits["pass"]
    assert curves["measured"].endswith("passing: percentile")
    assert "median 6.80× (worse best)" in curves["measured"]
    assert digits["measured"].endswith("passing: median, successive_halving")
    assert "percentile: -6.0% on speed" in digits["margin"]


def test_a_task_misses_when_the_fast_pruners_lose_the_best_and_the_safe_ones_are_slow() -> None:
    slow = _task(
        0.068,
        median=(6.8, 0.079),
        percentile=(1.5, 0.065),
        successive_halving=(3.8, 0.080),
        hyperband=(1.99, 0.067),
    )
    (verdict,) = _targets({"curves": slow})
    assert not verdict["pass"]
    assert verdict["measured"].endswith("no pruner passes")


def test_no_one_pruner_names_the_closest_safe_pruner() -> None:
    note = _one_pruner({"curves": CROSSING, "digits": DIGITS})
    # percentile and hyperband keep the best on both; hyperband's slowest task (1.99×) beats 1.88×.
    assert note.startswith("No one pruner passes on every task here: the closest is hyperband")
    assert "curves 1.99×, digits 1.99×" in note


def test_one_pruner_passing_everywhere_is_named() -> None:
    both = _task(
        0.131,
        median=(3.3, 0.120),
        percentile=(2.2, 0.122),
        successive_halving=(3.7, 0.140),
        hyperband=(1.99, 0.126),
    )
    assert (
        _one_pruner({"curves": CROSSING, "digits": both})
        == "One pruner passes on every task here: percentile."
    )
