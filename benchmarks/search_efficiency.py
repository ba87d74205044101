"""Claim 1: random beats grid, and coarse-to-fine rounds beat plain random at the same budget.

Every method runs as a real hone study through the lease protocol (``LocalService``), with
the same trial budget, the same objective and the same seeds:

- ``grid``: hone's grid sampler; each numeric parameter gets ``k = max(2, floor(budget^(1/d)))``
  evenly spaced points on its own scale (log-spaced for a log parameter: the best grid one
  can write, not a straw man), and the parameters listed first get one point more while the
  grid still fits the budget (so the grid spends the budget, as a user's would). The grid
  is shifted by a seeded random offset below one spacing, per parameter: a fixed grid's
  result depends only on where the task's optimum sits against its points, so over seeds it
  would be one sample repeated, not a median; a shifted grid is to a grid what scrambling
  is to Sobol. A grid larger than the budget is visited in a seeded order.
- ``random``: one round of random sampling on each parameter's scale.
- ``sobol``: one round of scrambled Sobol points.
- ``coarse_to_fine``: random sampling in 3 rounds of 50 % / 25 % / 25 % of the budget (the
  split the README recommends), each round's box narrowed around the best trials so far by
  hone's default narrowing rule, untuned per task. Its round 1 draws the same points as
  ``random``'s first half (same seed, same trial numbers), so the two differ only in where
  the second half is drawn.
- ``tpe``: Optuna's TPE (10 random start-up trials), one round.

Tasks: analytic objectives with known optima (Branin, Hartmann-6, a log-scale learning-rate
valley) through the ``python`` entrypoint, and hone's built-in trainer on digits,
breast_cancer and wine (validation loss, a few epochs). Run alone:
``python -m benchmarks.search_efficiency [--quick]``.
"""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.modes import mode_of, mode_parser
from benchmarks.objectives import OPTIMA
from benchmarks.stats import median, table, target
from service.scales import from_scale, to_scale
from service.spec import FloatParam, IntParam

METHODS = ("grid", "random", "sobol", "coarse_to_fine", "tpe")


@dataclass(frozen=True)
class Task:
    name: str
    objective: dict[str, Any]
    space: dict[str, Any]
    budget: int
    optimum: float | None = None  # None: regret against the best any method found
    seeds: int = 10


def _python(entrypoint: str) -> dict[str, Any]:
    return {
        "trainer": "python",
        "entrypoint": f"benchmarks.objectives:{entrypoint}",
        "metric": "value",
        "direction": "minimize",
    }


_UNIT = {"type": "float", "low": 0.0, "high": 1.0}
_TRAINER_SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    "hidden_units": {"type": "int", "low": 8, "high": 256, "scale": "log"},
    "batch_size": {"type": "int", "low": 16, "high": 256, "scale": "log"},
    "l2": {"type": "float", "low": 1e-4, "high": 10.0, "scale": "log"},
}


def tasks(mode: str) -> list[Task]:
    """The tasks of a mode: ``full``, ``quick`` or ``smoke`` (CI, seconds).

    Full mode runs 30 seeds per task, as the pruning benchmark does. With the issue's minimum
    of 10 a task's verdict was noise: coarse-to-fine's median regret beat random's on 4 of 6
    tasks at 1ce1960 and 3 of 6 at a90336a through the same narrowing, while replays of hone's
    draws (200 seeds of each analytic task, 30 of each trainer task, commit d3c3c4d) put its
    win rate at 61 % or more on every task (Branin, where it won 4 seeds of 10 here, 61 %).
    The analytic tasks take seconds, so even quick mode gives them 10 seeds: a win rate over 3
    seeds cannot tell a method that wins 80 % of the time from a coin.
    """
    budget = {"full": 40, "quick": 20, "smoke": 8}[mode]
    seeds = {"full": 30, "quick": 10, "smoke": 1}[mode]
    analytic = [
        Task(
            "branin",
            _python("branin"),
            {
                "x1": {"type": "float", "low": -5.0, "high": 10.0},
                "x2": {"type": "float", "low": 0.0, "high": 15.0},
            },
            budget,
            OPTIMA["branin"],
            seeds,
        ),
        Task(
            "hartmann6",
            _python("hartmann6"),
            {f"x{i}": _UNIT for i in range(1, 7)},
            budget,
            OPTIMA["hartmann6"],
            seeds,
        ),
        Task(
            "lr_valley",
            _python("lr_valley"),
            {
                "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
                "beta": {"type": "float", "low": 0.5, "high": 0.9999, "scale": "reverse_log"},
                "batch_size": {"type": "int", "low": 8, "high": 1024, "scale": "log"},
            },
            budget,
            OPTIMA["lr_valley"],
            seeds,
        ),
    ]
    if mode == "smoke":
        return analytic[:1]
    epochs, trainer_budget, trainer_seeds = (3, 12, 30) if mode == "full" else (2, 8, 3)
    datasets = ["digits", "breast_cancer", "wine"] if mode == "full" else ["wine"]
    trainer = [
        Task(
            f"mlp_{dataset}",
            {
                "trainer": "mlp",
                "dataset": dataset,
                "max_epochs": epochs,
                "metric": "val_loss",
                "direction": "minimize",
                "fixed": {"seed": 0, "cpu_threads": 1},
            },
            _TRAINER_SPACE,
            trainer_budget,
            seeds=trainer_seeds,
        )
        for dataset in datasets
    ]
    return analytic + trainer


def grid_counts(space: dict[str, Any], budget: int) -> list[int]:
    """Points per parameter: ``k = max(2, floor(budget^(1/d)))`` each, then one more for the
    parameters listed first while the grid still fits the budget."""
    counts = [max(2, math.floor(budget ** (1 / len(space)) + 1e-9))] * len(space)
    for i in range(len(counts)):
        if math.prod(counts) // counts[i] * (counts[i] + 1) > budget:
            break
        counts[i] += 1
    return counts


def grid_space(space: dict[str, Any], budget: int, seed: int) -> dict[str, Any]:
    """Every numeric parameter as evenly spaced values on its own scale, shifted by a seeded
    random fraction of one spacing."""
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    for (name, param), k in zip(space.items(), grid_counts(space, budget), strict=True):
        shift = rng.random()
        model = (IntParam if param["type"] == "int" else FloatParam).model_validate(param)
        start, end = to_scale(model, model.low), to_scale(model, model.high)
        values = [from_scale(model, start + (i + shift) / k * (end - start)) for i in range(k)]
        choices: list[Any] = (
            [round(v) for v in values] if param["type"] == "int" else [float(f"{v:.6g}") for v in values]
        )
        out[name] = {"type": "categorical", "choices": list(dict.fromkeys(choices))}
    return out


def spec_for(task: Task, method: str, seed: int) -> dict[str, Any]:
    budget = task.budget
    spec: dict[str, Any] = {
        "name": f"{task.name}-{method}-{seed}",
        "objective": task.objective,
        "space": task.space,
        "sampler": {"type": "random", "seed": seed},
        "pruner": {"type": "none"},
        "rounds": [{"trials": budget}],
    }
    if method == "grid":
        spec["space"] = grid_space(task.space, budget, seed)
        spec["sampler"]["type"] = "grid"
    elif method == "sobol":
        spec["sampler"]["type"] = "sobol"
    elif method == "tpe":
        spec["sampler"]["type"] = "tpe"
    elif method == "coarse_to_fine":
        first = budget // 2
        second = (budget - first) // 2
        spec["rounds"] = [{"trials": first}, {"trials": second}, {"trials": budget - first - second}]
    return spec


def _run_seed(task: Task, seed: int) -> dict[str, list[float]]:
    """Every method on one task and seed, in one hone service: best-so-far per method."""
    from benchmarks.local_service import LocalService

    curves: dict[str, list[float]] = {}
    with LocalService() as service:
        for method in METHODS:
            curves[method] = service.run_study(spec_for(task, method, seed)).best_so_far()
    return curves


def run(mode: str, *, seeds: int | None, jobs: int) -> dict[str, Any]:
    """Every task of ``mode`` on ``seeds`` seeds each (None: each task's own count)."""
    started = time.perf_counter()
    all_tasks = tasks(mode)
    work = [(task, seed) for task in all_tasks for seed in range(seeds or task.seeds)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(_run_seed, *zip(*work, strict=True)))
    by_task: dict[str, list[dict[str, list[float]]]] = {}
    for (task, _seed), curves in zip(work, done, strict=True):
        by_task.setdefault(task.name, []).append(curves)

    results: dict[str, Any] = {}
    for task in all_tasks:
        runs = by_task[task.name]
        optimum = task.optimum
        if optimum is None:  # the best any method found, on any seed
            optimum = min(c[-1] for r in runs for c in r.values() if not math.isnan(c[-1]))
        per_method: dict[str, Any] = {}
        for method in METHODS:
            bests = [r[method][-1] for r in runs]
            regrets = [b - optimum for b in bests]
            curve = [median([r[method][i] - optimum for r in runs]) for i in range(task.budget)]
            per_method[method] = {
                "median_best": median(bests),
                "median_regret": median(regrets),
                "regret_curve": curve,
            }
        wins = sum(
            1.0
            if r["coarse_to_fine"][-1] < r["random"][-1]
            else 0.5
            if r["coarse_to_fine"][-1] == r["random"][-1]
            else 0.0
            for r in runs
        )
        grid_wins = sum(
            1.0 if r["random"][-1] < r["grid"][-1] else 0.5 if r["random"][-1] == r["grid"][-1] else 0.0
            for r in runs
        )
        results[task.name] = {
            "budget": task.budget,
            "seeds": len(runs),
            "optimum": optimum,
            "known_optimum": task.optimum is not None,
            "methods": per_method,
            "c2f_win_rate": wins / len(runs),
            "random_vs_grid_win_rate": grid_wins / len(runs),
        }
    return {
        "mode": mode,
        "seeds": sorted({r["seeds"] for r in results.values()}),
        "tasks": results,
        "seconds": time.perf_counter() - started,
        "targets": _targets(results),
    }


def _better(a: float, b: float) -> bool:
    return a < b or (a == b == 0)


def _targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(results)
    need = math.ceil(2 * n / 3)
    random_beats_grid = [
        t
        for t, r in results.items()
        if _better(r["methods"]["random"]["median_regret"], r["methods"]["grid"]["median_regret"])
    ]
    c2f_beats_random = [
        t
        for t, r in results.items()
        if _better(r["methods"]["coarse_to_fine"]["median_regret"], r["methods"]["random"]["median_regret"])
    ]
    # Paired view, for the reader: the share of (task, seed) runs on which random's best beat
    # the grid's. It does not decide the target (median regret per task does).
    pairs = sum(r["seeds"] for r in results.values())
    paired = sum(r["random_vs_grid_win_rate"] * r["seeds"] for r in results.values()) / pairs
    return [
        target(
            "Random beats grid (median regret, equal budget)",
            f"on ≥ 2/3 of tasks (≥ {need} of {n})",
            f"{len(random_beats_grid)} of {n} (random's best better on {paired:.0%} of {pairs} task-seed runs)",
            len(random_beats_grid) >= need,
            f"{len(random_beats_grid) - need:+d} tasks",
        ),
        target(
            "Coarse-to-fine beats plain random (median regret, equal budget)",
            f"on ≥ 2/3 of tasks (≥ {need} of {n})",
            f"{len(c2f_beats_random)} of {n}",
            len(c2f_beats_random) >= need,
            f"{len(c2f_beats_random) - need:+d} tasks",
        ),
    ]


def markdown(result: dict[str, Any], plots: list[str] | None = None) -> str:
    lines = [
        "Equal trial budgets and seeds per method (seeds per task in the table); the figures are "
        "medians over seeds. "
        "Regret = best found − optimum (analytic: the known optimum; trainer: the best validation "
        "loss any method found on any seed). Win rate = share of seeds on which coarse-to-fine "
        "found a better best than plain random (ties count half).",
        "",
    ]
    header = [
        "task",
        "budget",
        "seeds",
        *[f"{m} regret" for m in METHODS],
        "c2f win rate vs random",
        "random win rate vs grid",
    ]
    rows = []
    for name, r in result["tasks"].items():
        rows.append(
            [
                name,
                r["budget"],
                r["seeds"],
                *[r["methods"][m]["median_regret"] for m in METHODS],
                f"{r['c2f_win_rate']:.0%}",
                f"{r['random_vs_grid_win_rate']:.0%}",
            ]
        )
    lines.append(table(header, rows))
    lines += ["", "Median best found:", ""]
    rows = [[name, *[r["methods"][m]["median_best"] for m in METHODS]] for name, r in result["tasks"].items()]
    lines.append(table(["task", *METHODS], rows))
    for plot in plots or []:
        lines += ["", f"![best-so-far regret]({plot})"]
    return "\n".join(lines)


def plot(result: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["tasks"])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        task = result["tasks"][name]
        for method in METHODS:
            curve = task["methods"][method]["regret_curve"]
            ax.plot(range(1, len(curve) + 1), [max(v, 1e-6) for v in curve], label=method)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("trials")
        ax.set_ylabel("median regret (best so far)")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path = directory / "search_efficiency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = mode_parser(__doc__)
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per task (default: 30; quick mode 10, and 3 for its trainer tasks)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes running seeds side by side")
    args = parser.parse_args(argv)
    mode = mode_of(args)
    result = run(mode, seeds=args.seeds, jobs=args.jobs)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
