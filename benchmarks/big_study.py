"""Claim 4: a 100,000-trial study stays fast to read through hone's API, and to grant from
with TPE.

A study is created through hone's API, then 100,000 finished trials are bulk-inserted into
Optuna's tables (``trials``, ``trial_values``, ``trial_params``) and ``hone_trials`` on the
same SQLite file. Timed side by side, each call repeated (p50 / p95 of wall time):

- hone (a real ``hone api`` process, over HTTP): ``GET /studies/{id}`` (summary with counts and
  best), ``GET /studies/{id}/best``, ``GET /studies/{id}/trials?limit=100`` (one page);
- ``optuna.load_study(...).best_trial`` in this process (a cold load each time, as a script does);
- optuna-dashboard's ``GET /api/studies/{id}`` (its WSGI app served on a local port).

TPE grants: a TPE study of 1,000, 10,000 and 100,000 bulk-inserted trials (quick: 1,000
and 10,000; smoke: 200 and 1,000) in a closed first round, each granted from over HTTP
(``POST /leases``) in its second round: the first grant (the API process's first read of
the study) and p50 / p95 of the next ones.

Run alone: ``python -m benchmarks.big_study [--quick]`` (quick: 10,000 trials).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import optuna
from optuna.distributions import distribution_to_json
from sqlalchemy import create_engine, insert, text

from benchmarks.databases import scratch_database
from benchmarks.modes import mode_of, mode_parser
from benchmarks.service_overhead import _free_port, _HoneApi
from benchmarks.stats import percentile, table, target
from service.spec import StudySpec
from service.tables import Trial, utcnow

TARGET_MS = 20.0
SPEC: dict[str, Any] = {
    "name": "big",
    "objective": {
        "trainer": "python",
        "entrypoint": "benchmarks.objectives:noop",
        "metric": "value",
        "direction": "minimize",
    },
    "space": {
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
        "n_layers": {"type": "int", "low": 1, "high": 4},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    },
    "sampler": {"type": "random", "seed": 0},
    "rounds": [{"trials": 100_000}],
}


def fill(url: str, *, study_id: int, trials: int, chunk: int = 10_000, round_number: int = 1) -> None:
    """Bulk-insert ``trials`` complete trials into Optuna's tables and hone's (in ``round_number``)."""
    distributions = StudySpec.model_validate(SPEC).distributions()
    dist_json = {name: distribution_to_json(d) for name, d in distributions.items()}
    rng = random.Random(0)
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        first_id = int(conn.execute(text("SELECT coalesce(max(trial_id), 0) FROM trials")).scalar() or 0) + 1
        for begin in range(0, trials, chunk):
            numbers = range(begin, min(begin + chunk, trials))
            rows, values, params, hone = [], [], [], []
            for number in numbers:
                trial_id = first_id + number
                lr, layers, opt = 10 ** rng.uniform(-5, 0), rng.randint(1, 4), rng.randint(0, 1)
                value = rng.random()
                start = now - timedelta(seconds=trials - number)
                naive = start.replace(tzinfo=None)  # Optuna stores naive UTC
                rows.append(
                    {
                        "trial_id": trial_id,
                        "number": number,
                        "study_id": study_id,
                        "state": "COMPLETE",
                        "s": naive,
                        "c": naive,
                    }
                )
                values.append({"trial_id": trial_id, "objective": 0, "value": value, "value_type": "FINITE"})
                for name, internal in (("lr", lr), ("n_layers", float(layers)), ("optimizer", float(opt))):
                    params.append(
                        {
                            "trial_id": trial_id,
                            "param_name": name,
                            "param_value": internal,
                            "distribution_json": dist_json[name],
                        }
                    )
                hone.append(
                    {
                        "study_id": study_id,
                        "trial_id": trial_id,
                        "number": number,
                        "round": round_number,
                        "config_number": number,
                        "attempt": 0,
                        "state": "complete",
                        "params": {"lr": lr, "n_layers": layers, "optimizer": ["sgd", "adam"][opt]},
                        "value": value,
                        "worker_id": "bench",
                        "started_at": start,
                        "finished_at": start,
                        "updated_at": start,
                    }
                )
            conn.execute(
                text(
                    "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
                    "VALUES (:trial_id, :number, :study_id, :state, :s, :c)"
                ),
                rows,
            )
            conn.execute(
                text(
                    "INSERT INTO trial_values (trial_id, objective, value, value_type) "
                    "VALUES (:trial_id, :objective, :value, :value_type)"
                ),
                values,
            )
            conn.execute(
                text(
                    "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                    "VALUES (:trial_id, :param_name, :param_value, :distribution_json)"
                ),
                params,
            )
            conn.execute(insert(Trial), hone)
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), max(trial_id)) FROM trials")
            )
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()


TPE_SIZES = {"full": [1_000, 10_000, 100_000], "quick": [1_000, 10_000], "smoke": [200, 1_000]}
TPE_RATIO = 2.0  # the largest study's p50 grant within this factor of the smallest's


def tpe_grants(api: Any, url: str, *, sizes: list[int], repeat: int) -> dict[int, dict[str, float]]:
    """Grant latency (ms) over HTTP in TPE studies of each size: the first grant and the rest."""
    found: dict[int, dict[str, float]] = {}
    for trials in sizes:
        spec = {
            **SPEC,
            "name": f"tpe-{trials}",
            "sampler": {"type": "tpe", "seed": 0},
            "rounds": [{"trials": 1}, {"trials": repeat + 10}],
        }
        created = api.client.post("/api/v1/studies", json=spec)
        created.raise_for_status()
        study_id = int(created.json()["id"])
        # The trials are a closed first round and the grants come from an open second one:
        # finishing a 100,000-trial round is a cost of its own, not the grant's.
        api.client.post(f"/api/v1/studies/{study_id}/rounds", json={}).raise_for_status()
        fill(url, study_id=study_id, trials=trials, round_number=1)
        body = {"worker": "bench", "devices": ["cpu"], "studies": [study_id]}

        def grant(body: dict[str, Any] = body) -> Any:
            response = api.client.post("/api/v1/leases", json=body)
            assert response.status_code == 201, response.text
            return response

        t0 = time.perf_counter()
        grant()
        first = (time.perf_counter() - t0) * 1000
        times = _time(grant, repeat=repeat, budget_s=60)
        found[trials] = {
            "first_ms": first,
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "calls": len(times),
        }
    return found


def _time(call: Callable[[], Any], *, repeat: int, budget_s: float) -> list[float]:
    """Wall times in ms of up to ``repeat`` calls (fewer if ``budget_s`` runs out), after one warm-up."""
    call()
    times: list[float] = []
    deadline = time.monotonic() + budget_s
    while len(times) < repeat and (len(times) < 3 or time.monotonic() < deadline):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return times


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def run(mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    trials = {"full": 100_000, "quick": 10_000, "smoke": 1_000}[mode]
    repeat = {"full": 50, "quick": 20, "smoke": 5}[mode]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    timings: dict[str, list[float]] = {}
    with scratch_database("sqlite") as url:
        api = _HoneApi(url)
        try:
            created = api.client.post("/api/v1/studies", json=SPEC)
            created.raise_for_status()
            study_id = int(created.json()["id"])
            t0 = time.perf_counter()
            fill(url, study_id=study_id, trials=trials)
            fill_s = time.perf_counter() - t0

            def get(path: str) -> Callable[[], Any]:
                def call() -> Any:
                    response = api.client.get(path)
                    response.raise_for_status()
                    return response

                return call

            timings["hone GET /studies/{id}"] = _time(
                get(f"/api/v1/studies/{study_id}"), repeat=repeat, budget_s=30
            )
            timings["hone GET /studies/{id}/best"] = _time(
                get(f"/api/v1/studies/{study_id}/best"), repeat=repeat, budget_s=30
            )
            timings["hone GET /studies/{id}/trials?limit=100"] = _time(
                get(f"/api/v1/studies/{study_id}/trials?limit=100"), repeat=repeat, budget_s=30
            )
            hone_best = api.client.get(f"/api/v1/studies/{study_id}/best").json()
            tpe = tpe_grants(api, url, sizes=TPE_SIZES[mode], repeat=repeat)
        finally:
            api.close()

        def optuna_best() -> Any:
            return optuna.load_study(study_name=SPEC["name"], storage=url).best_trial

        timings["optuna.load_study().best_trial"] = _time(optuna_best, repeat=repeat, budget_s=60)
        optuna_value = optuna_best().value

        import optuna_dashboard

        server = make_server(
            "127.0.0.1", _free_port(), optuna_dashboard.wsgi(url), handler_class=_QuietHandler
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", timeout=600) as client:

                def dashboard() -> Any:
                    response = client.get(f"/api/studies/{study_id}")
                    response.raise_for_status()
                    return response

                timings["optuna-dashboard GET /api/studies/{id}"] = _time(
                    dashboard, repeat=repeat, budget_s=60
                )
        finally:
            server.shutdown()
            server.server_close()
    rows = {
        name: {"p50_ms": percentile(t, 50), "p95_ms": percentile(t, 95), "calls": len(t)}
        for name, t in timings.items()
    }
    return {
        "mode": mode,
        "trials": trials,
        "database": "sqlite",
        "fill_seconds": fill_s,
        "same_best": abs(float(hone_best["value"]) - float(optuna_value)) < 1e-9,
        "calls": rows,
        "tpe_grants": {str(size): row for size, row in tpe.items()},
        "seconds": time.perf_counter() - started,
        "targets": [
            target(
                f"Big study ({trials:,} trials): {name.removeprefix('hone ')}",
                f"p50 ≤ {TARGET_MS:g} ms",
                f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms",
                row["p50_ms"] <= TARGET_MS,
                f"{TARGET_MS - row['p50_ms']:+.1f} ms",
            )
            for name, row in rows.items()
            if name.startswith("hone")
        ]
        + [_tpe_target(tpe)],
    }


def _tpe_target(tpe: dict[int, dict[str, float]]) -> dict[str, Any]:
    small, large = min(tpe), max(tpe)
    ratio = tpe[large]["p50_ms"] / tpe[small]["p50_ms"]
    return target(
        f"Big study: a TPE grant at {large:,} trials costs what it does at {small:,}",
        f"p50 ratio ≤ {TPE_RATIO:g}",
        f"p50 {tpe[small]['p50_ms']:.1f} → {tpe[large]['p50_ms']:.1f} ms (×{ratio:.2f})",
        ratio <= TPE_RATIO,
        f"{TPE_RATIO - ratio:+.2f}",
    )


def markdown(result: dict[str, Any], plots: list[str] | None = None) -> str:
    lines = [
        f"{result['trials']:,} finished trials on {result['database']} (bulk-inserted in "
        f"{result['fill_seconds']:.1f} s); wall time per call. hone and Optuna agree on the best "
        f"trial: {'yes' if result['same_best'] else 'NO'}.",
        "",
        table(
            ["call", "p50 ms", "p95 ms", "calls"],
            [[name, r["p50_ms"], r["p95_ms"], r["calls"]] for name, r in result["calls"].items()],
        ),
    ]
    tpe = result.get("tpe_grants") or {}
    if tpe:
        lines += [
            "",
            "TPE grants (`POST /leases` over HTTP, in a TPE study of that many finished trials): "
            "the API process's first grant of the study, then wall time per grant.",
            "",
            table(
                ["trials", "first ms", "p50 ms", "p95 ms", "grants"],
                [
                    [f"{int(n):,}", r["first_ms"], r["p50_ms"], r["p95_ms"], r["calls"]]
                    for n, r in tpe.items()
                ],
            ),
        ]
    for plot in plots or []:
        lines += ["", f"![big study]({plot})"]
    return "\n".join(lines)


def plot(result: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["calls"])
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.barh(names, [result["calls"][n]["p50_ms"] for n in names])
    ax.set_xscale("log")
    ax.axvline(TARGET_MS, color="grey", linestyle="--", label=f"{TARGET_MS:g} ms target")
    ax.set_xlabel("p50 wall time (ms, log scale)")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = directory / "big_study.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = mode_parser(__doc__)
    args = parser.parse_args(argv)
    mode = mode_of(args)
    result = run(mode)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
