"""Claim 3: hone's service costs no more per trial than Optuna on the database directly.

A no-op objective with a 10-parameter space, so the whole trial is overhead. Side by side,
on the same database (a SQLite file, a fresh PostgreSQL database):

- **hone**: ``hone api`` and ``hone worker --trials-per-device N`` (N slot processes) over the
  lease protocol, objective ``benchmarks.objectives:noop`` or ``noop_20_steps``, with the
  worker's defaults: steps that come faster than a round trip is worth travel together
  (``--report-overhead 0.1``), so the no-op's 20 steps reach the service with its result and
  the pruner judges none of them (raw Optuna's ``should_prune`` runs at each): the 20-step
  figure measures what coalescing saves, not the cost of a pruning decision per step;
- **raw Optuna**: N processes each running an ``ask`` / suggest 10 params / ``tell`` loop
  (with ``report`` + ``should_prune`` per step), on the Optuna storage hone itself uses (WAL,
  busy timeout, ``BEGIN IMMEDIATE`` on SQLite: the best-configured raw Optuna, not a straw man).

Both use a random sampler and the median pruner (hone's default; the no-op reports a constant,
so nothing is pruned). Trials per second are counted in Optuna's ``trials`` table over a
fixed wall time after a warm-up.

Each setting is measured as interleaved repeats, hone and raw Optuna one after the other and
the order swapped every repeat (raw, hone / hone, raw / ...), so drift in the machine's speed
falls on both sides alike. The ratio is the median of the repeats' paired ratios: one window
per side decides a ratio near 1× by noise (a 15 s window once read raw Optuna at 33 trials/s
with 4 workers and 12 with 1). Run alone: ``python -m benchmarks.service_overhead [--quick]``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from benchmarks.databases import postgres_server, scratch_database
from benchmarks.modes import mode_of, mode_parser
from benchmarks.stats import median, table, target

ROOT = Path(__file__).resolve().parent.parent

SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
    "beta": {"type": "float", "low": 0.5, "high": 0.999, "scale": "reverse_log"},
    "l2": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "hidden_units": {"type": "int", "low": 16, "high": 1024, "scale": "log"},
    "batch_size": {"type": "int", "low": 16, "high": 1024, "scale": "log"},
    "optimizer": {"type": "categorical", "choices": ["sgd", "momentum", "rmsprop", "adam"]},
    "activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid"]},
    "batch_norm": {"type": "categorical", "choices": [True, False]},
}


def raw_optuna_worker(url: str, study_name: str, steps: int) -> None:
    """One raw-Optuna process: ask, suggest the same 10 parameters, report, tell — forever."""
    import optuna

    from service.storage import create_optuna_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(
        study_name=study_name,
        storage=create_optuna_storage(url),
        sampler=optuna.samplers.RandomSampler(),
        pruner=optuna.pruners.MedianPruner(),
    )
    while True:
        trial = study.ask()
        for name, p in SPACE.items():
            if p["type"] == "categorical":
                trial.suggest_categorical(name, p["choices"])
            elif p["type"] == "float":
                trial.suggest_float(name, p["low"], p["high"], log=p.get("scale") == "log")
            else:
                trial.suggest_int(name, p["low"], p["high"], log=p.get("scale") == "log")
        pruned = False
        for step in range(steps):
            trial.report(0.0, step)
            if trial.should_prune():
                pruned = True
                break
        study.tell(trial, None if pruned else 0.0, state=optuna.trial.TrialState.PRUNED if pruned else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("HONE_DATABASE_URL", None)
    return {**env, **extra}


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Counter:
    """Finished trials of a study, counted in Optuna's own table."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def __call__(self, study_id: int) -> int:
        with self.engine.connect() as conn:
            query = text(
                "SELECT count(*) FROM trials WHERE study_id = :s AND state IN ('COMPLETE', 'PRUNED')"
            )
            return int(conn.execute(query, {"s": study_id}).scalar() or 0)


def _measure(
    count: Callable[[int], int], study_id: int, *, warmup: float, seconds: float, deadline: float = 120.0
) -> float:
    start = time.monotonic()
    while count(study_id) < 1:  # processes still starting
        if time.monotonic() - start > deadline:
            raise RuntimeError("no trial finished: the workers did not start")
        time.sleep(0.2)
    time.sleep(warmup)
    before, t0 = count(study_id), time.monotonic()
    time.sleep(seconds)
    after, t1 = count(study_id), time.monotonic()
    return (after - before) / (t1 - t0)


class _HoneApi:
    """``hone api`` on ``url`` (``processes`` > 1: ``--workers``), with ``settings`` as HONE_* variables."""

    def __init__(self, url: str, *, processes: int = 1, **settings: str) -> None:
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "hone", "api", "--port", str(self.port), "--database-url", url]
        self.process = subprocess.Popen(
            [*argv, "--workers", str(processes)],
            env=_env(HONE_ADMIN_TOKEN=self.token, HONE_LOG_JSON="false", **settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        self.client = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"})
        # Two minutes: on a loaded 2-core machine, `--workers 2` imports the app twice at once.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (
                    self.client.get("/healthz").status_code < 500
                    or self.client.get("/api/v1/studies").status_code == 200
                ):
                    return
            if self.process.poll() is not None:
                raise RuntimeError("hone api exited at start")
            time.sleep(0.1)
        self.close()  # not left serving behind a failed benchmark
        raise RuntimeError("hone api did not start")

    def create_study(self, name: str, steps: int, trials: int = 100_000) -> int:
        response = self.client.post("/api/v1/studies", json=self.study_spec(name, steps, trials))
        response.raise_for_status()
        return int(response.json()["id"])

    @staticmethod
    def study_spec(name: str, steps: int, trials: int) -> dict[str, Any]:
        """The no-op study: random sampler, median pruner, one round of ``trials``."""
        return {
            "name": name,
            "objective": {
                "trainer": "python",
                "entrypoint": "benchmarks.objectives:" + ("noop_20_steps" if steps else "noop"),
                "metric": "value",
                "direction": "minimize",
            },
            "space": SPACE,
            "sampler": {"type": "random"},
            "pruner": {"type": "median"},
            "rounds": [{"trials": trials}],
        }

    def close(self) -> None:
        self.client.close()
        _stop([self.process])


def _hone_rate(
    api: _HoneApi, count: Any, *, workers: int, steps: int, warmup: float, seconds: float
) -> float:
    study = api.create_study(f"hone-{workers}-{steps}-{secrets.token_hex(3)}", steps)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hone",
            "worker",
            "--api",
            api.base,
            "--devices",
            "cpu",
            "--trials-per-device",
            str(workers),
            "--studies",
            str(study),
            "--stop-timeout",
            "5",
        ],
        env=_env(HONE_TOKEN=api.token),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        return _measure(count, study, warmup=warmup, seconds=seconds)
    finally:
        _stop([process])
        api.client.post(f"/api/v1/studies/{study}/stop")


def _raw_rate(url: str, count: Any, *, workers: int, steps: int, warmup: float, seconds: float) -> float:
    import optuna

    from service.storage import create_optuna_storage

    name = f"raw-{workers}-{steps}-{secrets.token_hex(3)}"
    storage = create_optuna_storage(url)
    study_id = optuna.create_study(study_name=name, storage=storage)._study_id
    storage.engine.dispose()
    code = f"from benchmarks.service_overhead import raw_optuna_worker; raw_optuna_worker({url!r}, {name!r}, {steps})"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        for _ in range(workers)
    ]
    try:
        return _measure(count, study_id, warmup=warmup, seconds=seconds)
    finally:
        _stop(processes)


def run(mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    workers_list = {"full": (1, 4, 8), "quick": (1, 4), "smoke": (1,)}[mode]
    warmup, seconds = {"full": (2.0, 8.0), "quick": (2.0, 4.0), "smoke": (0.5, 2.0)}[mode]
    repeats = {"full": 3, "quick": 2, "smoke": 1}[mode]
    backends = ["sqlite"] + (["postgresql"] if mode != "smoke" and postgres_server() else [])
    rows: list[dict[str, Any]] = []
    for backend in backends:
        with scratch_database(backend) as url:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.ERROR)
            count = _Counter(url)
            api = _HoneApi(url)
            measure: dict[str, Callable[..., float]] = {
                "raw": functools.partial(_raw_rate, url, count, warmup=warmup, seconds=seconds),
                "hone": functools.partial(_hone_rate, api, count, warmup=warmup, seconds=seconds),
            }
            try:
                for steps in (0, 20):
                    for workers in workers_list:
                        row = _interleaved(measure, repeats, workers=workers, steps=steps)
                        row = {"database": backend, "workers": workers, "steps": steps, **row}
                        print(row, flush=True)
                        rows.append(row)
            finally:
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


def _interleaved(measure: dict[str, Callable[..., float]], repeats: int, **setting: int) -> dict[str, Any]:
    """``repeats`` paired windows of one setting, the order swapped every repeat."""
    pairs: list[dict[str, float]] = []
    for repeat in range(repeats):
        order = ("raw", "hone") if repeat % 2 == 0 else ("hone", "raw")
        pairs.append({side: measure[side](**setting) for side in order})
    ratios = [p["hone"] / p["raw"] if p["raw"] else float("nan") for p in pairs]
    return {
        "hone": median([p["hone"] for p in pairs]),
        "raw": median([p["raw"] for p in pairs]),
        "ratio": median(ratios),
        "ratios": ratios,
    }


def _targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for steps, need in ((0, 1.0), (20, 2.0)):
        group = [r for r in rows if r["steps"] == steps]
        if not group:
            continue
        worst = min(group, key=lambda r: r["ratio"])
        passed = sum(r["ratio"] >= need for r in group)
        out.append(
            target(
                f"Service overhead, {steps} reported steps per trial",
                f"hone ≥ {need:g}× raw Optuna's trials/s in every setting",
                f"{passed} of {len(group)} settings; ratios "
                + ", ".join(f"{r['database'][:2]}/{r['workers']}w {r['ratio']:.2f}×" for r in group),
                passed == len(group),
                f"worst {worst['ratio'] / need - 1:+.0%} ({worst['database']}, {worst['workers']} workers)",
            )
        )
    return out


def markdown(result: dict[str, Any], plots: list[str] | None = None) -> str:
    lines = [
        "A no-op objective with the 10-parameter space; trials/s over "
        f"{result['seconds_measured']:g} s after a warm-up, {result['repeats']} interleaved repeats per "
        "setting (hone and raw Optuna one after the other, the order swapped every repeat); trials/s are "
        "medians over repeats and ratio = the median of the repeats' hone / raw Optuna ratios (higher is "
        "better for hone). "
        "hone's workers run with their defaults, which send steps that come faster than a round trip "
        "is worth together (the no-op's steps go with its result); raw Optuna commits every report. "
        "So with 20 steps hone's pruner judges none of them (they arrive with the result, after "
        "training) while raw Optuna asks `should_prune` at every step: that ratio is what coalescing "
        "buys a cheap objective, paid for in decision latency, not the cost of judging every step "
        "(`--report-overhead 0` sends each step at once; not measured here).",
        "",
        table(
            [
                "database",
                "workers",
                "steps/trial",
                "hone trials/s",
                "raw Optuna trials/s",
                "ratio",
                "each repeat",
            ],
            [
                [
                    r["database"],
                    r["workers"],
                    r["steps"],
                    r["hone"],
                    r["raw"],
                    f"{r['ratio']:.2f}×",
                    ", ".join(f"{x:.2f}×" for x in r["ratios"]),
                ]
                for r in result["rows"]
            ],
        ),
    ]
    for plot in plots or []:
        lines += ["", f"![service overhead]({plot})"]
    return "\n".join(lines)


def plot(result: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["database"], r["steps"]) for r in result["rows"]})
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.2), squeeze=False)
    for ax, (database, steps) in zip(axes.flat, groups, strict=True):
        rows = [r for r in result["rows"] if r["database"] == database and r["steps"] == steps]
        xs = [r["workers"] for r in rows]
        ax.plot(xs, [r["hone"] for r in rows], marker="o", label="hone")
        ax.plot(xs, [r["raw"] for r in rows], marker="s", label="raw Optuna")
        ax.set_title(f"{database}, {steps} steps")
        ax.set_xlabel("workers")
        ax.set_ylabel("trials/s")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path = directory / "service_overhead.png"
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
