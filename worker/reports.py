"""When a slot sends a trial's step reports: at once, or coalesced with the next ones.

A report is an HTTP round trip and a commit. For a trial whose epochs take seconds that is
nothing, and every step goes out as it comes, so the pruner decides on every step. For an
objective that reports faster than that (a cheap function, tiny epochs), a round trip per
step would make the service the bottleneck; so a step that comes less than a *window*
after the previous send waits and goes with the next one (``POST /report`` with
``steps``), or with the result (``/complete``, ``/fail``). The window keeps the time a slot
spends waiting on reports to about ``overhead`` of its time: the measured round trip
divided by ``overhead`` (0.1: ten round trips' worth), and never more than ``max_delay``.
The heartbeat thread sends steps that have waited a whole window, so a pruning decision
is late by at most about one window, whatever the objective does next. Ray Tune buffers
trainable results the same way (``TUNE_RESULT_BUFFER_MIN_TIME_S``).

``overhead=0`` sends every step at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from protocol import MAX_STEPS_PER_CALL, HeldStep

# What the service takes in one call; older steps are dropped past it while the API is
# unreachable (the result matters more).
MAX_PENDING = MAX_STEPS_PER_CALL
_SMOOTHING = 0.2  # weight of the newest round trip in the running estimate


@dataclass(frozen=True)
class Step:
    step: int
    value: float
    metrics: dict[str, float]

    def held(self) -> HeldStep:
        """As a held-back step travels (``steps`` of a report or a result): no metrics.
        Unchecked, as every body the worker builds (see ``worker.api``)."""
        return HeldStep.model_construct(step=self.step, value=self.value)


class ReportPacer:
    """The pending steps of a slot's current trial, and whether to send them now.

    Thread-safe: the trial's thread adds steps, the heartbeat thread sends overdue ones.
    The round-trip estimate carries over from trial to trial.
    """

    def __init__(self, overhead: float = 0.1, *, max_delay: float = 2.0) -> None:
        if not 0 <= overhead <= 1:
            raise ValueError("overhead must be between 0 and 1")
        self.overhead = overhead
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self._pending: list[Step] = []
        self._round_trip: float | None = None
        self._last_sent = 0.0
        self._oldest = 0.0

    def window(self) -> float:
        """Seconds a step may wait for company before it is sent."""
        if self.overhead == 0 or self._round_trip is None:
            return 0.0
        return min(self._round_trip / self.overhead, self.max_delay)

    def begin(self, now: float) -> None:
        """A new trial: nothing pending; its first steps count from the lease."""
        with self._lock:
            self._pending = []
            self._last_sent = now

    def add(self, step: Step, now: float) -> bool:
        """Queue a step; True when it should go out now (with whatever is pending)."""
        with self._lock:
            if not self._pending:
                self._oldest = now
            self._pending.append(step)
            return now - self._last_sent >= self.window()

    def overdue(self, now: float) -> bool:
        """Steps have waited a whole window (the objective has not reported since)."""
        with self._lock:
            return bool(self._pending) and now - self._oldest >= self.window()

    def take(self) -> list[Step]:
        with self._lock:
            batch, self._pending = self._pending, []
            return batch

    def sent(self, seconds: float, now: float) -> None:
        """A call that carried steps took ``seconds``: update the round-trip estimate."""
        with self._lock:
            self._last_sent = now
            previous = self._round_trip
            self._round_trip = seconds if previous is None else previous + _SMOOTHING * (seconds - previous)

    def measured(self, seconds: float) -> None:
        """Any other call's round trip (the lease): a first estimate before any report."""
        with self._lock:
            if self._round_trip is None:
                self._round_trip = seconds

    def put_back(self, batch: list[Step]) -> None:
        """A send failed: the steps go with the next one, oldest first."""
        with self._lock:
            self._pending = (batch + self._pending)[-MAX_PENDING:]
