"""Claim 7: after a high-bias or high-variance verdict, one round in the recipe's box
improves the best validation error more often than one more plain random round.

Per seed and scenario, a real hone study (``LocalService``: the app, the lease protocol,
the worker's own ``run_objective``, results with their metrics) runs round 1 at random
over the whole space, then ``GET /diagnosis`` reads it. Where the verdict is
``high_bias``, ``high_variance`` or ``both``, the same round-1 state is continued two
ways with the same budget: a round opened with ``"box": "diagnosis"`` (the recipe's
box) and a round over the whole space again (plain random). Both arms draw with the
same sampler seed and trial numbers, so they differ only in where the box puts the
points; a configuration met twice is trained once (the trainer is deterministic on the
CPU). Reported, whatever they are: the share of diagnosed seeds in which each arm
lowered the best validation error (1 − val_accuracy), and the share in which the
recipe's best beat random's.

Scenarios (digits, built-in MLP, ``val_accuracy``):

- ``underfit``: 3 epochs at lr 0.001; widths 2–64, 1–3 layers, l2 0.01–10, keep_prob
  from 0.3: much of the space cannot fit the training set in the time given;
- ``overfit``: a slice of digits (11 % for training, ~200 rows), 20 epochs, widths
  64–512, l2 from 0.0001: wide networks memorize the slice unless regularized.

Run alone: ``python -m benchmarks.recipe_rounds [--quick | --smoke]``.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

from benchmarks.local_service import API, LocalService
from benchmarks.modes import mode_of, mode_parser
from benchmarks.stats import table, target
from protocol import Objective
from worker.objectives import Outcome, run_objective

SCENARIOS: dict[str, dict[str, Any]] = {
    "underfit": {
        "objective": {
            "dataset": "digits",
            "metric": "val_accuracy",
            "max_epochs": 3,
            "fixed": {"lr": 0.001},
        },
        "space": {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "hidden_units": {"type": "int", "low": 2, "high": 64, "scale": "log"},
            "l2": {"type": "float", "low": 1e-2, "high": 10.0, "scale": "log"},
            "keep_prob": {"type": "float", "low": 0.3, "high": 1.0},
        },
    },
    "overfit": {
        "objective": {
            "dataset": "digits",
            "metric": "val_accuracy",
            "max_epochs": 20,
            "fixed": {"val_fraction": 0.45, "test_fraction": 0.44},
        },
        "space": {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "hidden_units": {"type": "int", "low": 64, "high": 512, "scale": "log"},
            "l2": {"type": "float", "low": 1e-4, "high": 10.0, "scale": "log"},
            "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
        },
    },
}
SIZES = {  # seeds, round-1 trials, round-2 trials per arm
    "full": (20, 10, 8),
    "quick": (5, 8, 6),
    "smoke": (1, 3, 2),
}
SMOKE_EPOCHS = 2
GRACE_S = 3600.0


class Cache:
    """Trains each (scenario, seed, params) once: both arms share round 1, and an arm may
    draw a configuration already trained."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.trained = 0

    def run(self, objective: Objective, params: dict[str, Any]) -> Outcome:
        key = json.dumps([objective.model_dump(mode="json"), params], sort_keys=True)
        if key not in self.outcomes:
            self.outcomes[key] = run_objective(objective, params, device="cpu", report=lambda *_: False)
            self.trained += 1
        return self.outcomes[key]


def _work(service: LocalService, study_id: int, cache: Cache) -> None:
    """Runs the study's open round to its end, as one worker slot would (with metrics)."""
    while True:
        response = service._post("/leases", {"worker": f"bench-{study_id}", "studies": [study_id]})
        if response.status_code == 204:
            return
        grant = response.json()
        outcome = cache.run(Objective.model_validate(grant["objective"]), grant["trial"]["params"])
        body = {"value": outcome.value, "metrics": outcome.metrics}
        service._post(f"/leases/{grant['lease']['id']}/complete", body)


def _best_error(service: LocalService, study_id: int) -> float:
    best = service.client.get(f"{API}/studies/{study_id}/best").json()
    return 1.0 - float(best["value"])


def _spec(scenario: str, seed: int, arm: str, first: int, mode: str) -> dict[str, Any]:
    spec = copy.deepcopy(SCENARIOS[scenario])
    spec["objective"].setdefault("fixed", {})["seed"] = seed
    if mode == "smoke":
        spec["objective"]["max_epochs"] = SMOKE_EPOCHS
    spec.update(
        name=f"{scenario}-{seed}-{arm}",
        sampler={"type": "random", "seed": seed},
        pruner={"type": "none"},
        rounds=[{"trials": first}],
    )
    return spec


def one_seed(scenario: str, seed: int, first: int, second: int, mode: str, cache: Cache) -> dict[str, Any]:
    """Round 1, the verdict, then each arm's round 2 on its own copy of the study."""
    # No heartbeats while a trial trains: a grace period no trial outlasts, even on a busy CPU.
    with LocalService(grace_period=GRACE_S) as service:
        ids = {}
        for arm in ("recipe", "random"):
            ids[arm] = service._post("/studies", _spec(scenario, seed, arm, first, mode)).json()["id"]
            _work(service, ids[arm], cache)
        before = _best_error(service, ids["recipe"])
        diagnosis = service.client.get(f"{API}/studies/{ids['recipe']}/diagnosis").json()
        row: dict[str, Any] = {
            "scenario": scenario,
            "seed": seed,
            "verdict": diagnosis["verdict"],
            "training_error": diagnosis["training_error"],
            "validation_error": diagnosis["validation_error"],
            "before": before,
        }
        if diagnosis["verdict"] == "fine":
            return row
        row["moves"] = {m["param"]: m["direction"] for m in diagnosis["proposal"]["moves"]}
        boxes = {"recipe": "diagnosis", "random": None}
        for arm, study_id in ids.items():
            body: dict[str, Any] = {"trials": second}
            if boxes[arm] is not None:
                body["box"] = boxes[arm]
            else:  # plain random: the whole space again
                body["box"] = {}
            service._post(f"/studies/{study_id}/rounds", body)
            _work(service, study_id, cache)
            row[arm] = _best_error(service, study_id)
        return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The shares over every run, and per scenario under ``by_scenario``."""
    found = _shares(rows)
    found["by_scenario"] = {name: _shares([r for r in rows if r["scenario"] == name]) for name in SCENARIOS}
    return found


def _shares(rows: list[dict[str, Any]]) -> dict[str, Any]:
    diagnosed = [r for r in rows if "recipe" in r]
    n = len(diagnosed)

    def share(test: Any) -> float:
        return sum(1 for r in diagnosed if test(r)) / n if n else float("nan")

    return {
        "seeds": len(rows),
        "diagnosed": n,
        "recipe_improved": share(lambda r: r["recipe"] < r["before"]),
        "random_improved": share(lambda r: r["random"] < r["before"]),
        "recipe_beat_random": share(lambda r: r["recipe"] < r["random"]),
        "random_beat_recipe": share(lambda r: r["random"] < r["recipe"]),
    }


def markdown(result: dict[str, Any], plots: list[str] | None = None) -> str:
    s = result["summary"]
    lines = [
        f"Mode **{result['mode']}**: {result['seeds']} seeds per scenario, round 1 of "
        f"{result['first']} trials, round 2 of {result['second']} per arm; "
        f"{s['diagnosed']} of {s['seeds']} runs had a bias or variance verdict.",
        "",
        table(
            ["share of diagnosed runs", "all", *SCENARIOS],
            [
                [label, s[key], *(s["by_scenario"][name][key] for name in SCENARIOS)]
                for label, key in (
                    ("recipe round lowered the best validation error", "recipe_improved"),
                    ("plain random round lowered it", "random_improved"),
                    ("recipe's best below random's", "recipe_beat_random"),
                    ("random's best below the recipe's", "random_beat_recipe"),
                )
            ],
        ),
        "",
        table(
            [
                "scenario",
                "seed",
                "verdict",
                "train err",
                "val err",
                "best after r1",
                "recipe r2",
                "random r2",
            ],
            [
                [
                    r["scenario"],
                    r["seed"],
                    r["verdict"],
                    r["training_error"],
                    r["validation_error"],
                    r["before"],
                    r.get("recipe", float("nan")),
                    r.get("random", float("nan")),
                ]
                for r in result["rows"]
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = mode_parser(__doc__).parse_args(argv)
    mode = mode_of(args)
    seeds, first, second = SIZES[mode]
    cache = Cache()
    rows = []
    for scenario in SCENARIOS:
        for seed in range(seeds):
            rows.append(one_seed(scenario, seed, first, second, mode, cache))
            print(f"recipe_rounds: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    summary = summarize(rows)
    return {
        "mode": mode,
        "seeds": seeds,
        "first": first,
        "second": second,
        "trained": cache.trained,
        "rows": rows,
        "summary": summary,
        "targets": targets(summary),
    }


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One claim per scenario: a bias verdict and a variance verdict are different bets."""
    found = []
    for name in SCENARIOS:
        s = summary["by_scenario"][name]
        n = s["diagnosed"]
        measured = (
            f"recipe lowered the best in {s['recipe_improved']:.0%}, random in "
            f"{s['random_improved']:.0%} of {n} diagnosed runs"
        )
        margin = f"{s['recipe_improved'] - s['random_improved']:+.0%}" if n else "–"
        passed = n > 0 and s["recipe_improved"] > s["random_improved"]
        found.append(
            target(
                f"Recipe round vs plain random round: {name}",
                "recipe improves more often",
                measured,
                passed,
                margin,
            )
        )
    return found


if __name__ == "__main__":
    result = main()
    print(markdown(result))
