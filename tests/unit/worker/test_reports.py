"""When a slot sends its steps: the pacing rules of worker.reports, with explicit clocks."""

from __future__ import annotations

import pytest

from worker.reports import MAX_PENDING, ReportPacer, Step


def step(n: int) -> Step:
    return Step(n, float(n), {})


def test_before_any_round_trip_is_measured_every_step_goes_out_at_once() -> None:
    pacer = ReportPacer(0.1)
    pacer.begin(0.0)
    assert pacer.window() == 0.0
    assert pacer.add(step(1), 0.0) is True


def test_steps_faster_than_ten_round_trips_wait_and_go_together() -> None:
    pacer = ReportPacer(0.1)
    pacer.measured(0.005)  # the lease took 5 ms: a step may wait 50 ms for company
    assert pacer.window() == pytest.approx(0.05)
    pacer.begin(100.0)
    assert [pacer.add(step(n), 100.0 + n * 0.001) for n in range(1, 5)] == [False] * 4
    assert pacer.overdue(100.02) is False
    assert pacer.add(step(5), 100.06) is True  # 60 ms since the lease: send all five
    assert [s.step for s in pacer.take()] == [1, 2, 3, 4, 5]
    assert pacer.take() == []


def test_slow_steps_go_out_one_by_one() -> None:
    pacer = ReportPacer(0.1)
    pacer.measured(0.005)
    pacer.begin(0.0)
    for n in range(1, 4):
        now = n * 1.0  # one-second epochs
        assert pacer.add(step(n), now) is True
        assert [s.step for s in pacer.take()] == [n]
        pacer.sent(0.005, now)


def test_a_held_step_is_overdue_once_it_has_waited_a_whole_window() -> None:
    pacer = ReportPacer(0.1)
    pacer.measured(0.01)
    pacer.begin(0.0)
    pacer.add(step(1), 0.2)
    pacer.sent(0.01, 0.2)  # sent with its batch
    pacer.take()
    assert pacer.add(step(2), 0.21) is False  # right after a send: held
    assert pacer.overdue(0.25) is False
    assert pacer.overdue(0.32) is True  # 110 ms later the heartbeat thread sends it


def test_the_round_trip_estimate_follows_the_service_and_the_window_is_capped() -> None:
    pacer = ReportPacer(0.1, max_delay=2.0)
    pacer.measured(0.01)
    for _ in range(50):
        pacer.sent(1.0, 0.0)  # the service slowed down to a second per call
    assert pacer.window() == 2.0
    pacer.measured(0.001)  # only a first estimate comes from other calls
    assert pacer.window() == 2.0


def test_overhead_zero_sends_every_step() -> None:
    pacer = ReportPacer(0.0)
    pacer.measured(0.5)
    pacer.begin(0.0)
    assert all(pacer.add(step(n), 0.0) for n in range(1, 4))


def test_steps_not_delivered_are_kept_oldest_first_up_to_a_bound() -> None:
    pacer = ReportPacer(0.1)
    pacer.begin(0.0)
    pacer.add(step(1), 0.0)
    batch = pacer.take()
    pacer.add(step(2), 0.1)
    pacer.put_back(batch)
    assert [s.step for s in pacer.take()] == [1, 2]
    pacer.put_back([step(n) for n in range(MAX_PENDING + 5)])
    kept = pacer.take()
    assert len(kept) == MAX_PENDING and kept[-1].step == MAX_PENDING + 4


def test_overhead_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ReportPacer(1.5)
