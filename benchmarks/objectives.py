"""Objectives the benchmarks run through hone's ``python`` entrypoint (``benchmarks.objectives:NAME``).

Each is ``function(params, report) -> float`` exactly as a user's objective is. The analytic
ones have known optima (:data:`OPTIMA`), so regret is exact. ``learning_curve_*`` report one
value per epoch with a shape typical of training (fast start, slow finish, some configurations
plateau early), for the pruning benchmark. ``noop_*`` do nothing but report: the service
overhead benchmark measures the machinery, not the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Report = Callable[..., bool]

# Known global minima of the analytic objectives.
OPTIMA: dict[str, float] = {"branin": 0.397887, "hartmann6": -3.32237, "lr_valley": 0.0}
# The learning curve's best configuration: where ``_curve``'s gap is 0.
CURVE_OPTIMUM: dict[str, float] = {"lr": 10**-2.5, "units": 128}

_HARTMANN_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
_HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
_HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(params: dict[str, Any], report: Report) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]; minimum 0.397887 at three points."""
    x1, x2 = float(params["x1"]), float(params["x2"])
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def hartmann6(params: dict[str, Any], report: Report) -> float:
    """Hartmann-6 on [0, 1]^6; minimum -3.32237."""
    x = [float(params[f"x{i}"]) for i in range(1, 7)]
    total = 0.0
    for alpha, a_row, p_row in zip(_HARTMANN_ALPHA, _HARTMANN_A, _HARTMANN_P, strict=True):
        total -= alpha * math.exp(-sum(a * (xi - p) ** 2 for a, xi, p in zip(a_row, x, p_row, strict=True)))
    return total


def lr_valley(params: dict[str, Any], report: Report) -> float:
    """A valley that is only narrow on the log scale, like a learning rate's: minimum 0 at
    lr = 10^-2.5, beta = 0.99 (1 - beta = 10^-2) and batch_size = 64."""
    lr, beta, batch = float(params["lr"]), float(params["beta"]), float(params["batch_size"])
    return (
        (math.log10(lr) + 2.5) ** 2
        + 0.5 * (math.log10(1 - beta) + 2) ** 2
        + 0.1 * (math.log2(batch) - 6) ** 2
    )


def _curve(params: dict[str, Any], report: Report, *, epochs: int) -> float:
    """A loss curve: ``final + (start - final) * exp(-epoch / speed)`` with final set by how far
    lr and width are from their sweet spot. Fast learners are not always the best at the end."""
    lr, units = float(params["lr"]), float(params["units"])
    gap = (math.log10(lr) + 2.5) ** 2 + 0.3 * (math.log2(units) - 7) ** 2
    final = 0.05 + 0.1 * gap
    speed = 1.0 + 6.0 / (1.0 + 10 ** (math.log10(lr) + 2.5))  # high lr learns fast...
    start = 2.5 + 0.2 * gap
    value = start
    for epoch in range(1, epochs + 1):
        value = final + (start - final) * math.exp(-epoch / speed)
        if report(epoch, value):
            break
    return value


def curve_values(params: dict[str, Any], epochs: int) -> list[float]:
    """The learning curve's value after each epoch, for ``params`` (nothing is pruned)."""
    values: list[float] = []

    def keep(step: int, value: float) -> bool:
        values.append(value)
        return False

    _curve(params, keep, epochs=epochs)
    return values


def curve_lead(params: dict[str, Any], rival: dict[str, Any], epochs: int) -> int:
    """The last epoch after which ``rival``'s learning curve is still ahead (lower) than
    ``params``'s; 0 when it never is."""
    ours, theirs = curve_values(params, epochs), curve_values(rival, epochs)
    behind = [epoch for epoch, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1) if b < a]
    return max(behind, default=0)


def learning_curve_9(params: dict[str, Any], report: Report) -> float:
    return _curve(params, report, epochs=9)


def learning_curve_27(params: dict[str, Any], report: Report) -> float:
    return _curve(params, report, epochs=27)


def noop(params: dict[str, Any], report: Report) -> float:
    """Nothing to compute: the whole trial is the service's overhead."""
    return 0.0


def noop_20_steps(params: dict[str, Any], report: Report) -> float:
    """Twenty reports of a constant value (so no pruner prunes), then done."""
    for step in range(20):
        if report(step, 0.0):
            break
    return 0.0
