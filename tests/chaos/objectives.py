"""User objectives (``trainer: python``) that the chaos, load and integrity tests run in real
workers, as ``tests.chaos.objectives:<name>`` (workers run from the repository root)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

Report = Callable[..., bool]


def _loss(params: dict[str, Any]) -> float:
    return (float(params["x"]) - 0.3) ** 2


def instant(params: dict[str, Any], report: Report) -> float:
    """A millisecond objective: one report, then the value."""
    report(1, _loss(params))
    return _loss(params)


def steady(params: dict[str, Any], report: Report) -> float:
    """Ten steps of ``HONE_TEST_STEP_S`` seconds each (default 0.1): long enough to be killed mid-trial."""
    step_s = float(os.environ.get("HONE_TEST_STEP_S", "0.1"))
    for step in range(1, 11):
        time.sleep(step_s)
        if report(step, _loss(params) + 1.0 / step):
            return _loss(params) + 1.0 / step
    return _loss(params)


def behaves(params: dict[str, Any], report: Report) -> float:
    """Does what ``params["behaviour"]`` says: ``ok``, ``raise``, ``hang`` or ``nan``."""
    behaviour = params["behaviour"]
    report(1, 1.0)
    if behaviour == "raise":
        raise ValueError("the user's objective broke on purpose")
    if behaviour == "hang":
        time.sleep(3600)
    if behaviour == "nan":
        return math.nan
    return 0.5


def burst(params: dict[str, Any], report: Report) -> float:
    """Twenty steps reported as fast as Python can: far faster than a round trip."""
    for step in range(1, 21):
        if report(step, _loss(params) + 1.0 / step):
            break
    return _loss(params)
