"""Building a study's sampler and pruner, and suggesting a trial's parameters.

Samplers are cheap and built per request: ``create_sampler(spec, box=..., index=...)``
with ``index`` = the configuration's position within its round; each sampler and pruner
variant builds itself (``service.samplers``, ``service.pruners``). :func:`suggest_params`
always suggests with the ORIGINAL distributions, whatever box the sampler draws in.
"""

from __future__ import annotations

from typing import Any

from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import BaseTrial

from service.box_sampler import BoxSampler, value_at
from service.narrowing import Box
from service.space import CategoricalParam, FloatParam
from service.spec import StudySpec

__all__ = ["BoxSampler", "create_pruner", "create_sampler", "suggest_params", "value_at"]


def create_sampler(spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
    """The sampler for the configuration at position ``index`` of the round sampled in ``box``."""
    return spec.sampler.build(spec, box=box, index=index)


def create_pruner(spec: StudySpec) -> BasePruner:
    """The study's pruner; Hyperband's maximum resource is ``objective.max_epochs``."""
    return spec.pruner.build(spec.objective.max_epochs)


def suggest_params(trial: BaseTrial, spec: StudySpec) -> dict[str, Any]:
    """Suggests every active parameter (``when`` met), parents first, with its ORIGINAL
    distribution; an enqueued trial (a retry) gets its fixed values back."""
    params: dict[str, Any] = {}
    for name in spec.param_order():
        param = spec.space[name]
        if not param.applies(params):
            continue
        if isinstance(param, CategoricalParam):
            params[name] = trial.suggest_categorical(name, param.choices)
        elif isinstance(param, FloatParam):
            params[name] = trial.suggest_float(
                name, param.low, param.high, step=param.step, log=param.scale == "log"
            )
        else:
            params[name] = trial.suggest_int(
                name, param.low, param.high, step=param.step, log=param.scale == "log"
            )
    return params
