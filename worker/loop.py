"""One worker slot: lease a trial, run it, report each step, heartbeat, finish it; repeat.

Steps that come faster than a round trip is worth are coalesced (``worker.reports``): they
go with the next report or with the result, and the heartbeat thread sends any that wait
too long.

The loop survives whatever a trial does: a NaN loss fails the trial as ``diverged``, an
exception fails it with the traceback's last lines, CUDA out-of-memory fails it and frees
the cache; in every case the loop leases the next trial. A 409 on a late result is
logged and forgotten (the service re-queued that configuration already). A trial that
reached its last epoch (``objective.max_epochs``) completes even if a prune answer came
for an earlier, coalesced batch: pruning saves epochs, and none are left. A finished
result is retried until the API takes it or refuses it; it is never dropped while it
could still be delivered.

Stopping (:meth:`SlotLoop.request_stop`, wired to SIGTERM/SIGINT): the loop leases no
more work; the running trial is told to stop at its next report and is given back to
the service for re-queue (``fail`` with ``cause: "shutdown"`` and ``retry: true``),
unless it is on its last step, in which case it finishes and completes. If the trial does not return within
``stop_timeout`` seconds, the heartbeat thread gives it back and exits the process.
"""

from __future__ import annotations

import math
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from protocol import FailureCause, HeldStep, LeaseGrant
from worker.api import ApiRejected, ApiUnavailable, LeaseClient, LeaseGone, NoWork
from worker.logs import get_logger
from worker.objectives import (
    BadObjective,
    Diverged,
    Outcome,
    failure_reason,
    failure_traceback,
    is_out_of_memory,
    release_device_memory,
    run_objective,
)
from worker.reports import ReportPacer, Step

# Exit codes a slot process ends with; the supervisor restarts a slot on anything else.
EXIT_DONE = 0
EXIT_TIMEOUT = 3  # a trial overran objective.timeout_s and was abandoned
# The reason text of a trial given back at shutdown; the service goes by cause="shutdown".
SHUTDOWN_REASON = "worker shutting down"
CANCELLED_REASON = "cancelled: study stopped or failed"


@dataclass(frozen=True)
class SlotOptions:
    """Everything one slot needs.

    Args:
        worker_id: the id this slot leases under (``host-pid-slot``).
        devices: the devices reported to the service (physical names, e.g. ``cuda:3``).
        device: the device the trial runs on inside this process (``cuda:0`` once
            ``CUDA_VISIBLE_DEVICES`` selected one GPU, or ``cpu``).
        max_trials: leave after this many trials (tests, benchmarks).
        exit_when_idle: leave after this many seconds without work.
        idle_max: the longest pause between two lease requests while idle.
        stop_timeout: how long a running trial may take to stop after a stop request.
        auth_retry: seconds between lease requests while the API refuses the token (401/403).
        report_overhead: share of the slot's time step reports may cost (``worker.reports``).
        parent_pid: stop when this process is gone (the supervisor died).
    """

    api_url: str
    token: str
    worker_id: str
    devices: list[str]
    device: str = "cpu"
    studies: list[int] | None = None
    max_trials: int | None = None
    exit_when_idle: float | None = None
    idle_max: float = 2.0
    stop_timeout: float = 20.0
    auth_retry: float = 30.0
    report_overhead: float = 0.1
    parent_pid: int | None = None


@dataclass
class _TrialRun:
    grant: LeaseGrant
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    pruned: bool = False
    cancelled: bool = False
    lease_lost: bool = False
    gave_back: bool = False
    finishing: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    reached_end: bool = False  # a step at the objective's max_epochs was reported


class SlotLoop:
    """The lease → run → report → finish loop of one device slot."""

    def __init__(self, options: SlotOptions, *, client: LeaseClient | None = None) -> None:
        self.options = options
        self.stopping = threading.Event()
        self._stop_at: float | None = None
        self._hard_stop = threading.Event()
        self.client = client or LeaseClient(options.api_url, options.token, stop=self._hard_stop)
        self.trials = 0
        self.log = get_logger()
        self.host = socket.gethostname()
        self.pacer = ReportPacer(options.report_overhead)
        self._sending = threading.Lock()  # the trial's thread or the heartbeat thread, not both

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            self._stop_at = time.monotonic()
            self.stopping.set()

    def run(self) -> int:
        backoff = 0.0
        idle_since = time.monotonic()
        try:
            while not self._should_leave():
                try:
                    asked = time.monotonic()
                    answer = self.client.lease(
                        worker=self.options.worker_id,
                        devices=self.options.devices,
                        studies=self.options.studies,
                        host=self.host,
                        deadline=10.0,
                    )
                except ApiUnavailable as error:
                    backoff = min(max(backoff * 2, 0.5), 10.0)
                    self.log.warning("api unavailable, retrying", extra={"fields": {"error": str(error)}})
                    self.stopping.wait(_jitter(backoff))
                    continue
                except ApiRejected as error:
                    if error.status_code in (401, 403):
                        # A token is fixed when the operator fixes .env or the API's settings,
                        # not by restarting: wait, say why, ask again (no restart loop).
                        self.log.error(
                            f"the API refuses this worker's token ({error.status_code}); "
                            f"retrying in {self.options.auth_retry:g} s. Give the worker a token "
                            "with the worker role (HONE_TOKEN; in compose HONE_WORKER_TOKEN)",
                            extra={"fields": {"error": str(error), "retry_s": self.options.auth_retry}},
                        )
                        self.stopping.wait(self.options.auth_retry)
                        continue
                    self.log.error("lease refused", extra={"fields": {"error": str(error)}})
                    self.stopping.wait(_jitter(5.0))
                    continue
                if isinstance(answer, NoWork):
                    limit = self.options.exit_when_idle
                    if limit is not None and time.monotonic() - idle_since >= limit:
                        self.log.info("idle, leaving", extra={"fields": {"idle_s": limit}})
                        break
                    backoff = min(max(backoff * 2, 0.05), self.options.idle_max)
                    self.stopping.wait(_jitter(min(backoff, max(answer.retry_after, 0.05))))
                    continue
                backoff = 0.0
                self.pacer.measured(time.monotonic() - asked)
                self.run_trial(answer)
                self.trials += 1
                idle_since = time.monotonic()
        finally:
            self.client.close()
        return EXIT_DONE

    def _should_leave(self) -> bool:
        if self.options.parent_pid is not None and os.getppid() != self.options.parent_pid:
            self.log.warning("supervisor is gone, stopping")
            self.request_stop()
        if self.stopping.is_set():
            return True
        return self.options.max_trials is not None and self.trials >= self.options.max_trials

    # -- one trial -------------------------------------------------------------------------

    def run_trial(self, grant: LeaseGrant) -> None:
        run = _TrialRun(grant)
        self.log.info(
            "trial start",
            extra={
                "fields": {
                    "event": "trial_start",
                    "worker": self.options.worker_id,
                    "study": grant.study.name,
                    "trial": grant.trial.number,
                    "round": grant.trial.round,
                    "lease": grant.lease.id,
                    "params": grant.trial.params,
                }
            },
        )
        self.pacer.begin(run.started)
        heartbeat = threading.Thread(target=self._heartbeat, args=(run,), name="heartbeat", daemon=True)
        heartbeat.start()
        outcome: Outcome | None = None
        error: BaseException | None = None
        try:
            outcome = run_objective(
                grant.objective,
                grant.trial.params,
                device=self.options.device,
                report=lambda step, value, metrics: self._report(run, step, value, metrics),
            )
        except Exception as caught:  # user code may raise anything; the worker must go on
            error = caught
            if is_out_of_memory(caught):
                release_device_memory()
        finally:
            run.done.set()
            heartbeat.join(timeout=5.0)
        self._finish(run, outcome, error)

    def _last_step(self, grant: LeaseGrant, step: int) -> bool:
        if grant.objective.trainer == "python":
            return False  # a user's function has no epochs the worker knows of
        return step >= grant.objective.max_epochs  # built-in trainers number epochs from 1

    def _report(self, run: _TrialRun, step: int, value: float, metrics: dict[str, float]) -> bool:
        # At the last epoch nothing is left to save: a prune answer (perhaps for an
        # earlier, coalesced batch) must not cost the finished result.
        final = step >= run.grant.objective.max_epochs
        run.reached_end = run.reached_end or final
        if run.lease_lost or run.cancelled or (run.pruned and not final):
            return True
        if self.stopping.is_set() and not self._last_step(run.grant, step):
            run.gave_back = True
            return True
        if not self.pacer.add(Step(step, value, metrics), time.monotonic()):
            return False  # held back: goes with the next report or the result
        return self._send_steps(run, deadline=15.0) and (run.lease_lost or not final)

    def _send_steps(self, run: _TrialRun, *, deadline: float) -> bool:
        """Send the pending steps; True when the trial must stop (pruned, lease gone).
        Once pruned, steps stay pending: they go with the result if training ends anyway."""
        with self._sending:
            if run.lease_lost or run.pruned:
                return True
            batch = self.pacer.take()
            if not batch:
                return False
            last = batch[-1]
            started = time.monotonic()
            try:
                prune = self.client.report(
                    run.grant.lease.id,
                    step=last.step,
                    value=last.value,
                    metrics=last.metrics,
                    earlier=[s.held() for s in batch[:-1]],
                    deadline=deadline,
                )
            except LeaseGone as error:
                self.log.warning(
                    "lease lost", extra={"fields": {"lease": run.grant.lease.id, "error": str(error)}}
                )
                run.lease_lost = True
                return True
            except ApiUnavailable as error:
                # Keep training: the final result matters more than intermediate values,
                # which go with the next report or the result.
                self.log.warning("report not delivered", extra={"fields": {"error": str(error)}})
                self.pacer.put_back(batch)
                return False
            except ApiRejected as error:  # asking again cannot change a 4xx: drop these steps
                self.log.warning("report refused", extra={"fields": {"error": str(error)}})
                return False
            now = time.monotonic()
            self.pacer.sent(now - started, now)
            if prune:
                run.pruned = True
            return bool(prune)

    def _heartbeat(self, run: _TrialRun) -> None:
        grant = run.grant
        interval = max(grant.lease.heartbeat_interval, 0.05)
        timeout = grant.objective.timeout_s
        last = time.monotonic()
        while not run.done.wait(min(interval, 0.1)):
            now = time.monotonic()
            if self.pacer.overdue(now) and not self.stopping.is_set():
                # The objective has gone quiet with steps held back: the pruner should see them.
                self._send_steps(run, deadline=2.0)
            if timeout is not None and now - run.started > timeout:
                self._abandon(
                    run, f"timeout: ran longer than {timeout:g} s", "timeout", retry=False, code=EXIT_TIMEOUT
                )
                return
            if self._stop_at is not None and now - self._stop_at > self.options.stop_timeout:
                self._abandon(run, SHUTDOWN_REASON, "shutdown", retry=True, code=EXIT_DONE)
                return
            if now - last < interval:
                continue
            last = now
            try:
                beat = self.client.heartbeat(grant.lease.id, deadline=max(interval, 2.0))
            except LeaseGone as error:
                self.log.warning(
                    "lease lost", extra={"fields": {"lease": grant.lease.id, "error": str(error)}}
                )
                run.lease_lost = True
                continue
            except (ApiUnavailable, ApiRejected) as error:
                self.log.warning("heartbeat not delivered", extra={"fields": {"error": str(error)}})
                continue
            if beat.cancel and not run.cancelled:
                self.log.info(
                    "trial cancelled by the service", extra={"fields": {"trial": grant.trial.number}}
                )
                run.cancelled = True

    def _abandon(self, run: _TrialRun, reason: str, cause: FailureCause, *, retry: bool, code: int) -> None:
        """The trial will not return in time: tell the service, then leave the process."""
        steps = [s.held() for s in self.pacer.take()]
        self._deliver(run, "fail", reason=reason, cause=cause, retry=retry, steps=steps, deadline=10.0)
        self.log.warning(
            "trial abandoned, exiting", extra={"fields": {"trial": run.grant.trial.number, "reason": reason}}
        )
        os._exit(code)

    def _finish(self, run: _TrialRun, outcome: Outcome | None, error: BaseException | None) -> None:
        if run.lease_lost:
            self._log_end(run, "lost", None, "lease expired or superseded")
            return
        # Steps still held back go with the result (a pruned trial's are moot).
        with self._sending:
            steps = [s.held() for s in self.pacer.take()]
        if error is not None:
            reason, cause, text = failure_reason(error), _cause_of(error), failure_traceback(error)
            if run.gave_back:
                reason, cause, text = SHUTDOWN_REASON, "shutdown", None
            elif run.cancelled:
                reason, cause, text = CANCELLED_REASON, "cancelled", None
            # Out of memory may pass when the device's other trials end: worth another try.
            retry = run.gave_back or is_out_of_memory(error)
            if not isinstance(error, Diverged | BadObjective) and not run.gave_back and not run.cancelled:
                self.log.warning("trial raised", exc_info=error)
            if run.pruned and not run.gave_back:
                self._deliver(run, "prune")
                self._log_end(run, "pruned", None, None)
                return
            self._deliver(run, "fail", reason=reason, cause=cause, traceback=text, retry=retry, steps=steps)
            self._log_end(
                run, {"shutdown": "given back", "cancelled": "cancelled"}.get(cause, "failed"), None, reason
            )
            return
        assert outcome is not None
        if outcome.stopped and run.pruned and (not run.reached_end or math.isnan(outcome.value)):
            self._deliver(run, "prune")
            self._log_end(run, "pruned", None, None)
        elif outcome.stopped and run.cancelled:
            self._deliver(run, "fail", reason=CANCELLED_REASON, cause="cancelled", retry=False, steps=steps)
            self._log_end(run, "cancelled", None, CANCELLED_REASON)
        elif outcome.stopped and run.gave_back:
            self._deliver(run, "fail", reason=SHUTDOWN_REASON, cause="shutdown", retry=True, steps=steps)
            self._log_end(run, "given back", None, SHUTDOWN_REASON)
        elif math.isnan(outcome.value):
            self._deliver(run, "fail", reason="objective returned no value", retry=False, steps=steps)
            self._log_end(run, "failed", None, "no value")
        else:
            self._deliver(run, "complete", value=outcome.value, metrics=outcome.metrics, steps=steps)
            self._log_end(run, "complete", outcome.value, None)

    def _deliver(
        self,
        run: _TrialRun,
        action: Literal["complete", "fail", "prune"],
        *,
        value: float = math.nan,
        metrics: dict[str, float] | None = None,
        reason: str = "",
        cause: FailureCause = "error",
        traceback: str | None = None,
        retry: bool = False,
        steps: list[HeldStep] | None = None,
        deadline: float = 3600.0,
    ) -> None:
        # The main thread and the heartbeat thread (on abandon) may both try; one result only.
        with run.finishing:
            if run.finished:
                return
            run.finished = True
            lease = run.grant.lease.id
            try:
                try:
                    self._send_result(
                        action, lease, value, metrics, (reason, cause, traceback), retry, steps, deadline
                    )
                except ApiRejected as error:
                    if not steps:
                        raise
                    # A step the service refuses (a negative step number from user code, say)
                    # must not cost the result: send it again without the held-back steps.
                    self.log.warning(
                        "held-back steps refused, sending the result without them",
                        extra={"fields": {"lease": lease, "error": str(error)}},
                    )
                    self._send_result(
                        action, lease, value, metrics, (reason, cause, traceback), retry, None, deadline
                    )
            except LeaseGone as error:
                self.log.warning(
                    "result refused (late or superseded lease), moving on",
                    extra={"fields": {"lease": lease, "status": error.status_code, "error": error.detail}},
                )
            except (ApiUnavailable, ApiRejected) as error:
                self.log.error(
                    "result not delivered", extra={"fields": {"lease": lease, "error": str(error)}}
                )

    def _send_result(
        self,
        action: Literal["complete", "fail", "prune"],
        lease: str,
        value: float,
        metrics: dict[str, float] | None,
        why: tuple[str, FailureCause, str | None],
        retry: bool,
        steps: list[HeldStep] | None,
        deadline: float,
    ) -> None:
        if action == "complete":
            self.client.complete(lease, value=value, metrics=metrics or {}, steps=steps, deadline=deadline)
        elif action == "fail":
            reason, cause, traceback = why
            self.client.fail(
                lease,
                reason=reason,
                cause=cause,
                traceback=traceback,
                retry=retry,
                steps=steps,
                deadline=deadline,
            )
        else:
            self.client.prune(lease, deadline=deadline)

    def _log_end(self, run: _TrialRun, outcome: str, value: float | None, reason: str | None) -> None:
        fields: dict[str, object] = {
            "event": "trial_end",
            "worker": self.options.worker_id,
            "study": run.grant.study.name,
            "trial": run.grant.trial.number,
            "outcome": outcome,
            "seconds": round(time.monotonic() - run.started, 3),
        }
        if value is not None:
            fields["value"] = value
        if reason:
            fields["reason"] = reason.splitlines()[-1][:200]
        self.log.info("trial end", extra={"fields": fields})


def _cause_of(error: BaseException) -> FailureCause:
    if isinstance(error, Diverged):
        return "diverged"
    return "out_of_memory" if is_out_of_memory(error) else "error"


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.5, 1.0)
