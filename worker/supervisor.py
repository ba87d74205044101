"""The parent worker process: finds the devices, runs one child process per slot.

A slot is one trial at a time on one device; ``--trials-per-device N`` gives each device
N slots (a small MLP uses a sliver of a GPU). Each child is a full lease loop
(:mod:`worker.slot`) started with ``CUDA_VISIBLE_DEVICES`` set to its GPU, so inside the
child the device is always ``cuda:0``.

Signals: the first SIGTERM or SIGINT stops leasing everywhere — each child gives its
running trial back (or finishes it if it is on its last step) and exits; the supervisor
exits 0 once they are gone, killing any that overrun ``stop_timeout``. A second signal
kills the children and exits at once (their trials are then reaped by the service).
Children ignore SIGINT, so Ctrl-C in a terminal reaches them once, through the parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from types import FrameType

from worker.logs import get_logger
from worker.loop import EXIT_DONE, SlotOptions

SLOT_ENV = "HONE_WORKER_SLOT"


class DeviceSpecError(ValueError):
    """``--devices`` names something that is not ``auto``, ``cpu`` or ``cuda:N,...``."""


def discover_devices(spec: str) -> list[str]:
    """``auto`` → every visible CUDA device (or ``cpu`` without one); else the named list."""
    spec = spec.strip().lower()
    if spec == "auto":
        count = _cuda_device_count()
        return [f"cuda:{index}" for index in range(count)] if count else ["cpu"]
    if spec == "cpu":
        return ["cpu"]
    devices = [part.strip() for part in spec.split(",") if part.strip()]
    for device in devices:
        index = device.removeprefix("cuda:")
        if device == "cpu" or not device.startswith("cuda:") or not index.isdigit():
            raise DeviceSpecError(f"{device!r} is not a device; use auto, cpu or cuda:0,cuda:1")
    if not devices:
        raise DeviceSpecError("no device given; use auto, cpu or cuda:0,cuda:1")
    return devices


def _cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class Slot:
    index: int
    device: str  # physical name reported to the service: "cpu" or "cuda:3"

    @property
    def visible_devices(self) -> str:
        return self.device.removeprefix("cuda:") if self.device.startswith("cuda:") else ""

    @property
    def local_device(self) -> str:
        return "cuda:0" if self.device.startswith("cuda:") else "cpu"


def plan_slots(devices: list[str], trials_per_device: int) -> list[Slot]:
    if trials_per_device < 1:
        raise ValueError("trials per device must be at least 1")
    return [
        Slot(index=device_index * trials_per_device + k, device=device)
        for device_index, device in enumerate(devices)
        for k in range(trials_per_device)
    ]


@dataclass(frozen=True)
class SupervisorOptions:
    api_url: str
    token: str
    devices: list[str]
    trials_per_device: int = 1
    studies: list[int] | None = None
    json_logs: bool = False
    max_trials: int | None = None  # per slot
    exit_when_idle: float | None = None
    stop_timeout: float = 20.0
    auth_retry: float = 30.0
    report_overhead: float = 0.1


class Supervisor:
    """Starts, watches and restarts the slot processes; turns signals into a clean stop."""

    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        self.slots = plan_slots(options.devices, options.trials_per_device)
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started_at: dict[int, float] = {}
        self.restarts: dict[int, int] = {}
        self.stopping_since: float | None = None
        self.log = get_logger()
        self.host = socket.gethostname()

    def worker_id(self, slot: Slot) -> str:
        return f"{self.host}-{os.getpid()}-{slot.index}"

    def child_env(self, slot: Slot) -> dict[str, str]:
        options = SlotOptions(
            api_url=self.options.api_url,
            token=self.options.token,
            worker_id=self.worker_id(slot),
            devices=[slot.device],
            device=slot.local_device,
            studies=self.options.studies,
            max_trials=self.options.max_trials,
            exit_when_idle=self.options.exit_when_idle,
            stop_timeout=self.options.stop_timeout,
            auth_retry=self.options.auth_retry,
            report_overhead=self.options.report_overhead,
            parent_pid=os.getpid(),
        )
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = slot.visible_devices
        env[SLOT_ENV] = json.dumps({**asdict(options), "json_logs": self.options.json_logs})
        env.pop("HONE_TOKEN", None)  # the token travels inside HONE_WORKER_SLOT only
        return env

    def start(self, slot: Slot) -> None:
        self.children[slot.index] = subprocess.Popen(
            [sys.executable, "-m", "worker.slot"], env=self.child_env(slot)
        )
        self.started_at[slot.index] = time.monotonic()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping_since is not None:
            self.log.warning("second signal, exiting now")
            for child in self.children.values():
                _send(child, signal.SIGKILL)
            os._exit(1)
        self.log.info(
            "stopping: no new trials; giving running trials back", extra={"fields": {"signal": signum}}
        )
        self.stopping_since = time.monotonic()
        for child in self.children.values():
            _send(child, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.log.info(
            "worker starting",
            extra={"fields": {"api": self.options.api_url, "slots": [s.device for s in self.slots]}},
        )
        for slot in self.slots:
            self.start(slot)
        while self.children:
            time.sleep(0.1)
            if (
                self.stopping_since is not None
                and time.monotonic() - self.stopping_since > self.options.stop_timeout + 10
            ):
                for child in self.children.values():
                    _send(child, signal.SIGKILL)
            for index, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    continue
                del self.children[index]
                if self.stopping_since is not None or code == EXIT_DONE:
                    continue
                self._restart(self.slots[index], code)
        self.log.info("worker stopped")
        return EXIT_DONE

    def _restart(self, slot: Slot, code: int) -> None:
        # A slot that keeps dying young waits longer each time, so a broken setup does not spin.
        lived = time.monotonic() - self.started_at.get(slot.index, 0.0)
        self.restarts[slot.index] = 0 if lived > 60 else self.restarts.get(slot.index, 0) + 1
        delay = (
            min(0.5 * 2 ** max(self.restarts[slot.index] - 1, 0), 30.0) if self.restarts[slot.index] else 0.0
        )
        self.log.warning(
            "slot exited, restarting", extra={"fields": {"slot": slot.index, "code": code, "delay_s": delay}}
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and self.stopping_since is None:
            time.sleep(0.1)
        if self.stopping_since is None:
            self.start(slot)


def _send(child: subprocess.Popen[bytes], signum: int) -> None:
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)
