"""The slot loop against a fake API (httpx.MockTransport): what reaches the service."""

from __future__ import annotations

import json
import math
import sys
import time
import types
from typing import Any

import httpx
import pytest

from worker.api import LeaseClient
from worker.loop import SlotLoop, SlotOptions


class FakeApi:
    """Grants the given objectives once each, then 204; records every call."""

    def __init__(self, functions: list[str], *, finish_status: int = 200, max_epochs: int = 30) -> None:
        self.queue = list(functions)
        self.max_epochs = max_epochs
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.finish_status = finish_status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        body = json.loads(request.content) if request.content else {}
        self.calls.append((path, body))
        if path == "/leases":
            if not self.queue:
                return httpx.Response(204, headers={"Retry-After": "0"})
            name = self.queue.pop(0)
            return httpx.Response(
                201,
                json={
                    "lease": {"id": name, "expires_at": "2030-01-01T00:00:00Z", "heartbeat_interval": 0.05},
                    "study": {"id": 1, "name": "s"},
                    "trial": {"number": 0, "params": {"x": 1.0}, "round": 1},
                    "objective": {
                        "trainer": "python",
                        "entrypoint": "no_such_module:f" if name == "missing" else f"fake_objectives:{name}",
                        "metric": "m",
                        "direction": "minimize",
                        "max_epochs": self.max_epochs,
                    },
                },
            )
        if path.endswith("/report"):
            prune = (body["step"] >= 3 and "prunable" in path) or (body["step"] >= 2 and "to_the_end" in path)
            return httpx.Response(200, json={"prune": prune})
        if path.endswith("/heartbeat"):
            return httpx.Response(200, json={"expires_at": "2030-01-01T00:00:00Z", "cancel": False})
        if self.finish_status != 200:
            return httpx.Response(self.finish_status, json={"detail": "late"})
        state = {"complete": "complete", "fail": "failed", "prune": "pruned"}[path.rsplit("/", 1)[-1]]
        return httpx.Response(200, json={"study_id": 1, "number": 0, "state": state, "duplicate": False})

    def finished(self) -> list[tuple[str, dict[str, Any]]]:
        return [(p, b) for p, b in self.calls if p.rsplit("/", 1)[-1] in ("complete", "fail", "prune")]


def _objectives() -> types.ModuleType:
    module = types.ModuleType("fake_objectives")

    def good(params: dict[str, Any], report: Any) -> float:
        report(1, 0.5)
        return 0.25

    def nan(params: dict[str, Any], report: Any) -> float:
        report(1, math.nan)
        return 0.0

    def broken(params: dict[str, Any], report: Any) -> float:
        raise KeyError("no such column: age")

    def oom(params: dict[str, Any], report: Any) -> float:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def prunable(params: dict[str, Any], report: Any) -> float:
        for step in range(1, 100):
            if report(step, 1.0):
                break
        return 1.0

    def negative_step(params: dict[str, Any], report: Any) -> float:
        report(-1, 0.5)
        return 0.25

    def to_the_end(params: dict[str, Any], report: Any) -> float:
        for step in (1, 2, 3):
            report(step, 0.5)  # trains on whatever report answers
        return 0.3

    for function in (good, nan, broken, oom, prunable, negative_step, to_the_end):
        setattr(module, function.__name__, function)
    return module


def run(api: FakeApi) -> SlotLoop:
    # Every step on its own (no coalescing: that is timing, tested in test_reports and e2e).
    options = SlotOptions(
        api_url="http://api", token="t", worker_id="w", devices=["cpu"], exit_when_idle=0, report_overhead=0
    )
    loop = SlotLoop(options, client=LeaseClient("http://api", "t", transport=httpx.MockTransport(api)))
    assert loop.run() == 0
    return loop


@pytest.fixture(autouse=True)
def fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fake_objectives", _objectives())


def test_every_kind_of_trial_ending_is_reported_and_the_loop_goes_on() -> None:
    api = FakeApi(["good", "nan", "broken", "oom", "prunable"])
    loop = run(api)
    assert loop.trials == 5
    finished = dict(api.finished())
    assert finished["/leases/good/complete"] == {"value": 0.25, "metrics": {}}
    assert finished["/leases/nan/fail"]["reason"].startswith("diverged")
    assert finished["/leases/nan/fail"]["retry"] is False
    assert "KeyError: 'no such column: age'" in finished["/leases/broken/fail"]["reason"]
    assert finished["/leases/oom/fail"]["reason"].startswith("CUDA out of memory")
    assert finished["/leases/oom/fail"]["retry"] is True
    assert "/leases/prunable/prune" in finished
    steps = [b["step"] for p, b in api.calls if p == "/leases/prunable/report"]
    assert steps == [1, 2, 3]


def test_a_failure_sends_a_one_line_reason_and_the_full_traceback() -> None:
    api = FakeApi(["broken", "missing"])
    run(api)
    finished = dict(api.finished())
    broken = finished["/leases/broken/fail"]
    assert broken["reason"] == "KeyError: 'no such column: age'"
    assert broken["cause"] == "error"
    assert broken["traceback"].startswith("Traceback (most recent call last):")
    assert 'raise KeyError("no such column: age")' in broken["traceback"]
    missing = finished["/leases/missing/fail"]
    assert missing["reason"] == (
        "cannot import 'no_such_module': ModuleNotFoundError: No module named 'no_such_module'"
    )
    assert "\n" not in missing["reason"] and "ModuleNotFoundError" in missing["traceback"]


def test_a_trial_that_reached_its_last_epoch_completes_though_a_prune_answer_came() -> None:
    # The answer to step 2 says prune, but the objective trains its last epoch (3 of 3)
    # anyway, as a coalesced batch's answer arrives after training ended: nothing is left to save.
    api = FakeApi(["to_the_end"], max_epochs=3)
    run(api)
    assert api.finished() == [
        ("/leases/to_the_end/complete", {"value": 0.3, "metrics": {}, "steps": [{"step": 3, "value": 0.5}]})
    ]


def test_a_409_on_a_late_result_is_logged_and_the_worker_goes_on() -> None:
    api = FakeApi(["good", "good"], finish_status=409)
    assert run(api).trials == 2


def test_a_finished_result_is_retried_while_the_api_is_down() -> None:
    api = FakeApi(["good"])
    failures = {"left": 2}

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/complete") and failures["left"]:
            failures["left"] -= 1
            raise httpx.ConnectError("connection refused")
        return api(request)

    options = SlotOptions(api_url="http://api", token="t", worker_id="w", devices=["cpu"], exit_when_idle=0)
    loop = SlotLoop(options, client=LeaseClient("http://api", "t", transport=httpx.MockTransport(flaky)))
    loop.run()
    assert failures["left"] == 0
    assert [p for p, _ in api.finished()] == ["/leases/good/complete"]


def test_a_held_back_step_the_service_refuses_does_not_cost_the_result() -> None:
    api = FakeApi(["negative_step"])

    def strict(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if path.endswith("/leases"):
            time.sleep(0.05)  # a 50 ms round trip: steps within 0.5 s of it are held back
        if any(s["step"] < 0 for s in body.get("steps", [])):
            api.calls.append((path.removeprefix("/api/v1"), body))
            return httpx.Response(422, json={"detail": [{"loc": ["body", "steps", 0, "step"]}]})
        return api(request)

    options = SlotOptions(api_url="http://api", token="t", worker_id="w", devices=["cpu"], exit_when_idle=0)
    loop = SlotLoop(options, client=LeaseClient("http://api", "t", transport=httpx.MockTransport(strict)))
    assert loop.run() == 0
    completes = [b for p, b in api.calls if p == "/leases/negative_step/complete"]
    assert completes[0]["steps"][0]["step"] == -1  # held back, then sent with the result: refused
    assert completes[-1] == {"value": 0.25, "metrics": {}}  # the result itself got through


def test_a_trial_given_back_at_shutdown_is_failed_with_cause_shutdown_and_retried() -> None:
    api = FakeApi(["give_back"])
    options = SlotOptions(
        api_url="http://api", token="t", worker_id="w", devices=["cpu"], exit_when_idle=0, report_overhead=0
    )
    loop = SlotLoop(options, client=LeaseClient("http://api", "t", transport=httpx.MockTransport(api)))

    def give_back(params: dict[str, Any], report: Any) -> float:
        loop.request_stop()  # as SIGTERM does, mid-trial
        for step in range(1, 100):
            if report(step, 1.0):
                break
        return 1.0

    sys.modules["fake_objectives"].give_back = give_back  # type: ignore[attr-defined]
    assert loop.run() == 0
    (path, body), *_ = api.finished()
    assert path == "/leases/give_back/fail"
    assert body["cause"] == "shutdown" and body["retry"] is True


def test_each_failure_is_sent_with_its_cause() -> None:
    api = FakeApi(["nan", "broken", "oom"])
    run(api)
    causes = {path: body["cause"] for path, body in api.finished()}
    assert causes == {
        "/leases/nan/fail": "diverged",
        "/leases/broken/fail": "error",
        "/leases/oom/fail": "out_of_memory",
    }


def test_a_trial_of_a_stopped_study_is_failed_with_cause_cancelled() -> None:
    class StoppedStudy(FakeApi):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/heartbeat"):
                return httpx.Response(200, json={"expires_at": "2030-01-01T00:00:00Z", "cancel": True})
            return super().__call__(request)

    def slow(params: dict[str, Any], report: Any) -> float:
        for step in range(1, 500):
            time.sleep(0.01)
            if report(step, 1.0):
                break
        return 1.0

    sys.modules["fake_objectives"].slow = slow  # type: ignore[attr-defined]
    api = StoppedStudy(["slow"])
    run(api)
    (path, body), *_ = api.finished()
    assert path == "/leases/slow/fail"
    assert body["cause"] == "cancelled" and body["retry"] is False
