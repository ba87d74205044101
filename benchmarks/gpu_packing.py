"""Claim 6: a small MLP leaves a GPU mostly idle, so several trials per device pay off.

One ``hone api`` on a fresh SQLite file and one ``hone worker --trials-per-device N`` for
N in 1, 2, 4, 8 (``--quick``: 1, 2, 4), each on the same digits study (no pruning, so
every trial is a full run). After a warm-up (torch import, CUDA context, first trial) the
trials finished within a fixed window are counted in ``hone_trials``; the report is
trials/hour per N and the ratio to N = 1. With no GPU it runs on the CPU and says so (on
a CPU the slots compete for the same cores, so expect ratios near the core count at best).

Run alone: ``python -m benchmarks.gpu_packing [--quick] [--devices auto|cpu|cuda:0]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin-token-0123456789abcdef"

STUDY: dict[str, Any] = {
    "name": "gpu-packing",
    "objective": {"trainer": "mlp", "dataset": "digits", "max_epochs": 20, "metric": "val_accuracy"},
    "space": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"},
        "hidden_units": {"type": "int", "low": 64, "high": 512, "scale": "log"},
        "n_layers": {"type": "int", "low": 1, "high": 3},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    },
    "sampler": {"type": "random", "seed": 0},
    "pruner": {"type": "none"},
    "rounds": [{"trials": 100_000}],
}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _device_label(devices: str) -> str:
    try:
        import torch

        if devices != "cpu" and torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except ImportError:
        pass
    return "CPU (no GPU: slots share the CPU cores)"


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _finished(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM hone_trials WHERE state != 'running'")).scalar_one()
            )
    finally:
        engine.dispose()


def measure(
    n: int, *, devices: str, epochs: int, warmup_s: float, window_s: float, workdir: Path
) -> dict[str, Any]:
    """Trials/hour of one worker with ``n`` trials per device."""
    data = workdir / f"n{n}"
    data.mkdir(parents=True)
    url = f"sqlite:///{data / 'hone.db'}"
    env = {**os.environ, "HONE_DATABASE_URL": url, "HONE_ADMIN_TOKEN": ADMIN, "PYTHONUNBUFFERED": "1"}
    hone = [sys.executable, "-m", "hone"]
    subprocess.run([*hone, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}"
    with (data / "api.log").open("wb") as api_log, (data / "worker.log").open("wb") as worker_log:
        api = subprocess.Popen(
            [*hone, "api", "--port", str(port)], env=env, cwd=ROOT, stdout=api_log, stderr=subprocess.STDOUT
        )
        worker: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not start; see " + str(data / "api.log"))
                time.sleep(0.2)
            headers = {"Authorization": f"Bearer {ADMIN}"}
            study = {**STUDY, "objective": {**STUDY["objective"], "max_epochs": epochs}}
            httpx.post(
                f"{api_url}/api/v1/studies", json=study, headers=headers, timeout=30
            ).raise_for_status()
            worker = subprocess.Popen(
                [*hone, "worker", "--api", api_url, "--token", ADMIN, "--devices", devices]
                + ["--trials-per-device", str(n)],
                env=env,
                cwd=ROOT,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
            # Warm-up: until every slot has finished a trial (imports, CUDA context, data on device).
            ready_by = time.monotonic() + warmup_s
            while _finished(url) < n and time.monotonic() < ready_by:
                time.sleep(0.5)
            start_count, start = _finished(url), time.monotonic()
            time.sleep(window_s)
            count, elapsed = _finished(url) - start_count, time.monotonic() - start
        finally:
            if worker is not None:
                _stop(worker)
            _stop(api)
    return {
        "trials_per_device": n,
        "trials": count,
        "seconds": round(elapsed, 1),
        "trials_per_hour": count / elapsed * 3600,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1, 2, 4 trials per device; shorter windows")
    parser.add_argument("--devices", default="auto", help="auto, cpu or cuda:0,... (passed to hone worker)")
    parser.add_argument("--window", type=float, default=None, help="seconds counted per setting")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    args = parser.parse_args(argv)
    ns = [1, 2, 4] if args.quick else [1, 2, 4, 8]
    window = args.window or (30.0 if args.quick else 120.0)
    warmup = 120.0  # at most: the warm-up ends when every slot has finished a trial
    label = _device_label(args.devices)
    results = []
    with tempfile.TemporaryDirectory(prefix="hone-gpu-packing-") as tmp:
        for n in ns:
            results.append(
                measure(
                    n,
                    devices=args.devices,
                    epochs=args.epochs,
                    warmup_s=warmup,
                    window_s=window,
                    workdir=Path(tmp),
                )
            )
            base = results[0]["trials_per_hour"]
            results[-1]["ratio_to_1"] = round(results[-1]["trials_per_hour"] / base, 2) if base else None
            row = results[-1]
            print(
                f"{label} | {n} trials/device | {row['trials']} trials in {row['seconds']} s | "
                f"{row['trials_per_hour']:.0f} trials/hour | x{row['ratio_to_1']} vs 1",
                flush=True,
            )
    return {"device": label, "window_s": window, "epochs": args.epochs, "results": results}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
