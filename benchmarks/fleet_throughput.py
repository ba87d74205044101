"""Fleet throughput: trials/s of many no-op workers on PostgreSQL, hone (1 and 2 API
processes) vs raw Optuna's multi-process ask/tell on the same database.

The same no-op objective and 10-parameter space as :mod:`benchmarks.service_overhead`, no
reported steps, a random sampler: the whole trial is coordination. Per worker count, in
one run on one scratch PostgreSQL database:

- **hone ×1** / **hone ×2**: ``hone api`` (``--workers 2`` for two API processes) and one
  ``hone worker --trials-per-device N`` (N slot processes) over the lease protocol;
- **raw Optuna**: N processes each in an ``ask`` / suggest / ``tell`` loop on the Optuna
  storage hone itself uses.

Each side is measured in interleaved windows (the order rotated every repeat) so drift in
the machine's speed falls on all of them; a ratio is the median of the repeats' paired
ratios against raw Optuna. Trials are counted in Optuna's ``trials`` table.
Run alone: ``python -m benchmarks.fleet_throughput [--quick|--smoke]``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from benchmarks.databases import postgres_server, scratch_database
from benchmarks.modes import mode_of, mode_parser
from benchmarks.service_overhead import _Counter, _hone_rate, _HoneApi, _raw_rate
from benchmarks.stats import median, table, target

SIDES = ("raw", "hone_1", "hone_2")
GOAL = 5.0  # hone ≥ 5× raw Optuna's trials/s with 16 workers (issue #24)


def run(mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    if postgres_server() is None:
        return {"mode": mode, "rows": [], "skipped": "no PostgreSQL", "targets": []}
    workers_list = {"full": (16, 64), "quick": (16, 64), "smoke": (2,)}[mode]
    warmup, seconds = {"full": (3.0, 10.0), "quick": (3.0, 6.0), "smoke": (0.5, 2.0)}[mode]
    repeats = {"full": 3, "quick": 2, "smoke": 1}[mode]
    rows: list[dict[str, Any]] = []
    with scratch_database("postgresql") as url:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        count = _Counter(url)
        apis = {"hone_1": _HoneApi(url), "hone_2": _HoneApi(url, processes=2)}
        measure: dict[str, Callable[..., float]] = {
            "raw": functools.partial(_raw_rate, url, count, steps=0, seconds=seconds),
            **{
                side: functools.partial(_hone_rate, api, count, steps=0, seconds=seconds)
                for side, api in apis.items()
            },
        }
        try:
            for workers in workers_list:
                windows: list[dict[str, float]] = []
                # The warm-up lets every process start (imports take a core-second each) before the window.
                settle = warmup + workers / 4
                for repeat in range(repeats):
                    order = SIDES[repeat % 3 :] + SIDES[: repeat % 3]
                    windows.append({side: measure[side](workers=workers, warmup=settle) for side in order})
                row: dict[str, Any] = {"workers": workers}
                for side in SIDES:
                    row[side] = median([w[side] for w in windows])
                for side in ("hone_1", "hone_2"):
                    ratios = [w[side] / w["raw"] if w["raw"] else float("nan") for w in windows]
                    row[f"{side}_ratio"] = median(ratios)
                    row[f"{side}_ratios"] = ratios
                print(row, flush=True)
                rows.append(row)
        finally:
            for api in apis.values():
                api.close()
            count.engine.dispose()
    return {
        "mode": mode,
        "rows": rows,
        "seconds_measured": seconds,
        "repeats": repeats,
        "seconds": time.perf_counter() - started,
        "targets": _targets(rows),
    }


def _targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sixteen = [r for r in rows if r["workers"] == 16]
    if not sixteen:
        return []
    row = sixteen[0]
    best = max(row["hone_1_ratio"], row["hone_2_ratio"])
    return [
        target(
            "Fleet throughput, 16 no-op workers on PostgreSQL",
            f"hone ≥ {GOAL:g}× raw Optuna's multi-process trials/s",
            f"1 API process {row['hone_1_ratio']:.2f}×, 2 API processes {row['hone_2_ratio']:.2f}×",
            best >= GOAL,
            f"{best / GOAL - 1:+.0%}",
        )
    ]


def markdown(result: dict[str, Any], plots: list[str] | None = None) -> str:
    if result.get("skipped"):
        return f"Not measured: {result['skipped']}."
    lines = [
        "No-op trials (10 parameters, no steps, random sampler) on one scratch PostgreSQL database; "
        f"trials/s over {result['seconds_measured']:g} s after a warm-up, {result['repeats']} "
        "interleaved repeats per worker count (the order of the three sides rotated every repeat); "
        "trials/s are medians over repeats, a ratio is the median of the repeats' hone / raw "
        "Optuna ratios. Workers, API processes, PostgreSQL and the benchmark share the machine's cores.",
        "",
        table(
            [
                "workers",
                "raw Optuna trials/s",
                "hone ×1 API trials/s",
                "hone ×2 API trials/s",
                "×1 / raw",
                "×2 / raw",
            ],
            [
                [
                    r["workers"],
                    r["raw"],
                    r["hone_1"],
                    r["hone_2"],
                    f"{r['hone_1_ratio']:.2f}× ({', '.join(f'{x:.2f}' for x in r['hone_1_ratios'])})",
                    f"{r['hone_2_ratio']:.2f}× ({', '.join(f'{x:.2f}' for x in r['hone_2_ratios'])})",
                ]
                for r in result["rows"]
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = mode_parser(__doc__).parse_args(argv)
    result = run(mode_of(args))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
