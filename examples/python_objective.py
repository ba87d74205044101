"""An objective written as plain Python: hone's workers call ``branin(params, report)``.

Use it with ``examples/branin.json`` (``"trainer": "python"``,
``"entrypoint": "examples.python_objective:branin"``); the worker imports it from the
directory it was started in, so start ``hone up`` (or ``hone worker``) from the repository.

``report(step, value)`` sends an intermediate value and answers ``True`` when the trial
should stop (pruned, or the worker is shutting down). The return value is the trial's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def branin(params: dict[str, Any], report: Callable[..., bool]) -> float:
    """The Branin function: three global minima of 0.397887, e.g. at (π, 2.275)."""
    x1, x2 = float(params["x1"]), float(params["x2"])
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    value = a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s
    report(1, value)
    return value


NOISE = 0.3  # the noise's standard deviation: its variance, 0.09, is the Bayes error


def polynomial(params: dict[str, Any], report: Callable[..., bool]) -> dict[str, float]:
    """Ridge regression of noisy sin(x) on a polynomial of ``degree`` with penalty ``l2``.

    Returns the validation MSE as the value and the training MSE beside it as
    ``train_loss``: with ``"metric": "loss"`` that is the training counterpart
    ``GET /studies/{id}/diagnosis`` reads (``objective.target_error`` = 0.09, the noise's
    variance, is the Bayes error). Degree 1 underfits (high bias); degree 15 on 20 points
    without a penalty overfits (high variance).
    """
    import numpy as np

    degree, l2 = int(params["degree"]), float(params.get("l2", 0.0))
    rng = np.random.default_rng(int(params.get("seed", 0)))

    def sample(n: int) -> tuple[Any, Any]:
        x = rng.uniform(-1, 1, n)
        return x, np.sin(3 * x) + rng.normal(0, NOISE, n)

    (x_train, y_train), (x_val, y_val) = sample(int(params.get("rows", 20))), sample(1000)
    features = np.vander(x_train, degree + 1)
    weights = np.linalg.solve(features.T @ features + l2 * np.eye(degree + 1), features.T @ y_train)

    def mse(x: Any, y: Any) -> float:
        return float(np.mean((np.vander(x, degree + 1) @ weights - y) ** 2))

    val_loss = mse(x_val, y_val)
    report(1, val_loss)
    return {"value": val_loss, "train_loss": mse(x_train, y_train)}
