"""The search-efficiency benchmark's grid: as good a grid as a user can write for the budget."""

from __future__ import annotations

import math
from itertools import pairwise

from benchmarks.search_efficiency import grid_counts, grid_space, tasks

_LOG = {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"}


def test_the_grid_spends_the_budget_first_parameters_first() -> None:
    space = {"lr": _LOG, "b": _LOG, "c": _LOG}
    assert grid_counts(space, 40) == [4, 3, 3]  # 36 points; 48 would not fit
    assert grid_counts(space, 27) == [3, 3, 3]
    assert grid_counts({"x": _LOG, "y": _LOG}, 40) == [6, 6]
    # Two points each even when 2^d exceeds the budget (the grid is then visited in part).
    assert grid_counts({f"x{i}": _LOG for i in range(6)}, 40) == [2] * 6
    for task in tasks("full"):
        counts = grid_counts(task.space, task.budget)
        assert math.prod(counts) <= task.budget or set(counts) == {2}


def test_the_grid_is_evenly_spaced_on_each_scale_and_shifted_by_less_than_one_spacing() -> None:
    space = {
        "lr": _LOG,
        "beta": {"type": "float", "low": 0.5, "high": 0.9999, "scale": "reverse_log"},
        "x": {"type": "float", "low": -5.0, "high": 10.0},
    }
    shifts = set()
    for seed in range(20):
        grid = grid_space(space, 36, seed)
        lrs = [math.log10(v) for v in grid["lr"]["choices"]]
        assert len(lrs) == 4
        assert all(math.isclose(b - a, 6 / 4, rel_tol=1e-4) for a, b in pairwise(lrs))
        assert -6 <= lrs[0] < -6 + 6 / 4
        betas = [math.log10(1 - v) for v in grid["beta"]["choices"]]
        assert all(math.isclose(a - b, (4 - math.log10(2)) / 3, rel_tol=1e-3) for a, b in pairwise(betas))
        xs = grid["x"]["choices"]
        assert all(math.isclose(b - a, 5.0, rel_tol=1e-4) for a, b in pairwise(xs))
        shifts.add(round(lrs[0], 3))
    assert len(shifts) == 20  # a new offset per seed
    assert grid_space(space, 36, 3) == grid_space(space, 36, 3)  # and the same for a seed
