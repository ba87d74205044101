"""A numeric parameter's own scale: where "uniform" and "a margin of 10%" are measured.

``to_scale`` maps a value onto the line on which it is sampled uniformly (``x`` for
linear, ``log10 x`` for log, ``log10(1 - x)`` for reverse_log) and ``from_scale`` maps back.
``snap_*`` put a value onto the parameter's step grid (ints always have one).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from service.space import IntParam, NumericParam

__all__ = [
    "NumericParam",
    "from_scale",
    "scale_range",
    "snap_down",
    "snap_nearest",
    "snap_up",
    "tidy",
    "to_scale",
    "value_range",
]


def to_scale(param: NumericParam, value: float) -> float:
    """``value`` on the line on which ``param`` is sampled uniformly."""
    if param.scale == "log":
        return math.log10(value)
    if param.scale == "reverse_log":
        return math.log10(1.0 - value)
    return float(value)


def from_scale(param: NumericParam, position: float) -> float:
    """The inverse of :func:`to_scale`."""
    if param.scale == "log":
        return float(10.0**position)
    if param.scale == "reverse_log":
        return 1.0 - float(10.0**position)
    return position


def scale_range(param: NumericParam, low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` on the parameter's scale, lower end first (reverse_log flips)."""
    a, b = to_scale(param, low), to_scale(param, high)
    return (a, b) if a <= b else (b, a)


def value_range(param: NumericParam, start: float, end: float) -> tuple[float, float]:
    """The inverse of :func:`scale_range`: values, lower first."""
    a, b = from_scale(param, start), from_scale(param, end)
    return (a, b) if a <= b else (b, a)


def snap_down(param: NumericParam, value: float) -> float:
    """The largest grid value of ``param`` that is <= ``value`` (within its bounds)."""
    return _snap(param, value, math.floor)


def snap_up(param: NumericParam, value: float) -> float:
    """The smallest grid value of ``param`` that is >= ``value`` (within its bounds)."""
    return _snap(param, value, math.ceil)


def snap_nearest(param: NumericParam, value: float) -> float:
    """The grid value of ``param`` nearest to ``value`` (within its bounds)."""
    return _snap(param, value, round)


def _snap(param: NumericParam, value: float, rounding: Callable[[float], int]) -> float:
    step = param.step
    clipped = min(max(value, param.low), param.high)
    if step is None:
        return clipped
    # Tolerate float noise so that a value already on the grid stays where it is.
    steps = (clipped - param.low) / step
    nearest = round(steps)
    count = int(nearest) if abs(steps - nearest) < 1e-9 else int(rounding(steps))
    snapped = param.low + count * step
    if isinstance(param, IntParam):
        return int(min(max(snapped, param.low), param.high))
    return min(max(tidy(snapped), param.low), param.high)


def tidy(value: float) -> float:
    """``value`` without the last bit of float noise (0.1 + 2 * 0.1 is 0.3, not 0.30000000000000004)."""
    return float(f"{value:.15g}")
