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
