"""``make bench``: run every benchmark and write ``docs/BENCHMARKS.md`` with its plots.

Each benchmark module has ``main(argv) -> dict``; this runs them in turn (``--quick``: the
few-minute variant of each; ``--smoke``: seconds, for CI), then writes the report — stamped
with the machine, the versions, the commit and the mode — with a summary of every checked
claim (target, measured, PASS/MISS and the margin) at the top, the tables of each benchmark,
and PNG plots in ``docs/benchmarks/``. The raw results go to ``docs/benchmarks/results.json``.
GPU figures appear only when the run had a GPU, and are labelled so.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.modes import mode_of, mode_parser
from benchmarks.stats import table

ROOT = Path(__file__).resolve().parent.parent

# (module, title) in report order.
SECTIONS: list[tuple[str, str]] = [
    ("search_efficiency", "1. Search efficiency: grid vs random vs Sobol vs coarse-to-fine vs TPE"),
    ("pruning", "2. Pruning: configurations per unit of compute"),
    ("service_overhead", "3. Service overhead: hone's workers vs raw Optuna on the same database"),
    ("big_study", "4. Big studies: reading a large study"),
    ("trainer_throughput", "5. Trainer throughput: hone's trainer vs a DataLoader loop"),
    ("gpu_packing", "6. GPU packing: trials per GPU"),
    (
        "fleet_throughput",
        "7. Fleet throughput: 16 and 64 workers on PostgreSQL, 1 and 2 API processes vs raw Optuna",
    ),
    ("fleet_scale", "8. Fleet scale: 1,000 and 5,000 leases heartbeating on one and two API processes"),
    ("recipe_rounds", "9. The basic recipe: a recipe round vs a plain random round"),
]


def _gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "benchmarks", "service", "worker", "trainer", "hone"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """Where and with what the figures were taken."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "calibration_ms": calibration_ms(),
        "gpu": _gpu(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "optuna": _version("optuna"),
        "optuna-dashboard": _version("optuna-dashboard"),
        "sqlalchemy": _version("sqlalchemy"),
        "commit": _commit(),
        "platform": platform.platform(),
    }


def calibration_ms(repeat: int = 5) -> float:
    """Milliseconds for a fixed pure-Python loop, best of ``repeat``: a stamp of the host's
    single-core speed. Ratios need none, but the one absolute figure (the big study's
    milliseconds) can only be compared between runs with it."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _argv(name: str, mode: str, gpu: bool) -> list[str] | None:
    """The arguments for one benchmark in a mode; None: not run in this mode/machine."""
    flag = {"full": [], "quick": ["--quick"], "smoke": ["--smoke"]}[mode]
    if name == "trainer_throughput":
        return ["--quick"] if mode != "full" else []
    if name == "gpu_packing":
        # 45 s windows keep 1/2/4/8 slots inside one 10-minute run on a lent GPU machine.
        return (["--quick"] if mode != "full" else ["--window", "45"]) if gpu else None
    return flag


def _render_generic(result: Any) -> str:
    return "```json\n" + json.dumps(result, indent=2, default=str)[:6000] + "\n```"


def _render_trainer(result: dict[str, Any], label: str) -> str:
    rows = []
    for name, r in result.get("datasets", {}).items():
        it, tr = r["iteration"], r["trial"]
        rows.append(
            [
                label,
                name,
                it["hone_samples_per_s"],
                it["dataloader_samples_per_s"],
                f"{it['ratio']:.1f}×",
                tr["hone_s"],
                tr["dataloader_s"],
                f"{tr['ratio']:.1f}×",
            ]
        )
    return table(
        [
            "device",
            "dataset",
            "hone samples/s",
            "DataLoader samples/s",
            "ratio",
            "hone trial s",
            "loop trial s",
            "ratio",
        ],
        rows,
    )


def run(mode: str, out: Path, only: list[str] | None) -> Path:
    plots_dir = out / "benchmarks"
    plots_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    gpu = info["gpu"] is not None
    results: dict[str, Any] = {}
    sections: list[str] = []
    targets: list[tuple[str, dict[str, Any]]] = []
    notes: list[str] = []  # findings beside the targets, shown under the summary
    for name, title in SECTIONS:
        if only and name not in only:
            continue
        argv = _argv(name, mode, gpu)
        body: str
        if argv is None:
            body = (
                "_Not run: this run had no GPU. GPU figures come only from a run on a GPU machine: "
                "`python -m benchmarks.report --only trainer_throughput gpu_packing --out docs/gpu` "
                "writes [docs/gpu/BENCHMARKS.md](gpu/BENCHMARKS.md)._"
            )
            sections.append(f"## {title}\n\n{body}")
            continue
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as error:
            sections.append(f"## {title}\n\n_Not available in this tree: {error}._")
            continue
        print(f"== {name} {' '.join(argv)}", flush=True)
        started = time.perf_counter()
        try:
            result = module.main(argv)
        except Exception:
            failure = traceback.format_exc()
            print(failure, file=sys.stderr)
            sections.append(f"## {title}\n\n**FAILED** in this run:\n\n```\n{failure[-3000:]}\n```")
            targets.append(
                (
                    title,
                    {"claim": title, "target": "runs", "measured": "failed", "pass": False, "margin": "–"},
                )
            )
            continue
        elapsed = time.perf_counter() - started
        results[name] = result
        plots: list[str] = []
        if hasattr(module, "plot"):
            plots = [f"benchmarks/{p.name}" for p in module.plot(result, plots_dir)]
        if hasattr(module, "markdown"):
            body = module.markdown(result, plots)
        elif name == "trainer_throughput":
            body = _render_trainer(result, "CPU")
            if gpu:
                gpu_result = module.main([*argv, "--device", "cuda"])
                results["trainer_throughput_gpu"] = gpu_result
                body += "\n\nOn the GPU (" + str(info["gpu"]) + "):\n\n" + _render_trainer(gpu_result, "GPU")
        else:
            body = _render_generic(result)
        if name == "gpu_packing":
            body = f"GPU run on {info['gpu']}.\n\n" + body
        doc = (module.__doc__ or "").strip().split("\n\n")[0]
        sections.append(f"## {title}\n\n{doc}\n\n{body}\n\n_Took {elapsed:.0f} s._")
        targets += [(title, t) for t in result.get("targets", [])]
        notes += result.get("notes", [])

    report = out / "BENCHMARKS.md"
    report.write_text(_document(mode, info, targets, sections, notes))
    (plots_dir / "results.json").write_text(
        json.dumps({"machine": info, "mode": mode, "results": results}, indent=1, default=str)
    )
    return report


def _document(
    mode: str,
    info: dict[str, Any],
    targets: list[tuple[str, dict[str, Any]]],
    sections: list[str],
    notes: list[str] | None = None,
) -> str:
    command = {
        "full": "make bench",
        "quick": "make bench-quick",
        "smoke": "python -m benchmarks.report --smoke",
    }[mode]
    stamp = [
        ["mode", f"**{mode}**" + (" (few seeds and short runs: indicative only)" if mode != "full" else "")],
        ["date", info["date"]],
        [
            "CPU",
            f"{info['cpu']} × {info['cores']} cores (1-min load average at start: {info['load_average']:.1f})",
        ],
        [
            "CPU speed",
            f"{info['calibration_ms']:.0f} ms for a fixed pure-Python loop (`benchmarks.report.calibration_ms`; "
            "lower is faster): compare absolute figures of two runs only with this",
        ],
        ["GPU", info["gpu"] or "none (GPU figures not measured in this run)"],
        [
            "versions",
            f"python {info['python']}, torch {info['torch']}, optuna {info['optuna']}, optuna-dashboard {info['optuna-dashboard']}, SQLAlchemy {info['sqlalchemy']}",
        ],
        ["commit", info["commit"]],
    ]
    summary = table(
        ["claim", "target", "measured", "result", "margin"],
        [
            [t["claim"], t["target"], t["measured"], "PASS" if t["pass"] else "**MISS**", t["margin"]]
            for _, t in targets
        ],
    )
    return (
        "\n\n".join(
            [
                "# Benchmarks",
                f"Generated by `{command}` from the scripts in `benchmarks/`; every figure below comes from "
                "that run, measured side by side with its peer on the same machine (ratios and medians: "
                "these machines are noisy). Rerun it to check any of them.",
                table(["", ""], stamp),
                "## Summary",
                "Each claim's target, what this run measured, and by how much it passed or missed.",
                summary,
                *(notes or []),
                *sections,
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> Path:
    parser = mode_parser(__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where BENCHMARKS.md goes")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (module names)")
    args = parser.parse_args(argv)
    mode = mode_of(args)
    report = run(mode, args.out, args.only)
    print(f"wrote {report}")
    return report


if __name__ == "__main__":
    main()
