"""Paced Python objectives for the worker signal tests: ``tests.chaos.paced:NAME``, timed by params."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def steady(params: dict[str, Any], report: Callable[..., bool]) -> float:
    """``steps`` steps of ``step_s`` seconds each, reporting a value that depends on ``x``."""
    value = float(params["x"])
    for step in range(1, int(params.get("steps", 10)) + 1):
        time.sleep(float(params.get("step_s", 0.2)))
        if report(step, value + 1.0 / step):
            return value
    return value


def instant(params: dict[str, Any], report: Callable[..., bool]) -> float:
    """One report and done: a millisecond trial, to race many workers on the grant."""
    value = float(params["x"])
    report(1, value)
    return value
