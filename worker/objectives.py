"""Running one trial's objective: a built-in trainer (``trainer.registry``) or a user's Python function.

Both kinds report a value per step through the same callback, which answers ``True``
when the trial must stop (pruned, cancelled, or the worker is shutting down).

A Python entrypoint is ``package.module:function`` and is called as
``function(params, report)`` (plus ``device=`` if it accepts that keyword; ``params``
includes the objective's ``fixed`` values), where
``report(step, value, metrics=None) -> bool``; it returns the objective value (a float,
or a mapping with ``"value"`` and more metrics).
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol import Objective
from trainer.interface import Trainer
from trainer.registry import TRAINERS

# step, value, metrics -> True when the trial must stop now
ReportFn = Callable[[int, float, dict[str, float]], bool]


class Diverged(Exception):
    """The objective's value became NaN or infinite."""


class BadObjective(Exception):
    """The grant's objective cannot be run here (unknown kind, entrypoint not importable)."""


@dataclass(frozen=True)
class Outcome:
    value: float
    metrics: dict[str, float] = field(default_factory=dict)
    stopped: bool = False  # the objective ended early because report() said so


def run_objective(objective: Objective, params: dict[str, Any], *, device: str, report: ReportFn) -> Outcome:
    if objective.trainer in TRAINERS:
        return _run_trainer(TRAINERS[objective.trainer], objective, params, device=device, report=report)
    if objective.trainer == "python":
        return _run_python(objective, params, device=device, report=report)
    raise BadObjective(f"unknown trainer {objective.trainer!r}")


def _run_trainer(
    trainer: Trainer[Any], objective: Objective, params: dict[str, Any], *, device: str, report: ReportFn
) -> Outcome:
    config = trainer.config({**objective.config_values(params), "device": device})
    metric = objective.metric
    stopped = False

    def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
        nonlocal stopped
        value = float(metrics[metric])
        if not math.isfinite(value):
            return False  # the trainer notices the divergence and ends the run itself
        if report(epoch, value, _finite(metrics)):
            stopped = True
        return stopped

    result = trainer.run(config, on_epoch)
    if result.status == "diverged":
        raise Diverged(f"diverged: {metric} became NaN or infinite")
    best = _as_metrics(result.best)
    if metric not in best or not math.isfinite(best[metric]):
        raise Diverged(f"diverged: no finite {metric} in any epoch")
    metrics = dict(best)
    for name, number in _as_metrics(getattr(result, "test", None)).items():
        metrics[name if name.startswith("test_") else f"test_{name}"] = number
    metrics["epochs"] = float(len(result.epochs))
    return Outcome(
        value=best[metric], metrics=_finite(metrics), stopped=stopped or result.status == "stopped"
    )


def _run_python(objective: Objective, params: dict[str, Any], *, device: str, report: ReportFn) -> Outcome:
    function = load_entrypoint(objective.entrypoint or "")
    stopped = False

    def user_report(step: int, value: float, metrics: Mapping[str, float] | None = None) -> bool:
        nonlocal stopped
        value = float(value)
        if not math.isfinite(value):
            raise Diverged(f"diverged: reported value {value} at step {step}")
        if report(int(step), value, _finite(dict(metrics or {}))):
            stopped = True
        return stopped

    kwargs: dict[str, Any] = {}
    if "device" in inspect.signature(function).parameters:
        kwargs["device"] = device
    try:
        result = function({**objective.fixed, **params}, user_report, **kwargs)
    except Exception:
        if stopped:  # a user function may raise (e.g. optuna.TrialPruned) after being told to stop
            return Outcome(value=math.nan, stopped=True)
        raise
    metrics: dict[str, float] = {}
    if isinstance(result, Mapping):
        metrics = _finite({k: v for k, v in result.items() if k != "value"})
        result = result.get("value")
    if result is None and stopped:
        return Outcome(value=math.nan, stopped=True)
    try:
        value = float(result)
    except (TypeError, ValueError) as error:
        raise BadObjective(f"{objective.entrypoint} returned {result!r}, not a number") from error
    if not math.isfinite(value):
        raise Diverged(f"diverged: objective returned {value}")
    return Outcome(value=value, metrics=metrics, stopped=stopped)


def load_entrypoint(entrypoint: str) -> Callable[..., Any]:
    module_name, _, attribute = entrypoint.partition(":")
    if not module_name or not attribute:
        raise BadObjective(f"entrypoint {entrypoint!r} is not of the form package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BadObjective(f"cannot import {module_name!r}: {type(error).__name__}: {error}") from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise BadObjective(f"{entrypoint!r} is not a callable")
    return function  # type: ignore[no-any-return]


def is_out_of_memory(error: BaseException) -> bool:
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def release_device_memory() -> None:
    """After a CUDA OOM, hand the cached blocks back so the next trial starts clean."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def failure_reason(error: BaseException) -> str:
    """One line a person can read in a table: the exception's type and message
    (``KeyError: 'accuracy'``), or what happened (diverged, out of memory, cannot import)."""
    message = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    if isinstance(error, Diverged | BadObjective):
        return message[:500] or type(error).__name__
    if is_out_of_memory(error):
        return f"CUDA out of memory: {message[:300] or type(error).__name__}"
    return f"{type(error).__name__}: {message}"[:500] if message else type(error).__name__


def failure_traceback(error: BaseException) -> str | None:
    """The full traceback, sent beside the one-line reason (none for a divergence: no bug)."""
    if isinstance(error, Diverged):
        return None
    return "".join(traceback.format_exception(error)).rstrip()[-100_000:]


def _as_metrics(data: object) -> dict[str, float]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        data = getattr(data, "__dict__", {})
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = float(value)
    return out
