"""The study the page's tests and its README screenshot show: three rounds of a smooth bowl
(``tests.web.objectives:bowl``) over a log, a reverse-log, a log-int and a categorical
parameter, run to the end by a real worker."""

from __future__ import annotations

from typing import Any

BOWL_STUDY: dict[str, Any] = {
    "name": "coarse-to-fine",
    "objective": {
        "trainer": "python",
        "entrypoint": "tests.web.objectives:bowl",
        "metric": "loss",
        "direction": "minimize",
    },
    "space": {
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
        "momentum": {"type": "float", "low": 0.5, "high": 0.9999, "scale": "reverse_log"},
        "width": {"type": "int", "low": 4, "high": 512, "scale": "log"},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    },
    "sampler": {"type": "random", "seed": 3},
    "pruner": {"type": "none"},
    "rounds": [{"trials": 30}, {"trials": 20}, {"trials": 15}],
}
