"""The benchmark scripts keep working: each runs in its smoke size and the report is written.

Figures are not checked here (a loaded CI machine says nothing about speed); shapes are.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import fleet_scale, fleet_throughput, objectives, pruning, report, service_overhead
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.slow
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="HONE_TEST_POSTGRES_URL not set")


def test_the_report_is_written_with_a_summary_tables_and_plots(tmp_path: Path) -> None:
    written = report.main(
        ["--smoke", "--out", str(tmp_path), "--only", "search_efficiency", "pruning", "big_study"]
    )
    text = written.read_text()
    assert "## Summary" in text and "**smoke**" in text
    assert "FAILED" not in text
    for claim in (
        "Random beats grid",
        "Coarse-to-fine beats plain random",
        "Pruning buys configurations",
        "Big study",
    ):
        assert claim in text
    # The pruning finding (one pruner on every task or not) sits under the summary table.
    summary = text.split("## Summary", 1)[1].split("## 1.", 1)[0]
    assert "pruner passes on every task here" in summary
    for plot in ("search_efficiency.png", "pruning.png", "big_study.png"):
        assert (tmp_path / "benchmarks" / plot).stat().st_size > 1000
    assert (tmp_path / "benchmarks" / "results.json").exists()


def test_service_overhead_measures_hone_and_raw_optuna_on_the_same_database() -> None:
    result = service_overhead.main(["--smoke"])
    rows = result["rows"]
    assert {(r["steps"], r["workers"]) for r in rows} == {(0, 1), (20, 1)}
    for row in rows:
        assert row["hone"] > 0 and row["raw"] > 0 and math.isfinite(row["ratio"])
    assert [t["claim"] for t in result["targets"]] == [
        "Service overhead, 0 reported steps per trial",
        "Service overhead, 20 reported steps per trial",
    ]


def test_pruning_counts_epochs_and_configurations_for_every_pruner() -> None:
    result = pruning.main(["--smoke", "--jobs", "1"])
    rows = result["tasks"]["learning_curve"]["pruners"]
    assert set(rows) == {"none", "median", "percentile", "successive_halving", "hyperband"}
    budget = result["tasks"]["learning_curve"]["epoch_budget"]
    for row in rows.values():
        assert row["epochs_per_seed"] >= budget and row["configs_per_seed"] >= 1
    assert rows["none"]["speedup"] == 1.0
    assert [t["claim"] for t in result["targets"]] == ["Pruning buys configurations: learning_curve"]
    (note,) = result["notes"]
    assert note.startswith(("One pruner passes", "No one pruner passes"))


def test_the_learning_curve_lead_is_the_last_epoch_the_rival_is_ahead() -> None:
    best = objectives.CURVE_OPTIMUM
    rival = {**best, "lr": best["lr"] * 10**0.5}
    lead = objectives.curve_lead(best, rival, 27)
    ours, theirs = objectives.curve_values(best, 27), objectives.curve_values(rival, 27)
    assert 1 < lead < 27
    assert theirs[lead - 1] < ours[lead - 1]
    assert all(a <= b for a, b in zip(ours[lead:], theirs[lead:], strict=True))
    assert objectives.curve_lead(best, best, 27) == 0
    assert f"half a decade more learning rate until epoch {lead} of 27" in pruning._lead_note(27)


@needs_postgres
def test_fleet_throughput_measures_hone_with_one_and_two_api_processes_against_raw_optuna() -> None:
    result = fleet_throughput.main(["--smoke"])
    (row,) = result["rows"]
    assert row["workers"] == 2
    for side in ("raw", "hone_1", "hone_2"):
        assert row[side] > 0
    assert math.isfinite(row["hone_1_ratio"]) and math.isfinite(row["hone_2_ratio"])


@needs_postgres
def test_fleet_scale_holds_leases_and_measures_heartbeats_and_grants() -> None:
    result = fleet_scale.main(["--smoke"])
    (row,) = result["rows"]
    assert row["leases"] == 50 and row["errors"] == {}
    assert row["heartbeats"] > 0 and row["grants"] > 0
    assert 0 < row["heartbeat_p50_ms"] <= row["heartbeat_p99_ms"]
    assert 0 < row["grant_p50_ms"] <= row["grant_p99_ms"]
    assert "fleet_scale" in dict(report.SECTIONS) and "fleet_throughput" in dict(report.SECTIONS)
