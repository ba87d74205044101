"""Load: 16 worker slots against a millisecond objective, on PostgreSQL and on SQLite.

No 5xx, no deadlock or "database is locked", the budget exact; the lease latency the API
measured (p50/p99, from its Prometheus histogram) is printed and written to
``load-<database>.json`` under the test's temporary directory. CI runs a short burst; the
long variant (``make test-long``) keeps the slots busy for minutes.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.chaos.cluster import Cluster, cluster, python_study
from tests.integration.processes import ADMIN_TOKEN

pytestmark = pytest.mark.slow
PROCESSES, SLOTS = 4, 4  # 16 slots on a 2-core CI machine: 4 supervisors × 4 slot processes
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.e+-]+|\+Inf|NaN)$")


def scrape(hone: Cluster) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(
        f"{hone.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ).text
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """``histogram_quantile``: linear interpolation inside the bucket holding the quantile."""
    total = buckets[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            inside = count - previous_count
            return previous_bound + (bound - previous_bound) * (
                (rank - previous_count) / inside if inside else 0
            )
        previous_bound, previous_count = bound, count
    return previous_bound


def lease_latency(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    buckets = sorted(
        (float(labels["le"]), value)
        for name, labels, value in samples
        if name == "hone_http_request_duration_seconds_bucket"
        and labels.get("method") == "POST"
        and labels.get("route", "").endswith("/leases")
    )
    assert buckets and buckets[-1][1] > 0, "no lease request was measured"
    return {"p50_s": quantile(buckets, 0.5), "p99_s": quantile(buckets, 0.99), "requests": buckets[-1][1]}


def run_load(
    database_url: str, name: str, tmp_path: Path, budgets: list[int], timeout: float
) -> dict[str, object]:
    # Production-like lease timings: under load on a small machine one request can take
    # longer than the chaos tests' 2 s grace period, and this test is about load, not reaping.
    timings = {"HONE_GRACE_PERIOD": "30", "HONE_HEARTBEAT_INTERVAL": "2", "HONE_MAX_RETRIES": "5"}
    with cluster(database_url, tmp_path, **timings) as hone:
        hone.start_api()
        study = hone.create_study(python_study(f"load-{name}", "instant", budgets))
        started = time.monotonic()
        for _ in range(PROCESSES):
            hone.start_worker(slots=SLOTS)
        hone.wait_completed(study, timeout=timeout)
        elapsed = time.monotonic() - started
        hone.check_exact_budget(study, budgets)
        samples = scrape(hone)
        errors = {
            labels["status"]: value
            for metric, labels, value in samples
            if metric == "hone_http_requests_total" and labels.get("status", "").startswith("5")
        }
        assert errors == {}, f"5xx answers under load: {errors}"
        api_log = (tmp_path / "api.log").read_text()
        for trouble in ("deadlock detected", "database is locked", "Traceback"):
            assert trouble not in api_log, trouble
        assert ADMIN_TOKEN not in hone.logs(tail=10**9), "a token was written to a log"
        report = {
            "database": name,
            "slots": PROCESSES * SLOTS,
            "trials": sum(budgets),
            "seconds": round(elapsed, 1),
            "trials_per_s": round(sum(budgets) / elapsed, 1),
            "lease_latency": lease_latency(samples),
        }
    (tmp_path / f"load-{name}.json").write_text(json.dumps(report, indent=2))
    print(f"\nload {name}: {json.dumps(report)}")
    return report


@pytest.mark.postgres
def test_sixteen_slots_on_postgresql_keep_the_budget_exact_without_5xx(
    postgres_url: str, tmp_path: Path
) -> None:
    run_load(postgres_url, "postgresql", tmp_path, [120, 60], timeout=150)


def test_sixteen_slots_on_sqlite_keep_the_budget_exact_without_5xx(sqlite_url: str, tmp_path: Path) -> None:
    run_load(sqlite_url, "sqlite", tmp_path, [120, 60], timeout=150)


# The minutes-long variants wait up to 900 s themselves; pytest's 300 s default would cut them.
@pytest.mark.long
@pytest.mark.timeout(1200)
@pytest.mark.postgres
def test_sixteen_slots_on_postgresql_for_minutes(postgres_url: str, tmp_path: Path) -> None:
    run_load(postgres_url, "postgresql", tmp_path, [3000, 1500, 500], timeout=900)


@pytest.mark.long
@pytest.mark.timeout(1200)
def test_sixteen_slots_on_sqlite_for_minutes(sqlite_url: str, tmp_path: Path) -> None:
    run_load(sqlite_url, "sqlite", tmp_path, [3000, 1500, 500], timeout=900)
