"""Fleet scale: 1,000 and 5,000 leases that heartbeat on the default interval, held from one
API process and (for 5,000) from two — p50/p99 latency of heartbeats and of grants.

The fleet is simulated from ONE process with asyncio + aiohttp (thousands of real worker
processes would measure the machine's scheduler, not hone; httpx's async client costs
~3.5 ms of CPU a request here, so it saturated its own core at ~280 requests/s and measured
itself, where aiohttp costs ~0.3 ms): every simulated worker takes a
lease, then heartbeats it every ``heartbeat_interval`` seconds (the service's default, 10 s)
from a random phase, as a real worker does. While all leases are held, a few workers per
second finish their trial and ask for the next (a fleet's turnover), so grants are measured
under the full heartbeat load. The API is a real ``hone api`` on a scratch PostgreSQL
database with a long grace period (the ramp-up must not expire early leases). Latency is
measured by the client: request sent to answer read, queueing in the client included.
Run alone: ``python -m benchmarks.fleet_scale [--quick|--smoke]``; ``--saturate`` measures
what one API process answers flat out and its CPU per heartbeat instead, ``--profile N``
where an in-process heartbeat's time goes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.databases import postgres_server, scratch_database
from benchmarks.modes import mode_of, mode_parser
from benchmarks.service_overhead import _HoneApi
from benchmarks.stats import table, target

HEARTBEAT_INTERVAL = 10.0  # hone's default (Settings.heartbeat_interval)
GOAL_P99_S = 0.250
RAMP_CONCURRENCY = 32  # grants in flight while the fleet takes its leases


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Fleet:
    def __init__(self, client: aiohttp.ClientSession, study: int) -> None:
        self.client = client
        self.study = study
        self.grants: list[float] = []
        self.heartbeats: list[float] = []
        self.errors: dict[str, int] = {}
        self.measuring = False

    def _error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def lease(self, worker: str) -> str | None:
        started = time.perf_counter()
        try:
            async with self.client.post(
                "/api/v1/leases", json={"worker": worker, "studies": [self.study]}
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            self._error(f"grant {type(error).__name__}")
            return None
        if self.measuring:
            self.grants.append(time.perf_counter() - started)
        if response.status != 201:
            self._error(f"grant {response.status}")
            return None
        return str(json.loads(body)["lease"]["id"])

    async def heartbeat(self, lease: str) -> None:
        started = time.perf_counter()
        try:
            async with self.client.post(f"/api/v1/leases/{lease}/heartbeat") as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            self._error(f"heartbeat {type(error).__name__}")
            return
        if self.measuring:
            self.heartbeats.append(time.perf_counter() - started)
        if response.status != 200:
            self._error(f"heartbeat {response.status}")

    async def keep_alive(self, lease: str, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, HEARTBEAT_INTERVAL))
        while not stop.is_set():
            await self.heartbeat(lease)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def turnover(self, worker: str, lease: str, stop: asyncio.Event, period: float) -> None:
        """A worker that finishes a trial every ``period`` seconds and leases the next."""
        await asyncio.sleep(random.uniform(0, period))
        while not stop.is_set():
            async with self.client.post(f"/api/v1/leases/{lease}/complete", json={"value": 0.0}) as done:
                await done.read()
            lease = await self.lease(worker) or lease
            await asyncio.sleep(period)


async def _run_fleet(base: str, token: str, study: int, *, leases: int, seconds: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector, timeout=timeout) as client:
        fleet = _Fleet(client, study)
        gate = asyncio.Semaphore(RAMP_CONCURRENCY)
        ramp_started = time.perf_counter()

        async def take(index: int) -> str | None:
            async with gate:
                return await fleet.lease(f"sim-{index}")

        held = [lease for lease in await asyncio.gather(*(take(i) for i in range(leases))) if lease]
        ramp_s = time.perf_counter() - ramp_started
        # The simulator's own heap (thousands of workers in one process) out of its collector's
        # full passes: each stopped every simulated worker at once, for ~100 ms every few
        # seconds, and showed up as hone's latency. Real workers are separate processes.
        gc.freeze()
        stop = asyncio.Event()
        # Turnover: trials of ten minutes on `leases` workers finish leases/600 times a second;
        # at least 2/s so grants are sampled often enough.
        churners = max(2, leases // 600)
        tasks = [asyncio.create_task(fleet.keep_alive(lease, stop)) for lease in held[churners:]]
        tasks += [
            asyncio.create_task(fleet.turnover(f"sim-{i}", lease, stop, period=1.0))
            for i, lease in enumerate(held[:churners])
        ]
        await asyncio.sleep(HEARTBEAT_INTERVAL)  # every simulated worker heartbeats once first
        fleet.measuring = True
        await asyncio.sleep(seconds)
        fleet.measuring = False
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    gc.unfreeze()
    return {
        "leases": len(held),
        "ramp_s": ramp_s,
        "ramp_grants_per_s": len(held) / ramp_s if ramp_s else float("nan"),
        "heartbeats": len(fleet.heartbeats),
        "heartbeats_per_s": len(fleet.heartbeats) / seconds,
        "heartbeat_p50_ms": 1000 * _quantile(fleet.heartbeats, 0.5),
        "heartbeat_p99_ms": 1000 * _quantile(fleet.heartbeats, 0.99),
        "grants": len(fleet.grants),
        "grant_p50_ms": 1000 * _quantile(fleet.grants, 0.5),
        "grant_p99_ms": 1000 * _quantile(fleet.grants, 0.99),
        "errors": fleet.errors,
    }


def run(mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    if postgres_server() is None:
        return {"mode": mode, "rows": [], "skipped": "no PostgreSQL", "targets": []}
    # (leases, API processes): one process, then both of this box's cores for the 5,000.
    cases = {
        "full": ((1000, 1), (5000, 1), (5000, 2)),
        "quick": ((1000, 1), (5000, 1), (5000, 2)),
        "smoke": ((50, 1),),
    }[mode]
    seconds = {"full": 60.0, "quick": 20.0, "smoke": 3.0}[mode]
    rows = []
    for leases, processes in cases:
        with scratch_database("postgresql") as url:
            api = _HoneApi(
                url,
                processes=processes,
                HONE_GRACE_PERIOD="3600",
                HONE_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
            )
            try:
                study = api.create_study(f"fleet-{leases}", steps=0, trials=10 * leases)
                row = asyncio.run(_run_fleet(api.base, api.token, study, leases=leases, seconds=seconds))
            finally:
                api.close()
        row = {"target_leases": leases, "api_processes": processes, **row}
        print(row, flush=True)
        rows.append(row)
    return {
        "mode": mode,
        "rows": rows,
        "seconds_measured": seconds,
        "seconds": time.perf_counter() - started,
        "targets": _targets(rows),
    }


def _targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at_5000 = [r for r in rows if r["target_leases"] >= 5000]
    if not at_5000:
        return []
    # The box's best: the configuration with the lowest worst-of-both p99.
    best = min(at_5000, key=lambda r: max(r["heartbeat_p99_ms"], r["grant_p99_ms"]))
    worst = max(best["heartbeat_p99_ms"], best["grant_p99_ms"])
    processes = best["api_processes"]
    return [
        target(
            "Fleet scale, 5,000 leases heartbeating every 10 s on this 2-core box",
            f"p99 of heartbeats and grants ≤ {GOAL_P99_S * 1000:.0f} ms",
            f"{processes} API process{'es' if processes > 1 else ''}: heartbeat p99 "
            f"{best['heartbeat_p99_ms']:.0f} ms, grant p99 {best['grant_p99_ms']:.0f} ms",
            worst <= GOAL_P99_S * 1000 and not best["errors"],
            f"{GOAL_P99_S * 1000 / worst - 1:+.0%} headroom" if worst else "",
        )
    ]


def markdown(result: dict[str, Any], plots: list[str] | None = None) -> str:
    if result.get("skipped"):
        return f"Not measured: {result['skipped']}."
    lines = [
        "`hone api` (one process, or `--workers 2`) on a scratch PostgreSQL database; the fleet is simulated from one "
        "asyncio + aiohttp process on the same machine (client-side latency, queueing included). "
        f"Every lease heartbeats every {HEARTBEAT_INTERVAL:g} s from a random phase; a few workers "
        "finish a trial and lease the next every second. Measured over "
        f"{result['seconds_measured']:g} s once every lease had heartbeated once.",
        "",
        table(
            [
                "leases",
                "API processes",
                "ramp grants/s",
                "heartbeats/s",
                "heartbeat p50 ms",
                "heartbeat p99 ms",
                "grants",
                "grant p50 ms",
                "grant p99 ms",
                "errors",
            ],
            [
                [
                    r["leases"],
                    r.get("api_processes", 1),
                    r["ramp_grants_per_s"],
                    r["heartbeats_per_s"],
                    r["heartbeat_p50_ms"],
                    r["heartbeat_p99_ms"],
                    r["grants"],
                    r["grant_p50_ms"],
                    r["grant_p99_ms"],
                    ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none",
                ]
                for r in result["rows"]
            ],
        ),
    ]
    return "\n".join(lines)


def profile_heartbeats(count: int) -> dict[str, Any]:
    """Where one heartbeat's time goes: ``count`` heartbeats through the app in this process
    (no HTTP server, no network client), the time in PostgreSQL round trips, and the same
    heartbeat as a direct call of :func:`service.leases.heartbeat` (no FastAPI)."""
    import cProfile
    import pstats
    import secrets

    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from hone.settings import Settings
    from service import leases
    from service.app import create_app
    from service.deps import backend_for
    from service.tables import utcnow

    with scratch_database("postgresql") as url:
        token = secrets.token_hex(16)
        settings = Settings(_env_file=None, database_url=url, admin_token=token, grace_period=3600)
        app = create_app(settings)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            study = _HoneApi.study_spec("profile", steps=0, trials=count)
            study_id = client.post("/api/v1/studies", json=study).json()["id"]
            lease = client.post("/api/v1/leases", json={"worker": "p", "studies": [study_id]}).json()[
                "lease"
            ]["id"]
            sql = {"s": 0.0, "n": 0}

            def before(conn: Any, *_: Any) -> None:
                conn.info["t"] = time.perf_counter()

            def after(conn: Any, *_: Any) -> None:
                sql["s"] += time.perf_counter() - conn.info.pop("t")
                sql["n"] += 1

            engine = app.state.db.engine
            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            for _ in range(20):  # warm caches and the pool
                client.post(f"/api/v1/leases/{lease}/heartbeat")
            sql.update(s=0.0, n=0)
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for _ in range(count):
                client.post(f"/api/v1/leases/{lease}/heartbeat")
            profiler.disable()
            elapsed = time.perf_counter() - started
            # The same heartbeat as one call of the domain function: no HTTP, no FastAPI.
            backend = backend_for(app)
            through_http = dict(sql)
            sql.update(s=0.0, n=0)
            direct_started = time.perf_counter()
            for _ in range(count):
                leases.heartbeat(backend, lease_id=lease, now=utcnow())
            direct = time.perf_counter() - direct_started
    # cProfile sees this thread only: the app runs in TestClient's portal and worker threads,
    # so the top functions say how long this thread waited, not where the app spent it.
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    top = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:10]
    return {
        "heartbeats": count,
        "ms_per_heartbeat_profiled": 1000 * elapsed / count,
        "sql_ms_per_heartbeat": 1000 * through_http["s"] / count,
        "statements_per_heartbeat": through_http["n"] / count,
        "ms_per_heartbeat_domain_only": 1000 * direct / count,
        "sql_ms_per_heartbeat_domain_only": 1000 * sql["s"] / count,
        "top_tottime": [
            {"function": f"{Path(f).name}:{line} {name}", "ms_per_heartbeat": 1000 * row[2] / count}
            for (f, line, name), row in top
        ],
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _saturate(base: str, token: str, paths: list[str], *, seconds: float, concurrency: int) -> int:
    """Send POSTs round-robin over ``paths`` from ``concurrency`` loops for ``seconds``; answered count."""
    headers = {"Authorization": f"Bearer {token}"}
    answered = 0
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(
        base, headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)
    ) as client:

        async def loop(start: int) -> None:
            nonlocal answered
            index = start
            while time.perf_counter() < stop:
                method = client.get if paths[index % len(paths)] == "/healthz" else client.post
                async with method(paths[index % len(paths)]) as response:
                    await response.read()
                    if response.status < 300:
                        answered += 1
                index += concurrency

        await asyncio.gather(*(loop(i) for i in range(concurrency)))
    return answered


def saturate(seconds: float = 10.0, concurrency: int = 8, leases: int = 200) -> dict[str, Any]:
    """What one ``hone api`` process answers flat out: heartbeats/s and the API process's CPU
    per heartbeat, next to ``GET /healthz`` (no auth, no database: the cost of any request)
    measured on the same process. Linux only (reads /proc)."""
    with scratch_database("postgresql") as url:
        api = _HoneApi(url, HONE_GRACE_PERIOD="3600")
        try:
            study = api.create_study("saturate", steps=0, trials=10 * leases)
            held = [
                api.client.post("/api/v1/leases", json={"worker": f"s-{i}", "studies": [study]}).json()[
                    "lease"
                ]["id"]
                for i in range(leases)
            ]
            result: dict[str, Any] = {"leases": leases, "concurrency": concurrency, "seconds": seconds}
            for name, paths in (
                ("healthz", ["/healthz"]),
                ("heartbeat", [f"/api/v1/leases/{lease}/heartbeat" for lease in held]),
            ):
                cpu = _cpu_seconds(api.process.pid)
                answered = asyncio.run(
                    _saturate(api.base, api.token, paths, seconds=seconds, concurrency=concurrency)
                )
                used = _cpu_seconds(api.process.pid) - cpu
                result[f"{name}_per_s"] = answered / seconds
                result[f"{name}_api_cpu_ms"] = 1000 * used / max(answered, 1)
        finally:
            api.close()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = mode_parser(__doc__)
    parser.add_argument("--profile", type=int, metavar="N", help="profile N heartbeats in-process instead")
    parser.add_argument(
        "--saturate",
        action="store_true",
        help="instead: heartbeats/s one API process answers flat out, and its CPU per heartbeat",
    )
    args = parser.parse_args(argv)
    if args.saturate:
        saturated = saturate()
        print(json.dumps(saturated, indent=1))
        return saturated
    if args.profile:
        profile = profile_heartbeats(args.profile)
        print(json.dumps(profile, indent=1))
        return profile
    result = run(mode_of(args))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
